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

package outbox

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/aivm-dev/aivm-operator/chain-client/merkle"
)

// entryFormat is the version byte of the binary entry encoding.
const entryFormat byte = 1

// Wire values of the states.
var (
	stateCodes = map[State]byte{StatePending: 0, StateBatched: 1, StateCommitted: 2, StateRejected: 3}
	codeStates = []State{StatePending, StateBatched, StateCommitted, StateRejected}
)

// maxStoredString bounds a decoded string or byte field.
const maxStoredString = 1 << 20

// encodeEntry is the compact binary form of an entry: a version byte, then
// the fields in declaration order, strings and bytes length-prefixed,
// integers as varints, hashes as 32 raw bytes, the proof behind a presence
// byte.
func encodeEntry(e *Entry) ([]byte, error) {
	code, ok := stateCodes[e.State]
	if !ok {
		return nil, fmt.Errorf("outbox: unknown state %q", e.State)
	}
	n := 1 + 3*binary.MaxVarintLen64 + len(e.UID) + len(e.Record) + len(e.TxHash) + len(e.Codespace) + len(e.Log) + 2*merkle.Size + 64
	if e.Proof != nil {
		n += len(e.Proof.Path) * merkle.Size
	}
	b := make([]byte, 0, n)
	b = append(b, entryFormat)
	b = appendBytes(b, []byte(e.UID))
	b = binary.AppendUvarint(b, e.Seq)
	b = append(b, e.Leaf[:]...)
	b = appendBytes(b, e.Record)
	b = append(b, code)
	b = appendBytes(b, []byte(e.TxHash))
	b = binary.AppendVarint(b, e.Height)
	b = append(b, e.Root[:]...)
	if e.Proof == nil {
		b = append(b, 0)
	} else {
		b = append(b, 1)
		b = binary.AppendUvarint(b, e.Proof.LeafIndex)
		b = binary.AppendUvarint(b, e.Proof.TreeSize)
		b = binary.AppendUvarint(b, uint64(len(e.Proof.Path)))
		for _, h := range e.Proof.Path {
			b = append(b, h[:]...)
		}
	}
	b = binary.AppendUvarint(b, uint64(e.Code))
	b = appendBytes(b, []byte(e.Codespace))
	b = appendBytes(b, []byte(e.Log))
	b = binary.AppendUvarint(b, uint64(e.Requeues))
	return b, nil
}

func appendBytes(b, v []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(v)))
	return append(b, v...)
}

// decodeEntry parses encodeEntry's output, refusing truncated, oversized
// or trailing data.
func decodeEntry(raw []byte) (*Entry, error) {
	d := decoder{b: raw}
	if v := d.byte(); d.err == nil && v != entryFormat {
		return nil, fmt.Errorf("outbox: unknown entry format %d", v)
	}
	e := &Entry{}
	e.UID = string(d.bytes())
	e.Seq = d.uvarint()
	d.hash(&e.Leaf)
	e.Record = d.bytes()
	code := d.byte()
	if d.err == nil && int(code) >= len(codeStates) {
		return nil, fmt.Errorf("outbox: unknown state code %d", code)
	}
	if d.err == nil {
		e.State = codeStates[code]
	}
	e.TxHash = string(d.bytes())
	e.Height = d.varint()
	d.hash(&e.Root)
	if d.byte() == 1 {
		p := &merkle.Proof{LeafIndex: d.uvarint(), TreeSize: d.uvarint()}
		n := d.uvarint()
		if n > merkle.MaxProofLen {
			return nil, fmt.Errorf("outbox: proof of %d hashes", n)
		}
		if n > 0 {
			p.Path = make([]merkle.Hash, n)
			for i := range p.Path {
				d.hash(&p.Path[i])
			}
		}
		e.Proof = p
	}
	c := d.uvarint()
	if c > 1<<32-1 {
		return nil, fmt.Errorf("outbox: code %d out of range", c)
	}
	e.Code = uint32(c)
	e.Codespace = string(d.bytes())
	e.Log = string(d.bytes())
	e.Requeues = int(d.uvarint())
	if d.err != nil {
		return nil, d.err
	}
	if len(d.b) != 0 {
		return nil, fmt.Errorf("outbox: %d trailing bytes after an entry", len(d.b))
	}
	return e, nil
}

var errTruncated = errors.New("outbox: truncated entry")

type decoder struct {
	b   []byte
	err error
}

func (d *decoder) byte() byte {
	if d.err != nil || len(d.b) < 1 {
		d.err = errTruncated
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = errTruncated
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.err = errTruncated
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) bytes() []byte {
	n := d.uvarint()
	if d.err != nil {
		return nil
	}
	if n > maxStoredString || n > uint64(len(d.b)) {
		d.err = errTruncated
		return nil
	}
	if n == 0 {
		return nil
	}
	v := append([]byte(nil), d.b[:n]...)
	d.b = d.b[n:]
	return v
}

func (d *decoder) hash(h *merkle.Hash) {
	if d.err != nil || len(d.b) < merkle.Size {
		d.err = errTruncated
		return
	}
	copy(h[:], d.b[:merkle.Size])
	d.b = d.b[merkle.Size:]
}
