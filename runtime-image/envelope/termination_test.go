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
	"strings"
	"testing"
	"unicode/utf8"
)

func TestTerminationFitsTheKubeletsLimit(t *testing.T) {
	for _, msg := range []string{"short", strings.Repeat("ü", 5000), strings.Repeat("\x01", 3000)} {
		b := Termination{Reason: "EngineError", Message: msg, OutputDigest: Digest(nil)}.Marshal()
		if len(b) > MaxTerminationBytes || strings.Count(string(b), "\n") != 1 {
			t.Errorf("%d bytes, %d lines", len(b), strings.Count(string(b), "\n"))
		}
		got, err := ParseTermination(b)
		if err != nil {
			t.Fatal(err)
		}
		if got.Reason != "EngineError" || got.OutputDigest != Digest(nil) || !utf8.ValidString(got.Message) ||
			!strings.HasPrefix(msg, strings.TrimSuffix(got.Message, "…")) {
			t.Errorf("termination %+v does not keep the reason, digest and a prefix of the message", got)
		}
	}
}
