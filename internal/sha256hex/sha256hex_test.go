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

package sha256hex

import (
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	good := Of([]byte("model weights"))
	for _, in := range []string{good, Prefix + good, strings.ToUpper(good), Prefix + strings.ToUpper(good)} {
		got, err := Parse(in)
		if err != nil || got != good {
			t.Errorf("Parse(%q) = %q, %v; want %q", in, got, err, good)
		}
		p, err := Prefixed(in)
		if err != nil || p != Prefix+good {
			t.Errorf("Prefixed(%q) = %q, %v; want %q", in, p, err, Prefix+good)
		}
	}
	for _, tt := range []struct{ in, wantErr string }{
		{"", "want 64 hexadecimal characters, optionally prefixed \"sha256:\", got 0"},
		{Prefix, "got 0"},
		{good[:63], "got 63"},
		{good + "0", "got 65"},
		{"sha512:" + good, "got 71"},
		{"SHA256:" + good, "got 71"},
		{" " + good[1:], `character ' ' at position 0`},
		{good[:63] + "g", `character 'g' at position 63`},
		{strings.Repeat("z", 10000), "got 10000"},
	} {
		got, err := Parse(tt.in)
		if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("Parse(%.20q) = %q, %v; want error containing %q", tt.in, got, err, tt.wantErr)
		}
		if err != nil && len(err.Error()) > 200 {
			t.Errorf("Parse(%.20q) error is %d bytes long; want the input shortened", tt.in, len(err.Error()))
		}
		if _, perr := Prefixed(tt.in); perr == nil {
			t.Errorf("Prefixed(%.20q) accepted what Parse refuses", tt.in)
		}
	}
}

func TestIsCanonical(t *testing.T) {
	good := Of(nil)
	if good != "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" {
		t.Fatalf("Of(nil) = %s, not the sha256 of nothing", good)
	}
	if !IsCanonical(good) {
		t.Errorf("IsCanonical(%q) = false", good)
	}
	for _, in := range []string{Prefix + good, strings.ToUpper(good), "", good[:63]} {
		if IsCanonical(in) {
			t.Errorf("IsCanonical(%q) = true; want false", in)
		}
	}
}
