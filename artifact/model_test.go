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
	"net/http"
	"strings"
	"testing"

	"github.com/aivm-dev/aivm-operator/internal/testutil"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/aivm-dev/aivm-operator/api/v1alpha1"
)

func TestPrefetch(t *testing.T) {
	const token = "tok_prefetch"
	good, goodDigest := blob(3000, 60)
	private, privateDigest := blob(2000, 61)
	_, badDigest := blob(10, 62)
	srv := newTLSServer(t, func(n int32, w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/good":
			serveData(good)(n, w, r)
		case "/private":
			if r.Header.Get("Authorization") != "Bearer "+token {
				http.Error(w, "no", http.StatusUnauthorized)
				return
			}
			serveData(private)(n, w, r)
		default:
			serveData(good)(n, w, r) // wrong bytes for badDigest
		}
	})
	gpuNodes := &metav1.LabelSelector{MatchLabels: map[string]string{"aivm.dev/gpu.product": "H100"}}
	models := []v1alpha1.Model{
		*testutil.MakeModel("ns", "good", srv.URL+"/good", goodDigest).PrefetchSelector(gpuNodes).Obj(),
		*testutil.MakeModel("ns", "not-prefetched", srv.URL+"/good", goodDigest).PrefetchSelector(nil).Obj(),
		*testutil.MakeModel("ns", "other-nodes", srv.URL+"/other", badDigest).PrefetchSelector(&metav1.LabelSelector{MatchLabels: map[string]string{"pool": "b"}}).Obj(),
		*testutil.MakeModel("ns", "tampered", srv.URL+"/tampered", badDigest).PrefetchSelector(&metav1.LabelSelector{}).Obj(),
		*testutil.MakeModel("ns", "private", srv.URL+"/private", privateDigest).PrefetchSelector(gpuNodes).Obj(),
		*testutil.MakeModel("ns", "bad-selector", srv.URL+"/good", goodDigest).PrefetchSelector(&metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "k", Operator: "Bogus"}}}).Obj(),
	}
	models[4].Spec.CredentialsSecretRef = &v1alpha1.SecretKeyReference{Name: "hf", Key: "token"}
	tokens := func(_ context.Context, m *v1alpha1.Model) (Token, error) {
		if m.Spec.CredentialsSecretRef.Name != "hf" {
			return Token{}, errors.New("unknown secret")
		}
		return NewToken(token), nil
	}

	f := newTestFetcher(t, WithHTTPClient(srv.Client()))
	out := Prefetch(context.Background(), f, map[string]string{"aivm.dev/gpu.product": "H100"}, models, tokens)
	got := map[string]PrefetchOutcome{}
	for _, o := range out {
		got[o.Model.Name] = o
	}
	if len(out) != 4 {
		t.Errorf("outcomes for %d models, want 4: %+v", len(out), out)
	}
	if o := got["good"]; o.Err != nil || !o.Result.Downloaded {
		t.Errorf("good: %+v", o)
	}
	if o := got["private"]; o.Err != nil {
		t.Errorf("private: %v", o.Err)
	}
	if o := got["tampered"]; ErrorReason(o.Err) != v1alpha1.ReasonDigestMismatch {
		t.Errorf("tampered: reason %q for %v", ErrorReason(o.Err), o.Err)
	}
	if o := got["bad-selector"]; o.Err == nil || !strings.Contains(o.Err.Error(), "prefetch node selector") {
		t.Errorf("bad selector: %v", o.Err)
	}
	for _, name := range []string{"not-prefetched", "other-nodes"} {
		if _, ok := got[name]; ok {
			t.Errorf("%s was prefetched", name)
		}
	}
	assertCached(t, f.Cache(), goodDigest, good)
	assertCached(t, f.Cache(), privateDigest, private)

	// Without a token source, a model naming credentials fails clearly.
	out = Prefetch(context.Background(), newTestFetcher(t, WithHTTPClient(srv.Client())), map[string]string{"aivm.dev/gpu.product": "H100"}, models[4:5], nil)
	if len(out) != 1 || out[0].Err == nil || !strings.Contains(out[0].Err.Error(), "no token source") {
		t.Errorf("no token source: %+v", out)
	}
}

func TestErrorReason(t *testing.T) {
	tests := map[string]struct {
		err  error
		want string
	}{
		"nil":             {nil, ""},
		"digest":          {errors.Join(errors.New("x"), &DigestMismatchError{}), v1alpha1.ReasonDigestMismatch},
		"size":            {&SizeMismatchError{}, ReasonSizeMismatch},
		"status":          {&HTTPStatusError{StatusCode: 404}, v1alpha1.ReasonSourceUnreachable},
		"network":         {&retryable{errors.New("reset")}, v1alpha1.ReasonSourceUnreachable},
		"disk":            {&writeError{errors.New("no space")}, ReasonFetchFailed},
		"cleartext token": {&InsecureTokenError{URL: "http://h/m"}, ReasonFetchFailed},
	}
	for name, tt := range tests {
		if got := ErrorReason(tt.err); got != tt.want {
			t.Errorf("%s: ErrorReason = %q, want %q", name, got, tt.want)
		}
	}
}

