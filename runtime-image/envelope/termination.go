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

package envelope

import (
	"encoding/json"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Exit codes of a runtime container (docs/runtime-contract.md). The job
// controller maps them, with the termination message's reason, into the
// placement's reason.
const (
	ExitOK                        = 0
	ExitBadInput                  = 10
	ExitDigestMismatch            = 11
	ExitEngineError               = 12 // also ModelInvalid
	ExitEngineStartTimeout        = 13
	ExitInferenceTimeout          = 14
	ExitOutOfMemory               = 15
	ExitResultRefused             = 16
	ExitResultEndpointUnreachable = 17
)

// Termination reasons the runtime writes besides the engine Kinds
// (BadInput, ContextLength, ModelInvalid, EngineError, EngineStartTimeout,
// InferenceTimeout, OutOfMemory).
const (
	ReasonSucceeded                 = "Succeeded"
	ReasonDigestMismatch            = "DigestMismatch"
	ReasonResultRefused             = "ResultRefused"
	ReasonResultEndpointUnreachable = "ResultEndpointUnreachable"
)

// MaxTerminationBytes bounds the termination message; the kubelet keeps at
// most 4096 bytes of /dev/termination-log.
const MaxTerminationBytes = 4000

// Termination is the one JSON line a runtime container writes to its
// termination message path before it exits.
type Termination struct {
	Reason       string `json:"reason"`
	Message      string `json:"message"`
	OutputDigest string `json:"outputDigest,omitempty"`
}

// Marshal encodes t as one line under MaxTerminationBytes, shortening the
// message (at a rune boundary) when it does not fit.
func (t Termination) Marshal() []byte {
	for {
		b, err := json.Marshal(t)
		if err != nil { // a struct of strings always marshals
			panic(err)
		}
		if len(b)+1 <= MaxTerminationBytes || t.Message == "" {
			return append(b, '\n')
		}
		// JSON escaping can grow a message up to six times; cut by the excess.
		cut := len(t.Message) - (len(b) + 1 - MaxTerminationBytes) - len("…")
		if cut < 0 {
			cut = 0
		}
		for cut > 0 && !utf8.RuneStart(t.Message[cut]) {
			cut--
		}
		t.Message = t.Message[:cut] + "…"
		if cut == 0 {
			t.Message = ""
		}
	}
}

// ParseTermination reads a termination message written by Marshal.
func ParseTermination(b []byte) (Termination, error) {
	var t Termination
	if err := json.Unmarshal([]byte(strings.TrimSpace(string(b))), &t); err != nil {
		return Termination{}, fmt.Errorf("termination message is not the runtime's JSON line: %w", err)
	}
	return t, nil
}
