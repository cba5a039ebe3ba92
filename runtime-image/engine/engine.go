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

// Package engine is the interface between aivm-runtime and the engines that
// produce text: builtin (the deterministic pure-Go GPT-2 family engine) and
// openai (a Kernel's own OpenAI-compatible server in a second container).
package engine

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Request is one completion request, built from an InferenceJob's input and
// spec.parameters.
type Request struct {
	// Prompt is the input text.
	Prompt string
	// MaxTokens bounds the generated tokens (> 0).
	MaxTokens int
	// Temperature is the sampling temperature; 0 is greedy decoding.
	Temperature float64
	// TopP is the nucleus sampling mass in (0, 1]; 1 disables it.
	TopP float64
	// Seed drives sampling; the same seed gives the same output.
	Seed int64
	// Stop ends generation at the first occurrence of any of these strings,
	// which are not part of the output.
	Stop []string
	// MaxOutputBytes ends generation before the output exceeds this many
	// bytes (0: no bound). The runtime sets it below what the result
	// endpoint accepts.
	MaxOutputBytes int
}

// Finish reasons.
const (
	FinishStop     = "stop"      // a stop sequence or the end-of-text token
	FinishLength   = "length"    // MaxTokens reached
	FinishMaxBytes = "max_bytes" // MaxOutputBytes reached
)

// Response is what an engine produced.
type Response struct {
	// Output is the generated text.
	Output string
	// InputTokens and OutputTokens count prompt and generated tokens.
	InputTokens, OutputTokens int
	// FinishReason is one of the Finish constants.
	FinishReason string
	// PromptDuration is the time spent on the prompt (prefill);
	// GenerateDuration the time spent generating.
	PromptDuration, GenerateDuration time.Duration
}

// Engine produces completions. Implementations are safe for one Generate at
// a time.
type Engine interface {
	// Name is the engine's name and version, as it goes into the envelope.
	Name() string
	// Generate runs one completion; errors are *Error with a Kind.
	Generate(ctx context.Context, req Request) (Response, error)
	// Close releases the engine's resources.
	Close() error
}

// Kind classifies an engine failure so the runtime can map it to an exit
// code and termination reason (docs/runtime-contract.md).
type Kind string

// Failure kinds.
const (
	KindBadInput      Kind = "BadInput"           // the request cannot run (bad parameters, malformed input)
	KindContextLength Kind = "ContextLength"      // prompt + max tokens exceed the model's context
	KindModel         Kind = "ModelInvalid"       // the model files are missing or malformed
	KindEngine        Kind = "EngineError"        // the engine failed while running
	KindStartTimeout  Kind = "EngineStartTimeout" // the engine did not become ready in time
	KindTimeout       Kind = "InferenceTimeout"   // the request ran past its deadline
	KindOutOfMemory   Kind = "OutOfMemory"        // the engine ran out of (GPU) memory
)

// Error is an engine failure with its Kind.
type Error struct {
	Kind Kind
	Err  error
}

func (e *Error) Error() string { return fmt.Sprintf("%s: %v", e.Kind, e.Err) }
func (e *Error) Unwrap() error { return e.Err }

// Errorf returns an *Error of kind k.
func Errorf(k Kind, format string, args ...any) error {
	return &Error{Kind: k, Err: fmt.Errorf(format, args...)}
}

// KindOf returns err's Kind, KindEngine when it carries none.
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return KindEngine
}
