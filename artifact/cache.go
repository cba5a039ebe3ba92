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
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/go-logr/logr"
	"golang.org/x/sys/unix"
	"k8s.io/utils/clock"

	"github.com/aivm-dev/aivm-operator/internal/sha256hex"
)

// Subdirectories of a cache directory.
const (
	blobDir   = "sha256"
	tmpDir    = "tmp"
	lockDir   = "locks"
	partialEx = ".partial"
	fetchEx   = ".fetch"
	pinEx     = ".pin"
)

// Cache is a node-local, content-addressed store of verified artifacts. It is
// safe for concurrent use, also by several processes sharing the directory.
type Cache struct {
	dir   string
	clock clock.Clock
	log   logr.Logger
	// link makes dst a hard link to src; tests replace it to force copies.
	link func(src, dst string) error
}

// CacheOption configures a Cache.
type CacheOption func(*Cache)

// WithCacheClock sets the clock used to record when a blob was last used
// (the LRU order of garbage collection).
func WithCacheClock(c clock.Clock) CacheOption { return func(ca *Cache) { ca.clock = c } }

// WithCacheLogger sets the logger.
func WithCacheLogger(l logr.Logger) CacheOption { return func(ca *Cache) { ca.log = l } }

// OpenCache opens (creating if needed) the cache rooted at dir.
func OpenCache(dir string, opts ...CacheOption) (*Cache, error) {
	if dir == "" {
		return nil, fmt.Errorf("cache directory is empty")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("cache directory %q: %w", dir, err)
	}
	c := &Cache{dir: abs, clock: clock.RealClock{}, log: logr.Discard(), link: os.Link}
	for _, o := range opts {
		o(c)
	}
	for _, sub := range []string{blobDir, tmpDir, lockDir, snapshotDir, manifestDir, holderDir} {
		if err := os.MkdirAll(filepath.Join(abs, sub), 0o755); err != nil {
			return nil, fmt.Errorf("create cache directory: %w", err)
		}
	}
	return c, nil
}

// Dir returns the cache's root directory.
func (c *Cache) Dir() string { return c.dir }

// Path returns where the blob of a digest lives (or would live). The digest
// must be lowercase hex, as returned by sha256hex.Parse.
func (c *Cache) Path(digest string) string { return filepath.Join(c.dir, blobDir, digest) }

func (c *Cache) partialPath(digest string) string {
	return filepath.Join(c.dir, tmpDir, digest+partialEx)
}
func (c *Cache) fetchLockPath(digest string) string {
	return filepath.Join(c.dir, lockDir, digest+fetchEx)
}
func (c *Cache) pinLockPath(digest string) string {
	return filepath.Join(c.dir, lockDir, digest+pinEx)
}

// Has reports whether the verified blob of digest is in the cache.
func (c *Cache) Has(digest string) (bool, error) {
	d, err := sha256hex.Parse(digest)
	if err != nil {
		return false, err
	}
	_, err = os.Stat(c.Path(d))
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	default:
		return false, fmt.Errorf("stat cached artifact: %w", err)
	}
}

// Entry describes one cached blob.
type Entry struct {
	// Digest is the blob's sha256, lowercase hex.
	Digest string
	// Size is the blob's size in bytes.
	Size int64
	// LastUsed is when the blob was last fetched or pinned.
	LastUsed time.Time
}

// List returns the cached blobs, sorted by digest. Files in the blob
// directory whose names are not digests are ignored.
func (c *Cache) List() ([]Entry, error) {
	des, err := os.ReadDir(filepath.Join(c.dir, blobDir))
	if err != nil {
		return nil, fmt.Errorf("list cache: %w", err)
	}
	out := make([]Entry, 0, len(des))
	for _, de := range des {
		name := de.Name()
		if !sha256hex.IsCanonical(name) || !de.Type().IsRegular() {
			continue
		}
		info, err := de.Info()
		if errors.Is(err, fs.ErrNotExist) {
			continue // evicted meanwhile
		}
		if err != nil {
			return nil, fmt.Errorf("list cache: %w", err)
		}
		out = append(out, Entry{Digest: name, Size: info.Size(), LastUsed: info.ModTime()})
	}
	return out, nil
}

