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
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"sort"
)

// WriteTensor is one tensor to write: F32 data narrowed to DType ("F32",
// "F16" or "BF16").
type WriteTensor struct {
	Name  string
	DType string
	Shape []int
	Data  []float32
}

// Encode returns the safetensors bytes of tensors, sorted by name, with the
// header padded by spaces to a multiple of 8 bytes so F32 data is aligned.
func Encode(tensors []WriteTensor, metadata map[string]string) ([]byte, error) {
	ts := append([]WriteTensor(nil), tensors...)
	sort.Slice(ts, func(i, j int) bool { return ts[i].Name < ts[j].Name })
	header := map[string]any{}
	if len(metadata) > 0 {
		header["__metadata__"] = metadata
	}
	total := 0
	for _, t := range ts {
		numel := 1
		for _, d := range t.Shape {
			numel *= d
		}
		if numel != len(t.Data) {
			return nil, fmt.Errorf("tensor %q: shape %v has %d elements, data %d", t.Name, t.Shape, numel, len(t.Data))
		}
		size, ok := dtypeSize[t.DType]
		if !ok {
			return nil, fmt.Errorf("tensor %q: unsupported dtype %q", t.Name, t.DType)
		}
		total += numel * int(size)
	}
	data := make([]byte, 0, total)
	for _, t := range ts {
		begin := len(data)
		for _, v := range t.Data {
			switch t.DType {
			case "F32":
				data = binary.LittleEndian.AppendUint32(data, math.Float32bits(v))
			case "F16":
				data = binary.LittleEndian.AppendUint16(data, F32ToF16(v))
			default:
				data = binary.LittleEndian.AppendUint16(data, F32ToBF16(v))
			}
		}
		header[t.Name] = map[string]any{"dtype": t.DType, "shape": t.Shape, "data_offsets": []int{begin, len(data)}}
	}
	h, err := json.Marshal(header)
	if err != nil {
		return nil, fmt.Errorf("encode safetensors header: %w", err)
	}
	for len(h)%8 != 0 {
		h = append(h, ' ')
	}
	out := make([]byte, 8, 8+len(h)+len(data))
	binary.LittleEndian.PutUint64(out, uint64(len(h)))
	out = append(out, h...)
	return append(out, data...), nil
}

// WriteFile encodes tensors into path.
func WriteFile(path string, tensors []WriteTensor, metadata map[string]string) error {
	b, err := Encode(tensors, metadata)
	if err != nil {
		return err
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		return fmt.Errorf("write safetensors: %w", err)
	}
	return nil
}
