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
	"sort"

	"github.com/aivm-dev/aivm-operator/runtime-image/engine/builtin/prng"
)

// sampler picks the next token from logits. Temperature 0 is greedy (the
// highest logit, the lowest id on a tie). Otherwise, per token, exactly one
// number is drawn from the SplitMix64 stream seeded with the request's
// seed:
//
//  1. z_i = logit_i / temperature in float64; p_i = exp64(z_i - max z),
//     unnormalised.
//  2. Tokens are ordered by p_i descending, ties by id ascending; the
//     nucleus is the shortest prefix whose mass reaches top_p times the
//     total (all tokens when top_p is 1).
//  3. u = Float64() times the nucleus mass; the token is the first in that
//     order whose running mass (summed in that order) exceeds u.
type sampler struct {
	temperature, topP float64
	rng               *prng.SplitMix64
	probs             []float64
	order             []int
}

func newSampler(temperature, topP float64, seed int64) *sampler {
	return &sampler{temperature: temperature, topP: topP, rng: prng.New(seed)}
}

func (s *sampler) next(logits []float32) int {
	if s.temperature == 0 {
		best := 0
		for i, v := range logits {
			if v > logits[best] {
				best = i
			}
		}
		return best
	}
	n := len(logits)
	if cap(s.probs) < n {
		s.probs = make([]float64, n)
		s.order = make([]int, n)
	}
	probs, order := s.probs[:n], s.order[:n]
	mx := float64(logits[0]) / s.temperature
	for i, v := range logits {
		z := float64(v) / s.temperature
		probs[i] = z
		mx = max(mx, z)
	}
	var total float64
	for i, z := range probs {
		probs[i] = exp64(z - mx)
		total += probs[i]
		order[i] = i
	}
	sort.Slice(order, func(a, b int) bool {
		pa, pb := probs[order[a]], probs[order[b]]
		if pa != pb {
			return pa > pb
		}
		return order[a] < order[b]
	})
	nucleus, mass := n, total
	if s.topP < 1 {
		limit := float64(s.topP * total)
		mass = 0
		for i, id := range order {
			mass += probs[id]
			if mass >= limit {
				nucleus = i + 1
				break
			}
		}
	}
	u := float64(s.rng.Float64() * mass)
	var acc float64
	for _, id := range order[:nucleus] {
		acc += probs[id]
		if acc > u {
			return id
		}
	}
	return order[nucleus-1] // u within rounding of the whole mass
}
