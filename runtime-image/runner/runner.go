/*
Copyright 2026 The aivm-operator Authors.

Licensed under the Apache License, Version 2.0 (the "License");
you may not use this file except in compliance with the License.
You may obtain a copy of the License at

    http://www.apache.org/licenses/LICENSE-2.0

Unless required by applicable law or agreed to in writing, software
distributed under the License is distributed on an "AS IS" BASIS,
WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
See the License for the specific language governing permissions and
limitations under the License.
*/

package runner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"
	"unicode/utf8"

	"github.com/aivm-dev/aivm-operator/runtime-image/engine"
	"github.com/aivm-dev/aivm-operator/runtime-image/envelope"
)

// maxInputBytes bounds the input file: the largest ConfigMap or Secret value.
const maxInputBytes = 1 << 20

// Options are a run's injections; the zero value is the pod's.
type Options struct {
	// Getenv reads the environment (os.Getenv).
	Getenv func(string) string
	// Now is the clock of the timings (time.Now).
	Now func() time.Time
	// Log receives progress; never the token, the input or the output.
	Log *slog.Logger
	// Retry bounds the post (DefaultRetry).
	Retry RetryPolicy
	// Wait sleeps between post attempts (a timer bounded by ctx).
	Wait func(ctx context.Context, d time.Duration) error
}

// Outcome is how a run ended: what went into the termination message, and
// the exit code.
type Outcome struct {
	ExitCode int
	envelope.Termination
	// Envelope is what was posted (nil when the run failed before).
	Envelope *envelope.Envelope
	// PostAttempts counts the requests sent to the result endpoint.
	PostAttempts int
}

// failure is a run that ends early with an exit code and a reason.
type failure struct {
	code   int
	reason string
	err    error
}

func (f *failure) Error() string { return f.err.Error() }

func fail(code int, reason string, format string, args ...any) *failure {
	return &failure{code: code, reason: reason, err: fmt.Errorf(format, args...)}
}

// engineFailure maps an engine error to the contract's exit code; the
// reason is the Kind.
func engineFailure(err error) *failure {
	k := engine.KindOf(err)
	code := envelope.ExitEngineError
	switch k {
	case engine.KindBadInput, engine.KindContextLength:
		code = envelope.ExitBadInput
	case engine.KindStartTimeout:
		code = envelope.ExitEngineStartTimeout
	case engine.KindTimeout:
		code = envelope.ExitInferenceTimeout
	case engine.KindOutOfMemory:
		code = envelope.ExitOutOfMemory
	}
	return &failure{code: code, reason: string(k), err: err}
}

// Run is `aivm-runtime run`: it runs the job once, posts the envelope, writes
// the termination message and returns the Outcome; the caller exits with
// its ExitCode.
func Run(ctx context.Context, o Options) Outcome {
	o = o.withDefaults()
	start := o.Now()
	out := Outcome{}
	cfg, err := LoadConfig(o.Getenv)
	if err != nil {
		out = outcomeOf(fail(envelope.ExitBadInput, string(engine.KindBadInput), "%w", err))
	} else {
		out = run(ctx, o, cfg, start)
	}
	path := cfg.TerminationPath
	if path == "" {
		path = DefaultTerminationPath
	}
	if err := os.WriteFile(path, out.Termination.Marshal(), 0o644); err != nil {
		// The exit code still tells the job controller what happened.
		o.Log.Error("Cannot write the termination message", "path", path, "err", err)
	}
	if out.ExitCode == envelope.ExitOK {
		o.Log.Info("Result accepted", "outputDigest", out.OutputDigest, "attempts", out.PostAttempts)
	} else {
		o.Log.Error("Run failed", "reason", out.Reason, "exitCode", out.ExitCode, "message", out.Message)
	}
	return out
}

func outcomeOf(f *failure) Outcome {
	return Outcome{ExitCode: f.code, Termination: envelope.Termination{Reason: f.reason, Message: f.err.Error()}}
}

