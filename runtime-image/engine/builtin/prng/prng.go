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

// Package prng is the builtin engine's pseudo-random generator: SplitMix64
// (Steele, Lea, Flood 2014), written out here so that its stream is fixed
// forever. math/rand's streams are not promised to stay the same across Go
// releases, and a committee of nodes must draw the same numbers from the
// same seed.
package prng

// SplitMix64 is a 64-bit state advanced by the golden-ratio increment and
// finalised by Stafford's "mix13" function. The zero value is seeded with 0.
type SplitMix64 struct {
	state uint64
}

// New returns a generator seeded with seed (its two's-complement bits).
func New(seed int64) *SplitMix64 {
	return &SplitMix64{state: uint64(seed)}
}

// Uint64 returns the next 64 random bits.
func (s *SplitMix64) Uint64() uint64 {
	s.state += 0x9E3779B97F4A7C15
	z := s.state
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9
	z = (z ^ (z >> 27)) * 0x94D049BB133111EB
	return z ^ (z >> 31)
}

// Float64 returns a uniform number in [0, 1): the top 53 bits of Uint64
// times 2^-53, exact in float64.
func (s *SplitMix64) Float64() float64 {
	return float64(s.Uint64()>>11) * (1.0 / (1 << 53))
}
