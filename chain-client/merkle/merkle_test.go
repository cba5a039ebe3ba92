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

package merkle

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// rfc6962Inputs are the leaf inputs of the Certificate Transparency reference
// test vectors.
var rfc6962Inputs = []string{
	"", "00", "10", "2021", "3031", "40414243",
	"5051525354555657", "606162636465666768696a6b6c6d6e6f",
}

// rfc6962Roots are the published roots of the first n of those leaves.
var rfc6962Roots = []string{
	"6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
	"fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
	"aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
	"d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
	"4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
	"76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
	"ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
	"5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
}

func rfcLeaves(t *testing.T) []Hash {
	t.Helper()
	out := make([]Hash, len(rfc6962Inputs))
	for i, s := range rfc6962Inputs {
		b, err := hex.DecodeString(s)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = LeafHash(b)
	}
	return out
}

func TestRootMatchesRFC6962Vectors(t *testing.T) {
	leaves := rfcLeaves(t)
	for n := 1; n <= len(leaves); n++ {
		root, err := Root(leaves[:n])
		if err != nil {
			t.Fatal(err)
		}
		if got, want := root.String(), rfc6962Roots[n-1]; got != want {
			t.Errorf("Root of %d leaves = %s, want %s", n, got, want)
		}
		tree, err := New(leaves[:n])
		if err != nil {
			t.Fatal(err)
		}
		if tree.Root() != root {
			t.Errorf("Tree root of %d leaves = %s, want %s", n, tree.Root(), root)
		}
	}
}

func TestEmpty(t *testing.T) {
	if _, err := Root(nil); !errors.Is(err, ErrEmpty) {
		t.Errorf("Root(nil) error = %v, want ErrEmpty", err)
	}
	if _, err := New(nil); !errors.Is(err, ErrEmpty) {
		t.Errorf("New(nil) error = %v, want ErrEmpty", err)
	}
}

func TestLeafAndNodeAreDomainSeparated(t *testing.T) {
	a, b := LeafHash([]byte("a")), LeafHash([]byte("b"))
	node := NodeHash(a, b)
	concat := append(append([]byte{}, a[:]...), b[:]...)
	if LeafHash(concat) == node {
		t.Fatal("a leaf over left||right hashes equal to the inner node")
	}
}

// refPath is the RFC 6962 PATH(m, D[n]) definition, written recursively and
// independently of Tree.build.
func refPath(m int, leaves []Hash) []Hash {
	if len(leaves) <= 1 {
		return nil
	}
	k := splitPoint(len(leaves))
	if m < k {
		return append(refPath(m, leaves[:k]), rootOf(leaves[k:]))
	}
	return append(refPath(m-k, leaves[k:]), rootOf(leaves[:k]))
}

func makeLeaves(n int) []Hash {
	out := make([]Hash, n)
	for i := range out {
		out[i] = LeafHash([]byte(fmt.Sprintf("result-%d", i)))
	}
	return out
}

func TestProofsVerifyForEveryLeafAndSize(t *testing.T) {
	for n := 1; n <= 70; n++ {
		leaves := makeLeaves(n)
		tree, err := New(leaves)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < n; i++ {
			p, err := tree.Proof(i)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(refPath(i, leaves), p.Path); diff != "" && !(len(p.Path) == 0 && len(refPath(i, leaves)) == 0) {
				t.Fatalf("n=%d i=%d path differs from RFC 6962 PATH (-want +got):\n%s", n, i, diff)
			}
			if err := Verify(leaves[i], p, tree.Root()); err != nil {
				t.Fatalf("n=%d i=%d: %v", n, i, err)
			}
		}
	}
}

func TestProofIndexOutOfRange(t *testing.T) {
	tree, err := New(makeLeaves(3))
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range []int{-1, 3, 100} {
		if _, err := tree.Proof(i); err == nil {
			t.Errorf("Proof(%d) succeeded on a 3-leaf tree", i)
		}
	}
}

