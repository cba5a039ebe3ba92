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

package keys

import (
	"encoding/hex"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestBIP32Vector1 checks the derivation against BIP32 test vector 1.
func TestBIP32Vector1(t *testing.T) {
	seed, _ := hex.DecodeString("000102030405060708090a0b0c0d0e0f")
	cases := []struct{ path, priv string }{
		{"m", "e8f32e723decf4051aefac8e2c93c9c5b214313817cdb01a1494b917c8436b35"},
		{"m/0'", "edb2e14f9ee77d26dd93b4ecede8d16ed408ce149b6cd80b0715a2d911a0afea"},
		{"m/0H/1", "3c6cb8d0f6a264c91ea8b5030fadaa8e538b020f0a387421a12de9319dc93368"},
		{"m/0'/1/2'", "cbce0d719ecf7431d88e6a89fa1483e02e35092af60c042b1df2ff59fa424dca"},
		{"m/0'/1/2'/2", "0f479245fb19a38a1954c5c7c0ebab2f9bdfd96a17563ef28a6a4b1a2a764ef4"},
		{"m/0h/1/2h/2/1000000000", "471b76e389e528d6de6d816857e012c5455051cad6660850e58372a6c3e6e7c8"},
	}
	for _, c := range cases {
		got, err := derivePath(seed, c.path)
		if err != nil {
			t.Fatalf("%s: %v", c.path, err)
		}
		if h := hex.EncodeToString(got[:]); h != c.priv {
			t.Errorf("%s: got %s, want %s", c.path, h, c.priv)
		}
	}
}

func TestParseHDPath(t *testing.T) {
	got, err := ParseHDPath(DefaultHDPath)
	if err != nil {
		t.Fatal(err)
	}
	want := []uint32{44 + hardenedOffset, 118 + hardenedOffset, hardenedOffset, 0, 0}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("ParseHDPath(%q) (-want +got):\n%s", DefaultHDPath, d)
	}
	for _, bad := range []string{"", "44'/118'", "m/", "m//1", "m/x", "m/-1", "m/1''", "m/2147483648", "m/99999999999", "m/1/ 2"} {
		if _, err := ParseHDPath(bad); err == nil {
			t.Errorf("ParseHDPath(%q): no error", bad)
		}
	}
}

func FuzzParseHDPath(f *testing.F) {
	for _, s := range []string{DefaultHDPath, "m", "m/0h/1", "m/2147483647'", "m/1/2/3/4/5/6", "x/1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		idx, err := ParseHDPath(s)
		if err != nil {
			return
		}
		if s != "m" && len(idx) == 0 {
			t.Fatalf("%q parsed to no steps", s)
		}
	})
}
