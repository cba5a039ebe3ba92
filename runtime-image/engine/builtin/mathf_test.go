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
	"math"
	"testing"
)

// exp64 must agree with the correctly rounded e**x to within an ulp or so;
// it replaces math.Exp only for bit-reproducibility, not for accuracy.
func TestExp64(t *testing.T) {
	for _, x := range []float64{-745, -700, -100, -20, -1, -0.5, -1e-9, 0, 1e-9, 0.3, 1, 2.5, 10, 88, 700} {
		got, want := exp64(x), math.Exp(x)
		if d := math.Abs(got-want) / want; d > 4e-16 {
			t.Errorf("exp64(%v) = %v, math.Exp %v (relative error %v)", x, got, want, d)
		}
	}
	if !math.IsInf(exp64(710), 1) || exp64(-746) != 0 || !math.IsNaN(exp64(math.NaN())) {
		t.Fatal("exp64 overflow, underflow or NaN wrong")
	}
}

func TestGELU(t *testing.T) {
	for _, x := range []float32{-30, -5, -1, -0.1, 0, 0.1, 1, 3, 30} {
		xd := float64(x)
		want := 0.5 * xd * (1 + math.Tanh(math.Sqrt(2/math.Pi)*(xd+0.044715*xd*xd*xd)))
		if d := math.Abs(float64(gelu(x)) - want); d > 1e-6*math.Max(1, math.Abs(want)) {
			t.Errorf("gelu(%v) = %v, want %v", x, gelu(x), want)
		}
	}
}