// touch records a use of the blob for LRU ordering. Failures are logged, not
// returned: a stale use time only changes eviction order.
func (c *Cache) touch(digest string) {
	now := c.clock.Now()
	if err := os.Chtimes(c.Path(digest), now, now); err != nil && !errors.Is(err, fs.ErrNotExist) {
		c.log.V(1).Info("Could not record artifact use", "digest", digest, "err", err.Error())
	}
}

// Pin marks a digest in use, so garbage collection keeps its blob until the
// pin is released. The digest need not be cached yet: pin before fetching.
// Pins are shared flocks, counted by the kernel across processes and released
// automatically when the holding process exits.
type Pin struct {
	digest string
	lock   *fileLock
}

// Pin pins digest. It waits only while a garbage collection is removing that
// very blob, which takes one unlink.
func (c *Cache) Pin(digest string) (*Pin, error) {
	d, err := sha256hex.Parse(digest)
	if err != nil {
		return nil, err
	}
	l, err := lockBlocking(c.pinLockPath(d), unix.LOCK_SH)
	if err != nil {
		return nil, fmt.Errorf("pin %s: %w", d, err)
	}
	c.touch(d)
	return &Pin{digest: d, lock: l}, nil
}

// Digest returns the pinned digest.
func (p *Pin) Digest() string { return p.digest }

// Release drops the pin. It is safe to call more than once.
func (p *Pin) Release() error {
	if p == nil {
		return nil
	}
	if err := p.lock.unlock(); err != nil {
		return fmt.Errorf("release pin %s: %w", p.digest, err)
	}
	return nil
}

// InUse reports whether any process holds a pin on digest.
func (c *Cache) InUse(digest string) (bool, error) {
	d, err := sha256hex.Parse(digest)
	if err != nil {
		return false, err
	}
	l, ok, err := tryLock(c.pinLockPath(d), unix.LOCK_EX)
	if err != nil {
		return false, err
	}
	if !ok {
		return true, nil
	}
	return false, l.unlock()
}

// Remove deletes the blob of digest. It returns ErrInUse when the blob is
// pinned and ErrNotCached when it is absent.
func (c *Cache) Remove(digest string) error {
	d, err := sha256hex.Parse(digest)
	if err != nil {
		return err
	}
	l, ok, err := tryLock(c.pinLockPath(d), unix.LOCK_EX)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("remove %s: %w", d, ErrInUse)
	}
	defer func() { _ = l.unlock() }()
	if err := os.Remove(c.Path(d)); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("remove %s: %w", d, ErrNotCached)
		}
		return fmt.Errorf("remove %s: %w", d, err)
	}
	return nil
}

