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

// Package sha256hex is the operator's one parser and validator of sha256
// digests.
//
// The rule: a digest is read as 64 hexadecimal digits, either case,
// optionally after the prefix "sha256:" (lowercase, as OCI references and
// the runtime write it). Anything the API stores (a Model's spec.sha256, a
// Kernel's status digests, a job's status.result) therefore parses. Parse
// normalizes to the canonical form, 64 lowercase hex digits without a
// prefix: the form a Model's spec.sha256 admits, a signed result record
// holds, and the artifact cache names its files by. Prefixed gives the
// "sha256:<hex>" form a Kernel's status.kernelDigest and the runtime's
// envelope carry. Compare digests only after Parse, never as written.
package sha256hex

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/aivm-dev/aivm-operator/internal/text"
)

// Prefix is the optional algorithm prefix Parse accepts and Prefixed adds.
const Prefix = "sha256:"

// Len is the number of hex digits in a sha256 digest.
const Len = 2 * sha256.Size

// Parse validates s, 64 hex digits of either case optionally prefixed
// "sha256:", and returns it in canonical form (64 lowercase hex digits, no
// prefix). The error quotes s shortened, and says what is wrong.
func Parse(s string) (string, error) {
	h := strings.TrimPrefix(s, Prefix)
	if len(h) != Len {
		return "", fmt.Errorf("invalid sha256 digest %q: want 64 hexadecimal characters, optionally prefixed %q, got %d", text.Shorten(s, 80), Prefix, len(h))
	}
	out := []byte(h)
	for i, c := range out {
		switch {
		case c >= '0' && c <= '9', c >= 'a' && c <= 'f':
		case c >= 'A' && c <= 'F':
			out[i] = c + ('a' - 'A')
		default:
			return "", fmt.Errorf("invalid sha256 digest %q: character %q at position %d is not hexadecimal", text.Shorten(s, 80), c, i)
		}
	}
	return string(out), nil
}

// Prefixed is Parse, returning "sha256:" followed by the canonical form.
func Prefixed(s string) (string, error) {
	h, err := Parse(s)
	if err != nil {
		return "", err
	}
	return Prefix + h, nil
}

// IsCanonical reports whether s is already in canonical form, exactly as
// Parse returns it. Use it where a stored form is required (a record's
// digests, a file named by its digest), not to read input.
func IsCanonical(s string) bool {
	h, err := Parse(s)
	return err == nil && h == s
}

// Of returns the canonical digest of b.
func Of(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}
