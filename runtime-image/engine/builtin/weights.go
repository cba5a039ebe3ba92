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
	"fmt"
	"strings"

	"github.com/aivm-dev/aivm-operator/runtime-image/engine/builtin/safetensors"
)

// layer holds one transformer block's tensors in transformers' Conv1D
// layout: weights are [in, out], row-major, so y = x W reads each weight
// row contiguously.
type layer struct {
	ln1G, ln1B   []float32 // [embd]
	attnW, attnB []float32 // [embd, 3 embd], [3 embd]
	projW, projB []float32 // [embd, embd], [embd]
	ln2G, ln2B   []float32 // [embd]
	fcW, fcB     []float32 // [embd, inner], [inner]
	fc2W, fc2B   []float32 // [inner, embd], [embd]
}

// weights are the model's tensors; F32 ones are views into the mapped
// safetensors file.
type weights struct {
	wte, wpe   []float32 // [vocab, embd], [positions, embd]
	layers     []layer
	lnfG, lnfB []float32
	lmHead     []float32 // [vocab, embd]; wte unless the file has its own
}

// tensorSource yields a tensor's F32 data and shape by its transformers
// name; ok is false when it is absent.
type tensorSource func(name string) (data []float32, shape []int, ok bool, err error)

// safetensorsSource reads names with or without the "transformer." prefix
// (GPT2Model vs GPT2LMHeadModel checkpoints).
func safetensorsSource(f *safetensors.File) tensorSource {
	return func(name string) ([]float32, []int, bool, error) {
		t := f.Tensor(name)
		if t == nil {
			t = f.Tensor("transformer." + name)
		}
		if t == nil {
			return nil, nil, false, nil
		}
		d, err := t.Float32()
		if err != nil {
			return nil, nil, false, fmt.Errorf("tensor %s: %w", t.Name, err)
		}
		return d, t.Shape, true, nil
	}
}

// loadWeights fetches every tensor the config implies and checks its shape.
func loadWeights(c Config, src tensorSource) (*weights, error) {
	get := func(name string, shape ...int) ([]float32, error) {
		d, s, ok, err := src(name)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, fmt.Errorf("tensor %s is missing", name)
		}
		if !equalShape(s, shape) {
			return nil, fmt.Errorf("tensor %s has shape %v, the config implies %v", name, s, shape)
		}
		return d, nil
	}
	e, in := c.NEmbd, c.NInner
	w := &weights{layers: make([]layer, c.NLayer)}
	var err error
	load := func(dst *[]float32, name string, shape ...int) {
		if err == nil {
			*dst, err = get(name, shape...)
		}
	}
	load(&w.wte, "wte.weight", c.VocabSize, e)
	load(&w.wpe, "wpe.weight", c.NPositions, e)
	load(&w.lnfG, "ln_f.weight", e)
	load(&w.lnfB, "ln_f.bias", e)
	for i := range w.layers {
		l := &w.layers[i]
		p := fmt.Sprintf("h.%d.", i)
		load(&l.ln1G, p+"ln_1.weight", e)
		load(&l.ln1B, p+"ln_1.bias", e)
		load(&l.attnW, p+"attn.c_attn.weight", e, 3*e)
		load(&l.attnB, p+"attn.c_attn.bias", 3*e)
		load(&l.projW, p+"attn.c_proj.weight", e, e)
		load(&l.projB, p+"attn.c_proj.bias", e)
		load(&l.ln2G, p+"ln_2.weight", e)
		load(&l.ln2B, p+"ln_2.bias", e)
		load(&l.fcW, p+"mlp.c_fc.weight", e, in)
		load(&l.fcB, p+"mlp.c_fc.bias", in)
		load(&l.fc2W, p+"mlp.c_proj.weight", in, e)
		load(&l.fc2B, p+"mlp.c_proj.bias", e)
	}
	if err != nil {
		return nil, err
	}
	// lm_head.weight is tied to wte in GPT-2 and usually not saved; when a
	// checkpoint carries it, it is what the model was trained with.
	w.lmHead = w.wte
	if d, s, ok, lerr := src("lm_head.weight"); lerr != nil {
		return nil, lerr
	} else if ok {
		if !equalShape(s, []int{c.VocabSize, e}) {
			return nil, fmt.Errorf("tensor lm_head.weight has shape %v, want %v", s, []int{c.VocabSize, e})
		}
		w.lmHead = d
	}
	return w, nil
}

func equalShape(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// unusedTensors names tensors of f the engine ignores that are not the
// known attention-mask buffers; a non-empty list means the checkpoint is
// not the GPT-2 the config says.
func unusedTensors(f *safetensors.File, c Config) []string {
	used := map[string]bool{"wte.weight": true, "wpe.weight": true, "ln_f.weight": true, "ln_f.bias": true, "lm_head.weight": true}
	for i := 0; i < c.NLayer; i++ {
		for _, n := range []string{"ln_1.weight", "ln_1.bias", "attn.c_attn.weight", "attn.c_attn.bias", "attn.c_proj.weight", "attn.c_proj.bias", "ln_2.weight", "ln_2.bias", "mlp.c_fc.weight", "mlp.c_fc.bias", "mlp.c_proj.weight", "mlp.c_proj.bias"} {
			used[fmt.Sprintf("h.%d.%s", i, n)] = true
		}
	}
	var extra []string
	for _, n := range f.Names() {
		base := strings.TrimPrefix(n, "transformer.")
		if used[base] || strings.HasSuffix(base, ".attn.bias") || strings.HasSuffix(base, ".attn.masked_bias") {
			continue
		}
		extra = append(extra, n)
	}
	return extra
}
