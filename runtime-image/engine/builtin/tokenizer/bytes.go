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

// Package tokenizer is GPT-2's byte-level BPE: text is split by GPT-2's
// pre-tokenization pattern, each piece's UTF-8 bytes are mapped to printable
// runes (bytes_to_unicode), and the ranked merges are applied. It reads
// vocab.json + merges.txt or a tokenizer.json as transformers saves them.
package tokenizer

// byteToRune and runeToByte are GPT-2's bytes_to_unicode table: printable
// Latin-1 bytes map to themselves, the other 68 bytes to U+0100 onward in
// byte order, so every token is a printable string.
var (
	byteToRune [256]rune
	runeToByte = map[rune]byte{}
	// ByteOrder lists the 256 bytes in the order GPT-2's vocabulary gives
	// them ids 0..255 (printable ones first).
	ByteOrder []byte
)

func init() {
	printable := func(b int) bool {
		return (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF)
	}
	for b := 0; b < 256; b++ {
		if printable(b) {
			byteToRune[b] = rune(b)
			ByteOrder = append(ByteOrder, byte(b))
		}
	}
	n := 0
	for b := 0; b < 256; b++ {
		if !printable(b) {
			byteToRune[b] = rune(256 + n)
			ByteOrder = append(ByteOrder, byte(b))
			n++
		}
	}
	for b, r := range byteToRune {
		runeToByte[r] = byte(b)
	}
}

// ByteRune is the rune GPT-2's byte-level alphabet uses for b.
func ByteRune(b byte) rune { return byteToRune[b] }

// ByteString returns s's bytes in GPT-2's byte-level alphabet.
func ByteString(s string) string {
	rs := make([]rune, len(s))
	for i := 0; i < len(s); i++ {
		rs[i] = byteToRune[s[i]]
	}
	return string(rs)
}
