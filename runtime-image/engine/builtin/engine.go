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

// Package builtin is aivm-runtime's deterministic pure-Go GPT-2-family
// engine: it loads a Hugging Face GPT-2 snapshot (config.json,
// model.safetensors, a byte-level BPE tokenizer) and produces the same
// output bits for the same model, request and seed on any core count and on
// amd64 and arm64 alike (docs/builtin-engine.md).
package builtin

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/aivm-dev/aivm-operator/runtime-image/engine"
	"github.com/aivm-dev/aivm-operator/runtime-image/engine/builtin/safetensors"
	"github.com/aivm-dev/aivm-operator/runtime-image/engine/builtin/tokenizer"
)

// Version is the engine's version; it changes whenever an output could.
const Version = "v1"

// Name is what Engine.Name returns and the envelope records.
const Name = "builtin/" + Version

// Options tune how the engine runs, never what it computes.
type Options struct {
	// Threads is how many goroutines the kernels use; 0 means GOMAXPROCS.
	Threads int
}

// Engine is a loaded model. One Generate runs at a time.
type Engine struct {
	mu   sync.Mutex
	m    *model
	tok  *tokenizer.Tokenizer
	file *safetensors.File
}

var _ engine.Engine = (*Engine)(nil)

// Open loads the snapshot in dir. Every failure is engine.KindModel.
func Open(dir string, opts Options) (*Engine, error) {
	e, err := open(dir, opts)
	if err != nil {
		return nil, &engine.Error{Kind: engine.KindModel, Err: fmt.Errorf("load model from %s: %w", dir, err)}
	}
	return e, nil
}

func open(dir string, opts Options) (*Engine, error) {
	b, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	cfg, err := ParseConfig(b)
	if err != nil {
		return nil, err
	}
	tok, err := tokenizer.Load(dir)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	if tok.VocabSize() > cfg.VocabSize {
		return nil, fmt.Errorf("tokenizer has %d tokens, the model's vocab_size is %d", tok.VocabSize(), cfg.VocabSize)
	}
	f, err := safetensors.Open(filepath.Join(dir, "model.safetensors"))
	if err != nil {
		return nil, err
	}
	w, err := loadWeights(cfg, safetensorsSource(f))
	if err == nil {
		if extra := unusedTensors(f, cfg); len(extra) > 0 {
			err = fmt.Errorf("model.safetensors has tensors a GPT-2 with this config does not: %s", strings.Join(extra[:min(len(extra), 5)], ", "))
		}
	}
	if err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("model.safetensors: %w", err)
	}
	return &Engine{m: newModel(cfg, w, opts), tok: tok, file: f}, nil
}

func newModel(cfg Config, w *weights, opts Options) *model {
	th := opts.Threads
	if th <= 0 {
		th = runtime.GOMAXPROCS(0)
	}
	return &model{cfg: cfg, w: w, threads: th}
}

// Name implements engine.Engine.
func (e *Engine) Name() string { return Name }

// Config returns the model's configuration.
func (e *Engine) Config() Config { return e.m.cfg }

// Tokenizer returns the model's tokenizer.
func (e *Engine) Tokenizer() *tokenizer.Tokenizer { return e.tok }

// Close unmaps the weights; the engine must not be used afterwards.
func (e *Engine) Close() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.file == nil {
		return nil
	}
	err := e.file.Close()
	e.file, e.m = nil, nil
	return err
}

// Result is a Response plus the token ids, for aivm-runtime generate.
type Result struct {
	engine.Response
	PromptIDs, OutputIDs []int
}

// Generate implements engine.Engine.
func (e *Engine) Generate(ctx context.Context, req engine.Request) (engine.Response, error) {
	r, err := e.GenerateIDs(ctx, req)
	return r.Response, err
}

