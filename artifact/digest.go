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

package artifact

import (
	"fmt"
	"strings"

	"github.com/aivm-dev/aivm-operator/internal/text"
)

// DigestPrefix is the optional algorithm prefix accepted by [ParseDigest].
const DigestPrefix = "sha256:"

// ParseDigest validates a sha256 digest written as 64 hexadecimal characters,
// optionally prefixed with "sha256:", and returns it as lowercase hex.
func ParseDigest(s string) (string, error) {
	hex := strings.TrimPrefix(s, DigestPrefix)
	if len(hex) != 64 {
		return "", fmt.Errorf("invalid sha256 digest %q: want 64 hexadecimal characters, got %d", text.Shorten(s, 80), len(hex))
	}
	out := []byte(hex)
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
