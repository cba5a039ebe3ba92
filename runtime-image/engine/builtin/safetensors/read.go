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

// Package safetensors reads and writes the safetensors format
// (github.com/huggingface/safetensors): an 8-byte little-endian header
// length, a JSON header naming each tensor's dtype, shape and byte range,
// then the raw little-endian data. Files are memory-mapped; F32 tensors are
// used in place, F16 and BF16 are widened to F32 on the heap.
package safetensors

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"sort"
	"unsafe"

	"golang.org/x/sys/unix"
)

// maxHeaderBytes bounds the JSON header; real headers are a few hundred KiB
// at most, and a larger length is a corrupt or hostile file.
const maxHeaderBytes = 100 << 20

// Tensor is one entry of the header.
type Tensor struct {
	Name  string
	DType string
	Shape []int
	// data is the tensor's bytes inside the mapping.
	data []byte
}

// File is an open, memory-mapped safetensors file.
type File struct {
	mapping  []byte
	tensors  map[string]*Tensor
	Metadata map[string]string
}

type headerEntry struct {
	DType       string  `json:"dtype"`
	Shape       []int64 `json:"shape"`
	DataOffsets []int64 `json:"data_offsets"`
}

// Open maps path and checks its header: every tensor's byte range lies
// inside the file, matches its dtype and shape, and no two ranges overlap.
func Open(path string) (*File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open safetensors: %w", err)
	}
	defer func() { _ = f.Close() }()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("stat safetensors: %w", err)
	}
	size := st.Size()
	if size < 8 {
		return nil, fmt.Errorf("safetensors %s: %d bytes, shorter than the 8-byte header length", path, size)
	}
	if size > math.MaxInt {
		return nil, fmt.Errorf("safetensors %s: too large to map", path)
	}
	mapping, err := unix.Mmap(int(f.Fd()), 0, int(size), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("mmap safetensors %s: %w", path, err)
	}
	sf, err := parse(mapping)
	if err != nil {
		_ = unix.Munmap(mapping)
		return nil, fmt.Errorf("safetensors %s: %w", path, err)
	}
	return sf, nil
}

// parse checks the header of b and returns the tensors as views into b.
func parse(b []byte) (*File, error) {
	n := binary.LittleEndian.Uint64(b[:8])
	if n > maxHeaderBytes {
		return nil, fmt.Errorf("header length %d exceeds the %d-byte limit", n, maxHeaderBytes)
	}
	if n > uint64(len(b)-8) {
		return nil, fmt.Errorf("header length %d runs past the end of the file (%d bytes): truncated", n, len(b))
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b[8:8+n], &raw); err != nil {
		return nil, fmt.Errorf("header is not a JSON object: %w", err)
	}
	data := b[8+n:]
	sf := &File{mapping: b, tensors: map[string]*Tensor{}}
	type span struct {
		begin, end int64
		name       string
	}
	var spans []span
	for name, msg := range raw {
		if name == "__metadata__" {
			if err := json.Unmarshal(msg, &sf.Metadata); err != nil {
				return nil, fmt.Errorf("__metadata__ is not a string map: %w", err)
			}
			continue
		}
		var e headerEntry
		if err := json.Unmarshal(msg, &e); err != nil {
			return nil, fmt.Errorf("tensor %q: %w", name, err)
		}
		size, ok := dtypeSize[e.DType]
		if !ok {
			return nil, fmt.Errorf("tensor %q: unsupported dtype %q (want F32, F16 or BF16)", name, e.DType)
		}
		if len(e.DataOffsets) != 2 {
			return nil, fmt.Errorf("tensor %q: data_offsets has %d entries, want 2", name, len(e.DataOffsets))
		}
		begin, end := e.DataOffsets[0], e.DataOffsets[1]
		if begin < 0 || end < begin || end > int64(len(data)) {
			return nil, fmt.Errorf("tensor %q: data_offsets [%d, %d] outside the %d data bytes: truncated or corrupt", name, begin, end, len(data))
		}
		numel := int64(1)
		shape := make([]int, len(e.Shape))
		for i, d := range e.Shape {
			if d < 0 || (d > 0 && numel > math.MaxInt32/d) {
				return nil, fmt.Errorf("tensor %q: bad shape %v", name, e.Shape)
			}
			numel *= d
			shape[i] = int(d)
		}
		if numel*size != end-begin {
			return nil, fmt.Errorf("tensor %q: shape %v of %s needs %d bytes, data_offsets give %d", name, e.Shape, e.DType, numel*size, end-begin)
		}
		spans = append(spans, span{begin, end, name})
		sf.tensors[name] = &Tensor{Name: name, DType: e.DType, Shape: shape, data: data[begin:end:end]}
	}
	sort.Slice(spans, func(i, j int) bool { return spans[i].begin < spans[j].begin })
	for i := 1; i < len(spans); i++ {
		if spans[i].begin < spans[i-1].end {
			return nil, fmt.Errorf("tensors %q and %q overlap", spans[i-1].name, spans[i].name)
		}
	}
	return sf, nil
}

var dtypeSize = map[string]int64{"F32": 4, "F16": 2, "BF16": 2}

// Tensor returns the named tensor, nil when absent.
func (f *File) Tensor(name string) *Tensor { return f.tensors[name] }

// Names returns the tensor names, sorted.
func (f *File) Names() []string {
	names := make([]string, 0, len(f.tensors))
	for n := range f.tensors {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Close unmaps the file; slices from Float32 of F32 tensors are invalid
// afterwards.
func (f *File) Close() error {
	if f.mapping == nil {
		return nil
	}
	err := unix.Munmap(f.mapping)
	f.mapping = nil
	return err
}

// Numel is the number of elements.
func (t *Tensor) Numel() int {
	n := 1
	for _, d := range t.Shape {
		n *= d
	}
	return n
}

// Float32 returns the tensor as float32s. An aligned F32 tensor is a view
// into the mapping (no copy); an F32 tensor at an unaligned offset, and F16
// and BF16 tensors, are converted into a new slice.
func (t *Tensor) Float32() ([]float32, error) {
	n := t.Numel()
	if n == 0 {
		return []float32{}, nil
	}
	switch t.DType {
	case "F32":
		if uintptr(unsafe.Pointer(&t.data[0]))%4 == 0 && nativeLittleEndian {
			return unsafe.Slice((*float32)(unsafe.Pointer(&t.data[0])), n), nil
		}
		out := make([]float32, n)
		for i := range out {
			out[i] = math.Float32frombits(binary.LittleEndian.Uint32(t.data[4*i:]))
		}
		return out, nil
	case "F16":
		out := make([]float32, n)
		for i := range out {
			out[i] = F16ToF32(binary.LittleEndian.Uint16(t.data[2*i:]))
		}
		return out, nil
	case "BF16":
		out := make([]float32, n)
		for i := range out {
			out[i] = math.Float32frombits(uint32(binary.LittleEndian.Uint16(t.data[2*i:])) << 16)
		}
		return out, nil
	}
	return nil, errors.New("unsupported dtype " + t.DType)
}

// IsView reports whether Float32 returns a view into the mapping rather
// than a copy.
func (t *Tensor) IsView() bool {
	return t.DType == "F32" && nativeLittleEndian && (len(t.data) == 0 || uintptr(unsafe.Pointer(&t.data[0]))%4 == 0)
}

var nativeLittleEndian = func() bool {
	x := uint16(1)
	return *(*byte)(unsafe.Pointer(&x)) == 1
}()
