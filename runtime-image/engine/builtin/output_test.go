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

package builtin

import (
	"strings"
	"testing"

	"github.com/aivm-dev/aivm-operator/runtime-image/engine/builtin/prng"
)

// TestUTF8ScanMatchesToValidUTF8 feeds random byte chunks (valid
// characters, cut characters, stray continuation bytes) and checks the
// incremental length against strings.ToValidUTF8 after every chunk.
func TestUTF8ScanMatchesToValidUTF8(t *testing.T) {
	pieces := [][]byte{[]byte("a"), []byte("é"), []byte("🎉"), {0xf0, 0x9f}, {0x8e, 0x89}, {0x80}, {0xff}, []byte("\uFFFD"), {0xe2}, {0x82, 0xac}}
	r := prng.New(99)
	for trial := 0; trial < 2000; trial++ {
		var raw []byte
		var s utf8Scan
		for k := 0; k < 12; k++ {
			raw = append(raw, pieces[r.Uint64()%uint64(len(pieces))]...)
			s.advance(raw)
			if got, want := s.textLen(raw), len(strings.ToValidUTF8(string(raw), "\uFFFD")); got != want {
				t.Fatalf("after % x: incremental length %d, ToValidUTF8 %d", raw, got, want)
			}
		}
	}
}

func TestOutputMaxBytesKeepsValidUTF8(t *testing.T) {
	o := newOutput(nil, 6)
	for _, b := range [][]byte{[]byte("ab"), {0xf0, 0x9f}, {0x8e, 0x89}, []byte("c")} {
		if o.add(b) != "" {
			break
		}
	}
	if got := o.text(); got != "ab🎉" {
		t.Fatalf("text %q, want %q", got, "ab🎉")
	}
	o = newOutput([]string{"END", "xy"}, 0)
	for _, b := range []string{"hello E", "N", "D and xy"} {
		if o.add([]byte(b)) != "" {
			break
		}
	}
	if got := o.text(); got != "hello " {
		t.Fatalf("stop across tokens: %q", got)
	}
}
