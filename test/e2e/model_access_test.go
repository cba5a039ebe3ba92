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

package e2e

import (
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1alpha1 "github.com/aivm-dev/aivm-operator/api/v1alpha1"
	"github.com/aivm-dev/aivm-operator/artifact/artifacttest"
	"github.com/aivm-dev/aivm-operator/internal/devenv"
)

// TestGatedBytesStayWithWhoCanFetchThem is issue 25's three steps on the dev
// environment. Tenant A's Model is a gated repository (an https hub that
// answers only A's token and states each file's sha256 as X-Linked-Etag);
// A's job brings the bytes into the node's cache. Tenant B names the same
// digests under a source of its own that answers HEAD 200 with no digest:
// B's pod is never published the bytes, and B reads why on its own Model
// (AccessNotProven), with nothing naming A. Then B's own Model of the hub,
// with B's own token the hub accepts, runs at once from the cache, proved
// by HEADs alone.
func TestGatedBytesStayWithWhoCanFetchThem(t *testing.T) {
	enabled(t)
	files, _, dir := serveModel(t)
	blobs := map[string][]byte{}
	garbage := map[string][]byte{}
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join(dir, f.Path))
		if err != nil {
			t.Fatal(err)
		}
		blobs[f.Path], garbage[f.Path] = b, []byte("not "+f.Path)
	}
	hub := artifacttest.NewHub(t, blobs, "tok-a")
	foreign := artifacttest.NewPlain(t, garbage)
	// The node agents and the manager trust the hub's certificate, as they
	// would a public hub's.
	certFile := filepath.Join(t.TempDir(), "hub.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: hub.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SSL_CERT_FILE", certFile)
	env, _ := startEnv(t, "dgxa100")
	ctx := t.Context()
	c := env.Client

	tenant := func(ns, token string) {
		t.Helper()
		for _, o := range []client.Object{
			&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}},
			&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "hf"}, StringData: map[string]string{"token": token}},
		} {
			if err := c.Create(ctx, o); client.IgnoreAlreadyExists(err) != nil {
				t.Fatal(err)
			}
		}
	}
	model := func(ns, name, base string, creds bool) {
		t.Helper()
		m, k := builtinKernel(ns, "k-"+name, files, base)
		m.Name, k.Spec.ModelRef.Name = name, name
		if creds {
			m.Spec.CredentialsSecretRef = &v1alpha1.SecretKeyReference{Name: "hf", Key: "token"}
		}
		for _, o := range []client.Object{m, k, newJob(ns, name, k.Name, "Hello world")} {
			if err := c.Create(ctx, o); err != nil {
				t.Fatalf("create %T: %v", o, err)
			}
		}
	}
	jobDone := func(ns, name string) {
		t.Helper()
		key := client.ObjectKey{Namespace: ns, Name: name}
		job := &v1alpha1.InferenceJob{}
		waitFor(t, "job "+key.String()+" Succeeded", 4*time.Minute, func() (bool, error) {
			if err := c.Get(ctx, key, job); err != nil {
				return false, err
			}
			if meta.IsStatusConditionTrue(job.Status.Conditions, v1alpha1.ConditionFailed) {
				return false, fmt.Errorf("job failed: %s", describeJob(ctx, c, key))
			}
			return meta.IsStatusConditionTrue(job.Status.Conditions, v1alpha1.ConditionSucceeded), nil
		}, func() string { return describeJob(ctx, c, key) })
	}

	// Step 1: A's gated Model and job; the node caches A's bytes.
	const nsA, nsB = "tenant-a", "tenant-b"
	tenant(nsA, "tok-a")
	model(nsA, "gated", hub.BaseURI(), true)
	jobDone(nsA, "gated")

	// Steps 2 and 3: B's Model of the same digests under B's own source.
	tenant(nsB, "tok-b")
	model(nsB, "copy", foreign.BaseURI(), false)
	var reason string
	waitFor(t, "B's Model refused AccessNotProven", 3*time.Minute, func() (bool, error) {
		m := &v1alpha1.Model{}
		if err := c.Get(ctx, client.ObjectKey{Namespace: nsB, Name: "copy"}, m); err != nil {
			return false, err
		}
		ready := meta.FindStatusCondition(m.Status.Conditions, v1alpha1.ConditionReady)
		if ready == nil || ready.Reason != v1alpha1.ReasonAccessNotProven {
			return false, nil
		}
		reason = ready.Message
		return true, nil
	}, func() string { return describeJob(ctx, c, client.ObjectKey{Namespace: nsB, Name: "copy"}) })
	job := &v1alpha1.InferenceJob{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: nsB, Name: "copy"}, job); err != nil {
		t.Fatal(err)
	}
	if meta.IsStatusConditionTrue(job.Status.Conditions, v1alpha1.ConditionSucceeded) || job.Status.Result != nil {
		t.Fatalf("B's job ran on A's bytes: %s", describeJob(ctx, c, client.ObjectKeyFromObject(job)))
	}
	var pods corev1.PodList
	if err := c.List(ctx, &pods, client.InNamespace(devenv.Namespace), client.MatchingLabels{"aivm.dev/job-namespace": nsB}); err != nil {
		t.Fatal(err)
	}
	for _, p := range pods.Items {
		if p.Status.Phase == corev1.PodRunning || p.Status.Phase == corev1.PodSucceeded {
			t.Errorf("B's pod %s is %s: it was given A's bytes", p.Name, p.Status.Phase)
		}
	}
	// What B can read in its namespace names B's Model only.
	var evs eventsv1.EventList
	if err := c.List(ctx, &evs, client.InNamespace(nsB)); err != nil {
		t.Fatal(err)
	}
	texts := []string{reason}
	for _, e := range evs.Items {
		texts = append(texts, e.Note)
	}
	for _, text := range texts {
		for _, leak := range []string{nsA + "/", "gated", hub.URL} {
			if strings.Contains(text, leak) {
				t.Errorf("tenant B reads %q, which names A's %q", text, leak)
			}
		}
	}

	// B proves access with its own token: the hub's owner lets B in.
	hub.Allow("tok-b")
	hub.Reset()
	model(nsB, "proved", hub.BaseURI(), true)
	jobDone(nsB, "proved")
	for _, r := range hub.Requests("GET") {
		if strings.HasPrefix(r.Path, "/cdn/") {
			t.Errorf("B's proof downloaded %s; HEADs stating the digests suffice and the bytes come from the cache", r.Path)
		}
	}
}
