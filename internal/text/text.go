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

// Package text holds string helpers shared across the operator.
package text

import "unicode/utf8"

// Ellipsis marks where Shorten cut a string.
const Ellipsis = "..."

// Truncate returns s cut to at most n bytes, at a rune boundary so that no
// multi-byte character is split.
func Truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	if n <= 0 {
		return ""
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// Shorten returns s when it has at most n bytes; otherwise s cut at a rune
// boundary and ended with Ellipsis, n bytes at most in all.
func Shorten(s string, n int) string {
	if len(s) <= n {
		return s
	}
	if n <= len(Ellipsis) {
		return Truncate(Ellipsis, n)
	}
	return Truncate(s, n-len(Ellipsis)) + Ellipsis
}
