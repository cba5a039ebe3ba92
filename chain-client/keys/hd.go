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

package keys

import (
	"crypto/hmac"
	"crypto/sha512"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/decred/dcrd/dcrec/secp256k1/v4"
)

// DefaultHDPath is the BIP44 path of the first account of Cosmos coin type
// 118, the path Nesa wallets use.
const DefaultHDPath = "m/44'/118'/0'/0/0"

// hardenedOffset is added to an index to mark a hardened BIP32 child.
const hardenedOffset = uint32(0x80000000)

// ParseHDPath parses a BIP32 path such as "m/44'/118'/0'/0/0" into child
// indexes, hardened ones carrying the 0x80000000 offset. A hardened step may
// be written with ' or h/H.
func ParseHDPath(path string) ([]uint32, error) {
	if path != "m" && !strings.HasPrefix(path, "m/") {
		return nil, fmt.Errorf("hd path %q: must start with \"m/\"", path)
	}
	if path == "m" {
		return nil, nil
	}
	parts := strings.Split(path[2:], "/")
	out := make([]uint32, 0, len(parts))
	for i, p := range parts {
		hardened := false
		if strings.HasSuffix(p, "'") || strings.HasSuffix(p, "h") || strings.HasSuffix(p, "H") {
			hardened = true
			p = p[:len(p)-1]
		}
		if p == "" || strings.TrimLeft(p, "0123456789") != "" {
			return nil, fmt.Errorf("hd path %q: step %d is not a number", path, i+1)
		}
		n, err := strconv.ParseUint(p, 10, 32)
		if err != nil || uint32(n) >= hardenedOffset {
			return nil, fmt.Errorf("hd path %q: step %d is out of range", path, i+1)
		}
		idx := uint32(n)
		if hardened {
			idx += hardenedOffset
		}
		out = append(out, idx)
	}
	return out, nil
}

// extendedKey is a BIP32 private node: a 32-byte secret and its chain code.
type extendedKey struct {
	key   [32]byte
	chain [32]byte
}

// masterKey derives the BIP32 master node from a seed.
func masterKey(seed []byte) (extendedKey, error) {
	if len(seed) < 16 || len(seed) > 64 {
		return extendedKey{}, fmt.Errorf("seed length %d: must be 16 to 64 bytes", len(seed))
	}
	mac := hmac.New(sha512.New, []byte("Bitcoin seed"))
	mac.Write(seed)
	sum := mac.Sum(nil)
	var k extendedKey
	copy(k.key[:], sum[:32])
	copy(k.chain[:], sum[32:])
	var s secp256k1.ModNScalar
	if overflow := s.SetBytes(&k.key); overflow != 0 || s.IsZero() {
		return extendedKey{}, errors.New("seed gives an invalid master key")
	}
	return k, nil
}

// child derives the private child node at index idx.
func (k extendedKey) child(idx uint32) (extendedKey, error) {
	data := make([]byte, 0, 37)
	if idx >= hardenedOffset {
		data = append(data, 0)
		data = append(data, k.key[:]...)
	} else {
		priv := secp256k1.PrivKeyFromBytes(k.key[:])
		data = append(data, priv.PubKey().SerializeCompressed()...)
	}
	data = binary.BigEndian.AppendUint32(data, idx)
	mac := hmac.New(sha512.New, k.chain[:])
	mac.Write(data)
	sum := mac.Sum(nil)

	var il [32]byte
	copy(il[:], sum[:32])
	var tweak, parent secp256k1.ModNScalar
	if overflow := tweak.SetBytes(&il); overflow != 0 {
		return extendedKey{}, fmt.Errorf("child %d: derived tweak out of range", idx)
	}
	parent.SetBytes(&k.key)
	tweak.Add(&parent)
	if tweak.IsZero() {
		return extendedKey{}, fmt.Errorf("child %d: derived key is zero", idx)
	}
	var out extendedKey
	tweak.PutBytes(&out.key)
	copy(out.chain[:], sum[32:])
	return out, nil
}

// derivePath derives the private key at path from seed.
func derivePath(seed []byte, path string) ([32]byte, error) {
	idxs, err := ParseHDPath(path)
	if err != nil {
		return [32]byte{}, err
	}
	k, err := masterKey(seed)
	if err != nil {
		return [32]byte{}, err
	}
	for _, idx := range idxs {
		if k, err = k.child(idx); err != nil {
			return [32]byte{}, err
		}
	}
	return k.key, nil
}
