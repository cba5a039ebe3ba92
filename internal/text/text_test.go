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

package text

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestTruncate(t *testing.T) {
	cases := []struct {
		s    string
		n    int
		want string
	}{
		{"hello", 10, "hello"},
		{"hello", 5, "hello"},
		{"hello", 3, "hel"},
		{"hello", 0, ""},
		{"hello", -1, ""},
		{"héllo", 2, "h"}, // é is two bytes: not split
		{"héllo", 3, "hé"},
		{"🙂🙂", 5, "🙂"}, // four-byte rune
		{"🙂🙂", 3, ""},
	}
	for _, c := range cases {
		if got := Truncate(c.s, c.n); got != c.want {
			t.Errorf("Truncate(%q, %d) = %q, want %q", c.s, c.n, got, c.want)
		}
	}
}

func TestShorten(t *testing.T) {
	cases := []struct {
		s    string
		n    int
		want string
	}{
		{"hello", 5, "hello"},
		{"hello world", 8, "hello..."},
		{"héllo world", 5, "h..."},
		{"hello", 2, ".."},
	}
	for _, c := range cases {
		if got := Shorten(c.s, c.n); got != c.want {
			t.Errorf("Shorten(%q, %d) = %q, want %q", c.s, c.n, got, c.want)
		}
	}
}

// Every cut of a multi-byte string stays valid UTF-8 and within n bytes.
func TestCutsStayValidUTF8(t *testing.T) {
	s := strings.Repeat("aé🙂漢", 8)
	for n := 0; n <= len(s)+1; n++ {
		for name, got := range map[string]string{"Truncate": Truncate(s, n), "Shorten": Shorten(s, n)} {
			if !utf8.ValidString(got) || len(got) > max(n, 0) {
				t.Fatalf("%s(s, %d) = %q: invalid UTF-8 or over %d bytes", name, n, got, n)
			}
		}
	}
}
