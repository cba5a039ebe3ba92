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
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func gunzip(t *testing.T, path string) []byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// gpt2 loads the real GPT-2 vocabulary from testdata.
func gpt2(t *testing.T) *Tokenizer {
	t.Helper()
	tok, err := ParseVocabMerges(gunzip(t, "testdata/gpt2-vocab.json.gz"), gunzip(t, "testdata/gpt2-merges.txt.gz"))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestGPT2Encode(t *testing.T) {
	tok := gpt2(t)
	if tok.VocabSize() != 50257 || tok.EndOfTextID() != 50256 {
		t.Fatalf("vocab size %d, end-of-text %d; want 50257, 50256", tok.VocabSize(), tok.EndOfTextID())
	}
	// Expected ids from gpt-3-encoder's own encode (testdata/README.md).
	cases := map[string][]int{
		"Hello world": {15496, 995},
		" the":        {262},
		"Hello, world! It's 2026 and we're here.": {15496, 11, 995, 0, 632, 338, 1160, 2075, 290, 356, 821, 994, 13},
		"naïve café résumé":                       {2616, 38776, 40304, 40560, 16345, 2634},
		"日本語のテキスト":                                {33768, 98, 17312, 105, 45739, 252, 5641, 24336, 25084, 43302},
		"emoji 🎉🚀 done":                           {368, 31370, 12520, 236, 231, 8582, 248, 222, 1760},
		"  spaces\tand\n\nnewlines  ":             {220, 9029, 197, 392, 198, 198, 3605, 6615, 220, 220},
		"<|endoftext|>":                           {27, 91, 437, 1659, 5239, 91, 29},
		"don't they'll I'd":                       {9099, 470, 484, 1183, 314, 1549},
		"x = a_b + 12345.678":                     {87, 796, 257, 62, 65, 1343, 17031, 2231, 13, 30924},
	}
	for text, want := range cases {
		got := tok.Encode(text)
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("Encode(%q) (-want +got):\n%s", text, diff)
		}
		if back := string(tok.Decode(got)); back != text {
			t.Errorf("Decode(Encode(%q)) = %q", text, back)
		}
	}
}

func TestRoundTripNonASCII(t *testing.T) {
	tok := gpt2(t)
	for _, text := range []string{
		"Grüße aus Köln, ça va? Ñandú",
		"中文测试：你好，世界。한국어 텍스트",
		"👩‍👩‍👧‍👦 family, 🏳️‍🌈 flag, 🇩🇪",
		"Ελληνικά και русский текст",
		"\u00a0non-breaking\u2003em space\u3000ideographic",
		"mixed\r\nline\rendings\x00and\x7fcontrol",
		"",
	} {
		ids := tok.Encode(text)
		if back := string(tok.Decode(ids)); back != text {
			t.Errorf("round trip of %q gave %q (ids %v)", text, back, ids)
		}
	}
}

func TestDecodePartialUTF8(t *testing.T) {
	tok := gpt2(t)
	ids := tok.Encode("🎉")
	if len(ids) < 2 {
		t.Fatalf("🎉 encodes to %v; the test needs a multi-token character", ids)
	}
	var b bytes.Buffer
	for _, id := range ids {
		b.Write(tok.Decode([]int{id}))
	}
	if b.String() != "🎉" {
		t.Fatalf("token-by-token decode gave %q", b.String())
	}
}

func TestSplit(t *testing.T) {
	cases := map[string][]string{
		"Hello world":      {"Hello", " world"},
		"  two":            {" ", " two"},
		"a   \n b":         {"a", "   \n", " b"},
		"end  ":            {"end", "  "},
		"'s 're 'x":        {"'s", " '", "re", " '", "x"},
		"it's":             {"it", "'s"},
		"x1 22!?":          {"x", "1", " 22", "!?"},
		"\tword":           {"\t", "word"},
		"":                 nil,
		"don't":            {"don", "'t"},
		"emoji🎉🎉 done":     {"emoji", "🎉🎉", " done"},
		"café\u00a0crème":  {"café", "\u00a0", "crème"},
		"'ll've":           {"'ll", "'ve"},
		"a\n\n\nb":         {"a", "\n\n", "\n", "b"},
		"3.14":             {"3", ".", "14"},
		"Ünïcödé ٣٤ words": {"Ünïcödé", " ٣٤", " words"},
	}
	for in, want := range cases {
		if diff := cmp.Diff(want, split(in)); diff != "" {
			t.Errorf("split(%q) (-want +got):\n%s", in, diff)
		}
	}
}

func TestTokenizerJSON(t *testing.T) {
	vocab := gunzip(t, "testdata/gpt2-vocab.json.gz")
	var v map[string]int
	if err := json.Unmarshal(vocab, &v); err != nil {
		t.Fatal(err)
	}
	delete(v, EndOfText)
	var merges []any
	for i, line := range strings.Split(string(gunzip(t, "testdata/gpt2-merges.txt.gz")), "\n") {
		if i == 0 || line == "" {
			continue
		}
		if i%2 == 0 { // both forms transformers has written over the years
			merges = append(merges, line)
		} else {
			a, b, _ := strings.Cut(line, " ")
			merges = append(merges, []string{a, b})
		}
	}
	doc, _ := json.Marshal(map[string]any{
		"model":        map[string]any{"type": "BPE", "vocab": v, "merges": merges},
		"added_tokens": []any{map[string]any{"id": 50256, "content": EndOfText, "special": true}},
	})
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "tokenizer.json"), doc, 0o644); err != nil {
		t.Fatal(err)
	}
	tok, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got := tok.Encode("Hello world"); !cmp.Equal(got, []int{15496, 995}) {
		t.Fatalf("Encode = %v", got)
	}
	if tok.EndOfTextID() != 50256 || tok.TokenBytes(50256) != nil {
		t.Fatalf("end-of-text id %d, bytes %q", tok.EndOfTextID(), tok.TokenBytes(50256))
	}
}

func TestLoadRefusesMalformed(t *testing.T) {
	byteVocab := map[string]int{}
	for i, b := range ByteOrder {
		byteVocab[string(ByteRune(b))] = i
	}
	good, _ := json.Marshal(byteVocab)
	missing := map[string]int{"a": 0}
	bad, _ := json.Marshal(missing)
	cases := []struct {
		name          string
		files         map[string]string
		wantSubstring string
	}{
		{"nothing", map[string]string{}, "vocab.json"},
		{"vocab not json", map[string]string{"vocab.json": "{", "merges.txt": ""}, "vocab.json"},
		{"missing byte tokens", map[string]string{"vocab.json": string(bad), "merges.txt": ""}, "lacks byte token"},
		{"bad merge line", map[string]string{"vocab.json": string(good), "merges.txt": "#version: 0.2\na b c\n"}, "line 2"},
		{"tokenizer.json not BPE", map[string]string{"tokenizer.json": `{"model":{"type":"WordPiece"}}`}, "want BPE"},
		{"tokenizer.json bad merge", map[string]string{"tokenizer.json": `{"model":{"type":"BPE","vocab":{},"merges":[3]}}`}, "merge 0"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			for n, s := range c.files {
				if err := os.WriteFile(filepath.Join(dir, n), []byte(s), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			_, err := Load(dir)
			if err == nil || !strings.Contains(err.Error(), c.wantSubstring) {
				t.Fatalf("Load: %v, want an error containing %q", err, c.wantSubstring)
			}
		})
	}
}
