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
	"sync"

	"golang.org/x/sys/unix"

	"github.com/aivm-dev/aivm-operator/internal/modeldigest"
	"github.com/aivm-dev/aivm-operator/internal/sha256hex"
)

// DefaultFileConcurrency is how many files of one snapshot are fetched at
// once unless WithFileConcurrency says otherwise.
const DefaultFileConcurrency = 4

// SnapshotFile is one file of a snapshot.
type SnapshotFile struct {
	// Path is the file's place in the snapshot directory: relative, with
	// '/' between segments (modeldigest.ValidatePath).
	Path string
	// Digest is the file's sha256, lowercase hex.
	Digest string
	// Size is the expected size in bytes; 0 or less means unknown (a
	// declared size of 0 enters the manifest through ManifestSize).
	Size int64
	// ManifestSize is the size as the Model declares it, -1 when it
	// declares none; it enters the canonical manifest and so the digest.
	ManifestSize int64
	// URI is the file's own source. When empty the file is fetched from
	// Path under the spec's BaseURI.
	URI string
}

// SnapshotSpec is what EnsureSnapshot materializes: a Model's files, named
// by the Model's modelDigest. ModelSnapshotSpec builds one from a Model.
type SnapshotSpec struct {
	// Digest is the modelDigest the snapshot is named by: for a single file
	// that file's digest, else the sha256 of the files' canonical manifest
	// (internal/modeldigest). EnsureSnapshot refuses a spec whose files do
	// not give this digest.
	Digest string
	// BaseURI is what the paths of files without a URI resolve against:
	// https://, http://, file:/// or hf://<org>/<repo>@<revision>.
	BaseURI string
	// Files are the snapshot's files; at least one.
	Files []SnapshotFile
	// Token, when set, is sent as a bearer token to https and hf sources,
	// under the same rules as Request.Token.
	Token Token
	// Credential names where Token comes from (Request.Credential).
	Credential string
}

// FileError is the failure of one file of a snapshot; it names the file.
// errors.As reaches the cause (a *DigestMismatchError, for example).
type FileError struct {
	// Path is the file's path in the snapshot.
	Path string
	// Err is the cause.
	Err error
}

// Error names the file and the cause.
func (e *FileError) Error() string { return fmt.Sprintf("file %s: %v", e.Path, e.Err) }

// Unwrap returns the cause.
func (e *FileError) Unwrap() error { return e.Err }

// snapshotPlan is a validated SnapshotSpec.
type snapshotPlan struct {
	digest   string
	manifest []byte
	files    []plannedFile
}

type plannedFile struct {
	path string
	req  Request
}

// plan validates spec and resolves every file's source.
func (f *Fetcher) plan(spec SnapshotSpec) (snapshotPlan, error) {
	digest, err := sha256hex.Parse(spec.Digest)
	if err != nil {
		return snapshotPlan{}, fmt.Errorf("snapshot digest: %w", err)
	}
	if len(spec.Files) == 0 {
		return snapshotPlan{}, fmt.Errorf("snapshot %s has no files", digest)
	}
	entries := make([]modeldigest.File, len(spec.Files))
	files := make([]plannedFile, len(spec.Files))
	for i, sf := range spec.Files {
		d, err := sha256hex.Parse(sf.Digest)
		if err != nil {
			return snapshotPlan{}, &FileError{Path: sf.Path, Err: err}
		}
		if err := modeldigest.ValidatePath(sf.Path); err != nil {
			return snapshotPlan{}, fmt.Errorf("snapshot %s: %w", digest, err)
		}
		src := sf.URI
		if src == "" {
			if spec.BaseURI == "" {
				return snapshotPlan{}, &FileError{Path: sf.Path, Err: errors.New("no uri and no base uri")}
			}
			u, err := ResolveBase(spec.BaseURI, sf.Path, f.cfg.hfBase)
			if err != nil {
				return snapshotPlan{}, &FileError{Path: sf.Path, Err: err}
			}
			src = u.String()
		}
		entries[i] = modeldigest.File{Path: sf.Path, SHA256: d, Size: sf.ManifestSize}
		files[i] = plannedFile{path: sf.Path, req: Request{Source: src, Digest: d, Size: max(sf.Size, 0), Token: spec.Token, Credential: spec.Credential}}
	}
	manifest, err := modeldigest.Manifest(entries)
	if err != nil {
		return snapshotPlan{}, fmt.Errorf("snapshot %s: %w", digest, err)
	}
	if !manifestNames(manifest, entries, digest) {
		return snapshotPlan{}, fmt.Errorf("snapshot digest %s is neither the single file's sha256 nor the sha256 of the files' manifest", digest)
	}
	return snapshotPlan{digest: digest, manifest: manifest, files: files}, nil
}

