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
	"hash"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/sys/unix"
	"k8s.io/utils/clock"

	"github.com/aivm-dev/aivm-operator/internal/sha256hex"
)

// copyBufferSize is the read size while streaming an artifact.
const copyBufferSize = 1 << 20

// Request names an artifact to fetch.
type Request struct {
	// Source is the URI to fetch from (see the package documentation).
	Source string
	// Digest is the expected sha256, hex, optionally prefixed "sha256:".
	Digest string
	// Size is the expected size in bytes; 0 means unknown.
	Size int64
	// Token, when set, is sent as a bearer token to https and hf sources. It
	// is never sent over plain http: a plain http source (an hf source
	// resolving to one included) is refused with an *InsecureTokenError, and
	// so is a redirect from https to http. A redirect to another host drops it.
	Token Token
	// Credential names where Token comes from, never its value: for a
	// Model, its credentials Secret as namespace/name/key
	// (ModelCredential). The cache records which source and credential
	// fetched or proved each blob (docs/security.md, "Model cache"); a
	// request with a Token and no Credential earns no record.
	Credential string
}

// Result describes a fetched artifact.
type Result struct {
	// Path is the verified blob in the cache. Open it read-only.
	Path string
	// Digest is the blob's sha256, lowercase hex.
	Digest string
	// Size is the blob's size in bytes.
	Size int64
	// Downloaded is true when this fetch transferred the bytes, false when
	// they were already cached.
	Downloaded bool
}

// prepared is a validated Request.
type prepared struct {
	digest string
	u      *url.URL
	size   int64
	token  Token
	// credential is the token's identity (Request.Credential).
	credential string
	display    string // redacted URL for logs and errors
}

func prepare(req Request, hfBase string) (prepared, error) {
	d, err := sha256hex.Parse(req.Digest)
	if err != nil {
		return prepared{}, err
	}
	if req.Size < 0 {
		return prepared{}, fmt.Errorf("expected size %d is negative", req.Size)
	}
	u, err := ResolveSource(req.Source, hfBase)
	if err != nil {
		return prepared{}, err
	}
	if u.Scheme == SchemeFile && !req.Token.IsZero() {
		return prepared{}, fmt.Errorf("source %s: a token is only used with https and hf sources", RedactURL(u))
	}
	if u.Scheme == SchemeHTTP && !req.Token.IsZero() {
		return prepared{}, &InsecureTokenError{URL: RedactURL(u)}
	}
	return prepared{digest: d, u: u, size: req.Size, token: req.Token, credential: req.Credential, display: RedactURL(u)}, nil
}

// Fetcher downloads artifacts into a Cache, verifying their digests.
type Fetcher struct {
	cfg   config
	cache *Cache

	mu      sync.Mutex
	flights map[string]*flight

	// onLockWait is called when a fetch finds another process downloading
	// the same digest, and onJoin when a caller joins a download with the
	// number of callers now waiting; tests use them to observe both.
	// onWait is called when a caller starts waiting for the download's done
	// channel; tests use it to end the download and the caller's context
	// together.
	onLockWait func()
	onJoin     func(waiters int)
	onWait     func(done <-chan struct{})
}

// flight is one download shared by every in-process caller of a digest.
type flight struct {
	done    chan struct{}
	res     Result
	err     error
	waiters int
	cancel  context.CancelFunc
}

// NewFetcher returns a Fetcher that stores into cache.
func NewFetcher(cache *Cache, opts ...Option) (*Fetcher, error) {
	if cache == nil {
		return nil, fmt.Errorf("cache is nil")
	}
	cfg, err := newConfig(opts)
	if err != nil {
		return nil, err
	}
	return &Fetcher{cfg: cfg, cache: cache, flights: map[string]*flight{}}, nil
}

// Cache returns the cache the Fetcher stores into.
func (f *Fetcher) Cache() *Cache { return f.cache }