// Verify re-hashes the cached blob of digest (for example after a disk
// error) and returns a *DigestMismatchError if its bytes no longer match.
func (c *Cache) Verify(digest string) error {
	d, err := sha256hex.Parse(digest)
	if err != nil {
		return err
	}
	f, err := os.Open(c.Path(d))
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("verify %s: %w", d, ErrNotCached)
	}
	if err != nil {
		return fmt.Errorf("verify %s: %w", d, err)
	}
	defer func() { _ = f.Close() }()
	h := sha256.New()
	if _, err := io.CopyBuffer(h, f, make([]byte, copyBufferSize)); err != nil {
		return fmt.Errorf("verify %s: %w", d, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != d {
		return &DigestMismatchError{Expected: d, Actual: got}
	}
	return nil
}

// GCResult reports what a garbage collection did.
type GCResult struct {
	// Evicted lists the blobs removed, least recently used first.
	Evicted []Entry
	// EvictedSnapshots lists the digests of the snapshots removed, least
	// recently used first.
	EvictedSnapshots []string
	// SkippedInUse lists digests (of blobs or snapshots) that would have
	// been evicted but are pinned.
	SkippedInUse []string
	// Kept lists digests that would have been evicted but GCOptions.Keep kept.
	Kept []string
	// RemovedPartials counts abandoned partial downloads and snapshot
	// builds removed.
	RemovedPartials int
	// BytesBefore and BytesAfter are the cache's size around the collection.
	BytesBefore, BytesAfter int64
}

// GCOptions configure a garbage collection.
type GCOptions struct {
	// MaxBytes is the size the cache is reduced to, partial downloads in
	// progress included.
	MaxBytes int64
	// Keep, when set, names digests never to evict even when unpinned (for
	// example Models with cachePolicy Pinned). It is asked about snapshot
	// digests (modelDigests) and blob digests.
	Keep func(digest string) bool
}

// gcUnit is a snapshot or a blob no snapshot uses: what GC evicts.
type gcUnit struct {
	digest   string
	lastUsed time.Time
	snapshot *Snapshot
	blob     Entry
}

// GC removes abandoned partial downloads and snapshot builds, and then
// evicts the least recently used snapshots and blobs until the cache holds
// at most opts.MaxBytes. A blob that a remaining snapshot uses is never
// evicted; removing a snapshot frees the blobs only it used, which are then
// evicted in their turn. Pinned snapshots and blobs (Pin, PinSnapshot) and
// those opts.Keep names are never evicted, so the cache may stay above the
// limit when they alone exceed it.
func (c *Cache) GC(ctx context.Context, opts GCOptions) (GCResult, error) {
	var res GCResult
	maxBytes := opts.MaxBytes
	if maxBytes < 0 {
		return res, fmt.Errorf("cache size limit %d is negative", maxBytes)
	}
	partialBytes, removedBytes, removed, err := c.gcPartials()
	if err != nil {
		return res, err
	}
	res.RemovedPartials = removed
	entries, err := c.List()
	if err != nil {
		return res, err
	}
	snaps, err := c.ListSnapshots()
	if err != nil {
		return res, err
	}
	total := partialBytes
	blobs := map[string]Entry{}
	for _, e := range entries {
		total += e.Size
		blobs[e.Digest] = e
	}
	users := map[string]int{} // blob digest -> snapshots using it
	var units []gcUnit
	for i := range snaps {
		s := &snaps[i]
		total += s.OwnBytes
		for _, d := range snapshotBlobs(s) {
			users[d]++
		}
		units = append(units, gcUnit{digest: s.Digest, lastUsed: s.LastUsed, snapshot: s})
	}
	for _, e := range entries {
		if users[e.Digest] == 0 {
			units = append(units, gcUnit{digest: e.Digest, lastUsed: e.LastUsed, blob: e})
		}
	}
	res.BytesBefore = total + removedBytes
	for i := 0; i < len(units) && total > maxBytes; i++ {
		// Sort what is left: an evicted snapshot appends the blobs it freed.
		rest := units[i:]
		sort.SliceStable(rest, func(a, b int) bool {
			if !rest[a].lastUsed.Equal(rest[b].lastUsed) {
				return rest[a].lastUsed.Before(rest[b].lastUsed)
			}
			return rest[a].digest < rest[b].digest
		})
		if err := ctx.Err(); err != nil {
			res.BytesAfter = total
			return res, err
		}
		u := units[i]
		if opts.Keep != nil && opts.Keep(u.digest) {
			res.Kept = append(res.Kept, u.digest)
			continue
		}
		if u.snapshot == nil {
			freed, err := c.evictBlob(u.blob, &res)
			if err != nil {
				res.BytesAfter = total
				return res, err
			}
			total -= freed
			continue
		}
		err := c.RemoveSnapshot(u.digest)
		switch {
		case err == nil:
			total -= u.snapshot.OwnBytes
			res.EvictedSnapshots = append(res.EvictedSnapshots, u.digest)
			c.log.Info("Evicted model snapshot", "digest", u.digest, "files", len(u.snapshot.Files), "lastUsed", u.snapshot.LastUsed)
			for _, d := range snapshotBlobs(u.snapshot) {
				users[d]--
				if e, ok := blobs[d]; ok && users[d] == 0 {
					units = append(units, gcUnit{digest: d, lastUsed: e.LastUsed, blob: e})
				}
			}
		case errors.Is(err, ErrInUse):
			res.SkippedInUse = append(res.SkippedInUse, u.digest)
		case errors.Is(err, ErrNotCached):
			total -= u.snapshot.OwnBytes // removed by someone else meanwhile
		default:
			res.BytesAfter = total
			return res, err
		}
	}
	res.BytesAfter = total
	return res, nil
}

// evictBlob removes one blob no snapshot uses and returns the bytes freed.
func (c *Cache) evictBlob(e Entry, res *GCResult) (int64, error) {
	err := c.Remove(e.Digest)
	switch {
	case err == nil:
		if err := c.dropGrants(e.Digest); err != nil {
			c.log.Error(err, "Could not remove the access records of an evicted artifact", "digest", e.Digest)
		}
		res.Evicted = append(res.Evicted, e)
		c.log.Info("Evicted cached artifact", "digest", e.Digest, "bytes", e.Size, "lastUsed", e.LastUsed)
		return e.Size, nil
	case errors.Is(err, ErrInUse):
		res.SkippedInUse = append(res.SkippedInUse, e.Digest)
		return 0, nil
	case errors.Is(err, ErrNotCached):
		return e.Size, nil // removed by someone else meanwhile
	default:
		return 0, err
	}
}

// snapshotBlobs returns the distinct blob digests a snapshot's files use.
func snapshotBlobs(s *Snapshot) []string {
	out := make([]string, 0, len(s.Files))
	for _, f := range s.Files {
		out = append(out, f.SHA256)
	}
	sort.Strings(out)
	return slices.Compact(out)
}

// gcPartials removes partial downloads no process is writing (their fetch
// lock is free). It returns the bytes of the partials still in progress and
// the bytes and number of those removed.
func (c *Cache) gcPartials() (liveBytes, removedBytes int64, removed int, err error) {
	des, err := os.ReadDir(filepath.Join(c.dir, tmpDir))
	if err != nil {
		return 0, 0, 0, fmt.Errorf("list partial downloads: %w", err)
	}
	for _, de := range des {
		name := de.Name()
		if de.IsDir() {
			ok, err := c.gcSnapshotBuild(name)
			if err != nil {
				return 0, removedBytes, removed, err
			}
			if ok {
				removed++
			}
			continue
		}
		d, ok := strings.CutSuffix(name, partialEx)
		if !ok {
			continue
		}
		if !sha256hex.IsCanonical(d) {
			continue
		}
		info, err := de.Info()
		if err != nil {
			continue
		}
		l, ok, err := tryLock(c.fetchLockPath(d), unix.LOCK_EX)
		if err != nil {
			return 0, removedBytes, removed, err
		}
		if !ok {
			liveBytes += info.Size()
			continue
		}
		rmErr := os.Remove(filepath.Join(c.dir, tmpDir, name))
		_ = l.unlock()
		if rmErr != nil && !errors.Is(rmErr, fs.ErrNotExist) {
			return 0, removedBytes, removed, fmt.Errorf("remove abandoned partial download: %w", rmErr)
		}
		removed++
		removedBytes += info.Size()
	}
	return liveBytes, removedBytes, removed, nil
}

// gcSnapshotBuild removes the temporary directory of a snapshot build that
// no process is running (its snapshot lock is free), left by a crash.
func (c *Cache) gcSnapshotBuild(name string) (bool, error) {
	rest, ok := strings.CutPrefix(name, snapshotTmpPrefix)
	if !ok || len(rest) < sha256hex.Len {
		return false, nil
	}
	d := rest[:sha256hex.Len]
	if !sha256hex.IsCanonical(d) {
		return false, nil
	}
	l, ok, err := tryLock(c.snapshotLockPath(d), unix.LOCK_EX)
	if err != nil || !ok {
		return false, err
	}
	defer func() { _ = l.unlock() }()
	if err := removeReadOnlyTree(filepath.Join(c.dir, tmpDir, name)); err != nil {
		return false, fmt.Errorf("remove abandoned snapshot build: %w", err)
	}
	return true, nil
}
