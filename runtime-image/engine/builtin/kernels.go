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
	if max := (n + align - 1) / align; chunks > max {
		chunks = max
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
// of GPT-2 checkpoints). The sum runs over i in increasing order starting
// from 0, and the bias is added last. Columns are split among threads.
func matmul(threads int, y, x, w, bias []float32, rows, in, out int) {
	parallel(threads, out, 16, func(j0, j1 int) {
		t := 0
		for ; t+4 <= rows; t += 4 {
			matmul4(y[t*out:], x[t*in:], w, in, out, j0, j1)
		}
		for ; t < rows; t++ {
			matmul1(y[t*out+j0:t*out+j1], x[t*in:t*in+in], w, out, j0)
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

// matmul1 computes one row's columns [j0, j0+len(y)), four input elements
// per pass; the four are added one after another, in order, so the result
// equals the plain sequential sum.
func matmul1(y, x, w []float32, out, j0 int) {
	n := len(y)
	clear(y)
	in := len(x)
	i := 0
	for ; i+4 <= in; i += 4 {
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
	for ; i < in; i++ {
		a := x[i]
		wr := w[i*out+j0 : i*out+j0+n]
		wr = wr[:len(y)]
		for j := range y {
			y[j] += float32(a * wr[j])
		}
	}
}

// matmul4 computes four rows at once so each weight row is read once per
// four tokens (prompt processing); per element the operations are those of
// matmul1.
func matmul4(y, x, w []float32, in, out, j0, j1 int) {
	n := j1 - j0
	y0 := y[j0:j1]
	y1 := y[out+j0 : out+j1]
	y2 := y[2*out+j0 : 2*out+j1]
	y3 := y[3*out+j0 : 3*out+j1]
	clear(y0)
	clear(y1)
	clear(y2)
	clear(y3)
	x0, x1, x2, x3 := x[:in], x[in:2*in], x[2*in:3*in], x[3*in:4*in]
	for i := 0; i < in; i++ {
		a0, a1, a2, a3 := x0[i], x1[i], x2[i], x3[i]
		wr := w[i*out+j0 : i*out+j0+n]
		y0, y1, y2, y3 := y0[:len(wr)], y1[:len(wr)], y2[:len(wr)], y3[:len(wr)]
		for j, wv := range wr {
			y0[j] += float32(a0 * wv)
			y1[j] += float32(a1 * wv)
			y2[j] += float32(a2 * wv)
			y3[j] += float32(a3 * wv)
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
