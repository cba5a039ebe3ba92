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
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"
)

// Who may have a cached blob (docs/security.md, "Model cache"): a blob is
// served to a request only when the request's own source and credential
// have shown they can fetch it. The cache records, per blob, every
// (source, credential identity) that did: by downloading it, by answering a
// HEAD with its sha256 in a digest header, or by delivering it again in a
// verifying download. A credential's identity is the name of the Secret
// that holds it (namespace/name/key), never its value. A blob fetched
// without a credential is served to every request of the same source, and
// to every request at all when the source lies under a public prefix the
// provider configured (WithPublicSources).

// grantsDir is the cache's subdirectory of access records:
// grants/<blob digest>/<sha256 of source and credential>.
const grantsDir = "grants"

// How a grant was earned.
const (
	grantFetched  = "fetched"
	grantHeader   = "header"
	grantDownload = "download"
)

// grant is one access record. Source is redacted (query values replaced):
// it is kept for the public-prefix rule and for people reading the cache;
// the record's file name, a hash of the full source and the credential,
// is what a request is matched by.
type grant struct {
	Source     string `json:"source"`
	Credential string `json:"credential,omitempty"`
	How        string `json:"how"`
}

func (c *Cache) grantsPath(digest string) string { return filepath.Join(c.dir, grantsDir, digest) }

// grantKey names a request's access record: the full source (a signed
// URL's signature included, so another signature is another source) and
// the credential identity.
func grantKey(p prepared) string {
	sum := sha256.Sum256([]byte(p.u.String() + "\x00" + p.credential))
	return hex.EncodeToString(sum[:])
}

// grantable reports whether p can earn a grant: a request that carries a
// token must name its credential, or its grant would read as a fetch
// without one.
func grantable(p prepared) bool { return p.token.IsZero() || p.credential != "" }

// recordGrant writes p's access record for its digest.
func (c *Cache) recordGrant(p prepared, how string) error {
	if !grantable(p) {
		return nil
	}
	dir := c.grantsPath(p.digest)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("record access to %s: %w", p.digest, err)
	}
	b, err := json.Marshal(grant{Source: p.display, Credential: p.credential, How: how})
	if err != nil {
		return err
	}
	if err := writeFileAtomic(filepath.Join(dir, grantKey(p)), b); err != nil {
		return fmt.Errorf("record access to %s: %w", p.digest, err)
	}
	return nil
}

// dropGrants removes the access records of an evicted blob.
func (c *Cache) dropGrants(digest string) error {
	if err := os.RemoveAll(c.grantsPath(digest)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove access records of %s: %w", digest, err)
	}
	return nil
}

// granted reports whether the cache's records let p have its blob: p's own
// record, a record of p's source fetched without a credential, or a
// credential-less record of a public source.
func (c *Cache) granted(p prepared, public publicSources) (bool, error) {
	if !grantable(p) {
		return false, nil
	}
	dir := c.grantsPath(p.digest)
	for _, cred := range []string{p.credential, ""} {
		q := p
		q.credential = cred
		if _, err := os.Stat(filepath.Join(dir, grantKey(q))); err == nil {
			return true, nil
		} else if !errors.Is(err, fs.ErrNotExist) {
			return false, fmt.Errorf("read access records of %s: %w", p.digest, err)
		}
	}
	if len(public) == 0 {
		return false, nil
	}
	des, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read access records of %s: %w", p.digest, err)
	}
	for _, de := range des {
		if strings.HasPrefix(de.Name(), ".") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, de.Name()))
		if err != nil {
			continue
		}
		var g grant
		if json.Unmarshal(b, &g) != nil || g.Credential != "" {
			continue
		}
		if u, err := url.Parse(g.Source); err == nil && public.contains(u) {
			return true, nil
		}
	}
	return false, nil
}

// publicSources are the URL prefixes a provider declared public: anything
// fetched from under them without a credential anyone may fetch.
type publicSources []*url.URL

func parsePublicSources(prefixes []string) (publicSources, error) {
	var out publicSources
	for _, s := range prefixes {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		u, err := url.Parse(s)
		if err != nil || (u.Scheme != SchemeHTTPS && u.Scheme != SchemeHTTP && u.Scheme != SchemeFile) ||
			(u.Scheme != SchemeFile && u.Host == "") || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
			return nil, fmt.Errorf("public source %q is not an http(s) or file URL prefix without credentials, query or fragment", s)
		}
		out = append(out, u)
	}
	return out, nil
}

