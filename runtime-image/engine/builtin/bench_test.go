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
	"sync"
	"testing"
	"time"

	"github.com/aivm-dev/aivm-operator/runtime-image/engine/builtin/prng"
	"github.com/aivm-dev/aivm-operator/runtime-image/engine/builtin/testmodel"
)

// benchThreads is the target: two threads.
const benchThreads = 2

var (
	smallOnce  sync.Once
	smallModel *model
)

// gpt2Small builds GPT-2 small's shape (124M parameters, seeded, F32) in
// memory once; writing 500 MB to disk per run would only measure the disk.
func gpt2Small(testing.TB) *model {
	smallOnce.Do(func() {
		cfg := testmodel.GPT2Small
		byName := map[string][]float32{}
		shapes := map[string][]int{}
		for _, t := range testmodel.Tensors(cfg) {
			byName[t.Name], shapes[t.Name] = t.Data, t.Shape
		}
		c := Config{NLayer: cfg.NLayer, NHead: cfg.NHead, NEmbd: cfg.NEmbd, NPositions: cfg.NPositions,
			VocabSize: cfg.VocabSize, NInner: 4 * cfg.NEmbd, LayerNormEpsilon: 1e-5}
		w, err := loadWeights(c, func(name string) ([]float32, []int, bool, error) {
			d, ok := byName[name]
			return d, shapes[name], ok, nil
		})
		if err != nil {
			panic(err)
		}
		smallModel = newModel(c, w, Options{Threads: benchThreads})
	})
	return smallModel
}

func randomIDs(n, vocab int) []int {
	r := prng.New(int64(n))
	ids := make([]int, n)
	for i := range ids {
		ids[i] = int(r.Uint64() % uint64(vocab))
	}
	return ids
}

// BenchmarkGenerate: greedy tokens per second with the KV cache after a
// 16-token prompt (target: >= 20 tokens/s at 2 threads).
func BenchmarkGenerate(b *testing.B) {
	m := gpt2Small(b)
	const prompt, gen = 16, 32
	ctx := context.Background()
	var total time.Duration
	b.ResetTimer()
	for b.Loop() {
		st := m.newState(prompt + gen)
		lg, err := st.forward(ctx, randomIDs(prompt, m.cfg.VocabSize), false)
		if err != nil {
			b.Fatal(err)
		}
		smp := newSampler(0, 1, 0)
		start := time.Now()
		for range gen {
			if lg, err = st.forward(ctx, []int{smp.next(lg)}, false); err != nil {
				b.Fatal(err)
			}
		}
		total += time.Since(start)
	}
	b.ReportMetric(float64(b.N*gen)/total.Seconds(), "tokens/s")
}

// BenchmarkPrompt: prompt processing over 128 tokens (target: >= 60
// tokens/s at 2 threads).
func BenchmarkPrompt(b *testing.B) {
	m := gpt2Small(b)
	const prompt = 128
	ctx := context.Background()
	ids := randomIDs(prompt, m.cfg.VocabSize)
	var total time.Duration
	b.ResetTimer()
	for b.Loop() {
		st := m.newState(prompt)
		start := time.Now()
		if _, err := st.forward(ctx, ids, false); err != nil {
			b.Fatal(err)
		}
		total += time.Since(start)
	}
	b.ReportMetric(float64(b.N*prompt)/total.Seconds(), "tokens/s")
}
