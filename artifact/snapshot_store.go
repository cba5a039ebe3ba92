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
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/go-logr/logr"
	"golang.org/x/sys/unix"
	"k8s.io/utils/clock"

	"github.com/aivm-dev/aivm-operator/internal/modeldigest"
	"github.com/aivm-dev/aivm-operator/internal/sha256hex"
)

// Snapshot directories of a cache (see the package documentation).
const (
	snapshotDir       = "snapshots"
	manifestDir       = "manifests"
	holderDir         = "pins"
	snapshotLockEx    = ".snapshot"
	snapshotTmpPrefix = "snapshot-"
	// maxHolderLen bounds a pin holder's name, so its encoded form fits a
	// file name.
	maxHolderLen = 180
)

// SnapshotPath returns where the snapshot of a modelDigest lives (or would
// live). The digest must be lowercase hex, as returned by sha256hex.Parse.
func (c *Cache) SnapshotPath(digest string) string { return filepath.Join(c.dir, snapshotDir, digest) }

func (c *Cache) manifestPath(digest string) string { return filepath.Join(c.dir, manifestDir, digest) }
func (c *Cache) snapshotLockPath(digest string) string {
	return filepath.Join(c.dir, lockDir, digest+snapshotLockEx)
}
func (c *Cache) holdersPath(digest string) string { return filepath.Join(c.dir, holderDir, digest) }

// Snapshot describes one complete snapshot.
type Snapshot struct {
	// Digest is the modelDigest the snapshot is named by.
	Digest string
	// Dir is the snapshot directory.
	Dir string
	// Files are the snapshot's files, sorted by path (Size -1 where the
	// Model declares none).
	Files []modeldigest.File
	// Bytes is the size of the snapshot's files.
	Bytes int64
	// OwnBytes is the size of the files that are copies rather than hard
	// links to cached blobs: what removing the snapshot alone frees.
	OwnBytes int64
	// LastUsed is when the snapshot was last ensured or pinned.
	LastUsed time.Time
	// Holders are the recorded pin holders (PinSnapshot), sorted.
	Holders []string
}

// readManifest returns the files of a complete snapshot: its manifest is
// canonical and names digest, and its directory is a real directory.
func (c *Cache) readManifest(digest string) ([]modeldigest.File, fs.FileInfo, error) {
	data, err := os.ReadFile(c.manifestPath(digest))
	if err != nil {
		return nil, nil, err
	}
	files, err := modeldigest.ParseManifest(data)
	if err != nil {
		return nil, nil, err
	}
	if !manifestNames(data, files, digest) {
		return nil, nil, fmt.Errorf("manifest does not name %s", digest)
	}
	info, err := os.Lstat(c.SnapshotPath(digest))
	if err != nil {
		return nil, nil, err
	}
	if !info.IsDir() {
		return nil, nil, fmt.Errorf("snapshot %s is not a directory", digest)
	}
	minfo, err := os.Stat(c.manifestPath(digest))
	if err != nil {
		return nil, nil, err
	}
	return files, minfo, nil
}

func (c *Cache) snapshotComplete(digest string) bool {
	_, _, err := c.readManifest(digest)
	return err == nil
}

// HasSnapshot reports whether the complete snapshot of digest is in the cache.
func (c *Cache) HasSnapshot(digest string) (bool, error) {
	d, err := sha256hex.Parse(digest)
	if err != nil {
		return false, err
	}
	return c.snapshotComplete(d), nil
}

// touchSnapshot records a use of the snapshot for LRU ordering.
func (c *Cache) touchSnapshot(digest string) {
	now := c.clock.Now()
	if err := os.Chtimes(c.manifestPath(digest), now, now); err != nil && !errors.Is(err, fs.ErrNotExist) {
		c.log.V(1).Info("Could not record snapshot use", "digest", digest, "err", err.Error())
	}
}

// ListSnapshots returns the complete snapshots, sorted by digest. A
// directory without a valid manifest, a symlink or a stray file under
// snapshots/ is not a snapshot and is left out.
func (c *Cache) ListSnapshots() ([]Snapshot, error) {
	des, err := os.ReadDir(filepath.Join(c.dir, snapshotDir))
	if err != nil {
		return nil, fmt.Errorf("list snapshots: %w", err)
	}
	var out []Snapshot
	for _, de := range des {
		name := de.Name()
		if !sha256hex.IsCanonical(name) || !de.IsDir() {
			continue
		}
		s, ok, err := c.snapshot(name)
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, s)
		}
	}
	return out, nil
}

// snapshot describes the complete snapshot of digest; ok is false when
// there is none.
func (c *Cache) snapshot(digest string) (Snapshot, bool, error) {
	files, minfo, err := c.readManifest(digest)
	if err != nil {
		return Snapshot{}, false, nil //nolint:nilerr // incomplete or removed meanwhile: not a snapshot
	}
	s := Snapshot{Digest: digest, Dir: c.SnapshotPath(digest), Files: files, LastUsed: minfo.ModTime()}
	for _, f := range files {
		fi, err := os.Lstat(filepath.Join(s.Dir, filepath.FromSlash(f.Path)))
		if err != nil {
			return Snapshot{}, false, nil //nolint:nilerr // removed meanwhile
		}
		s.Bytes += fi.Size()
		if bi, err := os.Stat(c.Path(f.SHA256)); err != nil || !os.SameFile(fi, bi) {
			s.OwnBytes += fi.Size()
		}
	}
	if s.Holders, err = c.SnapshotHolders(digest); err != nil {
		return Snapshot{}, false, err
	}
	return s, true, nil
}