// contains reports whether u lies under one of the prefixes: the same
// scheme and host, and a path equal to the prefix's or below it at a
// segment boundary.
func (ps publicSources) contains(u *url.URL) bool {
	for _, p := range ps {
		if !strings.EqualFold(p.Scheme, u.Scheme) || !strings.EqualFold(p.Host, u.Host) {
			continue
		}
		dir := strings.TrimSuffix(p.Path, "/")
		if u.Path == dir || strings.HasPrefix(u.Path, dir+"/") {
			return true
		}
	}
	return false
}

// authorize lets p have its cached blob, or returns an *AccessDeniedError.
// Without a record (granted), p's source proves itself: a HEAD with p's
// token whose headers state the blob's sha256, or, where the source states
// no digest, a download of the bytes that hash to it. Either leaves a
// record, so the proof is made once. Errors that say nothing about access
// (the source cannot be reached) are returned as they are, to be retried.
func (f *Fetcher) authorize(ctx context.Context, p prepared) error {
	ok, err := f.cache.granted(p, f.cfg.public)
	if err != nil || ok {
		return err
	}
	log := f.cfg.log.WithValues("digest", p.digest, "source", p.display)
	if p.u.Scheme != SchemeFile {
		res, err := checkSource(ctx, f.cfg.client, p, CheckResult{Size: -1})
		if err != nil {
			return denied(p, err)
		}
		if res.DigestHeader != "" {
			log.Info("Source proved access to a cached artifact", "header", res.DigestHeader)
			return f.cache.recordGrant(p, grantHeader)
		}
	}
	if err := f.proveByDownload(ctx, p); err != nil {
		return denied(p, err)
	}
	log.Info("Source proved access to a cached artifact by delivering it")
	return f.cache.recordGrant(p, grantDownload)
}

// denied wraps a failed proof in an *AccessDeniedError when the source
// answered (an error status, a digest or size that differs), and leaves
// other errors as they are.
func denied(p prepared, err error) error {
	var se *HTTPStatusError
	var sdm *SourceDigestMismatchError
	var dm *DigestMismatchError
	var sm *SizeMismatchError
	var insecure *InsecureTokenError
	switch {
	case errors.As(err, &se) && !se.Transient(),
		errors.As(err, &sdm), errors.As(err, &dm), errors.As(err, &sm), errors.As(err, &insecure),
		errors.Is(err, fs.ErrNotExist), errors.Is(err, fs.ErrPermission):
		return &AccessDeniedError{Source: p.display, Digest: p.digest, Err: err}
	}
	return err
}

// proveByDownload downloads p's bytes into a scratch file, without
// touching the cached blob, and checks their digest and size.
func (f *Fetcher) proveByDownload(ctx context.Context, p prepared) error {
	ctx, cancel := context.WithTimeout(ctx, f.cfg.maxTotal)
	defer cancel()
	file, err := os.CreateTemp(filepath.Join(f.cache.dir, tmpDir), p.digest+".prove-")
	if err != nil {
		return fmt.Errorf("create scratch file: %w", err)
	}
	defer func() {
		_ = file.Close()
		_ = os.Remove(file.Name())
	}()
	dl := &download{file: file, hash: sha256.New(), expected: p.size}
	if p.u.Scheme == SchemeFile {
		err = f.copyFile(ctx, p, dl)
	} else {
		err = f.download(ctx, p, dl)
	}
	if err != nil {
		return err
	}
	if p.size > 0 && dl.n != p.size {
		return &SizeMismatchError{Expected: p.size, Actual: dl.n}
	}
	if got := hex.EncodeToString(dl.hash.Sum(nil)); got != p.digest {
		return &DigestMismatchError{Expected: p.digest, Actual: got}
	}
	return nil
}

// Authorize reports whether req may have its blob from this node's cache,
// making req's source prove itself when no record lets it (see authorize).
// It returns nil when it may, an *AccessDeniedError when the source did not
// prove access, and other errors when the proof could not be made.
func (f *Fetcher) Authorize(ctx context.Context, req Request) error {
	p, err := prepare(req, f.cfg.hfBase)
	if err != nil {
		return fmt.Errorf("authorize: %w", err)
	}
	return f.authorize(ctx, p)
}
