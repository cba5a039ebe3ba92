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

// Package testmodel writes small seeded GPT-2 snapshots (config.json,
// model.safetensors and a byte-level BPE vocabulary) that the builtin engine
// loads exactly as it loads a real one. Tests, the demo and benchmarks use
// it. The weights are uniform random numbers from SplitMix64 with only exact
// or explicitly rounded arithmetic, so a given Config gives the same bytes
// on every machine.
package testmodel

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"

	"github.com/aivm-dev/aivm-operator/runtime-image/engine/builtin/prng"
	"github.com/aivm-dev/aivm-operator/runtime-image/engine/builtin/safetensors"
	"github.com/aivm-dev/aivm-operator/runtime-image/engine/builtin/tokenizer"
)

// Config shapes the generated model. Zero fields take Default's values.
type Config struct {
	NLayer, NHead, NEmbd, NPositions int
	// VocabSize of 0 means the generated vocabulary's own size (256 byte
	// tokens, Merges, <|endoftext|>); larger pads the embedding as GPT-2
	// checkpoints sometimes do.
	VocabSize int
	// Seed drives the weights.
	Seed int64
	// Scale is the weights' standard deviation. GPT-2's 0.02 makes a
	// random model repeat one token; 0.1-0.3 gives varied text.
	Scale float64
	// DType of the stored tensors: "F32" (default), "F16" or "BF16".
	DType string
	// TokenizerJSON writes tokenizer.json instead of vocab.json + merges.txt.
	TokenizerJSON bool
}

// Default is a model of about 100k parameters that loads and runs in
// milliseconds.
var Default = Config{NLayer: 2, NHead: 4, NEmbd: 64, NPositions: 128, Seed: 1, Scale: 0.2, DType: "F32"}

// GPT2Small is GPT-2 small's shape (124M parameters) for benchmarks.
var GPT2Small = Config{NLayer: 12, NHead: 12, NEmbd: 768, NPositions: 1024, VocabSize: 50257, Seed: 1, Scale: 0.2, DType: "F32"}

func (c Config) withDefaults() Config {
	d := Default
	if c.NLayer == 0 {
		c.NLayer = d.NLayer
	}
	if c.NHead == 0 {
		c.NHead = d.NHead
	}
	if c.NEmbd == 0 {
		c.NEmbd = d.NEmbd
	}
	if c.NPositions == 0 {
		c.NPositions = d.NPositions
	}
	if c.Scale == 0 {
		c.Scale = d.Scale
	}
	if c.DType == "" {
		c.DType = "F32"
	}
	if least := len(Vocab()); c.VocabSize < least {
		c.VocabSize = least
	}
	return c
}

// merges are a few English byte pairs in rank order, so the tokenizer has
// real merging to do; each pair's parts are bytes or earlier merges.
var merges = [][2]string{
	{"Ġ", "t"}, {"h", "e"}, {"Ġ", "a"}, {"i", "n"}, {"Ġt", "he"}, {"e", "r"},
	{"o", "n"}, {"Ġ", "s"}, {"r", "e"}, {"a", "n"}, {"Ġ", "w"}, {"o", "u"},
	{"Ġ", "o"}, {"e", "n"}, {"Ġ", "c"}, {"Ġ", "b"}, {"Ġ", "f"}, {"Ġ", "m"},
	{"in", "g"}, {"Ġ", "i"}, {"e", "d"}, {"Ġ", "d"}, {"o", "r"}, {"a", "t"},
	{"i", "s"}, {"e", "s"}, {"Ġ", "p"}, {"l", "l"}, {"Ġ", "h"}, {"Ġo", "f"},
	{"a", "r"}, {"Ġa", "n"}, {"Ġan", "d"}, {"Ġt", "o"}, {"Ġ", "l"}, {"o", "m"},
	{"Ġw", "or"}, {"Ġwor", "l"}, {"Ġworl", "d"}, {"H", "e"}, {"He", "ll"},
	{"Hell", "o"}, {"Ġi", "s"}, {"i", "t"}, {"Ġ", "n"}, {"a", "l"},
}

// Vocab returns the generated vocabulary: GPT-2's 256 byte tokens in its
// order, then one token per merge, then <|endoftext|>.
func Vocab() map[string]int {
	v := map[string]int{}
	for i, b := range tokenizer.ByteOrder {
		v[string(tokenizer.ByteRune(b))] = i
	}
	for _, m := range merges {
		v[m[0]+m[1]] = len(v)
	}
	v[tokenizer.EndOfText] = len(v)
	return v
}