// PinSnapshot records holder (a CSI volume ID, say) as a user of the
// snapshot of digest, on disk, so the pin outlives the process; garbage
// collection keeps a snapshot with any holder, and its blobs. Pin before
// EnsureSnapshot. Pinning twice with one holder is one pin.
func (c *Cache) PinSnapshot(digest, holder string) error {
	d, err := sha256hex.Parse(digest)
	if err != nil {
		return err
	}
	name, err := holderFileName(holder)
	if err != nil {
		return err
	}
	// The shared pin lock keeps a collection (which takes it exclusively)
	// from removing the snapshot while the holder is being recorded.
	l, err := lockBlocking(c.pinLockPath(d), unix.LOCK_SH)
	if err != nil {
		return fmt.Errorf("pin snapshot %s: %w", d, err)
	}
	defer func() { _ = l.unlock() }()
	if err := os.MkdirAll(c.holdersPath(d), 0o755); err != nil {
		return fmt.Errorf("pin snapshot %s: %w", d, err)
	}
	if err := writeFileAtomic(filepath.Join(c.holdersPath(d), name), []byte(holder)); err != nil {
		return fmt.Errorf("pin snapshot %s: %w", d, err)
	}
	c.touchSnapshot(d)
	return nil
}

// UnpinSnapshot drops holder's pin on the snapshot of digest. Dropping a
// pin that is not there is not an error.
func (c *Cache) UnpinSnapshot(digest, holder string) error {
	d, err := sha256hex.Parse(digest)
	if err != nil {
		return err
	}
	name, err := holderFileName(holder)
	if err != nil {
		return err
	}
	if err := os.Remove(filepath.Join(c.holdersPath(d), name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("unpin snapshot %s: %w", d, err)
	}
	_ = os.Remove(c.holdersPath(d)) // only when empty
	return nil
}

// SnapshotHolders returns the recorded pin holders of digest, sorted.
func (c *Cache) SnapshotHolders(digest string) ([]string, error) {
	des, err := os.ReadDir(c.holdersPath(digest))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list snapshot pins: %w", err)
	}
	var out []string
	for _, de := range des {
		raw, err := base64.RawURLEncoding.DecodeString(de.Name())
		if err != nil || !de.Type().IsRegular() {
			continue
		}
		out = append(out, string(raw))
	}
	slices.Sort(out)
	return out, nil
}

func holderFileName(holder string) (string, error) {
	if holder == "" || len(holder) > maxHolderLen {
		return "", fmt.Errorf("pin holder must be 1 to %d bytes, got %d", maxHolderLen, len(holder))
	}
	return base64.RawURLEncoding.EncodeToString([]byte(holder)), nil
}

// snapshotInUse reports whether a process pins the digest (Pin) or a
// holder is recorded. The caller holds the exclusive pin lock.
func (c *Cache) snapshotHeld(digest string) (bool, error) {
	h, err := c.SnapshotHolders(digest)
	return len(h) > 0, err
}

// RemoveSnapshot removes the snapshot of digest (never its blobs). It
// returns ErrInUse when the snapshot is pinned or being built, and
// ErrNotCached when there is none.
func (c *Cache) RemoveSnapshot(digest string) error {
	d, err := sha256hex.Parse(digest)
	if err != nil {
		return err
	}
	pl, ok, err := tryLock(c.pinLockPath(d), unix.LOCK_EX)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("remove snapshot %s: %w", d, ErrInUse)
	}
	defer func() { _ = pl.unlock() }()
	if held, err := c.snapshotHeld(d); err != nil || held {
		if err != nil {
			return err
		}
		return fmt.Errorf("remove snapshot %s: pinned: %w", d, ErrInUse)
	}
	bl, ok, err := tryLock(c.snapshotLockPath(d), unix.LOCK_EX)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("remove snapshot %s: being built: %w", d, ErrInUse)
	}
	defer func() { _ = bl.unlock() }()
	if !c.snapshotComplete(d) {
		return fmt.Errorf("remove snapshot %s: %w", d, ErrNotCached)
	}
	// The manifest goes first: from then on the directory is not a snapshot.
	if err := os.Remove(c.manifestPath(d)); err != nil {
		return fmt.Errorf("remove snapshot %s: %w", d, err)
	}
	if err := removeReadOnlyTree(c.SnapshotPath(d)); err != nil {
		return fmt.Errorf("remove snapshot %s: %w", d, err)
	}
	return nil
}

// CachedDigests answers "what is here" for the cache rooted at dir without
// creating or changing anything (the node agent may mount it read-only):
// the digests of complete snapshots (modelDigests), then those of regular,
// verified blobs that name no snapshot, each list sorted. Stray files,
// directories and symlinks count for nothing. A cache that does not exist
// yet holds nothing.
func CachedDigests(dir string) ([]string, error) {
	if dir == "" {
		return nil, nil
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("cache directory %q: %w", dir, err)
	}
	c := &Cache{dir: abs, clock: clock.RealClock{}, log: logr.Discard(), link: os.Link}
	var out []string
	seen := map[string]bool{}
	snaps, err := c.ListSnapshots()
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	for _, s := range snaps {
		out = append(out, s.Digest)
		seen[s.Digest] = true
	}
	blobs, err := c.List()
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	for _, b := range blobs {
		if !seen[b.Digest] {
			out = append(out, b.Digest)
		}
	}
	return out, nil
}
