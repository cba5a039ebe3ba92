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
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/aivm-dev/aivm-operator/runtime-image/engine"
	"github.com/aivm-dev/aivm-operator/runtime-image/envelope"
	"github.com/aivm-dev/aivm-operator/runtime-image/runner/runnertest"
)

const (
	token        = "eyJhbGciOiJSUzI1NiJ9.secret-token-value.sig"
	kernelDigest = "sha256:1111111111111111111111111111111111111111111111111111111111111111"
	modelHex     = "2222222222222222222222222222222222222222222222222222222222222222"
	prompt       = "Once upon a time, in Zürich,"
)

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

// fixture is a job pod's files and environment on disk, and a result
// endpoint over TLS.
type fixture struct {
	env   map[string]string
	dir   string
	ep    *runnertest.Endpoint
	log   bytes.Buffer
	waits []time.Duration
	retry RetryPolicy
}

func newFixture(t testing.TB, b behaviour) *fixture {
	t.Helper()
	f := &fixture{dir: t.TempDir(), ep: runnertest.NewEndpoint(t, token),
		retry: RetryPolicy{Attempts: 4, Initial: time.Millisecond, Max: 4 * time.Millisecond, AttemptTimeout: 5 * time.Second}}
	model := filepath.Join(f.dir, "model")
	must(t, os.MkdirAll(model, 0o755))
	bb, _ := json.Marshal(b)
	must(t, os.WriteFile(filepath.Join(model, behaviourFile), bb, 0o444))
	must(t, os.WriteFile(filepath.Join(f.dir, "input"), []byte(prompt), 0o444))
	must(t, os.WriteFile(filepath.Join(f.dir, "token"), []byte(token+"\n"), 0o400))
	f.env = map[string]string{
		EnvJobNamespace: "team-a", EnvJobName: "story", EnvJobUID: "6f1c2d3e-0000-4000-8000-000000000001",
		EnvAttempt: "2", EnvMember: "1", EnvKernelDigest: kernelDigest, EnvModelDigest: modelHex,
		EnvEngine: "test", EnvParameters: `{"maxTokens":8,"temperature":"0.7","topP":"0.9","seed":42,"stop":["\n"]}`,
		EnvStartupTimeout: "5s", EnvInferenceTimeout: "5s", EnvResultURL: f.ep.URL,
		EnvModelDir: model, EnvInputFile: filepath.Join(f.dir, "input"),
		EnvTokenFile: filepath.Join(f.dir, "token"), EnvCAFile: f.ep.CAFile,
		EnvTerminationPath: filepath.Join(f.dir, "termination-log"),
		EnvVisibleDevices:  "GPU-6d3a0c1e-aaaa-bbbb-cccc-000000000001,GPU-6d3a0c1e-aaaa-bbbb-cccc-000000000002",
	}
	return f
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// run runs with a clock that ticks 10 ms per reading and a wait that only
// records the backoff it was asked for.
func (f *fixture) run(ctx context.Context) Outcome {
	var now time.Time
	return Run(ctx, Options{
		Getenv: func(k string) string { return f.env[k] },
		Now:    func() time.Time { now = now.Add(10 * time.Millisecond); return now },
		Log:    slog.New(slog.NewTextHandler(&f.log, nil)),
		Retry:  f.retry,
		Wait: func(_ context.Context, d time.Duration) error {
			f.waits = append(f.waits, d)
			return nil
		},
	})
}

func (f *fixture) termination(t *testing.T) envelope.Termination {
	t.Helper()
	b, err := os.ReadFile(f.env[EnvTerminationPath])
	must(t, err)
	if len(b) >= 4096 || bytes.Count(b, []byte("\n")) != 1 {
		t.Errorf("termination message is not one line under 4 KiB: %q", b)
	}
	term, err := envelope.ParseTermination(b)
	must(t, err)
	return term
}

func TestRunPostsTheEnvelope(t *testing.T) {
	f := newFixture(t, behaviour{Output: "there was a GPU. ", EchoPrompt: true})
	out := f.run(context.Background())
	if out.ExitCode != 0 {
		t.Fatalf("exit %d: %s: %s", out.ExitCode, out.Reason, out.Message)
	}
	got := f.ep.Envelopes()
	if len(got) != 1 || f.ep.Requests() != 1 {
		t.Fatalf("endpoint took %d envelopes in %d requests, want 1 in 1", len(got), f.ep.Requests())
	}
	output := "there was a GPU. " + prompt
	want := envelope.Envelope{
		Version: envelope.Version, JobUID: "6f1c2d3e-0000-4000-8000-000000000001", Namespace: "team-a", Job: "story",
		Attempt: 2, Member: 1, Output: output, FinishReason: "length",
		InputTokens: int64(len(prompt)), OutputTokens: 3,
		// Clock readings: start 10, load from 20 to 30, end 40.
		Timings:  envelope.Timings{LoadMillis: 10, PromptMillis: 20, GenerateMillis: 30, TotalMillis: 30},
		Engine:   "test/v1",
		GPUUUIDs: []string{"GPU-6d3a0c1e-aaaa-bbbb-cccc-000000000001", "GPU-6d3a0c1e-aaaa-bbbb-cccc-000000000002"},
		Digests: envelope.Digests{
			Input: sha([]byte(prompt)), Output: sha([]byte(output)),
			Model: "sha256:" + modelHex, Kernel: kernelDigest,
		},
	}
	if diff := cmp.Diff(want, got[0]); diff != "" {
		t.Errorf("envelope (-want +got):\n%s", diff)
	}
	wantTerm := envelope.Termination{Reason: "Succeeded", Message: "result accepted: 3 output tokens, finish length", OutputDigest: sha([]byte(output))}
	if diff := cmp.Diff(wantTerm, f.termination(t)); diff != "" {
		t.Errorf("termination (-want +got):\n%s", diff)
	}
	if strings.Contains(f.log.String(), token) || strings.Contains(f.log.String(), "Zürich") {
		t.Errorf("the log shows the token or the input:\n%s", f.log.String())
	}
}

func TestRunPassesTheParametersToTheEngine(t *testing.T) {
	p, err := ParseParameters(`{"maxTokens":8,"temperature":"0.7","topP":0.9,"seed":42,"stop":["\n"]}`)
	must(t, err)
	if diff := cmp.Diff(Parameters{MaxTokens: 8, Temperature: 0.7, TopP: 0.9, Seed: 42, Stop: []string{"\n"}}, p); diff != "" {
		t.Errorf("parameters (-want +got):\n%s", diff)
	}
	p, err = ParseParameters("")
	must(t, err)
	if diff := cmp.Diff(Parameters{MaxTokens: DefaultMaxTokens, TopP: 1}, p); diff != "" {
		t.Errorf("defaults (-want +got):\n%s", diff)
	}
}

func TestRunFailures(t *testing.T) {
	cases := []struct {
		name   string
		b      behaviour
		setup  func(t *testing.T, f *fixture)
		code   int
		reason string
		msg    string
		posts  int // requests that reached the endpoint
	}{
		{name: "empty input", setup: writeInput(""), code: 10, reason: "BadInput", msg: "is empty"},
		{name: "input not UTF-8", setup: writeInput("\xff\xfe"), code: 10, reason: "BadInput", msg: "not UTF-8"},
		{name: "input file missing", setup: setEnv(EnvInputFile, "/nonexistent/input"), code: 10, reason: "BadInput", msg: "no such file"},
		{name: "parameters not JSON", setup: setEnv(EnvParameters, `{"maxTokens":`), code: 10, reason: "BadInput", msg: "AIVM_PARAMETERS"},
		{name: "unknown parameter", setup: setEnv(EnvParameters, `{"maxTokenz":3}`), code: 10, reason: "BadInput", msg: `unknown field "maxTokenz"`},
		{name: "temperature out of range", setup: setEnv(EnvParameters, `{"temperature":"2.5"}`), code: 10, reason: "BadInput", msg: "temperature 2.5"},
		{name: "env missing", setup: setEnv(EnvJobUID, ""), code: 10, reason: "BadInput", msg: "AIVM_JOB_UID is not set"},
		{name: "result URL not https", setup: setEnv(EnvResultURL, "http://127.0.0.1:1/v1/results"), code: 10, reason: "BadInput", msg: "not an https:// URL"},
		{name: "model digest malformed", setup: setEnv(EnvModelDigest, "sha256:ABC"), code: 10, reason: "BadInput", msg: "AIVM_MODEL_DIGEST"},
		{name: "model dir missing", setup: setEnv(EnvModelDir, "/nonexistent/model"), code: 12, reason: "ModelInvalid", msg: "model directory"},
		{name: "model dir is a file", setup: func(_ *testing.T, f *fixture) { f.env[EnvModelDir] = f.env[EnvInputFile] },
			code: 12, reason: "ModelInvalid", msg: "is not a directory"},
		{name: "input digest differs from env", setup: setEnv(EnvInputDigest, sha([]byte("another prompt"))),
			code: 11, reason: "DigestMismatch", msg: "AIVM_INPUT_DIGEST says " + sha([]byte("another prompt"))},
		{name: "unknown engine", setup: setEnv(EnvEngine, "vllm-magic"), code: 12, reason: "EngineError", msg: `engine "vllm-magic" is not in this runtime`},
		{name: "model invalid at load", b: behaviour{LoadKind: engine.KindModel, Message: "config.json: n_head 0"}, code: 12, reason: "ModelInvalid", msg: "n_head 0"},
		{name: "engine error", b: behaviour{Kind: engine.KindEngine, Message: "NaN in logits"}, code: 12, reason: "EngineError", msg: "NaN in logits"},
		{name: "engine bad input", b: behaviour{Kind: engine.KindBadInput, Message: "stop too long"}, code: 10, reason: "BadInput", msg: "stop too long"},
		{name: "context length", b: behaviour{Kind: engine.KindContextLength, Message: "1030 > 1024 positions"}, code: 10, reason: "ContextLength", msg: "1024 positions"},
		{name: "out of memory", b: behaviour{Kind: engine.KindOutOfMemory, Message: "CUDA out of memory"}, code: 15, reason: "OutOfMemory", msg: "CUDA out of memory"},
		{name: "start timeout", b: behaviour{StartHang: true}, setup: setEnv(EnvStartupTimeout, "50ms"), code: 13, reason: "EngineStartTimeout", msg: "server never came up"},
		{name: "inference timeout", b: behaviour{Hang: true}, setup: setEnv(EnvInferenceTimeout, "50ms"), code: 14, reason: "InferenceTimeout", msg: "inference ran past 50ms"},
		{name: "inference timeout, engine ignores its context", b: behaviour{HangIgnore: true}, setup: setEnv(EnvInferenceTimeout, "50ms"),
			code: 14, reason: "InferenceTimeout", msg: "inference ran past 50ms"},
		{name: "endpoint refuses with 403", setup: script(403), code: 16, reason: "ResultRefused", msg: "403 Scripted: scripted 403", posts: 1},
		{name: "endpoint refuses a wrong token", setup: func(t *testing.T, f *fixture) {
			must(t, os.WriteFile(f.env[EnvTokenFile], []byte("someone-elses-token"), 0o600))
		}, code: 16, reason: "ResultRefused", msg: "401 Unauthorized: bearer token not accepted", posts: 1},
		{name: "endpoint answers 500 every time", setup: script(500, 500, 500, 500, 500), code: 17, reason: "ResultEndpointUnreachable", msg: "gave up after 4 attempts", posts: 4},
		{name: "endpoint unreachable", setup: func(t *testing.T, f *fixture) {
			l, err := net.Listen("tcp", "127.0.0.1:0")
			must(t, err)
			f.env[EnvResultURL] = "https://" + l.Addr().String() + "/v1/results"
			l.Close()
		}, code: 17, reason: "ResultEndpointUnreachable", msg: "connection refused"},
		{name: "endpoint certificate from another CA", setup: func(t *testing.T, f *fixture) {
			other, _ := runnertest.NewCA(t)
			must(t, os.WriteFile(f.env[EnvCAFile], other, 0o600))
		}, code: 17, reason: "ResultEndpointUnreachable", msg: "certificate"},
		{name: "token file missing", setup: setEnv(EnvTokenFile, "/nonexistent/token"), code: 17, reason: "ResultEndpointUnreachable", msg: "reading the result token"},
		{name: "CA file not PEM", setup: func(t *testing.T, f *fixture) {
			must(t, os.WriteFile(f.env[EnvCAFile], []byte("not a certificate"), 0o600))
		}, code: 17, reason: "ResultEndpointUnreachable", msg: "holds no PEM certificate"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := tc.b
			if b == (behaviour{}) {
				b.Output = "ok"
			}
			f := newFixture(t, b)
			if tc.setup != nil {
				tc.setup(t, f)
			}
			out := f.run(context.Background())
			if out.ExitCode != tc.code || out.Reason != tc.reason {
				t.Fatalf("exit %d reason %s (%s), want %d %s", out.ExitCode, out.Reason, out.Message, tc.code, tc.reason)
			}
			if !strings.Contains(out.Message, tc.msg) {
				t.Errorf("message %q does not contain %q", out.Message, tc.msg)
			}
			term := f.termination(t)
			if term.Reason != tc.reason || term.Message != out.Message {
				t.Errorf("termination %+v, want reason %s and the outcome's message", term, tc.reason)
			}
			if got := f.ep.Requests(); got != tc.posts {
				t.Errorf("endpoint got %d requests, want %d", got, tc.posts)
			}
			if len(f.ep.Envelopes()) != 0 {
				t.Errorf("endpoint accepted an envelope")
			}
			for _, s := range []string{f.log.String(), out.Message} {
				if strings.Contains(s, token) || strings.Contains(s, "Zürich") {
					t.Errorf("token or input leaked: %s", s)
				}
			}
		})
	}
}

