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

package builtin

import (
	"context"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/aivm-dev/aivm-operator/runtime-image/engine"
	"github.com/aivm-dev/aivm-operator/runtime-image/engine/builtin/safetensors"
	"github.com/aivm-dev/aivm-operator/runtime-image/engine/builtin/testmodel"
)

func openDefault(t *testing.T) *Engine {
	t.Helper()
	dir, _ := writeDefault(t)
	e, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

func gen(t *testing.T, e *Engine, req engine.Request) Result {
	t.Helper()
	r, err := e.GenerateIDs(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestSamplingBySeed: a seed reproduces its output, other seeds give other
// outputs, and the greedy model does not just repeat one token.
func TestSamplingBySeed(t *testing.T) {
	e := openDefault(t)
	req := engine.Request{Prompt: "Hello world", MaxTokens: 40, Temperature: 1, TopP: 0.95, Seed: 11}
	a, b := gen(t, e, req), gen(t, e, req)
	if !cmp.Equal(a, b, cmp.Comparer(func(_, _ time.Duration) bool { return true })) {
		t.Fatalf("seed 11 twice: %q and %q", a.Output, b.Output)
	}
	seen := map[string]bool{a.Output: true}
	for seed := int64(12); seed < 16; seed++ {
		req.Seed = seed
		seen[gen(t, e, req).Output] = true
	}
	if len(seen) != 5 {
		t.Fatalf("5 seeds gave %d distinct outputs", len(seen))
	}
	g := gen(t, e, engine.Request{Prompt: "Hello world", MaxTokens: 40})
	distinct := map[int]bool{}
	for _, id := range g.OutputIDs {
		distinct[id] = true
	}
	if len(distinct) < 5 {
		t.Fatalf("greedy output uses only %d distinct tokens: %v", len(distinct), g.OutputIDs)
	}
}

func TestStopSequenceAndLimits(t *testing.T) {
	e := openDefault(t)
	base := gen(t, e, engine.Request{Prompt: "Hello world", MaxTokens: 40})
	if base.FinishReason != engine.FinishLength || base.OutputTokens != 40 {
		t.Fatalf("greedy run: %s after %d tokens", base.FinishReason, base.OutputTokens)
	}
	// Stop at an ASCII letter that occurs in the greedy output after its
	// start (an ASCII byte cuts raw and sanitised text at the same place).
	i := strings.IndexFunc(base.Output[3:], func(r rune) bool { return r >= 'a' && r <= 'z' })
	if i < 0 {
		t.Fatalf("no letter in %q", base.Output)
	}
	stop := base.Output[3+i : 3+i+1]
	cut := strings.Index(base.Output, stop)
	r := gen(t, e, engine.Request{Prompt: "Hello world", MaxTokens: 40, Stop: []string{"never-occurs", stop}})
	if r.FinishReason != engine.FinishStop || r.Output != base.Output[:cut] {
		t.Fatalf("stop %q: %s, %q; want stop, %q", stop, r.FinishReason, r.Output, base.Output[:cut])
	}
	for _, max := range []int{1, 7, 20} {
		r := gen(t, e, engine.Request{Prompt: "Hello world", MaxTokens: 40, MaxOutputBytes: max})
		if len(r.Output) > max || r.FinishReason != engine.FinishMaxBytes {
			t.Fatalf("max bytes %d: %d bytes, %s", max, len(r.Output), r.FinishReason)
		}
	}
}

func TestRequestErrors(t *testing.T) {
	e := openDefault(t)
	cases := []struct {
		req  engine.Request
		kind engine.Kind
	}{
		{engine.Request{Prompt: "x", MaxTokens: 0}, engine.KindBadInput},
		{engine.Request{Prompt: "x", MaxTokens: 1, Temperature: -1}, engine.KindBadInput},
		{engine.Request{Prompt: "x", MaxTokens: 1, TopP: 1.5}, engine.KindBadInput},
		{engine.Request{Prompt: "x", MaxTokens: 1, Stop: []string{""}}, engine.KindBadInput},
		{engine.Request{Prompt: "\xff", MaxTokens: 1}, engine.KindBadInput},
		{engine.Request{Prompt: "x", MaxTokens: 128}, engine.KindContextLength},
		{engine.Request{Prompt: strings.Repeat("x ", 100), MaxTokens: 40}, engine.KindContextLength},
	}
	for _, c := range cases {
		if _, err := e.Generate(context.Background(), c.req); engine.KindOf(err) != c.kind {
			t.Errorf("%+v: %v, want kind %s", c.req, err, c.kind)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), -time.Second)
	defer cancel()
	if _, err := e.Generate(ctx, engine.Request{Prompt: "x", MaxTokens: 5}); engine.KindOf(err) != engine.KindTimeout {
		t.Errorf("expired deadline: %v, want %s", err, engine.KindTimeout)
	}
}

// TestHalfPrecisionWidened: an F16 (BF16) snapshot gives exactly the output
// of the F32 snapshot of the same weights rounded to F16 (BF16), so
// widening is exact and the F32 path (an mmap view) is what runs.
func TestHalfPrecisionWidened(t *testing.T) {
	for _, dt := range []string{"F16", "BF16"} {
		half := t.TempDir()
		cfg := testmodel.Default
		cfg.DType, cfg.TokenizerJSON = dt, true
		if _, err := testmodel.Write(half, cfg); err != nil {
			t.Fatal(err)
		}
		full := t.TempDir()
		if _, err := testmodel.Write(full, testmodel.Default); err != nil {
			t.Fatal(err)
		}
		ts := testmodel.Tensors(testmodel.Default)
		for i := range ts {
			for j, v := range ts[i].Data {
				if dt == "F16" {
					ts[i].Data[j] = safetensors.F16ToF32(safetensors.F32ToF16(v))
				} else {
					ts[i].Data[j] = safetensors.BF16ToF32(safetensors.F32ToBF16(v))
				}
			}
		}
		if err := safetensors.WriteFile(filepath.Join(full, "model.safetensors"), ts, nil); err != nil {
			t.Fatal(err)
		}
		var outs []string
		for _, dir := range []string{half, full} {
			e, err := Open(dir, Options{})
			if err != nil {
				t.Fatal(err)
			}
			outs = append(outs, gen(t, e, engine.Request{Prompt: "Hello world", MaxTokens: 30, Temperature: 0.8, Seed: 2}).Output)
			e.Close()
		}
		if outs[0] != outs[1] {
			t.Fatalf("%s snapshot %q, rounded F32 snapshot %q", dt, outs[0], outs[1])
		}
	}
}

// TestMalformedModelRefused: every broken snapshot fails Open with
// KindModel and an error naming the problem.
func TestMalformedModelRefused(t *testing.T) {
	good, _ := writeDefault(t)
	st, err := os.ReadFile(filepath.Join(good, "model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	hlen := binary.LittleEndian.Uint64(st)
	withHeader := func(h string) []byte {
		b := binary.LittleEndian.AppendUint64(nil, uint64(len(h)))
		return append(append(b, h...), st[8+hlen:]...)
	}
	header := string(st[8 : 8+hlen])
	cases := []struct {
		name, file string
		data       []byte
		want       string
	}{
		{"truncated data", "model.safetensors", st[:len(st)-100], "truncated"},
		{"truncated header", "model.safetensors", st[:8+hlen/2], "runs past the end"},
		{"tiny file", "model.safetensors", st[:5], "shorter than the 8-byte"},
		{"huge header length", "model.safetensors", append(binary.LittleEndian.AppendUint64(nil, 1<<40), st[8:]...), "exceeds"},
		{"header not json", "model.safetensors", withHeader("{not json" + strings.Repeat(" ", 7)), "not a JSON object"},
		{"bad dtype", "model.safetensors", withHeader(strings.Replace(header, `"F32"`, `"I64"`, 1)), "unsupported dtype"},
		{"wrong shape", "model.safetensors", withHeader(strings.Replace(header, `"shape":[64]`, `"shape":[32]`, 1)), "needs"},
		{"missing tensor", "model.safetensors", withHeader(strings.Replace(header, `"ln_f.bias"`, `"ln_f.bogus"`, 1)), "ln_f.bias is missing"},
		{"config not json", "config.json", []byte("{"), "config.json"},
		{"config zero layers", "config.json", []byte(`{"n_layer":0,"n_head":4,"n_embd":64,"n_positions":128,"vocab_size":303}`), "n_layer = 0"},
		{"config heads", "config.json", []byte(`{"n_layer":2,"n_head":5,"n_embd":64,"n_positions":128,"vocab_size":303}`), "multiple of n_head"},
		{"config other model", "config.json", []byte(`{"model_type":"llama","n_layer":2,"n_head":4,"n_embd":64,"n_positions":128,"vocab_size":303}`), "model_type"},
		{"config shape mismatch", "config.json", []byte(`{"n_layer":2,"n_head":4,"n_embd":64,"n_positions":256,"vocab_size":303}`), "wpe.weight has shape"},
		{"config smaller vocab", "config.json", []byte(`{"n_layer":2,"n_head":4,"n_embd":64,"n_positions":128,"vocab_size":100}`), "tokenizer has"},
		{"no tokenizer", "vocab.json", nil, "vocab.json"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			for _, n := range []string{"config.json", "model.safetensors", "vocab.json", "merges.txt"} {
				b, _ := os.ReadFile(filepath.Join(good, n))
				if n == c.file {
					if c.data == nil {
						continue
					}
					b = c.data
				}
				if err := os.WriteFile(filepath.Join(dir, n), b, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			_, err := Open(dir, Options{})
			var ee *engine.Error
			if !errors.As(err, &ee) || ee.Kind != engine.KindModel || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Open: %v; want a %s error containing %q", err, engine.KindModel, c.want)
			}
		})
	}
}