// manifestNames reports whether digest names the manifest: the sha256 of a
// single-file Model's one file, or of a file set's manifest.
func manifestNames(manifest []byte, entries []modeldigest.File, digest string) bool {
	if len(entries) == 1 && entries[0].SHA256 == digest {
		return true
	}
	sum := sha256.Sum256(manifest)
	return hex.EncodeToString(sum[:]) == digest
}

// EnsureSnapshot makes the read-only snapshot directory of spec exist and
// returns its path, <cache>/snapshots/<digest>. A complete snapshot is
// returned at once. Otherwise every file is fetched into the cache as a
// verified blob (at most the file concurrency at a time; a blob already
// cached is not fetched again, even when another Model holds it), and the
// snapshot is built in a temporary directory of hard links to the blobs
// (copies where the filesystem refuses links) and renamed into place only
// when every file matched. A file whose blob is cached already (or was
// brought by another request's download) is used only once this spec's
// source and credential have shown they can fetch it (docs/security.md,
// "Model cache"); otherwise the error wraps an *AccessDeniedError, and the
// snapshot, complete or not, is not returned. When a fetch fails no
// snapshot is built and the error is a
// *FileError naming the first failing file by path (a
// *DigestMismatchError inside names both digests).
//
// Pin the digest (Cache.PinSnapshot or Cache.Pin) before calling, so a
// garbage collection cannot remove the snapshot between its return and its
// use. Builds of one digest are serialized across processes.
func (f *Fetcher) EnsureSnapshot(ctx context.Context, spec SnapshotSpec) (string, error) {
	p, err := f.plan(spec)
	if err != nil {
		return "", fmt.Errorf("ensure snapshot: %w", err)
	}
	c := f.cache
	dir := c.SnapshotPath(p.digest)
	if c.snapshotComplete(p.digest) {
		if err := f.eachFile(ctx, p.files, f.authorizeFile); err != nil {
			return "", fmt.Errorf("snapshot %s: %w", p.digest, err)
		}
		c.touchSnapshot(p.digest)
		return dir, nil
	}
	lock, err := lockWait(ctx, f.cfg.clock, c.snapshotLockPath(p.digest), unix.LOCK_EX, nil)
	if err != nil {
		return "", fmt.Errorf("snapshot %s: %w", p.digest, err)
	}
	defer func() { _ = lock.unlock() }()
	if c.snapshotComplete(p.digest) {
		if err := f.eachFile(ctx, p.files, f.authorizeFile); err != nil {
			return "", fmt.Errorf("snapshot %s: %w", p.digest, err)
		}
		c.touchSnapshot(p.digest)
		return dir, nil
	}
	// Pin the blobs until they are linked, so a garbage collection cannot
	// evict one that arrived before the others.
	var pins []*Pin
	defer func() {
		for _, pin := range pins {
			_ = pin.Release()
		}
	}()
	for _, d := range distinctDigests(p.files) {
		pin, err := c.Pin(d)
		if err != nil {
			return "", fmt.Errorf("snapshot %s: %w", p.digest, err)
		}
		pins = append(pins, pin)
	}
	if err := f.eachFile(ctx, p.files, f.fetchFile); err != nil {
		return "", fmt.Errorf("snapshot %s: %w", p.digest, err)
	}
	if err := c.buildSnapshot(p); err != nil {
		return "", fmt.Errorf("snapshot %s: %w", p.digest, err)
	}
	f.cfg.log.Info("Materialized model snapshot", "digest", p.digest, "files", len(p.files))
	return dir, nil
}

