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
	"encoding/base64"
	"encoding/hex"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/aivm-dev/aivm-operator/api/v1alpha1"
	"github.com/aivm-dev/aivm-operator/artifact/artifacttest"
)

// gatedFiles is a small file set: what tenant A fetches from a gated hub.
func gatedFiles() (map[string][]byte, []v1alpha1.ModelFile) {
	w, wD := blob(70_000, 11)
	cfg, cfgD := blob(200, 12)
	return map[string][]byte{"model.safetensors": w, "config.json": cfg},
		[]v1alpha1.ModelFile{{Path: "model.safetensors", SHA256: wD}, {Path: "config.json", SHA256: cfgD}}
}

func tenantModel(ns, base, secret string, files []v1alpha1.ModelFile) *v1alpha1.Model {
	m := &v1alpha1.Model{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "llm"},
		Spec:       v1alpha1.ModelSpec{BaseURI: base, Files: files, GPUMemory: resource.MustParse("1Gi")},
	}
	if secret != "" {
		m.Spec.CredentialsSecretRef = &v1alpha1.SecretKeyReference{Name: secret, Key: "token"}
	}
	return m
}

// cacheA returns a fetcher whose cache holds tenant A's snapshot, fetched
// from the gated hub with A's token.
func cacheA(t *testing.T, hub *artifacttest.Hub, files []v1alpha1.ModelFile, opts ...Option) *Fetcher {
	t.Helper()
	f := newTestFetcher(t, append([]Option{WithHTTPClient(hub.Client())}, opts...)...)
	if _, err := ensureModel(t, f, tenantModel("tenant-a", hub.BaseURI(), "hf", files), NewToken("tok-a")); err != nil {
		t.Fatalf("tenant A's snapshot: %v", err)
	}
	hub.Reset()
	return f
}

func TestCachedBytesGoOnlyToThoseWhoProveAccess(t *testing.T) {
	data, files := gatedFiles()
	garbage := map[string][]byte{"model.safetensors": []byte("not the weights"), "config.json": []byte("{}")}

	t.Run("a foreign source that answers HEAD without a digest and serves other bytes is refused", func(t *testing.T) {
		hub := artifacttest.NewHub(t, data, "tok-a")
		f := cacheA(t, hub, files)
		foreign := artifacttest.NewPlain(t, garbage)
		_, err := ensureModel(t, f, tenantModel("tenant-b", foreign.BaseURI(), "", files), Token{})
		var ad *AccessDeniedError
		if !errors.As(err, &ad) {
			t.Fatalf("EnsureSnapshot = %v, want an *AccessDeniedError", err)
		}
		var dm *DigestMismatchError
		if !errors.As(err, &dm) {
			t.Errorf("cause = %v, want the verifying download's *DigestMismatchError", err)
		}
		if r := ErrorReason(err); r != v1alpha1.ReasonAccessNotProven {
			t.Errorf("ErrorReason = %q, want %q", r, v1alpha1.ReasonAccessNotProven)
		}
		for _, leak := range []string{"tenant-a", hub.URL, "hf"} {
			if strings.Contains(err.Error(), leak) {
				t.Errorf("the refusal names %q, which is tenant A's: %v", leak, err)
			}
		}
		if got := len(foreign.Requests(http.MethodGet)); got == 0 {
			t.Error("the foreign source was never asked for the bytes")
		}
		if got := hub.Requests(""); len(got) != 0 {
			t.Errorf("tenant B's refusal contacted tenant A's hub: %v", got)
		}
		assertNoPartials(t, f.Cache())
	})

	t.Run("a source without a digest header that delivers the bytes proves access once", func(t *testing.T) {
		hub := artifacttest.NewHub(t, data, "tok-a")
		f := cacheA(t, hub, files)
		mirror := artifacttest.NewPlain(t, data)
		m := tenantModel("tenant-b", mirror.BaseURI(), "", files)
		if _, err := ensureModel(t, f, m, Token{}); err != nil {
			t.Fatalf("EnsureSnapshot: %v", err)
		}
		if got := len(mirror.Requests(http.MethodGet)); got != len(files) {
			t.Errorf("mirror GETs = %d, want one verifying download per file (%d)", got, len(files))
		}
		mirror.Reset()
		if _, err := ensureModel(t, f, m, Token{}); err != nil {
			t.Fatalf("EnsureSnapshot again: %v", err)
		}
		if got := mirror.Requests(""); len(got) != 0 {
			t.Errorf("a proved source was asked again: %v", got)
		}
	})

	t.Run("the hub states the digest to a token it accepts: a HEAD proves access", func(t *testing.T) {
		hub := artifacttest.NewHub(t, data, "tok-a", "tok-b")
		f := cacheA(t, hub, files)
		if _, err := ensureModel(t, f, tenantModel("tenant-b", hub.BaseURI(), "hf-b", files), NewToken("tok-b")); err != nil {
			t.Fatalf("EnsureSnapshot: %v", err)
		}
		if got := hub.Requests(http.MethodGet); len(got) != 0 {
			t.Errorf("the hub was asked for bytes; a HEAD stating the digest suffices: %v", got)
		}
		heads := hub.Requests(http.MethodHead)
		if len(heads) == 0 {
			t.Fatal("no HEAD reached the hub")
		}
		for _, h := range heads {
			if strings.HasPrefix(h.Path, "/cdn/") {
				continue
			}
			if h.Auth != "Bearer tok-b" {
				t.Errorf("HEAD %s carried %q, want tenant B's own token", h.Path, h.Auth)
			}
		}
	})

	t.Run("the hub refuses a token it does not accept", func(t *testing.T) {
		hub := artifacttest.NewHub(t, data, "tok-a")
		f := cacheA(t, hub, files)
		_, err := ensureModel(t, f, tenantModel("tenant-b", hub.BaseURI(), "hf-b", files), NewToken("tok-b"))
		var ad *AccessDeniedError
		var se *HTTPStatusError
		if !errors.As(err, &ad) || !errors.As(err, &se) || se.StatusCode != http.StatusForbidden {
			t.Fatalf("EnsureSnapshot = %v, want an *AccessDeniedError for a 403", err)
		}
		hub.Allow("tok-b") // B accepts the licence: access at once
		if _, err := ensureModel(t, f, tenantModel("tenant-b", hub.BaseURI(), "hf-b", files), NewToken("tok-b")); err != nil {
			t.Fatalf("EnsureSnapshot once the hub accepts B's token: %v", err)
		}
	})

	t.Run("the same source without a credential is refused", func(t *testing.T) {
		hub := artifacttest.NewHub(t, data, "tok-a")
		f := cacheA(t, hub, files)
		_, err := ensureModel(t, f, tenantModel("tenant-b", hub.BaseURI(), "", files), Token{})
		var ad *AccessDeniedError
		if !errors.As(err, &ad) {
			t.Fatalf("EnsureSnapshot = %v, want an *AccessDeniedError", err)
		}
	})

	t.Run("another Secret of the same source proves itself", func(t *testing.T) {
		hub := artifacttest.NewHub(t, data, "tok-a")
		f := cacheA(t, hub, files)
		// Same namespace, same source, another Secret holding a token the
		// hub does not accept: the record of tenant-a/hf does not cover it.
		m := tenantModel("tenant-a", hub.BaseURI(), "other", files)
		m.Name = "other"
		_, err := ensureModel(t, f, m, NewToken("tok-x"))
		var ad *AccessDeniedError
		if !errors.As(err, &ad) {
			t.Fatalf("EnsureSnapshot = %v, want an *AccessDeniedError", err)
		}
	})

	t.Run("the Model that fetched the bytes is served without asking the source", func(t *testing.T) {
		hub := artifacttest.NewHub(t, data, "tok-a")
		f := cacheA(t, hub, files)
		if _, err := ensureModel(t, f, tenantModel("tenant-a", hub.BaseURI(), "hf", files), NewToken("tok-a")); err != nil {
			t.Fatalf("EnsureSnapshot: %v", err)
		}
		if got := hub.Requests(""); len(got) != 0 {
			t.Errorf("the hub was asked again: %v", got)
		}
	})
}

