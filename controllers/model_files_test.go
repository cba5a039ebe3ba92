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

package controllers

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/aivm-dev/aivm-operator/internal/testutil"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/aivm-dev/aivm-operator/api/v1alpha1"
	"github.com/aivm-dev/aivm-operator/internal/modeldigest"
)

// newFileSetServer serves files at /<path>; paths not listed answer 404.
func newFileSetServer(t *testing.T, files map[string][]byte) *httptest.Server {
	t.Helper()
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, ok := files[strings.TrimPrefix(r.URL.Path, "/")]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Length", fmt.Sprint(len(b)))
		if r.Method != http.MethodHead {
			_, _ = w.Write(b)
		}
	}))
	t.Cleanup(s.Close)
	return s
}

func fileSetModel(ns, name, base string, files map[string][]byte, sized bool) *v1alpha1.Model {
	m := &v1alpha1.Model{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       v1alpha1.ModelSpec{BaseURI: base, GPUMemory: resource.MustParse("1Gi")},
	}
	for p, b := range files {
		sum := sha256.Sum256(b)
		f := v1alpha1.ModelFile{Path: p, SHA256: hex.EncodeToString(sum[:])}
		if sized {
			f.SizeBytes = ptr.To(int64(len(b)))
		}
		m.Spec.Files = append(m.Spec.Files, f)
	}
	return m
}

// TestModelFileSetStatus: a file-set Model's status carries its
// modelDigest, file count and total size (from the spec, or from the
// source when the spec gives no sizes); a missing file makes it not Ready
// with the file named; a node's mismatch report names the file too; the
// Kernel's modelDigest is the Model's.
func TestModelFileSetStatus(t *testing.T) {
	startKernelAndModelControllers(t)
	ns := newNamespace(t)
	files := map[string][]byte{
		"config.json":              []byte(`{"model_type":"gpt2"}`),
		"model.safetensors":        []byte("weights weights weights"),
		"tokenizer/tokenizer.json": []byte(`{"version":"1.0"}`),
	}
	var total int64
	for _, b := range files {
		total += int64(len(b))
	}
	srv := newFileSetServer(t, files)

	for _, sized := range []bool{true, false} {
		name := fmt.Sprintf("gpt2-sized-%v", sized)
		m := fileSetModel(ns, name, srv.URL+"/", files, sized)
		want, err := modeldigest.Of(&m.Spec)
		if err != nil {
			t.Fatal(err)
		}
		mustCreate(t, m)
		got := waitModel(t, ns, name, modelIs(nil, hasCondition(v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonSourceReachable), 0))
		if got.Status.ModelDigest != want || got.Status.FileCount != 3 || got.Status.TotalSizeBytes == nil || *got.Status.TotalSizeBytes != total {
			t.Errorf("%s status: digest %s, %d files, size %v; want %s, 3, %d", name, got.Status.ModelDigest, got.Status.FileCount,
				got.Status.TotalSizeBytes, want, total)
		}
	}

	// A file the source does not have: not Ready, and the message names it.
	missing := fileSetModel(ns, "gpt2-missing", srv.URL+"/", files, true)
	missing.Spec.Files = append(missing.Spec.Files, v1alpha1.ModelFile{Path: "vocab.json", SHA256: randomDigest()})
	mustCreate(t, missing)
	got := waitModel(t, ns, "gpt2-missing", modelIs(nil, hasCondition(v1alpha1.ConditionReady, metav1.ConditionFalse, v1alpha1.ReasonSourceUnreachable), 0))
	if msg := meta.FindStatusCondition(got.Status.Conditions, v1alpha1.ConditionReady).Message; !strings.Contains(msg, "vocab.json") {
		t.Errorf("Ready message does not name the missing file: %q", msg)
	}

	// A node reports a tampered file.
	m := fileSetModel(ns, "gpt2-sized-true", srv.URL+"/", files, true)
	digest, _ := modeldigest.Of(&m.Spec)
	node := "files-" + ns
	setGPUNodeCache(t, node, nil, v1alpha1.ModelCacheError{Digest: digest, File: "tokenizer/tokenizer.json", Reason: v1alpha1.ReasonDigestMismatch,
		Message: "sha256 mismatch"})
	got = waitModel(t, ns, "gpt2-sized-true", modelIs(nil, hasCondition(v1alpha1.ConditionReady, metav1.ConditionFalse, v1alpha1.ReasonDigestMismatch), 0))
	if msg := meta.FindStatusCondition(got.Status.Conditions, v1alpha1.ConditionReady).Message; !strings.Contains(msg, "tokenizer/tokenizer.json") || !strings.Contains(msg, node) {
		t.Errorf("mismatch message does not name the file and node: %q", msg)
	}
	setGPUNodeCache(t, node, []string{digest})
	waitModel(t, ns, "gpt2-sized-true", modelIs(hasCondition(v1alpha1.ConditionVerified, metav1.ConditionTrue, v1alpha1.ReasonVerified),
		hasCondition(v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonVerified), 1))

	mustCreate(t, testutil.MakeKernel(ns, "k", "gpt2-sized-true").Obj())
	waitKernel(t, ns, "k", metav1.ConditionTrue, v1alpha1.ReasonReady, func(k *v1alpha1.Kernel) error {
		if k.Status.ModelDigest != digest {
			return fmt.Errorf("kernel modelDigest %s, want the Model's %s", k.Status.ModelDigest, digest)
		}
		return nil
	})
}
