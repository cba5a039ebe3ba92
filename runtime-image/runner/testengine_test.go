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
	"os"
	"path/filepath"
	"time"

	"github.com/aivm-dev/aivm-operator/runtime-image/engine"
)

// testEngine is a trivial engine whose behaviour a test writes into the
// model directory (behaviourFile), so every run goes through the real
// registry, factory and files.
type testEngine struct{ b behaviour }

const behaviourFile = "test-engine.json"

type behaviour struct {
	Output     string      `json:"output"`
	LoadKind   engine.Kind `json:"loadKind,omitempty"`
	StartHang  bool        `json:"startHang,omitempty"`
	Kind       engine.Kind `json:"kind,omitempty"`
	Message    string      `json:"message,omitempty"`
	Hang       bool        `json:"hang,omitempty"`       // until ctx ends
	HangIgnore bool        `json:"hangIgnore,omitempty"` // ignoring ctx
	// EchoPrompt appends the prompt to the output.
	EchoPrompt bool `json:"echoPrompt,omitempty"`
}

// ignored is never closed: an engine that ignores its context.
var ignored = make(chan struct{})

func init() {
	engine.Register("test", func(dir string) (engine.Engine, error) {
		b, err := os.ReadFile(filepath.Join(dir, behaviourFile))
		if err != nil {
			return nil, engine.Errorf(engine.KindModel, "reading %s: %w", behaviourFile, err)
		}
		var e testEngine
		if err := json.Unmarshal(b, &e.b); err != nil {
			return nil, engine.Errorf(engine.KindModel, "%s: %w", behaviourFile, err)
		}
		if e.b.LoadKind != "" {
			return nil, engine.Errorf(e.b.LoadKind, "load failed: %s", e.b.Message)
		}
		return &e, nil
	})
}

func (e *testEngine) Name() string { return "test/v1" }
func (e *testEngine) Close() error { return nil }

func (e *testEngine) Start(ctx context.Context) error {
	if e.b.StartHang {
		<-ctx.Done()
		return errors.New("server never came up")
	}
	return nil
}

func (e *testEngine) Generate(ctx context.Context, r engine.Request) (engine.Response, error) {
	switch {
	case e.b.Hang:
		<-ctx.Done()
		return engine.Response{}, ctx.Err()
	case e.b.HangIgnore:
		<-ignored
	case e.b.Kind != "":
		return engine.Response{}, engine.Errorf(e.b.Kind, "%s", e.b.Message)
	}
	out := e.b.Output
	if e.b.EchoPrompt {
		out += r.Prompt
	}
	return engine.Response{Output: out, InputTokens: len(r.Prompt), OutputTokens: 3, FinishReason: engine.FinishLength,
		PromptDuration: 20 * time.Millisecond, GenerateDuration: 30 * time.Millisecond}, nil
}
