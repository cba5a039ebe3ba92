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
	"fmt"
	"math"
)

// model is a loaded GPT-2: config and weights, and how many goroutines its
// kernels may use (which never changes a result; see kernels.go).
type model struct {
	cfg     Config
	w       *weights
	threads int
}

// state is one sequence being decoded: the key/value cache of every layer
// and scratch buffers reused across steps.
type state struct {
	m        *model
	n        int // positions already in the cache
	capacity int
	k, v     [][]float32 // per layer, [capacity, embd]
	scores   [][]float32 // per head, [capacity]
	scratch  map[string][]float32
}

func (m *model) newState(capacity int) *state {
	c := m.cfg
	s := &state{m: m, capacity: capacity, scratch: map[string][]float32{}}
	s.k = make([][]float32, c.NLayer)
	s.v = make([][]float32, c.NLayer)
	for i := range s.k {
		s.k[i] = make([]float32, capacity*c.NEmbd)
		s.v[i] = make([]float32, capacity*c.NEmbd)
	}
	s.scores = make([][]float32, c.NHead)
	for i := range s.scores {
		s.scores[i] = make([]float32, capacity)
	}
	return s
}

// buf returns the scratch buffer name with at least n elements.
func (s *state) buf(name string, n int) []float32 {
	b := s.scratch[name]
	if cap(b) < n {
		b = make([]float32, n)
		s.scratch[name] = b
	}
	return b[:n]
}

// forward runs tokens through the model at the next positions, appends
// them to the cache, and returns the logits of the last token, or of every
// token ([len(tokens), vocab]) when all is set.
func (s *state) forward(ctx context.Context, tokens []int, all bool) ([]float32, error) {
	c, w, th := s.m.cfg, s.m.w, s.m.threads
	T, E := len(tokens), c.NEmbd
	if s.n+T > s.capacity {
		return nil, fmt.Errorf("position %d beyond the cache's %d", s.n+T, s.capacity)
	}
	x := s.buf("x", T*E)
	for t, tok := range tokens {
		if tok < 0 || tok >= c.VocabSize {
			return nil, fmt.Errorf("token id %d outside the vocabulary of %d", tok, c.VocabSize)
		}
		xr, te, pe := x[t*E:(t+1)*E], w.wte[tok*E:(tok+1)*E], w.wpe[(s.n+t)*E:(s.n+t+1)*E]
		for i := range xr {
			xr[i] = te[i] + pe[i]
		}
	}
	h := s.buf("h", T*E)
	qkv := s.buf("qkv", T*3*E)
	att := s.buf("att", T*E)
	proj := s.buf("proj", T*E)
	fc := s.buf("fc", T*c.NInner)
	for li := range w.layers {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		l := &w.layers[li]
		for t := 0; t < T; t++ {
			layerNorm(h[t*E:(t+1)*E], x[t*E:(t+1)*E], l.ln1G, l.ln1B, c.LayerNormEpsilon)
		}
		matmul(th, qkv, h, l.attnW, l.attnB, T, E, 3*E)
		for t := 0; t < T; t++ {
			p := s.n + t
			copy(s.k[li][p*E:(p+1)*E], qkv[t*3*E+E:t*3*E+2*E])
			copy(s.v[li][p*E:(p+1)*E], qkv[t*3*E+2*E:t*3*E+3*E])
		}
		s.attention(li, qkv, att, T)
		matmul(th, proj, att, l.projW, l.projB, T, E, E)
		addInPlace(x, proj)
		for t := 0; t < T; t++ {
			layerNorm(h[t*E:(t+1)*E], x[t*E:(t+1)*E], l.ln2G, l.ln2B, c.LayerNormEpsilon)
		}
		matmul(th, fc, h, l.fcW, l.fcB, T, E, c.NInner)
		parallel(th, len(fc), 256, func(lo, hi int) {
			for i := lo; i < hi; i++ {
				fc[i] = gelu(fc[i])
			}
		})
		matmul(th, proj, fc, l.fc2W, l.fc2B, T, c.NInner, E)
		addInPlace(x, proj)
	}
	s.n += T
	first := T - 1
	if all {
		first = 0
	}
	out := make([]float32, (T-first)*c.VocabSize)
	for t := first; t < T; t++ {
		layerNorm(h[:E], x[t*E:(t+1)*E], w.lnfG, w.lnfB, c.LayerNormEpsilon)
		logits(th, out[(t-first)*c.VocabSize:(t-first+1)*c.VocabSize], h[:E], w.lmHead, E)
	}
	return out, nil
}

func addInPlace(x, y []float32) {
	y = y[:len(x)]
	for i := range x {
		x[i] += y[i]
	}
}

// attention writes, for each of the T new rows and each head, the softmax
// of q.k/sqrt(head dim) over all cached positions up to the row's own
// (causal), times v. Heads are split among threads; within a head every
// sum runs over positions in increasing order.
func (s *state) attention(li int, qkv, att []float32, T int) {
	c := s.m.cfg
	E, H := c.NEmbd, c.NHead
	hd := E / H
	scale := float32(math.Sqrt(float64(hd)))
	kc, vc := s.k[li], s.v[li]
	parallel(s.m.threads, H, 1, func(h0, h1 int) {
		for h := h0; h < h1; h++ {
			sc := s.scores[h]
			for t := 0; t < T; t++ {
				q := qkv[t*3*E+h*hd : t*3*E+(h+1)*hd]
				n := s.n + t + 1
				mx := float32(math.Inf(-1))
				for p := 0; p < n; p++ {
					v := dot(q, kc[p*E+h*hd:p*E+(h+1)*hd]) / scale
					sc[p] = v
					mx = max(mx, v)
				}
				var sum float32
				for p := 0; p < n; p++ {
					e := expf(sc[p] - mx)
					sc[p] = e
					sum += e
				}
				o := att[t*E+h*hd : t*E+(h+1)*hd]
				clear(o)
				for p := 0; p < n; p++ {
					pr := sc[p] / sum
					vr := vc[p*E+h*hd : p*E+(h+1)*hd]
					vr = vr[:len(o)]
					for d := range o {
						o[d] += float32(pr * vr[d])
					}
				}
			}
		}
	})
}
