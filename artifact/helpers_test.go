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

package artifact

import (
	"crypto/sha256"
	"encoding/hex"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// blob returns n deterministic pseudo-random bytes and their digest.
func blob(n int, seed uint64) ([]byte, string) {
	r := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), 1, 2, 3})
	b := make([]byte, n)
	_, _ = r.Read(b)
	sum := sha256.Sum256(b)
	return b, hex.EncodeToString(sum[:])
}

// fastRetries keeps retry waits short in tests.
var fastRetries = WithRetryBackoff(time.Millisecond, 4*time.Millisecond, 3)

func newTestFetcher(t *testing.T, opts ...Option) *Fetcher {
	t.Helper()
	c, err := OpenCache(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	f, err := NewFetcher(c, append([]Option{fastRetries}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// assertNoLeftovers fails if the cache holds any partial download, and
// reports whether the blob of digest exists.
func assertNoPartials(t *testing.T, c *Cache) {
	t.Helper()
	des, err := os.ReadDir(filepath.Join(c.Dir(), tmpDir))
	if err != nil {
		t.Fatal(err)
	}
	for _, de := range des {
		t.Errorf("leftover file in tmp: %s", de.Name())
	}
}

func assertNotCached(t *testing.T, c *Cache, digest string) {
	t.Helper()
	if ok, err := c.Has(digest); err != nil || ok {
		t.Errorf("Has(%s) = %v, %v; want false", digest, ok, err)
	}
	assertNoPartials(t, c)
}

func assertCached(t *testing.T, c *Cache, digest string, want []byte) {
	t.Helper()
	got, err := os.ReadFile(c.Path(digest))
	if err != nil {
		t.Fatalf("read cached blob: %v", err)
	}
	if string(got) != string(want) {
		t.Fatalf("cached blob differs from the source (%d vs %d bytes)", len(got), len(want))
	}
	if err := c.Verify(digest); err != nil {
		t.Fatalf("Verify: %v", err)
	}
	assertNoPartials(t, c)
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}
