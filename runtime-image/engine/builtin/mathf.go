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

import "math"

// exp64 is e**x computed with the FreeBSD e_exp.c algorithm (the one Go's
// pure-Go math.Exp uses), written out here because math.Exp has assembly
// versions on amd64 and arm64 whose results differ from each other. Every
// product is rounded by an explicit float64 conversion so no compiler may
// fuse it into an FMA: the same x gives the same bits on every CPU.
func exp64(x float64) float64 {
	const (
		ln2Hi     = 6.93147180369123816490e-01
		ln2Lo     = 1.90821492927058770002e-10
		log2e     = 1.44269504088896338700e+00
		overflow  = 7.09782712893383973096e+02
		underflow = -7.45133219101941108420e+02
		nearZero  = 1.0 / (1 << 28)

		p1 = 1.66666666666666657415e-01  /* 0x3FC55555; 0x55555555 */
		p2 = -2.77777777770155933842e-03 /* 0xBF66C16C; 0x16BEBD93 */
		p3 = 6.61375632143793436117e-05  /* 0x3F11566A; 0xAF25DE2C */
		p4 = -1.65339022054652515390e-06 /* 0xBEBBBD41; 0xC5D26BF1 */
		p5 = 4.13813679705723846039e-08  /* 0x3E663769; 0x72BEA4D0 */
	)
	switch {
	case x != x || x > overflow:
		return x * math.Inf(1) // NaN stays NaN, large x is +Inf
	case x < underflow:
		return 0
	case -nearZero < x && x < nearZero:
		return 1 + x
	}
	var k int
	if x < 0 {
		k = int(float64(log2e*x) - 0.5)
	} else {
		k = int(float64(log2e*x) + 0.5)
	}
	hi := x - float64(float64(k)*ln2Hi)
	lo := float64(float64(k) * ln2Lo)
	r := hi - lo
	t := float64(r * r)
	poly := float64(t * p5)
	poly = float64(t * (p4 + poly))
	poly = float64(t * (p3 + poly))
	poly = float64(t * (p2 + poly))
	poly = float64(t * (p1 + poly))
	c := r - poly
	y := 1 - ((lo - float64(r*c)/(2-c)) - hi)
	return ldexp(y, k)
}

// ldexp is y * 2**k by multiplication with exact powers of two; IEEE
// multiplication is correctly rounded, so it is the same everywhere.
func ldexp(y float64, k int) float64 {
	pow2 := func(e int) float64 { return math.Float64frombits(uint64(e+1023) << 52) }
	switch {
	case k > 1023:
		return y * pow2(1023) * pow2(k-1023)
	case k < -1022:
		return y * pow2(-1022) * pow2(k+1022)
	}
	return y * pow2(k)
}

// expf is e**x for float32, through exp64.
func expf(x float32) float32 { return float32(exp64(float64(x))) }

// gelu is GPT-2's tanh approximation ("gelu_new"):
// 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), in float64, each
// product rounded explicitly, with tanh(u) = 1 - 2/(e^(2u) + 1).
func gelu(x float32) float32 {
	const c = 0.7978845608028654 // sqrt(2/pi)
	xd := float64(x)
	x3 := float64(float64(xd*xd) * xd)
	u := float64(c * (xd + float64(0.044715*x3)))
	var th float64
	switch {
	case u > 20:
		th = 1
	case u < -20:
		th = -1
	default:
		th = 1 - 2/(exp64(2*u)+1)
	}
	return float32(float64(0.5*xd) * (1 + th))
}
