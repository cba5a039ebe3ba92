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
	"sync"
)

// The kernels below are where bit-reproducibility is decided. Two rules
// hold in each of them:
//   - every output element is computed by one goroutine, with the same
//     sequence of float32 operations whatever the number of goroutines or
//     the row tiling, so GOMAXPROCS and core count cannot change a bit;
//   - every product is rounded by an explicit float32(...) conversion before
//     it is added, which the Go spec defines as forbidding fused
//     multiply-add (arm64, and amd64 with GOAMD64=v3, would otherwise fuse).

// parallel splits [0, n) into at most threads contiguous chunks whose
// bounds are multiples of align (except the last) and runs fn on each,
// the first chunk on the calling goroutine.
func parallel(threads, n, align int, fn func(lo, hi int)) {
	chunks := threads
	if most := (n + align - 1) / align; chunks > most {
		chunks = most
	}
	if chunks <= 1 {
		fn(0, n)
		return
	}
	per := ((n+chunks-1)/chunks + align - 1) / align * align
	var wg sync.WaitGroup
	for lo := per; lo < n; lo += per {
		hi := min(lo+per, n)
		wg.Add(1)
		go func() {
			defer wg.Done()
			fn(lo, hi)
		}()
	}
	fn(0, min(per, n))
	wg.Wait()
}

// matmul sets y[t, j] = bias[j] + sum over i of x[t, i] w[i, j] for the
// rows t of x ([rows, in]) and w ([in, out], row-major, the Conv1D layout
// of GPT-2 checkpoints). For every element the sum runs over i in
// increasing order starting from 0, and the bias is added last, whatever
// the blocking, the row pairing or the thread split; so prompt processing
// and one-token steps give the same bits too. Columns are split among
// threads.
func matmul(threads int, y, x, w, bias []float32, rows, in, out int) {
	parallel(threads, out, 16, func(j0, j1 int) {
		for t := 0; t < rows; t++ {
			clear(y[t*out+j0 : t*out+j1])
		}
		// Several rows (a prompt): block so a 64 x 256 weight tile stays
		// in cache while every row uses it. One row: stream the weights.
		jBlock, iBlock := j1-j0, in
		if rows > 1 {
			jBlock, iBlock = 256, 64
		}
		for jb := j0; jb < j1; jb += jBlock {
			je := min(jb+jBlock, j1)
			for ib := 0; ib < in; ib += iBlock {
				ie := min(ib+iBlock, in)
				t := 0
				for ; t+2 <= rows; t += 2 {
					accum2(y[t*out+jb:t*out+je], y[(t+1)*out+jb:(t+1)*out+je], x[t*in:(t+1)*in], x[(t+1)*in:(t+2)*in], w, ib, ie, out, jb)
				}
				if t < rows {
					accum1(y[t*out+jb:t*out+je], x[t*in:(t+1)*in], w, ib, ie, out, jb)
				}
			}
		}
		for t := 0; t < rows; t++ {
			yr := y[t*out+j0 : t*out+j1]
			br := bias[j0:j1]
			br = br[:len(yr)]
			for j := range yr {
				yr[j] += br[j]
			}
		}
	})
}

// accum1 adds x[i] w[i, j0+j] to y[j] for i in [i0, i1), four i per pass;
// the four are added one after another, in order, so the result equals the
// plain sequential sum.
func accum1(y, x, w []float32, i0, i1, out, j0 int) {
	n := len(y)
	i := i0
	for ; i+4 <= i1; i += 4 {
		a0, a1, a2, a3 := x[i], x[i+1], x[i+2], x[i+3]
		w0 := w[i*out+j0 : i*out+j0+n]
		w1 := w[(i+1)*out+j0 : (i+1)*out+j0+n]
		w2 := w[(i+2)*out+j0 : (i+2)*out+j0+n]
		w3 := w[(i+3)*out+j0 : (i+3)*out+j0+n]
		w0, w1, w2, w3 = w0[:len(y)], w1[:len(y)], w2[:len(y)], w3[:len(y)]
		for j := range y {
			s := y[j]
			s += float32(a0 * w0[j])
			s += float32(a1 * w1[j])
			s += float32(a2 * w2[j])
			s += float32(a3 * w3[j])
			y[j] = s
		}
	}
	for ; i < i1; i++ {
		a := x[i]
		wr := w[i*out+j0 : i*out+j0+n]
		wr = wr[:len(y)]
		for j := range y {
			y[j] += float32(a * wr[j])
		}
	}
}

