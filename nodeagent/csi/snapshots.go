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
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/aivm-dev/aivm-operator/api/v1alpha1"
	"github.com/aivm-dev/aivm-operator/artifact"
	"github.com/aivm-dev/aivm-operator/internal/modeldigest"
)

// CacheSnapshots implements Snapshots over the node's artifact cache: the
// snapshot <cache>/snapshots/<modelDigest>/ holds every file of the Model
// (a single-file Model's file under its base name) as a hard link to its
// verified blob (artifact.Fetcher.EnsureSnapshot). A volume's pin is the
// cache's on-disk snapshot pin (artifact.Cache.PinSnapshot) with the volume
// ID as holder, so it outlives the agent's process.
type CacheSnapshots struct {
	fetcher *artifact.Fetcher
	cache   *artifact.Cache
	reader  client.Reader
	// ctx bounds fetches, which outlive the call that started them: the
	// kubelet gives up on a call after two minutes and retries, and the
	// retry joins the same download.
	ctx context.Context
}

// NewCacheSnapshots returns snapshots fetched by fetcher; reader reads Models
// and their credentials Secrets (straight from the API server, so the
// agent caches no Secret). Fetches stop when ctx is done.
func NewCacheSnapshots(ctx context.Context, fetcher *artifact.Fetcher, reader client.Reader) *CacheSnapshots {
	return &CacheSnapshots{fetcher: fetcher, cache: fetcher.Cache(), reader: reader, ctx: ctx}
}

// Dir returns where the snapshot of digest lives.
func (s *CacheSnapshots) Dir(digest string) string { return s.cache.SnapshotPath(digest) }

// Ensure fetches the Model's files with its credentials where the cache
// lacks them and materializes its snapshot. Files the cache holds already
// are served only when this Model's source and credentials fetched them
// here or prove access now; otherwise the error wraps an
// *artifact.AccessDeniedError.
func (s *CacheSnapshots) Ensure(ctx context.Context, ref ModelRef) (string, error) {
	m := &v1alpha1.Model{}
	if err := s.reader.Get(ctx, client.ObjectKey{Namespace: ref.Namespace, Name: ref.Name}, m); err != nil {
		if apierrors.IsNotFound(err) {
			return "", fmt.Errorf("%w: %w", ErrModelNotFound, err)
		}
		return "", fmt.Errorf("get model: %w", err)
	}
	got, err := modeldigest.Of(&m.Spec)
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrDigestChanged, err)
	}
	if got != ref.Digest {
		return "", fmt.Errorf("%w: the Model's digest is now %s", ErrDigestChanged, got)
	}
	// No shortcut for a snapshot already cached: EnsureSnapshot serves it
	// only once this Model's source and credentials have shown they can
	// fetch its files (docs/security.md, "Model cache").
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

// materialize fetches the Model's files and renames a complete snapshot
// directory into place.
func (s *CacheSnapshots) materialize(ctx context.Context, m *v1alpha1.Model) (string, error) {
	token, err := s.token(ctx, m)
	if err != nil {
		return "", err
	}
	spec, err := artifact.ModelSnapshotSpec(m, token)
	if err != nil {
		return "", err
	}
	return s.fetcher.EnsureSnapshot(ctx, spec)
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

// Pin records the volume as a holder of the snapshot of digest, on disk.
func (s *CacheSnapshots) Pin(digest, volumeID string) error {
	return s.cache.PinSnapshot(digest, volumeID)
}

// Unpin drops the volume's pin.
func (s *CacheSnapshots) Unpin(digest, volumeID string) error {
	return s.cache.UnpinSnapshot(digest, volumeID)
}

// Close releases nothing: the pins are on disk and belong to the volumes
// still published, which the next start reconciles against live mounts.
func (s *CacheSnapshots) Close() error { return nil }

var _ Snapshots = (*CacheSnapshots)(nil)