func TestPublicSources(t *testing.T) {
	data, files := gatedFiles()
	mirror := artifacttest.NewPlain(t, data)
	other := artifacttest.NewPlain(t, map[string][]byte{})
	for _, tc := range []struct {
		name   string
		public []string
		want   bool // tenant B, naming another source, gets the bytes
	}{
		{"not declared public", nil, false},
		{"declared public", []string{mirror.URL + "/models"}, true},
		{"another prefix on the host", []string{mirror.URL + "/mod"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newTestFetcher(t, WithPublicSources(tc.public...))
			if _, err := ensureModel(t, f, tenantModel("tenant-a", mirror.BaseURI(), "", files), Token{}); err != nil {
				t.Fatalf("tenant A's snapshot: %v", err)
			}
			// Another tenant of the same source shares the credential-less
			// fetch whatever the prefixes say.
			mirror.Reset()
			if _, err := ensureModel(t, f, tenantModel("tenant-c", mirror.BaseURI(), "", files), Token{}); err != nil {
				t.Errorf("tenant C of the same source: %v", err)
			}
			if got := mirror.Requests(""); len(got) != 0 {
				t.Errorf("tenant C of the same source made requests: %v", got)
			}
			_, err := ensureModel(t, f, tenantModel("tenant-b", other.BaseURI(), "", files), Token{})
			if got := err == nil; got != tc.want {
				t.Errorf("tenant B of another source served = %v (%v), want %v", got, err, tc.want)
			}
		})
	}
	if _, err := NewChecker(WithPublicSources("https://user:pw@example.com/")); err == nil {
		t.Error("a public prefix with credentials was accepted")
	}
}

