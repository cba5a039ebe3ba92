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

package tokenizer

import "unicode"

// split cuts text as GPT-2's pattern does:
//
//	's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
//
// Go's regexp has no lookahead, so the alternatives are matched by hand, in
// order, leftmost first. \s is Unicode White_Space (unicode.IsSpace), as in
// Hugging Face tokenizers.
func split(text string) []string {
	rs := []rune(text)
	var out []string
	for i := 0; i < len(rs); {
		n := matchAt(rs, i)
		out = append(out, string(rs[i:i+n]))
		i += n
	}
	return out
}

func isLetter(r rune) bool { return unicode.IsLetter(r) }
func isNumber(r rune) bool { return unicode.IsNumber(r) }
func isOther(r rune) bool  { return !unicode.IsSpace(r) && !isLetter(r) && !isNumber(r) }

// run returns how many runes from i on satisfy f.
func run(rs []rune, i int, f func(rune) bool) int {
	n := 0
	for i+n < len(rs) && f(rs[i+n]) {
		n++
	}
	return n
}

// matchAt returns the length (>= 1) of the piece starting at i.
func matchAt(rs []rune, i int) int {
	r := rs[i]
	if r == '\'' && i+1 < len(rs) {
		switch rs[i+1] {
		case 's', 't', 'm', 'd':
			return 2
		}
		if i+2 < len(rs) {
			switch string(rs[i+1 : i+3]) {
			case "re", "ve", "ll":
				return 3
			}
		}
	}
	// " ?" classes: an optional single space, then a run of one class.
	start := i
	if r == ' ' && i+1 < len(rs) {
		start = i + 1
	}
	for _, class := range []func(rune) bool{isLetter, isNumber, isOther} {
		if n := run(rs, start, class); n > 0 {
			return start - i + n
		}
	}
	// Whitespace: \s+(?!\S) takes the run but leaves its last rune when a
	// non-space follows (so " word" keeps its space); \s+ takes a lone one.
	n := run(rs, i, unicode.IsSpace)
	if i+n < len(rs) && n > 1 {
		return n - 1
	}
	if n == 0 {
		return 1 // unreachable: every rune is a letter, number, other or space
	}
	return n
}