func TestTokenFromSecret(t *testing.T) {
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "hf"},
		Data: map[string][]byte{"token": []byte("abc\n"), "blank": []byte(" \n"), "other": []byte("xyz")}}
	tok, err := TokenFromSecret(s, "")
	if err != nil || tok.bearer() != "Bearer abc" {
		t.Errorf("default key: %v, %v", tok, err)
	}
	if tok, err := TokenFromSecret(s, "other"); err != nil || tok.bearer() != "Bearer xyz" {
		t.Errorf("other key: %v", err)
	}
	if _, err := TokenFromSecret(s, "missing"); err == nil || !strings.Contains(err.Error(), `secret ns/hf has no key "missing"`) {
		t.Errorf("missing key: %v", err)
	}
	if _, err := TokenFromSecret(s, "blank"); err == nil || !strings.Contains(err.Error(), "is empty") {
		t.Errorf("blank value: %v", err)
	}
}

// TestModelFileRequests: each file's source is its own uri or its path under
// the base; an hf:// base becomes the single-file hf:// form, which the
// fetcher resolves against its hub endpoint; a file with neither is refused
// by path.
func TestModelFileRequests(t *testing.T) {
	d := strings.Repeat("ab", 32)
	size := int64(5)
	m := v1alpha1.Model{Spec: v1alpha1.ModelSpec{BaseURI: "hf://acme/tiny@rev/1", Files: []v1alpha1.ModelFile{
		{Path: "tokenizer/tokenizer.json", SHA256: d, SizeBytes: &size},
		{Path: "model.safetensors", SHA256: d, URI: "https://cdn.example.com/w.safetensors"},
	}}}
	reqs, err := ModelFileRequests(&m, NewToken("secret"))
	if err != nil {
		t.Fatal(err)
	}
	want := []FileRequest{
		{Path: "tokenizer/tokenizer.json", Request: Request{Source: "hf://acme/tiny/tokenizer/tokenizer.json@rev/1", Digest: d, Size: 5}},
		{Path: "model.safetensors", Request: Request{Source: "https://cdn.example.com/w.safetensors", Digest: d}},
	}
	for i := range want {
		got := reqs[i]
		if got.Path != want[i].Path || got.Request.Source != want[i].Request.Source || got.Request.Digest != d ||
			got.Request.Size != want[i].Request.Size || got.Request.Token.IsZero() {
			t.Errorf("request %d = %+v, want %+v with the token", i, got, want[i])
		}
	}
	// The single-file form resolves where the snapshot's base resolution does.
	u, err := ResolveSource(reqs[0].Request.Source, "https://hub.example.com")
	w, werr := ResolveBase(m.Spec.BaseURI, "tokenizer/tokenizer.json", "https://hub.example.com")
	if err != nil || werr != nil || u.String() != w.String() || !strings.HasPrefix(u.String(), "https://hub.example.com/acme/tiny/resolve/") {
		t.Errorf("hf file resolves to %v (%v), the base to %v (%v)", u, err, w, werr)
	}

	base := v1alpha1.Model{Spec: v1alpha1.ModelSpec{BaseURI: "https://models.example.com/gpt2", Files: []v1alpha1.ModelFile{{Path: "a b.json", SHA256: d}}}}
	if reqs, err := ModelFileRequests(&base, Token{}); err != nil || reqs[0].Request.Source != "https://models.example.com/gpt2/a%20b.json" {
		t.Errorf("https base: %+v, %v", reqs, err)
	}

	noBase := v1alpha1.Model{Spec: v1alpha1.ModelSpec{Files: []v1alpha1.ModelFile{{Path: "config.json", SHA256: d}}}}
	var fe *FileError
	if _, err := ModelFileRequests(&noBase, Token{}); !errors.As(err, &fe) || fe.Path != "config.json" {
		t.Errorf("file without a source: %v, want a FileError naming config.json", err)
	}
}

// TestModelSourceKey: the key changes with anything that changes the fetch,
// and not with fields that do not.
func TestModelSourceKey(t *testing.T) {
	d := strings.Repeat("ab", 32)
	base := func() *v1alpha1.Model {
		return &v1alpha1.Model{Spec: v1alpha1.ModelSpec{BaseURI: "https://h/", Files: []v1alpha1.ModelFile{{Path: "a", SHA256: d}}}}
	}
	k := ModelSourceKey(base())
	same := base()
	same.Spec.CachePolicy = v1alpha1.CachePolicyPinned
	if ModelSourceKey(same) != k {
		t.Error("cachePolicy changed the source key")
	}
	for name, edit := range map[string]func(*v1alpha1.Model){
		"base":        func(m *v1alpha1.Model) { m.Spec.BaseURI = "https://mirror/" },
		"digest":      func(m *v1alpha1.Model) { m.Spec.Files[0].SHA256 = strings.Repeat("cd", 32) },
		"path":        func(m *v1alpha1.Model) { m.Spec.Files[0].Path = "b" },
		"uri":         func(m *v1alpha1.Model) { m.Spec.Files[0].URI = "https://other/a" },
		"credentials": func(m *v1alpha1.Model) { m.Spec.CredentialsSecretRef = &v1alpha1.SecretKeyReference{Name: "s"} },
	} {
		m := base()
		edit(m)
		if ModelSourceKey(m) == k {
			t.Errorf("changing the %s kept the source key", name)
		}
	}
}