func TestCheckReadsDigestHeaders(t *testing.T) {
	data, digest := blob(1000, 21)
	other := strings.Repeat("ab", 32)
	raw, _ := hex.DecodeString(digest)
	rawOther, _ := hex.DecodeString(other)
	b64, b64Other := base64.StdEncoding.EncodeToString(raw), base64.StdEncoding.EncodeToString(rawOther)
	for _, tc := range []struct {
		name       string
		header     http.Header
		wantHeader string
		mismatch   bool
	}{
		{"no digest", http.Header{}, "", false},
		{"X-Linked-Etag", http.Header{"X-Linked-Etag": {`"` + digest + `"`}}, HeaderLinkedETag, false},
		{"X-Linked-Etag of other bytes", http.Header{"X-Linked-Etag": {`"` + other + `"`}}, "", true},
		{"Repr-Digest", http.Header{"Repr-Digest": {"sha-512=:AAAA:, sha-256=:" + b64 + ":"}}, HeaderReprDigest, false},
		{"Repr-Digest of other bytes", http.Header{"Repr-Digest": {"sha-256=:" + b64Other + ":"}}, "", true},
		{"Digest", http.Header{"Digest": {"MD5=AAAA,SHA-256=" + b64}}, HeaderDigest, false},
		{"Digest of other bytes", http.Header{"Digest": {"SHA-256=" + b64Other}}, "", true},
		{"ETag that is the sha256", http.Header{"Etag": {`"` + digest + `"`}}, HeaderETag, false},
		// An ETag is opaque: one that is no digest of these bytes says nothing.
		{"ETag of other bytes", http.Header{"Etag": {`"` + other + `"`}}, "", false},
		{"weak ETag", http.Header{"Etag": {`W/"` + digest + `"`}}, "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := newServer(t, func(_ int32, w http.ResponseWriter, _ *http.Request) {
				for k, v := range tc.header {
					w.Header()[k] = v
				}
				w.Header().Set("Content-Length", "1000")
				_, _ = w.Write(data[:0])
			})
			c, err := NewChecker()
			if err != nil {
				t.Fatal(err)
			}
			res, err := c.Check(context.Background(), Request{Source: srv.URL + "/m.bin", Digest: digest})
			var sdm *SourceDigestMismatchError
			if got := errors.As(err, &sdm); got != tc.mismatch {
				t.Fatalf("Check = %v, want a *SourceDigestMismatchError: %v", err, tc.mismatch)
			}
			if tc.mismatch {
				if sdm.Stated != other || sdm.Expected != digest {
					t.Errorf("mismatch = %+v", sdm)
				}
				if r := ErrorReason(err); r != v1alpha1.ReasonSourceDigestMismatch {
					t.Errorf("ErrorReason = %q", r)
				}
				return
			}
			if res.DigestHeader != tc.wantHeader {
				t.Errorf("DigestHeader = %q, want %q", res.DigestHeader, tc.wantHeader)
			}
		})
	}
}

func TestCheckReadsTheHubsRedirect(t *testing.T) {
	data, files := gatedFiles()
	hub := artifacttest.NewHub(t, data, "tok-a")
	c, err := NewChecker(WithHTTPClient(hub.Client()))
	if err != nil {
		t.Fatal(err)
	}
	req := Request{Source: hub.BaseURI() + "model.safetensors", Digest: files[0].SHA256, Token: NewToken("tok-a")}
	res, err := c.Check(context.Background(), req)
	if err != nil || res.DigestHeader != HeaderLinkedETag {
		t.Fatalf("Check = %+v, %v; want the digest stated in X-Linked-Etag", res, err)
	}
	req.Digest = files[1].SHA256 // another file's digest under this path
	_, err = c.Check(context.Background(), req)
	var sdm *SourceDigestMismatchError
	if !errors.As(err, &sdm) || sdm.Header != HeaderLinkedETag {
		t.Fatalf("Check = %v, want a *SourceDigestMismatchError from X-Linked-Etag", err)
	}
}

func TestEvictionDropsAccessRecords(t *testing.T) {
	data, files := gatedFiles()
	mirror := artifacttest.NewPlain(t, data)
	f := newTestFetcher(t)
	m := tenantModel("tenant-a", mirror.BaseURI(), "", files[:1])
	m.Spec.BaseURI, m.Spec.Files = "", nil
	m.Spec.URI, m.Spec.SHA256 = mirror.BaseURI()+"model.safetensors", files[0].SHA256
	if _, err := f.Fetch(context.Background(), ModelRequest(m, Token{})); err != nil {
		t.Fatal(err)
	}
	c := f.Cache()
	des, err := os.ReadDir(c.grantsPath(files[0].SHA256))
	if err != nil || len(des) != 1 {
		t.Fatalf("access records after a fetch: %v, %v; want one", des, err)
	}
	b, err := os.ReadFile(filepath.Join(c.grantsPath(files[0].SHA256), des[0].Name()))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(`{"source":"`+mirror.BaseURI()+`model.safetensors","how":"fetched"}`, string(b)); diff != "" {
		t.Errorf("access record (-want +got):\n%s", diff)
	}
	if _, err := c.GC(context.Background(), GCOptions{MaxBytes: 0}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(c.grantsPath(files[0].SHA256)); !os.IsNotExist(err) {
		t.Errorf("access records of an evicted blob: %v; want none", err)
	}
}
