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
	"encoding/json"
	"math"
	"os"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// torchTolerance bounds |ours - torch| per logit as atol + rtol*|torch|.
// Both sides compute in float32 but sum in different orders (and torch's
// tanh and exp differ from ours in the last bit), so logits of magnitude
// ~10 agree to a few 1e-6 in practice; the bound leaves a margin of ten.
const (
	torchAtol = 5e-5
	torchRtol = 5e-5
)

type torchGolden struct {
	Torch           string  `json:"torch"`
	MinGreedyMargin float64 `json:"minGreedyMargin"`
	Cases           []struct {
		Prompt string      `json:"prompt"`
		IDs    []int       `json:"ids"`
		Logits [][]float64 `json:"logits"`
		Greedy []int       `json:"greedy"`
	} `json:"cases"`
}

// TestTorchGolden compares the engine with PyTorch on the snapshot that
// hack/gpt2-golden.py wrote (with torch's layer_norm, tanh GELU, softmax
// and matmul): the logits at every position of each prompt within the
// tolerance above, and the greedy continuation token for token, which runs
// through the KV cache while torch recomputes the whole sequence.
func TestTorchGolden(t *testing.T) {
	const dir = "testdata/torch-gpt2"
	b, err := os.ReadFile(dir + "/golden.json")
	if err != nil {
		t.Fatal(err)
	}
	var g torchGolden
	if err := json.Unmarshal(b, &g); err != nil {
		t.Fatal(err)
	}
	e, err := Open(dir, Options{Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	ctx := context.Background()
	var worst float64
	for _, c := range g.Cases {
		if ids := e.Tokenizer().Encode(c.Prompt); !cmp.Equal(ids, c.IDs) {
			t.Fatalf("prompt %q encodes to %v, torch used %v", c.Prompt, ids, c.IDs)
		}
		st := e.m.newState(len(c.IDs) + len(c.Greedy))
		lg, err := st.forward(ctx, c.IDs, true)
		if err != nil {
			t.Fatal(err)
		}
		V := e.m.cfg.VocabSize
		for pos, row := range c.Logits {
			for v, want := range row {
				got := float64(lg[pos*V+v])
				d := math.Abs(got - want)
				worst = max(worst, d)
				if d > torchAtol+torchRtol*math.Abs(want) {
					t.Fatalf("prompt %q position %d token %d: logit %v, torch %v", c.Prompt, pos, v, got, want)
				}
			}
		}
		last := lg[(len(c.IDs)-1)*V:]
		var got []int
		for range c.Greedy {
			id := newSampler(0, 1, 0).next(last)
			got = append(got, id)
			if last, err = st.forward(ctx, []int{id}, false); err != nil {
				t.Fatal(err)
			}
		}
		if diff := cmp.Diff(c.Greedy, got); diff != "" {
			t.Errorf("prompt %q greedy tokens (-torch +ours):\n%s", c.Prompt, diff)
		}
	}
	t.Logf("largest |logit - torch %s| = %.3g", g.Torch, worst)
}
