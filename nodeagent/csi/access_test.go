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
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"

	"github.com/aivm-dev/aivm-operator/api/v1alpha1"
	"github.com/aivm-dev/aivm-operator/artifact"
	"github.com/aivm-dev/aivm-operator/artifact/artifacttest"
	"github.com/aivm-dev/aivm-operator/internal/modeldigest"
)

// TestPublishServesCachedBytesOnlyToModelsThatProveAccess is the issue's
// three steps on one node: tenant A's gated snapshot is cached; tenant B's
// Model names the same digests under a source of B's that answers HEAD with
// 200 and no digest; B's pod is refused with PermissionDenied naming only
// B's Model, and B's Model carries the refusal. Once B's Model names the
// hub with a token the hub accepts, B is served at once.
func TestPublishServesCachedBytesOnlyToModelsThatProveAccess(t *testing.T) {
	requireMount(t)
	ctx := context.Background()
	hub := artifacttest.NewHub(t, hfDir, "tok-a")
	garbage := map[string][]byte{}
	for p := range hfDir {
		garbage[p] = []byte("not " + p)
	}
	foreign := artifacttest.NewPlain(t, garbage)
	var files []v1alpha1.ModelFile
	for p, b := range hfDir {
		files = append(files, v1alpha1.ModelFile{Path: p, SHA256: digestOf(b)})
	}
	nsA, nsB := newNamespace(t), newNamespace(t)
	newSecret(t, nsA, "hf", "tok-a")
	newSecret(t, nsB, "hf-b", "tok-b")
	a := newModel(t, nsA, "gated", "", "", func(m *v1alpha1.Model) {
		m.Spec.BaseURI, m.Spec.Files = hub.BaseURI(), files
		m.Spec.CredentialsSecretRef = &v1alpha1.SecretKeyReference{Name: "hf", Key: "token"}
	})
	b := newModel(t, nsB, "copy", "", "", func(m *v1alpha1.Model) {
		m.Spec.BaseURI, m.Spec.Files = foreign.BaseURI(), files
	})
	digest, err := modeldigest.Of(&a.Spec)
	if err != nil {
		t.Fatal(err)
	}
	n := newNode(t, artifact.WithHTTPClient(hub.Client()))

	// Step 1: A's job brings A's bytes to the node.
	va := newVolume(t, a)
	if err := n.publish(va); err != nil {
		t.Fatalf("publish A: %v", err)
	}
	if err := n.unpublish(va); err != nil {
		t.Fatal(err)
	}

	// Steps 2 and 3: B's pod is refused, with a reason B can read.
	vb := newVolume(t, b)
	err = n.publish(vb)
	wantCode(t, err, codes.PermissionDenied, v1alpha1.ReasonAccessNotProven, nsB+"/copy", foreign.URL)
	for _, leak := range []string{nsA, "gated", hub.URL} {
		if strings.Contains(err.Error(), leak) {
			t.Errorf("B's refusal names %q, which is A's: %v", leak, err)
		}
	}
	if mounts(t, vb.target) != 0 || hasRecord(t, n, vb.id) {
		t.Errorf("refused publish left %d mounts, record %v", mounts(t, vb.target), hasRecord(t, n, vb.id))
	}
	refused := n.refused.ModelCacheErrors()
	if len(refused) != 1 || refused[0].Model != nsB+"/copy" || refused[0].Reason != v1alpha1.ReasonAccessNotProven || refused[0].Digest != digest {
		t.Fatalf("recorded refusals = %+v, want one AccessNotProven for %s/copy", refused, nsB)
	}
	if strings.Contains(refused[0].Message, nsA) {
		t.Errorf("B's refusal record names A's namespace: %s", refused[0].Message)
	}

	// B's own Model proves access: the hub accepts B's token and states
	// the digests; B is served at once, without downloading the weights.
	hub.Allow("tok-b")
	hub.Reset()
	b.Spec.BaseURI = hub.BaseURI()
	b.Spec.CredentialsSecretRef = &v1alpha1.SecretKeyReference{Name: "hf-b", Key: "token"}
	if err := k8s.Update(ctx, b); err != nil {
		t.Fatal(err)
	}
	if err := n.publish(vb); err != nil {
		t.Fatalf("publish B after B proved access: %v", err)
	}
	got, err := os.ReadFile(filepath.Join(vb.target, "config.json"))
	if err != nil || string(got) != string(hfDir["config.json"]) {
		t.Errorf("B's pod reads config.json = %q, %v", got, err)
	}
	for _, r := range hub.Requests("") {
		if r.Method != "HEAD" {
			t.Errorf("proving B's access made a %s of %s; a HEAD stating the digest suffices", r.Method, r.Path)
		}
	}
	if len(n.refused.ModelCacheErrors()) != 0 {
		t.Errorf("refusals after B was served: %+v", n.refused.ModelCacheErrors())
	}
	if err := n.unpublish(vb); err != nil {
		t.Fatal(err)
	}
}