// GenerateIDs runs req and also returns the prompt and output token ids.
func (e *Engine) GenerateIDs(ctx context.Context, req engine.Request) (Result, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.m == nil {
		return Result{}, engine.Errorf(engine.KindEngine, "engine is closed")
	}
	if err := validate(&req); err != nil {
		return Result{}, err
	}
	ids := e.tok.Encode(req.Prompt)
	if len(ids) == 0 {
		// GPT-2 has no beginning-of-text token; it was trained with
		// <|endoftext|> between documents, so an empty prompt starts there.
		if e.tok.EndOfTextID() < 0 {
			return Result{}, engine.Errorf(engine.KindBadInput, "the prompt is empty and the vocabulary has no %s to start from", tokenizer.EndOfText)
		}
		ids = []int{e.tok.EndOfTextID()}
	}
	c := e.m.cfg
	if len(ids)+req.MaxTokens > c.NPositions {
		return Result{}, engine.Errorf(engine.KindContextLength, "prompt of %d tokens plus max tokens %d exceeds the model's context of %d tokens", len(ids), req.MaxTokens, c.NPositions)
	}
	res, err := e.run(ctx, ids, req)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return Result{}, &engine.Error{Kind: engine.KindTimeout, Err: fmt.Errorf("generate: %w", err)}
		}
		return Result{}, &engine.Error{Kind: engine.KindEngine, Err: fmt.Errorf("generate: %w", err)}
	}
	return res, nil
}

func validate(req *engine.Request) error {
	switch {
	case req.MaxTokens <= 0:
		return engine.Errorf(engine.KindBadInput, "max tokens %d, want at least 1", req.MaxTokens)
	case math.IsNaN(req.Temperature) || req.Temperature < 0 || math.IsInf(req.Temperature, 0):
		return engine.Errorf(engine.KindBadInput, "temperature %v, want a finite number >= 0", req.Temperature)
	case math.IsNaN(req.TopP) || req.TopP < 0 || req.TopP > 1:
		return engine.Errorf(engine.KindBadInput, "top_p %v, want (0, 1]", req.TopP)
	case req.MaxOutputBytes < 0:
		return engine.Errorf(engine.KindBadInput, "max output bytes %d, want >= 0", req.MaxOutputBytes)
	case !utf8.ValidString(req.Prompt):
		return engine.Errorf(engine.KindBadInput, "the prompt is not valid UTF-8")
	}
	for _, s := range req.Stop {
		if s == "" {
			return engine.Errorf(engine.KindBadInput, "empty stop sequence")
		}
	}
	if req.TopP == 0 {
		req.TopP = 1 // unset
	}
	return nil
}

// run prefills ids and generates until a stop condition.
func (e *Engine) run(ctx context.Context, ids []int, req engine.Request) (Result, error) {
	res := Result{PromptIDs: ids}
	res.InputTokens = len(ids)
	st := e.m.newState(len(ids) + req.MaxTokens)
	start := time.Now()
	lg, err := st.forward(ctx, ids, false)
	if err != nil {
		return Result{}, err
	}
	res.PromptDuration = time.Since(start)
	start = time.Now()
	smp := newSampler(req.Temperature, req.TopP, req.Seed)
	out := newOutput(req.Stop, req.MaxOutputBytes)
	for {
		id := smp.next(lg)
		if id == e.tok.EndOfTextID() {
			res.FinishReason = engine.FinishStop
			break
		}
		reason := out.add(e.tok.TokenBytes(id))
		if reason == engine.FinishMaxBytes {
			res.FinishReason = reason
			break
		}
		res.OutputIDs = append(res.OutputIDs, id)
		if reason != "" {
			res.FinishReason = reason
			break
		}
		if len(res.OutputIDs) == req.MaxTokens {
			res.FinishReason = engine.FinishLength
			break
		}
		if err := ctx.Err(); err != nil {
			return Result{}, err
		}
		if lg, err = st.forward(ctx, []int{id}, false); err != nil {
			return Result{}, err
		}
	}
	res.GenerateDuration = time.Since(start)
	res.Output = out.text()
	res.OutputTokens = len(res.OutputIDs)
	return res, nil
}
