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
)

const redacted = "[redacted]"

// Token is a bearer credential for an artifact source. Every printed form of
// a Token (String, GoString, fmt verbs, text and JSON marshalling) is
// redacted, so a Token inside a logged or formatted struct does not leak.
type Token struct {
	value string
}

// NewToken wraps a bearer token. Surrounding whitespace (such as the trailing
// newline of a Secret created from a file) is not trimmed here; callers pass
// the exact token.
func NewToken(value string) Token { return Token{value: value} }

// IsZero reports whether the token is empty.
func (t Token) IsZero() bool { return t.value == "" }

// String returns a redacted placeholder, or "" for an empty token.
func (t Token) String() string {
	if t.value == "" {
		return ""
	}
	return redacted
}

// GoString returns a redacted placeholder.
func (t Token) GoString() string { return "artifact.Token{" + t.String() + "}" }

// Format prints a redacted placeholder for every verb.
func (t Token) Format(f fmt.State, verb rune) {
	if verb == 'v' && f.Flag('#') {
		_, _ = f.Write([]byte(t.GoString()))
		return
	}
	_, _ = f.Write([]byte(t.String()))
}

// MarshalText returns a redacted placeholder.
func (t Token) MarshalText() ([]byte, error) { return []byte(t.String()), nil }

// bearer returns the Authorization header value.
func (t Token) bearer() string { return "Bearer " + t.value }