// Fetch makes the artifact available in the cache and returns its path. A
// cached blob is returned at once. Otherwise the source is streamed into a
// partial file while it is hashed; transient errors (connection failures,
// truncated bodies, 5xx and 429 responses) are retried with backoff,
// resuming with an HTTP Range request where the server allows; the whole
// fetch is bounded by the maximum total time. Only bytes whose sha256 (and
// size, when given) match are moved into the cache; otherwise the partial
// file is removed and a *DigestMismatchError or *SizeMismatchError returned.
//
// Concurrent calls for one digest share one download. If ctx ends, this
// call returns; the download goes on while other callers still wait for it.
func (f *Fetcher) Fetch(ctx context.Context, req Request) (Result, error) {
	p, err := prepare(req, f.cfg.hfBase)
	if err != nil {
		return Result{}, fmt.Errorf("fetch: %w", err)
	}
	if res, ok := f.cached(p.digest); ok {
		return res, nil
	}
	f.mu.Lock()
	fl := f.flights[p.digest]
	if fl == nil {
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), f.cfg.maxTotal)
		fl = &flight{done: make(chan struct{}), cancel: cancel}
		f.flights[p.digest] = fl
		go f.run(fctx, fl, p)
	}
	fl.waiters++
	if f.onJoin != nil {
		f.onJoin(fl.waiters)
	}
	f.mu.Unlock()
	if f.onWait != nil {
		f.onWait(fl.done)
	}

	select {
	case <-fl.done:
		return fl.res, fl.err
	case <-ctx.Done():
		select {
		case <-fl.done: // finished as ctx ended: the result stands
			return fl.res, fl.err
		default:
		}
		f.mu.Lock()
		fl.waiters--
		if fl.waiters == 0 {
			fl.cancel()
			if f.flights[p.digest] == fl {
				delete(f.flights, p.digest)
			}
		}
		f.mu.Unlock()
		return Result{}, fmt.Errorf("fetch %s: %w", p.digest, ctx.Err())
	}
}

func (f *Fetcher) run(ctx context.Context, fl *flight, p prepared) {
	defer fl.cancel()
	res, err := f.fetchLocked(ctx, p)
	if err != nil {
		err = fmt.Errorf("fetch %s from %s: %w", p.digest, p.display, err)
	}
	f.mu.Lock()
	fl.res, fl.err = res, err
	if f.flights[p.digest] == fl {
		delete(f.flights, p.digest)
	}
	f.mu.Unlock()
	close(fl.done)
}

// cached returns the blob if it is in the cache, recording the use.
func (f *Fetcher) cached(digest string) (Result, bool) {
	path := f.cache.Path(digest)
	info, err := os.Stat(path)
	if err != nil || !info.Mode().IsRegular() {
		return Result{}, false
	}
	f.cache.touch(digest)
	return Result{Path: path, Digest: digest, Size: info.Size()}, true
}

// fetchLocked downloads p under the cross-process fetch lock of its digest.
func (f *Fetcher) fetchLocked(ctx context.Context, p prepared) (Result, error) {
	lock, err := lockWait(ctx, f.cfg.clock, f.cache.fetchLockPath(p.digest), unix.LOCK_EX, f.onLockWait)
	if err != nil {
		return Result{}, err
	}
	defer func() { _ = lock.unlock() }()
	if res, ok := f.cached(p.digest); ok {
		return res, nil // another process fetched it while we waited
	}

	tmp := f.cache.partialPath(p.digest)
	file, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return Result{}, fmt.Errorf("create partial file: %w", err)
	}
	committed := false
	defer func() {
		if !committed {
			_ = file.Close()
			_ = os.Remove(tmp)
		}
	}()
	if p.size > 0 {
		if err := unix.Fallocate(int(file.Fd()), 0, 0, p.size); err != nil && !errors.Is(err, unix.EOPNOTSUPP) && !errors.Is(err, unix.ENOSYS) {
			return Result{}, fmt.Errorf("reserve %d bytes in the cache: %w", p.size, err)
		}
	}
	dl := &download{file: file, hash: sha256.New(), expected: p.size}
	log := f.cfg.log.WithValues("digest", p.digest, "source", p.display)
	log.V(1).Info("Fetching artifact")
	if p.u.Scheme == SchemeFile {
		err = f.copyFile(ctx, p, dl)
	} else {
		err = f.download(ctx, p, dl)
	}
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil && !errors.Is(err, ctxErr) {
			err = fmt.Errorf("%w (%w)", ctxErr, err)
		}
		return Result{}, err
	}
	if p.size > 0 && dl.n != p.size {
		return Result{}, &SizeMismatchError{Expected: p.size, Actual: dl.n}
	}
	got := hex.EncodeToString(dl.hash.Sum(nil))
	if got != p.digest {
		log.Info("Rejected artifact: digest mismatch", "actual", got, "bytes", dl.n)
		return Result{}, &DigestMismatchError{Expected: p.digest, Actual: got}
	}
	if err := dl.commit(tmp, f.cache.Path(p.digest)); err != nil {
		return Result{}, err
	}
	committed = true
	f.cache.touch(p.digest)
	if err := f.cache.recordGrant(p, grantFetched); err != nil {
		log.Error(err, "Could not record which source fetched an artifact; other requests of it will prove access again")
	}
	log.Info("Fetched artifact", "bytes", dl.n)
	return Result{Path: f.cache.Path(p.digest), Digest: p.digest, Size: dl.n, Downloaded: true}, nil
}

