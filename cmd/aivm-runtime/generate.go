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

package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/aivm-dev/aivm-operator/runtime-image/engine"
	"github.com/aivm-dev/aivm-operator/runtime-image/engine/builtin"
	"github.com/aivm-dev/aivm-operator/runtime-image/envelope"
)

func init() {
	commands["generate"] = func(args []string) int { return generate(args, os.Stdout, os.Stderr) }
}

// generateResult is what `generate --json` prints.
type generateResult struct {
	Engine           string  `json:"engine"`
	Output           string  `json:"output"`
	OutputDigest     string  `json:"outputDigest"`
	FinishReason     string  `json:"finishReason"`
	PromptTokenIDs   []int   `json:"promptTokenIDs"`
	OutputTokenIDs   []int   `json:"outputTokenIDs"`
	InputTokens      int     `json:"inputTokens"`
	OutputTokens     int     `json:"outputTokens"`
	LoadMillis       float64 `json:"loadMillis"`
	PromptMillis     float64 `json:"promptMillis"`
	GenerateMillis   float64 `json:"generateMillis"`
	PromptTokensPerS float64 `json:"promptTokensPerSecond"`
	TokensPerSecond  float64 `json:"tokensPerSecond"`
}

// generate runs the builtin engine on a local snapshot directory, as
// llama-cli does for llama.cpp, so a user can check a model before writing
// a Kernel. Exit codes are those of docs/runtime-contract.md for the
// engine's error kinds (2 for bad flags).
func generate(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("generate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("model-dir", "", "snapshot directory: config.json, model.safetensors, tokenizer.json or vocab.json + merges.txt")
	prompt := fs.String("prompt", "", "prompt text")
	maxTokens := fs.Int("max-tokens", 64, "most tokens to generate")
	temperature := fs.Float64("temperature", 0, "sampling temperature; 0 is greedy")
	topP := fs.Float64("top-p", 1, "nucleus sampling mass in (0, 1]")
	seed := fs.Int64("seed", 0, "sampling seed")
	maxBytes := fs.Int("max-output-bytes", envelope.MaxOutputBytes, "stop before the output exceeds this many bytes")
	threads := fs.Int("threads", 0, "kernel goroutines (0: GOMAXPROCS); never changes the output")
	asJSON := fs.Bool("json", false, "print a JSON object with token ids, counts, tokens/s and the output digest")
	var stops stringList
	fs.Var(&stops, "stop", "stop sequence (repeatable)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *dir == "" || fs.NArg() > 0 {
		fmt.Fprintln(stderr, "usage: aivm-runtime generate --model-dir DIR --prompt TEXT [--max-tokens N] [--temperature T] [--top-p P] [--seed S] [--stop S]... [--json]")
		return 2
	}
	start := time.Now()
	e, err := builtin.Open(*dir, builtin.Options{Threads: *threads})
	if err != nil {
		return fail(stderr, err)
	}
	defer func() { _ = e.Close() }()
	load := time.Since(start)
	r, err := e.GenerateIDs(context.Background(), engine.Request{
		Prompt: *prompt, MaxTokens: *maxTokens, Temperature: *temperature, TopP: *topP,
		Seed: *seed, Stop: stops, MaxOutputBytes: *maxBytes,
	})
	if err != nil {
		return fail(stderr, err)
	}
	if !*asJSON {
		fmt.Fprintln(stdout, r.Output)
		return 0
	}
	res := generateResult{
		Engine: e.Name(), Output: r.Output, OutputDigest: envelope.Digest([]byte(r.Output)),
		FinishReason: r.FinishReason, PromptTokenIDs: r.PromptIDs, OutputTokenIDs: r.OutputIDs,
		InputTokens: r.InputTokens, OutputTokens: r.OutputTokens,
		LoadMillis: millis(load), PromptMillis: millis(r.PromptDuration), GenerateMillis: millis(r.GenerateDuration),
		PromptTokensPerS: perSecond(r.InputTokens, r.PromptDuration),
		TokensPerSecond:  perSecond(r.OutputTokens, r.GenerateDuration),
	}
	if res.OutputTokenIDs == nil {
		res.OutputTokenIDs = []int{}
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(res); err != nil {
		fmt.Fprintf(stderr, "write result: %v\n", err)
		return 1
	}
	return 0
}

func millis(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func perSecond(n int, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}

// exitCodes maps engine error kinds to docs/runtime-contract.md's codes.
var exitCodes = map[engine.Kind]int{
	engine.KindBadInput:      10,
	engine.KindContextLength: 10,
	engine.KindModel:         12,
	engine.KindEngine:        12,
	engine.KindStartTimeout:  13,
	engine.KindTimeout:       14,
	engine.KindOutOfMemory:   15,
}

func fail(stderr io.Writer, err error) int {
	fmt.Fprintf(stderr, "aivm-runtime generate: %v\n", err)
	var ee *engine.Error
	if errors.As(err, &ee) {
		if code, ok := exitCodes[ee.Kind]; ok {
			return code
		}
	}
	return 12
}

type stringList []string

func (s *stringList) String() string     { return fmt.Sprint(*s) }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }
