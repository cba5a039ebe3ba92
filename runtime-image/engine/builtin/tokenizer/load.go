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
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Load reads the tokenizer of a snapshot directory: tokenizer.json when
// present, else vocab.json and merges.txt.
func Load(dir string) (*Tokenizer, error) {
	b, err := os.ReadFile(filepath.Join(dir, "tokenizer.json"))
	switch {
	case err == nil:
		return ParseTokenizerJSON(b)
	case !errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("read tokenizer.json: %w", err)
	}
	vocab, err := os.ReadFile(filepath.Join(dir, "vocab.json"))
	if err != nil {
		return nil, fmt.Errorf("no tokenizer.json, and vocab.json: %w", err)
	}
	merges, err := os.ReadFile(filepath.Join(dir, "merges.txt"))
	if err != nil {
		return nil, fmt.Errorf("no tokenizer.json, and merges.txt: %w", err)
	}
	return ParseVocabMerges(vocab, merges)
}

// ParseVocabMerges builds a tokenizer from vocab.json (token -> id) and
// merges.txt (an optional "#version" line, then one "a b" pair a line, in
// rank order).
func ParseVocabMerges(vocabJSON, mergesTxt []byte) (*Tokenizer, error) {
	var vocab map[string]int
	if err := json.Unmarshal(vocabJSON, &vocab); err != nil {
		return nil, fmt.Errorf("vocab.json is not a token -> id object: %w", err)
	}
	var merges [][2]string
	sc := bufio.NewScanner(bytes.NewReader(mergesTxt))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimRight(sc.Text(), "\r")
		if text == "" || (line == 1 && strings.HasPrefix(text, "#version")) {
			continue
		}
		a, b, ok := strings.Cut(text, " ")
		if !ok || a == "" || b == "" || strings.Contains(b, " ") {
			return nil, fmt.Errorf("merges.txt line %d: %q is not a pair of two tokens", line, text)
		}
		merges = append(merges, [2]string{a, b})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read merges.txt: %w", err)
	}
	return New(vocab, merges, nil)
}

type tokenizerJSON struct {
	Model struct {
		Type   string            `json:"type"`
		Vocab  map[string]int    `json:"vocab"`
		Merges []json.RawMessage `json:"merges"`
	} `json:"model"`
	AddedTokens []struct {
		ID      int    `json:"id"`
		Content string `json:"content"`
		Special bool   `json:"special"`
	} `json:"added_tokens"`
}

// ParseTokenizerJSON builds a tokenizer from a Hugging Face tokenizer.json
// with a BPE model; merges may be "a b" strings or ["a", "b"] pairs (both
// forms exist in the wild).
func ParseTokenizerJSON(b []byte) (*Tokenizer, error) {
	var tj tokenizerJSON
	if err := json.Unmarshal(b, &tj); err != nil {
		return nil, fmt.Errorf("tokenizer.json: %w", err)
	}
	if tj.Model.Type != "BPE" {
		return nil, fmt.Errorf("tokenizer.json: model type %q, want BPE", tj.Model.Type)
	}
	vocab := tj.Model.Vocab
	if vocab == nil {
		vocab = map[string]int{}
	}
	var special []string
	for _, at := range tj.AddedTokens {
		if _, ok := vocab[at.Content]; !ok {
			vocab[at.Content] = at.ID
		}
		if at.Special {
			special = append(special, at.Content)
		}
	}
	merges := make([][2]string, 0, len(tj.Model.Merges))
	for i, raw := range tj.Model.Merges {
		var s string
		if err := json.Unmarshal(raw, &s); err == nil {
			a, b, ok := strings.Cut(s, " ")
			if !ok {
				return nil, fmt.Errorf("tokenizer.json: merge %d %q is not a pair", i, s)
			}
			merges = append(merges, [2]string{a, b})
			continue
		}
		var pair []string
		if err := json.Unmarshal(raw, &pair); err != nil || len(pair) != 2 {
			return nil, fmt.Errorf("tokenizer.json: merge %d is neither \"a b\" nor [a, b]", i)
		}
		merges = append(merges, [2]string{pair[0], pair[1]})
	}
	return New(vocab, merges, special)
}