// Tensors returns the model's tensors with transformers' GPT2Model names.
func Tensors(cfg Config) []safetensors.WriteTensor {
	c := cfg.withDefaults()
	rng := prng.New(c.Seed)
	half := float64(c.Scale * math.Sqrt(3)) // uniform on [-h, h] has sd Scale
	uniform := func(n int, center, h float64) []float32 {
		out := make([]float32, n)
		for i := range out {
			u := float64(rng.Float64()*2) - 1
			out[i] = float32(center + float64(u*h))
		}
		return out
	}
	var ts []safetensors.WriteTensor
	add := func(name string, data []float32, shape ...int) {
		ts = append(ts, safetensors.WriteTensor{Name: name, DType: c.DType, Shape: shape, Data: data})
	}
	e, in := c.NEmbd, 4*c.NEmbd
	add("wte.weight", uniform(c.VocabSize*e, 0, half), c.VocabSize, e)
	add("wpe.weight", uniform(c.NPositions*e, 0, half/2), c.NPositions, e)
	for l := 0; l < c.NLayer; l++ {
		p := fmt.Sprintf("h.%d.", l)
		add(p+"ln_1.weight", uniform(e, 1, 0.1), e)
		add(p+"ln_1.bias", uniform(e, 0, 0.1), e)
		add(p+"attn.c_attn.weight", uniform(e*3*e, 0, half), e, 3*e)
		add(p+"attn.c_attn.bias", uniform(3*e, 0, half/2), 3*e)
		add(p+"attn.c_proj.weight", uniform(e*e, 0, half), e, e)
		add(p+"attn.c_proj.bias", uniform(e, 0, half/2), e)
		add(p+"ln_2.weight", uniform(e, 1, 0.1), e)
		add(p+"ln_2.bias", uniform(e, 0, 0.1), e)
		add(p+"mlp.c_fc.weight", uniform(e*in, 0, half), e, in)
		add(p+"mlp.c_fc.bias", uniform(in, 0, half/2), in)
		add(p+"mlp.c_proj.weight", uniform(in*e, 0, half), in, e)
		add(p+"mlp.c_proj.bias", uniform(e, 0, half/2), e)
	}
	add("ln_f.weight", uniform(e, 1, 0.1), e)
	add("ln_f.bias", uniform(e, 0, 0.1), e)
	return ts
}

// ConfigJSON is the config.json of cfg, as transformers writes it for GPT-2.
func ConfigJSON(cfg Config) []byte {
	c := cfg.withDefaults()
	b, _ := json.MarshalIndent(map[string]any{
		"architectures":       []string{"GPT2LMHeadModel"},
		"model_type":          "gpt2",
		"activation_function": "gelu_new",
		"n_layer":             c.NLayer,
		"n_head":              c.NHead,
		"n_embd":              c.NEmbd,
		"n_positions":         c.NPositions,
		"n_ctx":               c.NPositions,
		"vocab_size":          c.VocabSize,
		"layer_norm_epsilon":  1e-5,
		"bos_token_id":        len(Vocab()) - 1,
		"eos_token_id":        len(Vocab()) - 1,
	}, "", "  ")
	return append(b, '\n')
}

// Write writes the snapshot of cfg into dir and returns its files (paths
// relative to dir) with their sha256 in hex, as a Model's files[] lists
// them.
func Write(dir string, cfg Config) (map[string]string, error) {
	c := cfg.withDefaults()
	st, err := safetensors.Encode(Tensors(c), map[string]string{"format": "pt"})
	if err != nil {
		return nil, err
	}
	vocab, _ := json.Marshal(Vocab())
	files := map[string][]byte{
		"config.json":       ConfigJSON(c),
		"model.safetensors": st,
	}
	lines := "#version: 0.2\n"
	var ms []string
	for _, m := range merges {
		lines += m[0] + " " + m[1] + "\n"
		ms = append(ms, m[0]+" "+m[1])
	}
	if c.TokenizerJSON {
		v := Vocab()
		delete(v, tokenizer.EndOfText)
		files["tokenizer.json"], _ = json.MarshalIndent(map[string]any{
			"version":       "1.0",
			"added_tokens":  []any{map[string]any{"id": len(Vocab()) - 1, "content": tokenizer.EndOfText, "special": true}},
			"pre_tokenizer": map[string]any{"type": "ByteLevel", "add_prefix_space": false},
			"decoder":       map[string]any{"type": "ByteLevel"},
			"model":         map[string]any{"type": "BPE", "vocab": v, "merges": ms},
		}, "", " ")
	} else {
		files["vocab.json"] = vocab
		files["merges.txt"] = []byte(lines)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create model dir: %w", err)
	}
	sums := map[string]string{}
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if err := os.WriteFile(filepath.Join(dir, n), files[n], 0o644); err != nil {
			return nil, fmt.Errorf("write %s: %w", n, err)
		}
		sum := sha256.Sum256(files[n])
		sums[n] = hex.EncodeToString(sum[:])
	}
	return sums, nil
}