func TestTamperedProofsFail(t *testing.T) {
	leaves := makeLeaves(11)
	tree, err := New(leaves)
	if err != nil {
		t.Fatal(err)
	}
	root := tree.Root()
	good, err := tree.Proof(6)
	if err != nil {
		t.Fatal(err)
	}
	clone := func() Proof {
		p := good
		p.Path = append([]Hash(nil), good.Path...)
		return p
	}
	tests := map[string]struct {
		leaf  Hash
		proof func() Proof
		root  Hash
	}{
		"other leaf": {leaf: leaves[7], proof: clone, root: root},
		"flipped bit in path": {leaf: leaves[6], root: root, proof: func() Proof {
			p := clone()
			p.Path[1][5] ^= 0x40
			return p
		}},
		"other index": {leaf: leaves[6], root: root, proof: func() Proof {
			p := clone()
			p.LeafIndex = 7
			return p
		}},
		"other tree size": {leaf: leaves[6], root: root, proof: func() Proof {
			p := clone()
			p.TreeSize = 17
			return p
		}},
		"index beyond size": {leaf: leaves[6], root: root, proof: func() Proof {
			p := clone()
			p.LeafIndex = 11
			return p
		}},
		"zero size": {leaf: leaves[6], root: root, proof: func() Proof {
			p := clone()
			p.TreeSize = 0
			return p
		}},
		"path truncated": {leaf: leaves[6], root: root, proof: func() Proof {
			p := clone()
			p.Path = p.Path[:len(p.Path)-1]
			return p
		}},
		"path extended": {leaf: leaves[6], root: root, proof: func() Proof {
			p := clone()
			p.Path = append(p.Path, root)
			return p
		}},
		"siblings swapped": {leaf: leaves[6], root: root, proof: func() Proof {
			p := clone()
			p.Path[0], p.Path[1] = p.Path[1], p.Path[0]
			return p
		}},
		"other root": {leaf: leaves[6], proof: clone, root: LeafHash([]byte("x"))},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if err := Verify(tc.leaf, tc.proof(), tc.root); err == nil {
				t.Fatal("tampered proof verified")
			}
		})
	}
	if err := Verify(leaves[6], good, root); err != nil {
		t.Fatalf("untampered proof failed: %v", err)
	}
}

func TestProofJSONRoundTrip(t *testing.T) {
	tree, err := New(makeLeaves(5))
	if err != nil {
		t.Fatal(err)
	}
	p, err := tree.Proof(4)
	if err != nil {
		t.Fatal(err)
	}
	data, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	var back Proof
	if err := json.Unmarshal(data, &back); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(p, back); diff != "" {
		t.Fatalf("round trip differs (-want +got):\n%s", diff)
	}
	if err := json.Unmarshal([]byte(`{"leafIndex":0,"treeSize":1,"path":["zz"]}`), &back); err == nil {
		t.Fatal("bad hex hash decoded")
	}
}

func TestParseHash(t *testing.T) {
	h := LeafHash([]byte("x"))
	got, err := ParseHash(h.String())
	if err != nil || got != h {
		t.Fatalf("ParseHash(%s) = %s, %v", h, got, err)
	}
	for _, bad := range []string{"", "00", h.String() + "00", "g" + h.String()[1:]} {
		if _, err := ParseHash(bad); err == nil {
			t.Errorf("ParseHash(%q) succeeded", bad)
		}
	}
	if _, err := HashFromBytes(make([]byte, 31)); err == nil {
		t.Error("HashFromBytes accepted 31 bytes")
	}
}

// FuzzProofs builds a tree over leaves cut from the input, checks that every
// proof verifies and that a proof with one byte changed does not.
func FuzzProofs(f *testing.F) {
	f.Add([]byte("a"), uint8(0), uint8(0))
	f.Add([]byte("abcdefghij"), uint8(3), uint8(9))
	f.Add([]byte("0123456789abcdefghijklmnopqrstuvwxyz"), uint8(200), uint8(77))
	f.Fuzz(func(t *testing.T, data []byte, flipAt, flipBit uint8) {
		if len(data) == 0 {
			return
		}
		if len(data) > 300 {
			data = data[:300]
		}
		leaves := make([]Hash, len(data))
		for i := range data {
			leaves[i] = LeafHash(data[:i+1])
		}
		tree, err := New(leaves)
		if err != nil {
			t.Fatal(err)
		}
		if r, _ := Root(leaves); r != tree.Root() {
			t.Fatalf("Root and Tree.Root disagree")
		}
		for i := range leaves {
			p, err := tree.Proof(i)
			if err != nil {
				t.Fatal(err)
			}
			if err := Verify(leaves[i], p, tree.Root()); err != nil {
				t.Fatalf("leaf %d of %d: %v", i, len(leaves), err)
			}
			if len(p.Path) == 0 {
				continue
			}
			j := int(flipAt) % len(p.Path)
			p.Path[j][int(flipBit)%Size] ^= 1 << (flipBit % 8)
			if err := Verify(leaves[i], p, tree.Root()); err == nil {
				t.Fatalf("leaf %d of %d: tampered proof verified", i, len(leaves))
			}
		}
	})
}

func BenchmarkTree1000(b *testing.B) {
	leaves := makeLeaves(1000)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := New(leaves); err != nil {
			b.Fatal(err)
		}
	}
}
