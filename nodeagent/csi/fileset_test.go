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
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"

	"github.com/aivm-dev/aivm-operator/api/v1alpha1"
	"github.com/aivm-dev/aivm-operator/internal/modeldigest"
)

// hfDir is a Hugging Face style model directory.
var hfDir = map[string][]byte{
	"config.json":                      []byte(`{"model_type":"gpt2"}`),
	"model.safetensors":                []byte("safetensors shard bytes"),
	"tokenizer/tokenizer.json":         []byte(`{"version":"1.0"}`),
	"tokenizer/special_tokens.json":    []byte(`{}`),
	"generation_config.json":           []byte(`{"max_length":16}`),
	"model-00001-of-00002.safetensors": []byte("first shard"),
}

// newFileSetModel creates a file-set Model whose files src serves under
// /<prefix>/; tamper names a file whose served bytes differ from its digest.
func newFileSetModel(t *testing.T, src *source, ns, name, prefix, tamper string) *v1alpha1.Model {
	t.Helper()
	var base string
	var files []v1alpha1.ModelFile
	for p, b := range hfDir {
		served := b
		if p == tamper {
			served = append([]byte("tampered "), b...)
		}
		u := src.serve("/"+prefix+"/"+p, served)
		base = u[:len(u)-len(p)]
		files = append(files, v1alpha1.ModelFile{Path: p, SHA256: digestOf(b)})
	}
	return newModel(t, ns, name, "", "", func(m *v1alpha1.Model) {
		m.Spec.URI, m.Spec.SHA256 = "", ""
		m.Spec.BaseURI, m.Spec.Files = base, files
	})
}

// TestPublishFileSet: a file-set Model is served as its directory, every
// file read-only at its path; the pin names its modelDigest.
func TestPublishFileSet(t *testing.T) {
	requireMount(t)
	src := newSource(t)
	m := newFileSetModel(t, src, newNamespace(t), "hf", "repo", "")
	digest, err := modeldigest.Of(&m.Spec)
	if err != nil {
		t.Fatal(err)
	}
	n := newNode(t)
	v := newVolume(t, m)
	if err := n.publish(v); err != nil {
		t.Fatalf("publish: %v", err)
	}
	for p, want := range hfDir {
		got, err := os.ReadFile(filepath.Join(v.target, filepath.FromSlash(p)))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s in the volume: %q, %v; want %q", p, got, err, want)
		}
	}
	if err := os.WriteFile(filepath.Join(v.target, "tokenizer", "x"), nil, 0o644); !errors.Is(err, unix.EROFS) {
		t.Errorf("creating a file in the volume: %v, want EROFS", err)
	}
	if !n.inUse(digest) {
		t.Error("published file set is not pinned by its modelDigest")
	}
	if err := n.unpublish(v); err != nil {
		t.Fatal(err)
	}
	if n.inUse(digest) || mounts(t, v.target) != 0 {
		t.Errorf("after unpublish: pinned %v, %d mounts", n.inUse(digest), mounts(t, v.target))
	}
}

// TestPublishFileSetTampered: one tampered file fails the publish with a
// DigestMismatch naming the Model and that file, and leaves no snapshot.
func TestPublishFileSetTampered(t *testing.T) {
	requireMount(t)
	src := newSource(t)
	ns := newNamespace(t)
	m := newFileSetModel(t, src, ns, "hf-bad", "bad", "tokenizer/tokenizer.json")
	digest, err := modeldigest.Of(&m.Spec)
	if err != nil {
		t.Fatal(err)
	}
	n := newNode(t)
	v := newVolume(t, m)
	wantCode(t, n.publish(v), codes.FailedPrecondition, "DigestMismatch", ns+"/hf-bad", "tokenizer/tokenizer.json",
		digestOf(hfDir["tokenizer/tokenizer.json"]))
	if _, err := os.Stat(n.snapshots.Dir(digest)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("snapshot of a tampered file set: %v, want none", err)
	}
	if mounts(t, v.target) != 0 || hasRecord(t, n, v.id) || n.inUse(digest) {
		t.Errorf("failed publish left: %d mounts, record %v, pin %v", mounts(t, v.target), hasRecord(t, n, v.id), n.inUse(digest))
	}
}
