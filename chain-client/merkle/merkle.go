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

// Package merkle builds binary Merkle trees over result leaf hashes and
// produces and verifies inclusion proofs.
//
// The tree follows RFC 6962 (Certificate Transparency), section 2.1:
//
//   - a leaf is hashed as sha256(0x00 || data) and an inner node as
//     sha256(0x01 || left || right), so a leaf can never be passed off as an
//     inner node (no second-preimage tricks);
//   - a tree of n > 1 leaves is split at k, the largest power of two smaller
//     than n: the left subtree holds the first k leaves and the right subtree
//     the remaining n-k. An odd node is therefore neither duplicated nor
//     padded; it simply sits higher in the tree. Duplicating the last node (as
//     Bitcoin does) would let two different leaf lists share one root.
//
// The tree size is part of every proof, so a proof for leaf i of an n-leaf tree
// cannot be replayed as a proof for another position or another tree size.
package merkle

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math/bits"
)

// Size is the length in bytes of every hash in a tree.
const Size = sha256.Size

// MaxProofLen bounds the length of a proof path: 64 levels cover 2^64 leaves.
const MaxProofLen = 64

// Domain-separation prefixes for leaf and inner node hashing.
const (
	leafPrefix byte = 0x00
	nodePrefix byte = 0x01
)

// ErrEmpty is returned when a tree is requested over no leaves.
var ErrEmpty = errors.New("merkle: no leaves")

// ErrProofMismatch is returned by Verify when a proof does not lead from the
// leaf to the root.
var ErrProofMismatch = errors.New("merkle: proof does not match root")

// Hash is a sha256 hash of a leaf or an inner node.
type Hash [Size]byte

// String returns the lowercase hex encoding of h.
func (h Hash) String() string { return hex.EncodeToString(h[:]) }

// MarshalText encodes h as lowercase hex.
func (h Hash) MarshalText() ([]byte, error) {
	out := make([]byte, hex.EncodedLen(Size))
	hex.Encode(out, h[:])
	return out, nil
}

// UnmarshalText decodes exactly 64 hex characters into h.
func (h *Hash) UnmarshalText(text []byte) error {
	parsed, err := ParseHash(string(text))
	if err != nil {
		return err
	}
	*h = parsed
	return nil
}

// ParseHash decodes a hash written as 64 hex characters (either case).
func ParseHash(s string) (Hash, error) {
	var h Hash
	if len(s) != hex.EncodedLen(Size) {
		return h, fmt.Errorf("merkle: hash must be %d hex characters, got %d", hex.EncodedLen(Size), len(s))
	}
	if _, err := hex.Decode(h[:], []byte(s)); err != nil {
		return h, fmt.Errorf("merkle: invalid hex hash: %w", err)
	}
	return h, nil
}

// HashFromBytes copies a 32-byte slice into a Hash.
func HashFromBytes(b []byte) (Hash, error) {
	var h Hash
	if len(b) != Size {
		return h, fmt.Errorf("merkle: hash must be %d bytes, got %d", Size, len(b))
	}
	copy(h[:], b)
	return h, nil
}

// LeafHash returns sha256(0x00 || data).
func LeafHash(data []byte) Hash {
	d := sha256.New()
	d.Write([]byte{leafPrefix})
	d.Write(data)
	var h Hash
	d.Sum(h[:0])
	return h
}

// NodeHash returns sha256(0x01 || left || right).
func NodeHash(left, right Hash) Hash {
	var buf [1 + 2*Size]byte
	buf[0] = nodePrefix
	copy(buf[1:], left[:])
	copy(buf[1+Size:], right[:])
	return sha256.Sum256(buf[:])
}

// Proof is an inclusion proof for one leaf: its position, the size of the
// tree, and the sibling hashes from the leaf up to the root.
type Proof struct {
	// LeafIndex is the zero-based position of the leaf in the tree.
	LeafIndex uint64 `json:"leafIndex"`
	// TreeSize is the number of leaves in the tree.
	TreeSize uint64 `json:"treeSize"`
	// Path holds the sibling hashes, the one nearest the leaf first.
	Path []Hash `json:"path"`
}

// Tree is a Merkle tree over a fixed list of leaf hashes. It keeps every
// leaf's proof so that a batch's proofs are produced in one pass.
type Tree struct {
	root   Hash
	leaves []Hash
	paths  [][]Hash
}

// New builds the tree over leaves, which are leaf hashes (see LeafHash) in
// batch order. It returns ErrEmpty for an empty list.
func New(leaves []Hash) (*Tree, error) {
	if len(leaves) == 0 {
		return nil, ErrEmpty
	}
	t := &Tree{
		leaves: append([]Hash(nil), leaves...),
		paths:  make([][]Hash, len(leaves)),
	}
	depth := bits.Len(uint(len(leaves)))
	for i := range t.paths {
		t.paths[i] = make([]Hash, 0, depth)
	}
	t.root = t.build(0, len(leaves))
	return t, nil
}

// build returns the root of leaves[lo:hi] and appends, to the path of every
// leaf in the range, the sibling met at this level. Deeper siblings are
// appended first, so paths run from the leaf upwards.
func (t *Tree) build(lo, hi int) Hash {
	n := hi - lo
	if n == 1 {
		return t.leaves[lo]
	}
	k := splitPoint(n)
	left := t.build(lo, lo+k)
	right := t.build(lo+k, hi)
	for i := lo; i < lo+k; i++ {
		t.paths[i] = append(t.paths[i], right)
	}
	for i := lo + k; i < hi; i++ {
		t.paths[i] = append(t.paths[i], left)
	}
	return NodeHash(left, right)
}

// splitPoint returns the largest power of two strictly smaller than n (n > 1).
func splitPoint(n int) int {
	return 1 << (bits.Len(uint(n-1)) - 1)
}

// Root returns the tree's root hash.
func (t *Tree) Root() Hash { return t.root }

// Len returns the number of leaves.
func (t *Tree) Len() int { return len(t.leaves) }

// Proof returns the inclusion proof of the leaf at index.
func (t *Tree) Proof(index int) (Proof, error) {
	if index < 0 || index >= len(t.leaves) {
		return Proof{}, fmt.Errorf("merkle: leaf index %d out of range [0, %d)", index, len(t.leaves))
	}
	return Proof{
		LeafIndex: uint64(index),
		TreeSize:  uint64(len(t.leaves)),
		Path:      append([]Hash(nil), t.paths[index]...),
	}, nil
}

// Root returns the root hash over leaves (leaf hashes in order).
func Root(leaves []Hash) (Hash, error) {
	if len(leaves) == 0 {
		return Hash{}, ErrEmpty
	}
	return rootOf(leaves), nil
}

func rootOf(leaves []Hash) Hash {
	if len(leaves) == 1 {
		return leaves[0]
	}
	k := splitPoint(len(leaves))
	return NodeHash(rootOf(leaves[:k]), rootOf(leaves[k:]))
}

// RootFromProof recomputes the root that proof leads to from leaf, following
// RFC 9162 section 2.1.3.2. It fails when the proof is malformed for its
// declared index and tree size (wrong path length, index out of range).
func RootFromProof(leaf Hash, proof Proof) (Hash, error) {
	if proof.TreeSize == 0 {
		return Hash{}, errors.New("merkle: proof has tree size 0")
	}
	if proof.LeafIndex >= proof.TreeSize {
		return Hash{}, fmt.Errorf("merkle: proof leaf index %d not below tree size %d", proof.LeafIndex, proof.TreeSize)
	}
	if len(proof.Path) > MaxProofLen {
		return Hash{}, fmt.Errorf("merkle: proof path of %d hashes exceeds %d", len(proof.Path), MaxProofLen)
	}
	fn, sn := proof.LeafIndex, proof.TreeSize-1
	r := leaf
	for _, p := range proof.Path {
		if sn == 0 {
			return Hash{}, fmt.Errorf("merkle: proof path longer than a tree of %d leaves allows", proof.TreeSize)
		}
		if fn&1 == 1 || fn == sn {
			r = NodeHash(p, r)
			for fn&1 == 0 && fn != 0 {
				fn >>= 1
				sn >>= 1
			}
		} else {
			r = NodeHash(r, p)
		}
		fn >>= 1
		sn >>= 1
	}
	if sn != 0 {
		return Hash{}, fmt.Errorf("merkle: proof path too short for a tree of %d leaves", proof.TreeSize)
	}
	return r, nil
}

// Verify checks that proof shows leaf (a leaf hash) at proof.LeafIndex in a
// tree of proof.TreeSize leaves with the given root. It returns nil on
// success, ErrProofMismatch (wrapped) when the proof leads elsewhere, or a
// descriptive error when the proof is malformed.
func Verify(leaf Hash, proof Proof, root Hash) error {
	got, err := RootFromProof(leaf, proof)
	if err != nil {
		return err
	}
	if !bytes.Equal(got[:], root[:]) {
		return fmt.Errorf("%w: computed %s, expected %s", ErrProofMismatch, got, root)
	}
	return nil
}