// download is the partial file being written and the hash of its bytes.
type download struct {
	file     *os.File
	hash     hash.Hash
	n        int64
	expected int64 // 0: unknown
	buf      []byte
	// onProgress, when set, is called after each chunk received.
	onProgress func()
}

// watchdog calls fire unless kicked within every period d.
type watchdog struct {
	t    clock.Timer
	d    time.Duration
	done chan struct{}
}

func newWatchdog(clk clock.Clock, d time.Duration, fire func()) *watchdog {
	w := &watchdog{t: clk.NewTimer(d), d: d, done: make(chan struct{})}
	go func() {
		select {
		case <-w.t.C():
			fire()
		case <-w.done:
		}
	}()
	return w
}

func (w *watchdog) kick() { w.t.Reset(w.d) }

func (w *watchdog) stop() {
	w.t.Stop()
	close(w.done)
}

// writeError marks a local write failure, which is not worth retrying.
type writeError struct{ err error }

func (e *writeError) Error() string { return "write to cache: " + e.err.Error() }
func (e *writeError) Unwrap() error { return e.err }

// copyFrom appends r to the file and the hash. It returns a *writeError for
// local failures, a *SizeMismatchError once the bytes exceed the expected
// size, and the read error otherwise.
func (d *download) copyFrom(ctx context.Context, r io.Reader) error {
	if d.buf == nil {
		d.buf = make([]byte, copyBufferSize)
	}
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		nr, rerr := r.Read(d.buf)
		if nr > 0 {
			if d.expected > 0 && d.n+int64(nr) > d.expected {
				return &SizeMismatchError{Expected: d.expected, Actual: d.n + int64(nr)}
			}
			if _, err := d.file.Write(d.buf[:nr]); err != nil {
				return &writeError{err: err}
			}
			d.hash.Write(d.buf[:nr])
			d.n += int64(nr)
			if d.onProgress != nil {
				d.onProgress()
			}
		}
		if rerr == io.EOF {
			return nil
		}
		if rerr != nil {
			return rerr
		}
	}
}

// reset discards what was written, to start over from the first byte.
func (d *download) reset() error {
	if _, err := d.file.Seek(0, io.SeekStart); err != nil {
		return &writeError{err: err}
	}
	if err := d.file.Truncate(0); err != nil {
		return &writeError{err: err}
	}
	d.hash.Reset()
	d.n = 0
	return nil
}

// commit makes the verified partial file durable and read-only, and renames
// it into place.
func (d *download) commit(tmp, dst string) error {
	if err := d.file.Truncate(d.n); err != nil { // drop unused preallocation
		return &writeError{err: err}
	}
	if err := d.file.Chmod(0o444); err != nil {
		return &writeError{err: err}
	}
	if err := d.file.Sync(); err != nil {
		return &writeError{err: err}
	}
	if err := d.file.Close(); err != nil {
		return &writeError{err: err}
	}
	if err := os.Rename(tmp, dst); err != nil {
		return &writeError{err: err}
	}
	if dir, err := os.Open(filepath.Dir(dst)); err == nil {
		_ = dir.Sync()
		_ = dir.Close()
	}
	return nil
}

func (f *Fetcher) copyFile(ctx context.Context, p prepared, dl *download) error {
	src, err := os.Open(p.u.Path)
	if err != nil {
		return fmt.Errorf("open source file: %w", err)
	}
	defer func() { _ = src.Close() }()
	info, err := src.Stat()
	if err != nil {
		return fmt.Errorf("stat source file: %w", err)
	}
	if !info.Mode().IsRegular() {
		return fmt.Errorf("source %s is not a regular file", p.display)
	}
	if p.size > 0 && info.Size() != p.size {
		return &SizeMismatchError{Expected: p.size, Actual: info.Size()}
	}
	if err := dl.copyFrom(ctx, src); err != nil {
		return fmt.Errorf("copy source file: %w", err)
	}
	return nil
}
