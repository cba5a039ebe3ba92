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

package safetensors

import (
	"math"
	"path/filepath"
	"testing"
)

func TestHalfConversions(t *testing.T) {
	for h := 0; h < 1<<16; h++ {
		f := F16ToF32(uint16(h))
		if f != f { // NaN: only check it stays NaN
			if back := F32ToF16(f); back&0x7c00 != 0x7c00 || back&0x3ff == 0 {
				t.Fatalf("NaN %04x came back as %04x", h, back)
			}
			continue
		}
		if back := F32ToF16(f); back != uint16(h) {
			t.Fatalf("F16 %04x -> %v -> %04x", h, f, back)
		}
	}
	cases := map[float32]uint16{1: 0x3c00, -2: 0xc000, 65504: 0x7bff, 1e6: 0x7c00, 5.960464477539063e-08: 0x0001, 1 + 1.0/2048: 0x3c00}
	for f, want := range cases {
		if got := F32ToF16(f); got != want {
			t.Errorf("F32ToF16(%v) = %04x, want %04x", f, got, want)
		}
	}
	if got := BF16ToF32(F32ToBF16(1.00390625)); got != 1 { // halfway rounds to even
		t.Errorf("bf16 round trip of 1.00390625 = %v", got)
	}
	if got := BF16ToF32(F32ToBF16(float32(math.Pi))); got != 3.140625 {
		t.Errorf("bf16(pi) = %v", got)
	}
}

// TestRoundTripAndView writes F32, F16 and BF16 tensors, reads them back,
// and checks that an aligned F32 tensor is a view into the mapping.
func TestRoundTripAndView(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m.safetensors")
	data := []float32{0, 1, -1.5, 3.25, 1e-3, 100}
	err := WriteFile(path, []WriteTensor{
		{Name: "a", DType: "F32", Shape: []int{2, 3}, Data: data},
		{Name: "b", DType: "F16", Shape: []int{6}, Data: data},
		{Name: "c", DType: "BF16", Shape: []int{3, 2}, Data: data},
	}, map[string]string{"format": "pt"})
	if err != nil {
		t.Fatal(err)
	}
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.Metadata["format"] != "pt" || len(f.Names()) != 3 {
		t.Fatalf("metadata %v, names %v", f.Metadata, f.Names())
	}
	for _, n := range []string{"a", "b", "c"} {
		got, err := f.Tensor(n).Float32()
		if err != nil {
			t.Fatal(err)
		}
		for i, v := range got {
			if math.Abs(float64(v-data[i])) > 0.01*math.Abs(float64(data[i])) {
				t.Errorf("tensor %s[%d] = %v, want about %v", n, i, v, data[i])
			}
		}
	}
	if !f.Tensor("a").IsView() || f.Tensor("b").IsView() {
		t.Fatal("the aligned F32 tensor should be a view, the F16 one a copy")
	}
}
