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

package nodeagent_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clocktesting "k8s.io/utils/clock/testing"

	aivmv1alpha1 "github.com/aivm-dev/aivm-operator/api/v1alpha1"
	"github.com/aivm-dev/aivm-operator/internal/modeldigest"
)

// TestPrefetchFileSet: a prefetched file-set Model is materialized as its
// snapshot directory; a file set with one tampered file leaves no snapshot
// and its cache error names the file, under the Model's modelDigest.
func TestPrefetchFileSet(t *testing.T) {
	ns := newNamespace(t)
	files := map[string][]byte{
		"config.json":              []byte(`{"model_type":"gpt2"}`),
		"model.safetensors":        []byte("prefetched shard"),
		"tokenizer/tokenizer.json": []byte(`{"version":"1.0"}`),
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := strings.TrimPrefix(r.URL.Path, "/")
		tampered := strings.HasPrefix(p, "bad/")
		b, ok := files[strings.TrimPrefix(strings.TrimPrefix(p, "bad/"), "good/")]
		if !ok {
			http.NotFound(w, r)
			return
		}
		if tampered && strings.HasSuffix(p, "tokenizer.json") {
			b = append([]byte("tampered "), b...)
		}
		_, _ = w.Write(b)
	}))
	t.Cleanup(srv.Close)
	model := func(name, dir string) *aivmv1alpha1.Model {
		m := &aivmv1alpha1.Model{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Spec: aivmv1alpha1.ModelSpec{BaseURI: srv.URL + "/" + dir + "/", GPUMemory: resource.MustParse("1Gi"),
				Prefetch: &aivmv1alpha1.ModelPrefetch{NodeSelector: metav1.LabelSelector{MatchLabels: map[string]string{"pool": "fs"}}}},
		}
		for p, b := range files {
			sum := sha256.Sum256(b)
			m.Spec.Files = append(m.Spec.Files, aivmv1alpha1.ModelFile{Path: p, SHA256: hex.EncodeToString(sum[:])})
		}
		return m
	}
	good, bad := model("good", "good"), model("bad", "bad")
	// The bad Model expects another tokenizer than the one its source
	// serves (blobs are content-addressed: the good Model's tokenizer
	// would otherwise satisfy it from the cache).
	other := sha256.Sum256([]byte(`{"version":"2.0"}`))
	for i := range bad.Spec.Files {
		if bad.Spec.Files[i].Path == "tokenizer/tokenizer.json" {
			bad.Spec.Files[i].SHA256 = hex.EncodeToString(other[:])
		}
	}
	mustCreate(t, good)
	mustCreate(t, bad)
	goodDigest, err := modeldigest.Of(&good.Spec)
	if err != nil {
		t.Fatal(err)
	}
	badDigest, err := modeldigest.Of(&bad.Spec)
	if err != nil {
		t.Fatal(err)
	}
	createNode(t, "prefetch-fs", map[string]string{"pool": "fs"})

	dir := t.TempDir()
	cm := newCacheManager(t, "prefetch-fs", dir, clocktesting.NewFakeClock(start), nil)
	syncAndWait(t, cm)

	for p, want := range files {
		got, err := os.ReadFile(filepath.Join(dir, "snapshots", goodDigest, filepath.FromSlash(p)))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("snapshot file %s: %q, %v; want %q", p, got, err, want)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "snapshots", badDigest)); !os.IsNotExist(err) {
		t.Errorf("snapshot of the tampered file set: %v, want none", err)
	}
	errs := cm.ModelCacheErrors()
	if len(errs) != 1 {
		t.Fatalf("cache errors %+v, want one", errs)
	}
	e := errs[0]
	if e.Digest != badDigest || e.File != "tokenizer/tokenizer.json" || e.Reason != aivmv1alpha1.ReasonDigestMismatch ||
		!strings.Contains(e.Message, ns+"/bad") || !strings.Contains(e.Message, "tokenizer/tokenizer.json") {
		t.Errorf("cache error = %+v; want DigestMismatch naming the model and tokenizer/tokenizer.json under %s", e, badDigest)
	}
}
