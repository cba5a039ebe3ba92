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

package csi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/aivm-dev/aivm-operator/api/v1alpha1"
	"github.com/aivm-dev/aivm-operator/artifact"
)

// snapshotsDir is the cache's subdirectory of snapshots, one per modelDigest.
const snapshotsDir = "snapshots"

// CacheSnapshots implements Snapshots over the node's artifact cache for
// single-file Models: the snapshot <cache>/snapshots/<digest>/ holds the
// file under its base name, a hard link to the verified blob. It is the
// bridge until the cache materializes file-set snapshots itself; a pin is
// the cache's cross-process pin on the blob.
type CacheSnapshots struct {
	fetcher *artifact.Fetcher
	cache   *artifact.Cache
	reader  client.Reader
	// ctx bounds fetches, which outlive the call that started them: the
	// kubelet gives up on a call after two minutes and retries, and the
	// retry joins the same download.
	ctx context.Context

	mu   sync.Mutex
	pins map[string]*artifact.Pin // by volume ID
}

// NewCacheSnapshots returns snapshots fetched by fetcher; reader reads Models
// and their credentials Secrets (straight from the API server, so the
// agent caches no Secret). Fetches stop when ctx is done.
func NewCacheSnapshots(ctx context.Context, fetcher *artifact.Fetcher, reader client.Reader) *CacheSnapshots {
	return &CacheSnapshots{fetcher: fetcher, cache: fetcher.Cache(), reader: reader, ctx: ctx, pins: map[string]*artifact.Pin{}}
}

// Dir returns where the snapshot of digest lives.
func (s *CacheSnapshots) Dir(digest string) string {
	return filepath.Join(s.cache.Dir(), snapshotsDir, digest)
}

// Ensure fetches the Model's file with its credentials if the cache lacks
// it and lays out its snapshot.
func (s *CacheSnapshots) Ensure(ctx context.Context, ref ModelRef) (string, error) {
	m := &v1alpha1.Model{}
	if err := s.reader.Get(ctx, client.ObjectKey{Namespace: ref.Namespace, Name: ref.Name}, m); err != nil {
		if apierrors.IsNotFound(err) {
			return "", fmt.Errorf("%w: %w", ErrModelNotFound, err)
		}
		return "", fmt.Errorf("get model: %w", err)
	}
	if got := m.Spec.SHA256; got != ref.Digest {
		return "", fmt.Errorf("%w: the Model's digest is now %s", ErrDigestChanged, got)
	}
	dir := s.Dir(ref.Digest)
	if fi, err := os.Stat(dir); err == nil && fi.IsDir() {
		return dir, nil
	}
	type result struct {
		dir string
		err error
	}
	done := make(chan result, 1)
	go func() {
		d, err := s.materialize(s.ctx, m)
		done <- result{d, err}
	}()
	select {
	case r := <-done:
		return r.dir, r.err
	case <-ctx.Done():
		return "", fmt.Errorf("still fetching: %w", ctx.Err())
	}
}

// materialize fetches the Model's blob and renames a complete snapshot
// directory into place.
func (s *CacheSnapshots) materialize(ctx context.Context, m *v1alpha1.Model) (string, error) {
	token, err := s.token(ctx, m)
	if err != nil {
		return "", err
	}
	res, err := s.fetcher.Fetch(ctx, artifact.ModelRequest(m, token))
	if err != nil {
		return "", err
	}
	dir := s.Dir(res.Digest)
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return "", fmt.Errorf("create snapshot directory: %w", err)
	}
	tmp, err := os.MkdirTemp(filepath.Join(s.cache.Dir(), "tmp"), "snapshot-"+res.Digest+"-")
	if err != nil {
		return "", fmt.Errorf("create snapshot: %w", err)
	}
	defer func() { _ = os.RemoveAll(tmp) }()
	if err := linkOrCopy(res.Path, filepath.Join(tmp, fileName(m.Spec.URI))); err != nil {
		return "", fmt.Errorf("create snapshot: %w", err)
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		return "", fmt.Errorf("create snapshot: %w", err)
	}
	if err := os.Rename(tmp, dir); err != nil {
		if fi, serr := os.Stat(dir); serr == nil && fi.IsDir() {
			return dir, nil // another process laid it out meanwhile
		}
		return "", fmt.Errorf("create snapshot: %w", err)
	}
	return dir, nil
}

// token reads the bearer token of the Model's credentials Secret.
func (s *CacheSnapshots) token(ctx context.Context, m *v1alpha1.Model) (artifact.Token, error) {
	ref := m.Spec.CredentialsSecretRef
	if ref == nil {
		return artifact.Token{}, nil
	}
	secret := &corev1.Secret{}
	key := client.ObjectKey{Namespace: m.Namespace, Name: ref.Name}
	if err := s.reader.Get(ctx, key, secret); err != nil {
		if apierrors.IsForbidden(err) {
			return artifact.Token{}, fmt.Errorf("%w: the node agent may not read secret %s: "+
				"grant it the namespace (Helm value nodeAgent.modelCredentialNamespaces)", ErrCredentialsNotFound, key)
		}
		return artifact.Token{}, fmt.Errorf("%w: get secret %s: %w", ErrCredentialsNotFound, key, err)
	}
	t, err := artifact.TokenFromSecret(secret, ref.Key)
	if err != nil {
		return artifact.Token{}, fmt.Errorf("%w: %w", ErrCredentialsNotFound, err)
	}
	return t, nil
}

// Pin pins the blob of digest for a volume.
func (s *CacheSnapshots) Pin(digest, volumeID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p := s.pins[volumeID]; p != nil {
		if p.Digest() == digest {
			return nil
		}
		return fmt.Errorf("volume %s already pins %s", volumeID, p.Digest())
	}
	p, err := s.cache.Pin(digest)
	if err != nil {
		return err
	}
	s.pins[volumeID] = p
	return nil
}

// Unpin releases a volume's pin.
func (s *CacheSnapshots) Unpin(_, volumeID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.pins[volumeID]
	delete(s.pins, volumeID)
	return p.Release()
}

// Close releases every pin this process holds, as its exit would; the
// volume records stay, so the next start pins again.
func (s *CacheSnapshots) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []error
	for id, p := range s.pins {
		errs = append(errs, p.Release())
		delete(s.pins, id)
	}
	return errors.Join(errs...)
}

// fileName is the base name a single-file Model's file gets in its
// snapshot: the last path element of its URI, without an hf:// revision.
func fileName(uri string) string {
	p := uri
	if rest, ok := strings.CutPrefix(uri, "hf://"); ok {
		if i := strings.LastIndex(rest, "@"); i >= 0 {
			rest = rest[:i]
		}
		p = rest
	} else if u, err := url.Parse(uri); err == nil {
		p = u.Path
	}
	name := path.Base(p)
	if name == "." || name == "/" || name == "" || name == ".." {
		return "model"
	}
	return name
}

// linkOrCopy hard-links src at dst, or copies it where the filesystem
// refuses links; the copy is read-only like the blob.
func linkOrCopy(src, dst string) error {
	if err := os.Link(src, dst); err == nil {
		return nil
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer func() { _ = in.Close() }()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o444)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		_ = out.Close()
		return err
	}
	if err := out.Sync(); err != nil {
		_ = out.Close()
		return err
	}
	return out.Close()
}

var _ Snapshots = (*CacheSnapshots)(nil)