func TestRunRetriesTransientRefusals(t *testing.T) {
	for _, statuses := range [][]int{{503}, {500, 502}, {429}} {
		f := newFixture(t, behaviour{Output: "ok"})
		f.ep.Script(statuses...)
		out := f.run(context.Background())
		if out.ExitCode != 0 {
			t.Fatalf("%v: exit %d %s", statuses, out.ExitCode, out.Message)
		}
		if got, want := f.ep.Requests(), len(statuses)+1; got != want || out.PostAttempts != want {
			t.Errorf("%v: %d requests (%d attempts counted), want %d", statuses, got, out.PostAttempts, want)
		}
		if len(f.ep.Envelopes()) != 1 {
			t.Errorf("%v: %d envelopes accepted, want 1", statuses, len(f.ep.Envelopes()))
		}
	}
}

func TestRunBacksOffBoundedWhenUnreachable(t *testing.T) {
	f := newFixture(t, behaviour{Output: "ok"})
	f.retry = RetryPolicy{Attempts: 5, Initial: time.Millisecond, Max: 4 * time.Millisecond, AttemptTimeout: time.Second}
	f.ep.Close()
	out := f.run(context.Background())
	if out.ExitCode != envelope.ExitResultEndpointUnreachable || out.PostAttempts != 5 {
		t.Fatalf("exit %d after %d attempts (%s), want 17 after 5", out.ExitCode, out.PostAttempts, out.Message)
	}
	want := []time.Duration{time.Millisecond, 2 * time.Millisecond, 4 * time.Millisecond, 4 * time.Millisecond}
	if diff := cmp.Diff(want, f.waits); diff != "" {
		t.Errorf("backoff (-want +got):\n%s", diff)
	}
	if out.OutputDigest != sha([]byte("ok")) || f.termination(t).OutputDigest != sha([]byte("ok")) {
		t.Errorf("the output digest is missing from the outcome or termination message")
	}
}

