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

package devnet

import (
	"crypto/sha256"
	"encoding/binary"
	"sort"

	dbm "github.com/cometbft/cometbft-db"
)

// reader reads committed or pending state.
type reader interface {
	get(key string) ([]byte, error)
}

// dbReader reads the committed database.
type dbReader struct{ db dbm.DB }

func (r dbReader) get(key string) ([]byte, error) { return r.db.Get([]byte(key)) }

// overlay is a write set over a parent reader; children are discarded or
// folded into their parent, as Cosmos cache contexts are.
type overlay struct {
	parent reader
	writes map[string][]byte
}

func newOverlay(parent reader) *overlay {
	return &overlay{parent: parent, writes: map[string][]byte{}}
}

func (o *overlay) get(key string) ([]byte, error) {
	if v, ok := o.writes[key]; ok {
		return v, nil
	}
	return o.parent.get(key)
}

func (o *overlay) set(key string, value []byte) { o.writes[key] = value }

// child returns an overlay whose writes reach o only through commitTo.
func (o *overlay) child() *overlay { return newOverlay(o) }

// commitTo folds o's writes into its parent overlay.
func (o *overlay) commitTo(parent *overlay) {
	for k, v := range o.writes {
		parent.writes[k] = v
	}
}

// sortedKeys returns the written keys in order.
func (o *overlay) sortedKeys() []string {
	keys := make([]string, 0, len(o.writes))
	for k := range o.writes {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// chainHash returns the next app hash: sha256(prev || height || the block's
// writes in key order, each length-prefixed). Every state change is covered,
// and the hash of a height depends on all earlier ones.
func (o *overlay) chainHash(prev []byte, height int64) []byte {
	h := sha256.New()
	h.Write(prev)
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(height))
	h.Write(n[:])
	for _, k := range o.sortedKeys() {
		v := o.writes[k]
		binary.BigEndian.PutUint64(n[:], uint64(len(k)))
		h.Write(n[:])
		h.Write([]byte(k))
		binary.BigEndian.PutUint64(n[:], uint64(len(v)))
		h.Write(n[:])
		h.Write(v)
	}
	return h.Sum(nil)
}

func u64(b []byte) uint64 {
	if len(b) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(b)
}

func u64b(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }
