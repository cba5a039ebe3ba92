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
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
	clocktesting "k8s.io/utils/clock/testing"
)

// fillCache fetches n file-sourced blobs of size bytes each, one clock
// minute apart, oldest first, and returns their digests.
func fillCache(t *testing.T, f *Fetcher, clk *clocktesting.FakeClock, n, size int) []string {
	t.Helper()
	src := t.TempDir()
	var digests []string
	for i := range n {
		data, d := blob(size, uint64(100+i))
		p := filepath.Join(src, d)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := f.Fetch(context.Background(), Request{Source: "file://" + p, Digest: d}); err != nil {
			t.Fatal(err)
		}
		digests = append(digests, d)
		clk.Step(time.Minute)
	}
	return digests
}

func newClockedFetcher(t *testing.T) (*Fetcher, *clocktesting.FakeClock) {
	t.Helper()
	clk := clocktesting.NewFakeClock(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	c, err := OpenCache(t.TempDir(), WithCacheClock(clk))
	if err != nil {
		t.Fatal(err)
	}
	f, err := NewFetcher(c)
	if err != nil {
		t.Fatal(err)
	}
	return f, clk
}

func TestGCEvictsLeastRecentlyUsed(t *testing.T) {
	f, clk := newClockedFetcher(t)
	c := f.Cache()
	d := fillCache(t, f, clk, 4, 1000) // d[0] oldest

	// Using d[0] again makes d[1] the least recently used.
	if _, err := f.Fetch(context.Background(), Request{Source: "file:///unused", Digest: d[0]}); err != nil {
		t.Fatalf("cache hit: %v", err)
	}
	res, err := c.GC(context.Background(), GCOptions{MaxBytes: 2500})
	if err != nil {
		t.Fatal(err)
	}
	var evicted []string
	for _, e := range res.Evicted {
		evicted = append(evicted, e.Digest)
	}
	if diff := cmp.Diff([]string{d[1], d[2]}, evicted); diff != "" {
		t.Errorf("evicted (-want +got):\n%s", diff)
	}
	if res.BytesBefore != 4000 || res.BytesAfter != 2000 {
		t.Errorf("bytes before/after = %d/%d, want 4000/2000", res.BytesBefore, res.BytesAfter)
	}
	for i, want := range []bool{true, false, false, true} {
		if ok, _ := c.Has(d[i]); ok != want {
			t.Errorf("Has(d[%d]) = %v, want %v", i, ok, want)
		}
	}
	// Under the limit: nothing to do.
	res, err = c.GC(context.Background(), GCOptions{MaxBytes: 2000})
	if err != nil || len(res.Evicted) != 0 {
		t.Errorf("GC under the limit = %+v, %v", res, err)
	}
}

func TestGCKeepsPinnedArtifacts(t *testing.T) {
	f, clk := newClockedFetcher(t)
	c := f.Cache()
	d := fillCache(t, f, clk, 3, 1000)
	// Pinning records a use; set the clock back so d[0] stays the least
	// recently used and is the first eviction candidate.
	clk.SetTime(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))

	pin, err := c.Pin(d[0])
	if err != nil {
		t.Fatal(err)
	}
	pin2, err := c.Pin(d[0]) // a second job on the same model
	if err != nil {
		t.Fatal(err)
	}
	if inUse, err := c.InUse(d[0]); err != nil || !inUse {
		t.Fatalf("InUse = %v, %v", inUse, err)
	}
	res, err := c.GC(context.Background(), GCOptions{MaxBytes: 0})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{d[0]}, res.SkippedInUse); diff != "" {
		t.Errorf("skipped (-want +got):\n%s", diff)
	}
	if len(res.Evicted) != 2 || res.BytesAfter != 1000 {
		t.Errorf("GC = %+v", res)
	}
	if ok, _ := c.Has(d[0]); !ok {
		t.Fatal("pinned artifact was evicted")
	}
	if err := c.Remove(d[0]); !errors.Is(err, ErrInUse) {
		t.Errorf("Remove of a pinned artifact: %v", err)
	}

	// One job ends: still pinned by the other.
	if err := pin.Release(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.GC(context.Background(), GCOptions{MaxBytes: 0}); err != nil {
		t.Fatal(err)
	}
	if ok, _ := c.Has(d[0]); !ok {
		t.Fatal("artifact pinned by a second holder was evicted")
	}
	if err := pin2.Release(); err != nil {
		t.Fatal(err)
	}
	if err := pin2.Release(); err != nil {
		t.Errorf("second Release: %v", err)
	}
	res, err = c.GC(context.Background(), GCOptions{MaxBytes: 0})
	if err != nil || len(res.Evicted) != 1 || res.BytesAfter != 0 {
		t.Errorf("GC after release = %+v, %v", res, err)
	}
	if err := c.Remove(d[0]); !errors.Is(err, ErrNotCached) {
		t.Errorf("Remove of an absent artifact: %v", err)
	}
}

func TestPinBeforeFetchProtectsNewArtifact(t *testing.T) {
	f, clk := newClockedFetcher(t)
	other := fillCache(t, f, clk, 1, 500)[0]
	data, digest := blob(500, 30)
	pin, err := f.Cache().Pin(digest) // not cached yet
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = pin.Release() }()
	src := filepath.Join(t.TempDir(), "m")
	if err := os.WriteFile(src, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Fetch(context.Background(), Request{Source: "file://" + src, Digest: digest}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Cache().GC(context.Background(), GCOptions{MaxBytes: 0}); err != nil {
		t.Fatal(err)
	}
	if ok, _ := f.Cache().Has(digest); !ok {
		t.Error("artifact pinned before its fetch was evicted")
	}
	if ok, _ := f.Cache().Has(other); ok {
		t.Error("unpinned artifact was kept")
	}
}

func TestGCRemovesAbandonedPartials(t *testing.T) {
	f, _ := newClockedFetcher(t)
	c := f.Cache()
	_, live := blob(1, 40)
	_, dead := blob(1, 41)
	for _, d := range []string{live, dead} {
		if err := os.WriteFile(c.partialPath(d), make([]byte, 100), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// A download in progress holds its fetch lock.
	l, ok, err := tryLock(c.fetchLockPath(live), unix.LOCK_EX)
	if err != nil || !ok {
		t.Fatalf("lock: %v %v", ok, err)
	}
	defer func() { _ = l.unlock() }()
	res, err := c.GC(context.Background(), GCOptions{MaxBytes: 1 << 30})
	if err != nil {
		t.Fatal(err)
	}
	if res.RemovedPartials != 1 || res.BytesBefore != 200 || res.BytesAfter != 100 {
		t.Errorf("GC = %+v", res)
	}
	if _, err := os.Stat(c.partialPath(live)); err != nil {
		t.Errorf("in-progress partial removed: %v", err)
	}
	if _, err := os.Stat(c.partialPath(dead)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("abandoned partial kept: %v", err)
	}
}

func TestVerifyDetectsCorruption(t *testing.T) {
	f, clk := newClockedFetcher(t)
	c := f.Cache()
	d := fillCache(t, f, clk, 1, 1000)[0]
	if err := c.Verify(d); err != nil {
		t.Fatal(err)
	}
	p := c.Path(d)
	if err := os.Chmod(p, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte("rot"), 0o644); err != nil {
		t.Fatal(err)
	}
	var dm *DigestMismatchError
	if err := c.Verify(d); !errors.As(err, &dm) || dm.Expected != d {
		t.Errorf("Verify of a corrupted blob: %v", err)
	}
	_, missing := blob(1, 50)
	if err := c.Verify(missing); !errors.Is(err, ErrNotCached) {
		t.Errorf("Verify of a missing blob: %v", err)
	}
	if _, err := c.GC(context.Background(), GCOptions{MaxBytes: -1}); err == nil {
		t.Error("GC accepted a negative limit")
	}
	if _, err := OpenCache(""); err == nil {
		t.Error("OpenCache accepted an empty directory")
	}
}

func TestGCKeepsListedDigests(t *testing.T) {
	f, clk := newClockedFetcher(t)
	c := f.Cache()
	d := fillCache(t, f, clk, 3, 100)
	res, err := c.GC(context.Background(), GCOptions{MaxBytes: 0, Keep: func(digest string) bool { return digest == d[0] }})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{d[0]}, res.Kept); diff != "" {
		t.Errorf("kept (-want +got):\n%s", diff)
	}
	if len(res.Evicted) != 2 || res.BytesAfter != 100 {
		t.Errorf("GC = %+v", res)
	}
	if ok, _ := c.Has(d[0]); !ok {
		t.Error("kept digest was evicted")
	}
}