func (o Options) withDefaults() Options {
	if o.Getenv == nil {
		o.Getenv = os.Getenv
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Log == nil {
		o.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if o.Retry.Attempts == 0 {
		o.Retry = DefaultRetry
	}
	if o.Wait == nil {
		o.Wait = sleepCtx
	}
	return o
}

func run(ctx context.Context, o Options, cfg Config, start time.Time) Outcome {
	p := &poster{url: cfg.ResultURL, tokenFile: cfg.TokenFile, caFile: cfg.CAFile, retry: o.Retry, wait: o.Wait}
	env, f := infer(ctx, o, cfg, p, start)
	if f != nil {
		out := outcomeOf(f)
		out.PostAttempts = p.attempts
		return out
	}
	out := Outcome{Envelope: env}
	body, err := json.Marshal(env)
	if err != nil {
		out = outcomeOf(fail(envelope.ExitEngineError, string(engine.KindEngine), "encoding the envelope: %w", err))
		return out
	}
	o.Log.Info("Posting the result", "url", cfg.ResultURL, "outputDigest", env.Digests.Output, "bytes", len(body))
	err = p.post(ctx, body)
	out.PostAttempts = p.attempts
	out.OutputDigest = env.Digests.Output
	var pe *postError
	switch {
	case err == nil:
		out.ExitCode, out.Reason = envelope.ExitOK, envelope.ReasonSucceeded
		out.Message = fmt.Sprintf("result accepted: %d output tokens, finish %s", env.OutputTokens, env.FinishReason)
	case errors.As(err, &pe) && pe.refused:
		out.ExitCode, out.Reason = envelope.ExitResultRefused, envelope.ReasonResultRefused
		out.Message = err.Error()
	default:
		out.ExitCode, out.Reason = envelope.ExitResultEndpointUnreachable, envelope.ReasonResultEndpointUnreachable
		out.Message = err.Error()
	}
	return out
}

// infer does everything before the post: checks, engine, envelope.
func infer(ctx context.Context, o Options, cfg Config, p *poster, start time.Time) (*envelope.Envelope, *failure) {
	// Fail before any GPU time is spent when the result could never be posted.
	if err := p.check(); err != nil {
		return nil, fail(envelope.ExitResultEndpointUnreachable, envelope.ReasonResultEndpointUnreachable, "%w", err)
	}
	input, f := readInput(cfg)
	if f != nil {
		return nil, f
	}
	if fi, err := os.Stat(cfg.ModelDir); err != nil {
		return nil, fail(envelope.ExitEngineError, string(engine.KindModel), "model directory: %w", err)
	} else if !fi.IsDir() {
		return nil, fail(envelope.ExitEngineError, string(engine.KindModel), "model directory %s is not a directory", cfg.ModelDir)
	}
	factory, ok := engine.Lookup(cfg.Engine)
	if !ok {
		return nil, fail(envelope.ExitEngineError, string(engine.KindEngine), "engine %q is not in this runtime (it has %v)", cfg.Engine, engine.Names())
	}

	loadStart := o.Now()
	eng, err := factory(cfg.ModelDir)
	if err != nil {
		return nil, engineFailure(err)
	}
	// An engine abandoned in Generate is not closed: the process exits right
	// after, and closing under a running Generate (an unmapped model) could
	// crash it before the termination message is written.
	abandoned := false
	defer func() {
		if !abandoned {
			_ = eng.Close()
		}
	}()
	if s, ok := eng.(engine.Starter); ok {
		sctx, cancel := context.WithTimeout(ctx, cfg.StartupTimeout)
		err := s.Start(sctx)
		expired := errors.Is(sctx.Err(), context.DeadlineExceeded) && ctx.Err() == nil
		cancel()
		if err != nil {
			if expired && engine.KindOf(err) == engine.KindEngine {
				err = &engine.Error{Kind: engine.KindStartTimeout, Err: err}
			}
			return nil, engineFailure(err)
		}
	}
	load := o.Now().Sub(loadStart)
	o.Log.Info("Engine ready", "engine", eng.Name(), "load", load)

	req := engine.Request{
		Prompt:         string(input),
		MaxTokens:      cfg.Parameters.MaxTokens,
		Temperature:    cfg.Parameters.Temperature,
		TopP:           cfg.Parameters.TopP,
		Seed:           cfg.Parameters.Seed,
		Stop:           cfg.Parameters.Stop,
		MaxOutputBytes: envelope.MaxOutputBytes,
	}
	resp, abandoned, err := generate(ctx, eng, req, cfg.InferenceTimeout)
	if err != nil {
		return nil, engineFailure(err)
	}
	if len(resp.Output) > envelope.MaxOutputBytes || !utf8.ValidString(resp.Output) {
		return nil, fail(envelope.ExitEngineError, string(engine.KindEngine),
			"engine %s broke its contract: output of %d bytes (bound %d) or not UTF-8", eng.Name(), len(resp.Output), envelope.MaxOutputBytes)
	}
	return &envelope.Envelope{
		Version:      envelope.Version,
		JobUID:       cfg.JobUID,
		Namespace:    cfg.Namespace,
		Job:          cfg.Job,
		Attempt:      cfg.Attempt,
		Member:       cfg.Member,
		Output:       resp.Output,
		FinishReason: resp.FinishReason,
		InputTokens:  int64(resp.InputTokens),
		OutputTokens: int64(resp.OutputTokens),
		Timings: envelope.Timings{
			LoadMillis:     load.Milliseconds(),
			PromptMillis:   resp.PromptDuration.Milliseconds(),
			GenerateMillis: resp.GenerateDuration.Milliseconds(),
			TotalMillis:    o.Now().Sub(start).Milliseconds(),
		},
		Engine:   eng.Name(),
		GPUUUIDs: cfg.GPUUUIDs,
		Digests: envelope.Digests{
			Input:  envelope.Digest(input),
			Output: envelope.Digest([]byte(resp.Output)),
			Model:  cfg.ModelDigest,
			Kernel: cfg.KernelDigest,
		},
	}, nil
}

// readInput reads the input file, bounded, and checks it against
// AIVM_INPUT_DIGEST when the pod carries one. The input may come from a
// Secret: errors never quote it.
func readInput(cfg Config) ([]byte, *failure) {
	fh, err := os.Open(cfg.InputFile)
	if err != nil {
		return nil, fail(envelope.ExitBadInput, string(engine.KindBadInput), "input file: %w", err)
	}
	defer func() { _ = fh.Close() }()
	input, err := io.ReadAll(io.LimitReader(fh, maxInputBytes+1))
	if err != nil {
		return nil, fail(envelope.ExitBadInput, string(engine.KindBadInput), "reading the input file: %w", err)
	}
	switch {
	case len(input) > maxInputBytes:
		return nil, fail(envelope.ExitBadInput, string(engine.KindBadInput), "input file %s is larger than %d bytes", cfg.InputFile, maxInputBytes)
	case len(input) == 0:
		return nil, fail(envelope.ExitBadInput, string(engine.KindBadInput), "input file %s is empty", cfg.InputFile)
	case !utf8.Valid(input):
		return nil, fail(envelope.ExitBadInput, string(engine.KindBadInput), "input file %s is not UTF-8 text", cfg.InputFile)
	}
	if cfg.InputDigest != "" {
		if d := envelope.Digest(input); d != cfg.InputDigest {
			return nil, fail(envelope.ExitDigestMismatch, envelope.ReasonDigestMismatch,
				"input file %s has digest %s, %s says %s", cfg.InputFile, d, EnvInputDigest, cfg.InputDigest)
		}
	}
	return input, nil
}

// generate runs one request under the inference timeout. An engine that
// does not return when its context ends is abandoned: the process exits
// right after, and the job must not wait for it.
func generate(ctx context.Context, eng engine.Engine, req engine.Request, timeout time.Duration) (_ engine.Response, abandoned bool, _ error) {
	gctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	type result struct {
		resp engine.Response
		err  error
	}
	done := make(chan result, 1)
	go func() {
		r, err := eng.Generate(gctx, req)
		done <- result{r, err}
	}()
	var r result
	select {
	case r = <-done:
	case <-gctx.Done():
		r.err, abandoned = gctx.Err(), true
	}
	if r.err != nil && errors.Is(gctx.Err(), context.DeadlineExceeded) && ctx.Err() == nil {
		return r.resp, abandoned, &engine.Error{Kind: engine.KindTimeout, Err: fmt.Errorf("inference ran past %s: %w", timeout, r.err)}
	}
	return r.resp, abandoned, r.err
}