func distinctDigests(files []plannedFile) []string {
	out := make([]string, 0, len(files))
	for _, pf := range files {
		out = append(out, pf.req.Digest)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// fetchFile fetches one file's blob and makes sure the request may have it:
// a blob that was cached already, or that another request's download
// brought, is served only once this request's source proved access
// (authorize).
func (f *Fetcher) fetchFile(ctx context.Context, req Request) error {
	if _, err := f.Fetch(ctx, req); err != nil {
		return err
	}
	return f.Authorize(ctx, req)
}

// authorizeFile makes sure the request may have the blob of a file of a
// complete snapshot.
func (f *Fetcher) authorizeFile(ctx context.Context, req Request) error {
	return f.Authorize(ctx, req)
}

// eachFile runs do for every file, at most the file concurrency at a time.
// It waits for all of them (a blob that arrived is kept for the next try)
// and returns the failure of the first failing file in path order.
func (f *Fetcher) eachFile(ctx context.Context, files []plannedFile, do func(context.Context, Request) error) error {
	errs := make([]error, len(files))
	sem := make(chan struct{}, f.cfg.fileConcurrency)
	var wg sync.WaitGroup
	for i := range files {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			errs[i] = ctx.Err()
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if err := do(ctx, files[i].req); err != nil {
				errs[i] = &FileError{Path: files[i].path, Err: err}
			}
		}()
	}
	wg.Wait()
	var first error
	firstPath, failed := "", 0
	for i, err := range errs {
		if err == nil {
			continue
		}
		failed++
		if first == nil || files[i].path < firstPath {
			first, firstPath = err, files[i].path
		}
	}
	switch failed {
	case 0:
		return nil
	case 1:
		return first
	default:
		return fmt.Errorf("%w (and %d more files failed)", first, failed-1)
	}
}

// buildSnapshot links the fetched blobs into a temporary directory, writes
// the manifest and renames the directory into place. The caller holds the
// snapshot lock.
func (c *Cache) buildSnapshot(p snapshotPlan) error {
	tmp, err := os.MkdirTemp(filepath.Join(c.dir, tmpDir), snapshotTmpPrefix+p.digest+"-")
	if err != nil {
		return fmt.Errorf("create snapshot directory: %w", err)
	}
	done := false
	defer func() {
		if !done {
			_ = removeReadOnlyTree(tmp)
		}
	}()
	for _, pf := range p.files {
		dst := filepath.Join(tmp, filepath.FromSlash(pf.path))
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return &FileError{Path: pf.path, Err: fmt.Errorf("create directory: %w", err)}
		}
		if err := c.linkOrCopy(c.Path(pf.req.Digest), dst); err != nil {
			return &FileError{Path: pf.path, Err: err}
		}
	}
	if err := makeReadOnly(tmp); err != nil {
		return err
	}
	// The manifest lands first: a directory without it is not a snapshot,
	// so a crash between the two renames leaves nothing that counts.
	if err := writeFileAtomic(c.manifestPath(p.digest), p.manifest); err != nil {
		return fmt.Errorf("write snapshot manifest: %w", err)
	}
	dst := c.SnapshotPath(p.digest)
	if err := os.Rename(tmp, dst); err != nil {
		// A leftover directory without a manifest (a crash, or a stray
		// one): replace it.
		if rmErr := removeReadOnlyTree(dst); rmErr != nil {
			return fmt.Errorf("replace incomplete snapshot: %w", rmErr)
		}
		if err := os.Rename(tmp, dst); err != nil {
			return fmt.Errorf("move snapshot into place: %w", err)
		}
	}
	done = true
	syncDir(filepath.Dir(dst))
	c.touchSnapshot(p.digest)
	return nil
}

// linkOrCopy hard-links the blob at src to dst, or copies it (read-only)
// where the filesystem refuses the link.
func (c *Cache) linkOrCopy(src, dst string) error {
	err := c.link(src, dst)
	if err == nil {
		return nil
	}
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("blob %s vanished before it was linked: %w", filepath.Base(src), err)
	}
	c.log.V(1).Info("Copying a blob into a snapshot: the filesystem refused a hard link", "blob", filepath.Base(src), "err", err.Error())
	return copyReadOnly(src, dst)
}

func copyReadOnly(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("copy blob: %w", err)
	}
	defer func() { _ = in.Close() }()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o444)
	if err != nil {
		return fmt.Errorf("copy blob: %w", err)
	}
	if _, err := io.CopyBuffer(out, in, make([]byte, copyBufferSize)); err != nil {
		_ = out.Close()
		return fmt.Errorf("copy blob: %w", err)
	}
	if err := out.Sync(); err != nil {
		_ = out.Close()
		return fmt.Errorf("copy blob: %w", err)
	}
	return out.Close()
}

// makeReadOnly takes the write bits off every directory under root (files
// are read-only already), deepest first.
func makeReadOnly(root string) error {
	var dirs []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			dirs = append(dirs, p)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("seal snapshot: %w", err)
	}
	for i := len(dirs) - 1; i >= 0; i-- {
		if err := os.Chmod(dirs[i], 0o555); err != nil {
			return fmt.Errorf("seal snapshot: %w", err)
		}
	}
	return nil
}

// removeReadOnlyTree removes a snapshot tree whose directories are
// read-only. A missing tree is not an error. Symlinks are removed, never
// followed.
func removeReadOnlyTree(root string) error {
	info, err := os.Lstat(root)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if info.IsDir() {
		_ = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				_ = os.Chmod(p, 0o755)
			}
			return nil
		})
	}
	return os.RemoveAll(root)
}

// writeFileAtomic writes data to path through a temporary file and a rename.
func writeFileAtomic(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-"+filepath.Base(path)+"-")
	if err != nil {
		return err
	}
	name := f.Name()
	_, werr := f.Write(data)
	if werr == nil {
		werr = f.Sync()
	}
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Chmod(name, 0o444)
	}
	if werr == nil {
		werr = os.Rename(name, path)
	}
	if werr != nil {
		_ = os.Remove(name)
		return werr
	}
	syncDir(filepath.Dir(path))
	return nil
}

func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
}
