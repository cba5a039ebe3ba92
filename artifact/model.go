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
	"fmt"
	"net"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"

	"github.com/aivm-dev/aivm-operator/api/v1alpha1"
	"github.com/aivm-dev/aivm-operator/internal/modeldigest"
)

// Reasons ErrorReason returns beyond the API's condition reasons.
const (
	// ReasonSizeMismatch: the source's size differs from spec.sizeBytes.
	ReasonSizeMismatch = "SizeMismatch"
	// ReasonFetchFailed: any other failure, such as a full disk.
	ReasonFetchFailed = "FetchFailed"
)

// ModelRequest returns the Request that fetches a Model's weights. token is
// the bearer token from the Model's credentials Secret, or zero.
func ModelRequest(m *v1alpha1.Model, token Token) Request {
	req := Request{Source: m.Spec.URI, Digest: m.Spec.SHA256, Token: token, Credential: ModelCredential(m)}
	if m.Spec.SizeBytes != nil {
		req.Size = *m.Spec.SizeBytes
	}
	return req
}

// ModelSnapshotSpec returns the SnapshotSpec that materializes a Model:
// its file set, or for a single-file Model one file under the base name of
// its uri. token is the bearer token from the Model's credentials Secret, or
// zero. The spec's Digest is the Model's modelDigest.
func ModelSnapshotSpec(m *v1alpha1.Model, token Token) (SnapshotSpec, error) {
	digest, err := modeldigest.Of(&m.Spec)
	if err != nil {
		return SnapshotSpec{}, fmt.Errorf("model %s/%s: %w", m.Namespace, m.Name, err)
	}
	spec := SnapshotSpec{Digest: digest, BaseURI: m.Spec.BaseURI, Token: token, Credential: ModelCredential(m)}
	if len(m.Spec.Files) == 0 {
		req := ModelRequest(m, token)
		size := int64(-1)
		if m.Spec.SizeBytes != nil {
			size = *m.Spec.SizeBytes
		}
		spec.Files = []SnapshotFile{{Path: modeldigest.BaseName(m.Spec.URI), Digest: m.Spec.SHA256, Size: req.Size, ManifestSize: size, URI: m.Spec.URI}}
		return spec, nil
	}
	spec.Files = make([]SnapshotFile, len(m.Spec.Files))
	for i, f := range m.Spec.Files {
		sf := SnapshotFile{Path: f.Path, Digest: f.SHA256, ManifestSize: -1, URI: f.URI}
		if f.SizeBytes != nil {
			sf.Size, sf.ManifestSize = *f.SizeBytes, *f.SizeBytes
		}
		spec.Files[i] = sf
	}
	return spec, nil
}

// ModelCredential names a Model's credential for the cache's access
// records: its credentials Secret as namespace/name/key, or "" when it
// names none. It never holds the token.
func ModelCredential(m *v1alpha1.Model) string {
	ref := m.Spec.CredentialsSecretRef
	if ref == nil {
		return ""
	}
	key := ref.Key
	if key == "" {
		key = DefaultTokenKey
	}
	return m.Namespace + "/" + ref.Name + "/" + key
}

// DefaultTokenKey is the Secret key read when a credentials reference names none.
const DefaultTokenKey = "token"

// TokenFromSecret reads a bearer token from a Secret's key (DefaultTokenKey
// when key is empty). Surrounding whitespace, such as the trailing newline of
// a Secret made from a file, is trimmed. Errors name the Secret and key,
// never the value.
func TokenFromSecret(secret *corev1.Secret, key string) (Token, error) {
	if key == "" {
		key = DefaultTokenKey
	}
	v, ok := secret.Data[key]
	if !ok {
		if sv, sok := secret.StringData[key]; sok {
			v, ok = []byte(sv), true
		}
	}
	if !ok {
		return Token{}, fmt.Errorf("secret %s/%s has no key %q", secret.Namespace, secret.Name, key)
	}
	t := strings.TrimSpace(string(v))
	if t == "" {
		return Token{}, fmt.Errorf("secret %s/%s key %q is empty", secret.Namespace, secret.Name, key)
	}
	return NewToken(t), nil
}

// PrefetchSelects reports whether a Model asks to be prefetched on a node
// with the given labels. A Model without spec.prefetch selects no node; an
// empty selector selects every node.
func PrefetchSelects(m *v1alpha1.Model, nodeLabels map[string]string) (bool, error) {
	if m.Spec.Prefetch == nil {
		return false, nil
	}
	sel, err := metav1.LabelSelectorAsSelector(&m.Spec.Prefetch.NodeSelector)
	if err != nil {
		return false, fmt.Errorf("model %s: prefetch node selector: %w", types.NamespacedName{Namespace: m.Namespace, Name: m.Name}, err)
	}
	return sel.Matches(labels.Set(nodeLabels)), nil
}

// TokenFunc returns the bearer token of a Model's credentials Secret; it is
// only called for Models that name one.
type TokenFunc func(ctx context.Context, m *v1alpha1.Model) (Token, error)

// PrefetchOutcome is what prefetching one Model did.
type PrefetchOutcome struct {
	// Model is the Model's namespace and name.
	Model types.NamespacedName
	// Digest is the Model's sha256.
	Digest string
	// Result is the fetched blob when Err is nil.
	Result Result
	// Err is why the Model could not be fetched; ErrorReason names its cause.
	Err error
}

// Prefetch fetches, one after another, every Model whose
// spec.prefetch.nodeSelector matches nodeLabels, and returns an outcome for
// each such Model. Models already cached cost a stat each. It suits one-shot
// callers; the node agent's cache manager (nodeagent.CacheManager) instead
// fetches on goroutines of its own with PrefetchSelects, ModelRequest and
// ErrorReason, so downloads never delay its polls.
func Prefetch(ctx context.Context, f *Fetcher, nodeLabels map[string]string, models []v1alpha1.Model, tokens TokenFunc) []PrefetchOutcome {
	var out []PrefetchOutcome
	for i := range models {
		m := &models[i]
		o := PrefetchOutcome{Model: types.NamespacedName{Namespace: m.Namespace, Name: m.Name}, Digest: m.Spec.SHA256}
		ok, err := PrefetchSelects(m, nodeLabels)
		if err != nil {
			o.Err = err
			out = append(out, o)
			continue
		}
		if !ok {
			continue
		}
		var token Token
		if m.Spec.CredentialsSecretRef != nil {
			if tokens == nil {
				o.Err = fmt.Errorf("model %s names credentials but no token source is configured", o.Model)
				out = append(out, o)
				continue
			}
			if token, err = tokens(ctx, m); err != nil {
				o.Err = fmt.Errorf("model %s credentials: %w", o.Model, err)
				out = append(out, o)
				continue
			}
		}
		o.Result, o.Err = f.Fetch(ctx, ModelRequest(m, token))
		out = append(out, o)
		if ctx.Err() != nil {
			break
		}
	}
	return out
}

// ErrorReason names the cause of a fetch or check error as a PascalCase
// reason for conditions and GPUNode status.modelCacheErrors:
// AccessNotProven, SourceDigestMismatch, DigestMismatch, SizeMismatch,
// SourceUnreachable, or FetchFailed.
func ErrorReason(err error) string {
	var dm *DigestMismatchError
	var sm *SizeMismatchError
	var se *HTTPStatusError
	var ne net.Error
	var re *retryable
	var ad *AccessDeniedError
	var sdm *SourceDigestMismatchError
	switch {
	case err == nil:
		return ""
	case errors.As(err, &ad):
		return v1alpha1.ReasonAccessNotProven
	case errors.As(err, &sdm):
		return v1alpha1.ReasonSourceDigestMismatch
	case errors.As(err, &dm):
		return v1alpha1.ReasonDigestMismatch
	case errors.As(err, &sm):
		return ReasonSizeMismatch
	case errors.As(err, &se), errors.As(err, &ne), errors.As(err, &re):
		return v1alpha1.ReasonSourceUnreachable
	default:
		return ReasonFetchFailed
	}
}

// FileRequest is the Request that fetches one file of a Model.
type FileRequest struct {
	// Path is the file's path in the Model's directory.
	Path string
	// Request fetches the file.
	Request Request
}

// ModelFileRequests returns one Request per file of a Model, in spec
// order: for a single-file Model its uri under the file's base name, for a
// file set each file's own uri or its path under baseURI. An hf:// base
// becomes the single-file hf:// form, so the fetcher or checker resolves it
// against the Hugging Face endpoint it is configured with. token is the
// bearer token from the Model's credentials Secret, or zero.
func ModelFileRequests(m *v1alpha1.Model, token Token) ([]FileRequest, error) {
	if len(m.Spec.Files) == 0 {
		return []FileRequest{{Path: modeldigest.BaseName(m.Spec.URI), Request: ModelRequest(m, token)}}, nil
	}
	out := make([]FileRequest, len(m.Spec.Files))
	for i, f := range m.Spec.Files {
		src := f.URI
		if src == "" {
			var err error
			if src, err = fileUnderBase(m.Spec.BaseURI, f.Path); err != nil {
				return nil, &FileError{Path: f.Path, Err: err}
			}
		} else if _, err := ResolveSource(src, ""); err != nil {
			return nil, &FileError{Path: f.Path, Err: err}
		}
		req := Request{Source: src, Digest: f.SHA256, Token: token, Credential: ModelCredential(m)}
		if f.SizeBytes != nil {
			req.Size = *f.SizeBytes
		}
		out[i] = FileRequest{Path: f.Path, Request: req}
	}
	return out, nil
}

// fileUnderBase returns the source of path under a file set's base uri.
func fileUnderBase(base, p string) (string, error) {
	if base == "" {
		return "", errors.New("no uri and no base uri")
	}
	if rest, ok := strings.CutPrefix(base, "hf://"); ok {
		// Validated by ResolveBase; the hub endpoint is the fetcher's.
		if _, err := ResolveBase(base, p, ""); err != nil {
			return "", err
		}
		repo, rev, _ := strings.Cut(rest, "@")
		return "hf://" + repo + "/" + p + "@" + rev, nil
	}
	u, err := ResolveBase(base, p, "")
	if err != nil {
		return "", err
	}
	return u.String(), nil
}

// ModelSourceKey names where a Model's bytes come from and what they must
// be: every file's path, source, digest and size, and the credentials
// reference. Two Models with one key ask for the same fetch, so a
// remembered check or failure of one applies to the other; a Model edited
// to ask for something else gets a new key.
func ModelSourceKey(m *v1alpha1.Model) string {
	var b strings.Builder
	fmt.Fprintf(&b, "uri=%s\x00sha256=%s", m.Spec.URI, m.Spec.SHA256)
	if m.Spec.SizeBytes != nil {
		fmt.Fprintf(&b, "\x00size=%d", *m.Spec.SizeBytes)
	}
	fmt.Fprintf(&b, "\x00base=%s", m.Spec.BaseURI)
	for _, f := range m.Spec.Files {
		fmt.Fprintf(&b, "\x00file=%s\x00%s\x00%s", f.Path, f.SHA256, f.URI)
		if f.SizeBytes != nil {
			fmt.Fprintf(&b, "\x00size=%d", *f.SizeBytes)
		}
	}
	if ref := m.Spec.CredentialsSecretRef; ref != nil {
		fmt.Fprintf(&b, "\x00cred=%s/%s/%s", m.Namespace, ref.Name, ref.Key)
	}
	return b.String()
}