// accum2 is accum1 for two rows sharing each weight load.
func accum2(y0, y1, x0, x1, w []float32, i0, i1, out, j0 int) {
	n := len(y0)
	y1 = y1[:n]
	i := i0
	for ; i+4 <= i1; i += 4 {
		a0, a1, a2, a3 := x0[i], x0[i+1], x0[i+2], x0[i+3]
		b0, b1, b2, b3 := x1[i], x1[i+1], x1[i+2], x1[i+3]
		w0 := w[i*out+j0 : i*out+j0+n]
		w1 := w[(i+1)*out+j0 : (i+1)*out+j0+n]
		w2 := w[(i+2)*out+j0 : (i+2)*out+j0+n]
		w3 := w[(i+3)*out+j0 : (i+3)*out+j0+n]
		w0, w1, w2, w3 = w0[:n], w1[:n], w2[:n], w3[:n]
		for j := range y0 {
			s, u := y0[j], y1[j]
			v := w0[j]
			s += float32(a0 * v)
			u += float32(b0 * v)
			v = w1[j]
			s += float32(a1 * v)
			u += float32(b1 * v)
			v = w2[j]
			s += float32(a2 * v)
			u += float32(b2 * v)
			v = w3[j]
			s += float32(a3 * v)
			u += float32(b3 * v)
			y0[j], y1[j] = s, u
		}
	}
	for ; i < i1; i++ {
		a, b := x0[i], x1[i]
		wr := w[i*out+j0 : i*out+j0+n]
		wr = wr[:n]
		for j := range y0 {
			v := wr[j]
			y0[j] += float32(a * v)
			y1[j] += float32(b * v)
		}
	}
}

// dot is sum over i of a[i] b[i] with eight partial sums (i mod 8), summed
// in a fixed tree, then the tail in order: a fixed order that still keeps
// eight independent additions in flight.
func dot(a, b []float32) float32 {
	b = b[:len(a)]
	var s0, s1, s2, s3, s4, s5, s6, s7 float32
	i := 0
	for ; i+8 <= len(a); i += 8 {
		aa, bb := a[i:i+8:i+8], b[i:i+8:i+8]
		s0 += float32(aa[0] * bb[0])
		s1 += float32(aa[1] * bb[1])
		s2 += float32(aa[2] * bb[2])
		s3 += float32(aa[3] * bb[3])
		s4 += float32(aa[4] * bb[4])
		s5 += float32(aa[5] * bb[5])
		s6 += float32(aa[6] * bb[6])
		s7 += float32(aa[7] * bb[7])
	}
	s := ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7))
	for ; i < len(a); i++ {
		s += float32(a[i] * b[i])
	}
	return s
}

// logits sets out[v] = dot(x, head[v]) for every vocabulary row of head
// ([vocab, embd]), rows split among threads.
func logits(threads int, out, x, head []float32, embd int) {
	parallel(threads, len(out), 64, func(v0, v1 int) {
		for v := v0; v < v1; v++ {
			out[v] = dot(x, head[v*embd:(v+1)*embd])
		}
	})
}

// layerNorm sets y = (x - mean) / sqrt(var + eps) * g + b over one row, in
// float64 with sequential sums, each product rounded explicitly.
func layerNorm(y, x, g, b []float32, eps float64) {
	n := len(x)
	var sum float64
	for _, v := range x {
		sum += float64(v)
	}
	mean := sum / float64(n)
	var ss float64
	for _, v := range x {
		d := float64(v) - mean
		ss += float64(d * d)
	}
	rstd := 1 / math.Sqrt(ss/float64(n)+eps)
	g, b, y = g[:n], b[:n], y[:n]
	for i, v := range x {
		norm := float32(float64(float64(v)-mean) * rstd)
		y[i] = float32(norm*g[i]) + b[i]
	}
}
