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

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// EndOfText is GPT-2's end-of-text token; generation stops when the model
// produces it.
const EndOfText = "<|endoftext|>"

// Tokenizer is a byte-level BPE vocabulary. It is safe for concurrent use
// except for its word cache, which Encode guards by being called from one
// goroutine at a time (the engine runs one Generate at a time).
type Tokenizer struct {
	vocab   map[string]int
	tokens  []string // id -> token, "" for ids the vocabulary skips
	ranks   map[[2]string]int
	special map[int]bool
	eot     int
	cache   map[string][]int
}

// New builds a tokenizer from a vocabulary (token -> id) and merges in
// rank order. Tokens listed in special decode as nothing and never come
// out of Encode.
func New(vocab map[string]int, merges [][2]string, special []string) (*Tokenizer, error) {
	if len(vocab) == 0 {
		return nil, fmt.Errorf("vocabulary is empty")
	}
	top := -1
	for tok, id := range vocab {
		if id < 0 {
			return nil, fmt.Errorf("token %q has negative id %d", tok, id)
		}
		top = max(top, id)
	}
	if top >= 1<<24 {
		return nil, fmt.Errorf("token id %d is implausibly large", top)
	}
	t := &Tokenizer{
		vocab:   vocab,
		tokens:  make([]string, top+1),
		ranks:   make(map[[2]string]int, len(merges)),
		special: map[int]bool{},
		eot:     -1,
		cache:   map[string][]int{},
	}
	for tok, id := range vocab {
		if t.tokens[id] != "" {
			return nil, fmt.Errorf("tokens %q and %q share id %d", t.tokens[id], tok, id)
		}
		t.tokens[id] = tok
	}
	for i, m := range merges {
		if _, dup := t.ranks[m]; !dup {
			t.ranks[m] = i
		}
	}
	for _, s := range special {
		if id, ok := vocab[s]; ok {
			t.special[id] = true
		}
	}
	if id, ok := vocab[EndOfText]; ok {
		t.eot = id
		t.special[id] = true
	}
	for b := 0; b < 256; b++ {
		if _, ok := vocab[string(byteToRune[b])]; !ok {
			return nil, fmt.Errorf("vocabulary lacks byte token %q (0x%02x): not a byte-level BPE vocabulary", string(byteToRune[b]), b)
		}
	}
	return t, nil
}

// EndOfTextID is the id of <|endoftext|>, -1 when the vocabulary has none.
func (t *Tokenizer) EndOfTextID() int { return t.eot }

// VocabSize is one more than the largest id.
func (t *Tokenizer) VocabSize() int { return len(t.tokens) }

// Encode returns text's token ids. Special-token text such as
// "<|endoftext|>" in the input is encoded as plain text, never as the
// special token, so a prompt cannot end or fake a document boundary.
func (t *Tokenizer) Encode(text string) []int {
	var ids []int
	for _, piece := range split(text) {
		ids = append(ids, t.encodeWord(ByteString(piece))...)
	}
	return ids
}

// encodeWord applies the merges to one pre-tokenized piece: repeatedly the
// pair of lowest rank is merged everywhere in the word, as GPT-2's bpe().
func (t *Tokenizer) encodeWord(word string) []int {
	if ids, ok := t.cache[word]; ok {
		return ids
	}
	syms := make([]string, 0, utf8.RuneCountInString(word))
	for _, r := range word {
		syms = append(syms, string(r))
	}
	for len(syms) > 1 {
		best, bestRank := [2]string{}, -1
		for i := 0; i+1 < len(syms); i++ {
			p := [2]string{syms[i], syms[i+1]}
			if r, ok := t.ranks[p]; ok && (bestRank < 0 || r < bestRank) {
				best, bestRank = p, r
			}
		}
		if bestRank < 0 {
			break
		}
		merged := syms[:0:0]
		for i := 0; i < len(syms); i++ {
			if i+1 < len(syms) && syms[i] == best[0] && syms[i+1] == best[1] {
				merged = append(merged, best[0]+best[1])
				i++
				continue
			}
			merged = append(merged, syms[i])
		}
		syms = merged
	}
	ids := make([]int, 0, len(syms))
	for _, s := range syms {
		if id, ok := t.vocab[s]; ok {
			ids = append(ids, id)
			continue
		}
		// A merge result missing from the vocabulary (an inconsistent
		// vocabulary): fall back to its single-byte tokens, which New
		// checked are all present.
		for _, r := range s {
			ids = append(ids, t.vocab[string(r)])
		}
	}
	if len(t.cache) < 1<<16 {
		t.cache[word] = ids
	}
	return ids
}

// TokenBytes returns the bytes token id stands for: nil for special tokens
// and ids outside the vocabulary.
func (t *Tokenizer) TokenBytes(id int) []byte {
	if id < 0 || id >= len(t.tokens) || t.special[id] {
		return nil
	}
	tok := t.tokens[id]
	out := make([]byte, 0, len(tok))
	for _, r := range tok {
		if b, ok := runeToByte[r]; ok {
			out = append(out, b)
		} else {
			// Not in the byte alphabet (an added token): its UTF-8.
			out = utf8.AppendRune(out, r)
		}
	}
	return out
}

// Decode returns the bytes of ids joined; they need not be valid UTF-8
// when ids end inside a multi-byte character.
func (t *Tokenizer) Decode(ids []int) []byte {
	var b strings.Builder
	for _, id := range ids {
		b.Write(t.TokenBytes(id))
	}
	return []byte(b.String())
}