func TestRetryAfterStretchesTheBackoff(t *testing.T) {
	f := newFixture(t, behaviour{Output: "ok"})
	f.retry.Max = 10 * time.Second
	f.ep.Script(429)
	if out := f.run(context.Background()); out.ExitCode != 0 {
		t.Fatalf("exit %d %s", out.ExitCode, out.Message)
	}
	if diff := cmp.Diff([]time.Duration{time.Second}, f.waits); diff != "" {
		t.Errorf("waits (-want +got):\n%s", diff)
	}
}

func writeInput(s string) func(*testing.T, *fixture) {
	return func(t *testing.T, f *fixture) {
		must(t, os.Chmod(f.env[EnvInputFile], 0o644))
		must(t, os.WriteFile(f.env[EnvInputFile], []byte(s), 0o644))
	}
}

func setEnv(k, v string) func(*testing.T, *fixture) {
	return func(_ *testing.T, f *fixture) { f.env[k] = v }
}

func script(statuses ...int) func(*testing.T, *fixture) {
	return func(_ *testing.T, f *fixture) { f.ep.Script(statuses...) }
}

func TestGPUUUIDs(t *testing.T) {
	cases := map[string][]string{
		"":             nil,
		"all":          nil,
		"none":         nil,
		"0,1":          nil,
		"GPU-a, MIG-b": {"GPU-a", "MIG-b"},
		"GPU-a,0":      {"GPU-a"},
	}
	for in, want := range cases {
		if diff := cmp.Diff(want, gpuUUIDs(in)); diff != "" {
			t.Errorf("gpuUUIDs(%q) (-want +got):\n%s", in, diff)
		}
	}
}
