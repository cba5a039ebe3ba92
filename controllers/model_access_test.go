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
	"context"
	"fmt"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/aivm-dev/aivm-operator/api/v1alpha1"
	"github.com/aivm-dev/aivm-operator/artifact"
	"github.com/aivm-dev/aivm-operator/artifact/artifacttest"
	"github.com/aivm-dev/aivm-operator/internal/testutil"
)

// TestModelReadyMeansTheSourceServesTheseBytes: a gated hub that states
// the sha256 of its files (X-Linked-Etag) to a token it accepts makes a
// Model of the right digest Ready and one of another digest not Ready
// (SourceDigestMismatch), even while a node holds the other digest's
// bytes. A node's refusal to serve cached bytes to a Model shows on that
// Model alone (AccessNotProven), and nothing of one namespace's Model shows
// on another's.
func TestModelReadyMeansTheSourceServesTheseBytes(t *testing.T) {
	weights := []byte("gated weights")
	hub := artifacttest.NewHub(t, map[string][]byte{"w.safetensors": weights}, "tok-a")
	checker, err := artifact.NewChecker(artifact.WithHTTPClient(hub.Client()))
	if err != nil {
		t.Fatal(err)
	}
	startModelControllerWith(t, checker, nil)
	nsA, nsB := newNamespace(t), newNamespace(t)
	digest := artifacttest.SHA256(weights)
	// Node names that name neither namespace, so the checks below find
	// only what a namespace's status says of the other.
	suffix := strings.TrimPrefix(nsB, "test-")
	node1, node2 := "access-1-"+suffix, "access-2-"+suffix
	for _, ns := range []string{nsA, nsB} {
		mustCreate(t, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "hf"}, StringData: map[string]string{"token": "tok-a"}})
	}
	gated := func(ns, name, sum string) *v1alpha1.Model {
		m := testutil.MakeModel(ns, name, hub.BaseURI()+"w.safetensors", sum).Obj()
		m.Spec.CredentialsSecretRef = &v1alpha1.SecretKeyReference{Name: "hf", Key: "token"}
		return m
	}
	mustCreate(t, gated(nsA, "gated", digest))
	waitModel(t, nsA, "gated", modelIs(nil, hasCondition(v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonSourceReachable), 0))

	// The same path under another digest: the hub answers 200, but states
	// the file's own sha256, so the Model is not Ready, held or not.
	other := strings.Repeat("c", 64)
	setGPUNodeCache(t, node1, []string{other})
	mustCreate(t, gated(nsB, "wrong", other))
	got := waitModel(t, nsB, "wrong", modelIs(nil, hasCondition(v1alpha1.ConditionReady, metav1.ConditionFalse, v1alpha1.ReasonSourceDigestMismatch), 1))
	if msg := meta.FindStatusCondition(got.Status.Conditions, v1alpha1.ConditionReady).Message; !strings.Contains(msg, artifact.HeaderLinkedETag) {
		t.Errorf("Ready message does not name the header: %q", msg)
	}
	waitEvent(t, nsB, "wrong", corev1.EventTypeWarning, v1alpha1.ReasonSourceDigestMismatch)

	// A node refuses B's copy (a foreign source naming A's digest), and
	// reports a digest mismatch of A's Model whose message names A's source.
	foreign := artifacttest.NewPlain(t, map[string][]byte{"w.safetensors": weights})
	mustCreate(t, testutil.MakeModel(nsB, "copy", foreign.BaseURI()+"w.safetensors", digest).Obj())
	waitModel(t, nsB, "copy", modelIs(nil, hasCondition(v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonSourceReachable), 0))
	setGPUNodeCache(t, node2, []string{digest},
		v1alpha1.ModelCacheError{Digest: digest, Model: nsB + "/copy", Reason: v1alpha1.ReasonAccessNotProven,
			Message: "model " + nsB + "/copy: the cached bytes are not served"},
		v1alpha1.ModelCacheError{Digest: digest, Model: nsA + "/gated", Reason: v1alpha1.ReasonDigestMismatch,
			Message: "model " + nsA + "/gated: fetch from " + hub.URL + ": sha256 mismatch"})
	waitModel(t, nsB, "copy", modelIs(nil, hasCondition(v1alpha1.ConditionReady, metav1.ConditionFalse, v1alpha1.ReasonDigestMismatch), 1))
	refusedA := waitModel(t, nsA, "gated", modelIs(nil, hasCondition(v1alpha1.ConditionReady, metav1.ConditionFalse, v1alpha1.ReasonDigestMismatch), 1))
	if msg := meta.FindStatusCondition(refusedA.Status.Conditions, v1alpha1.ConditionReady).Message; strings.Contains(msg, nsB+"/") {
		t.Errorf("A's Model names B's: %q", msg)
	}
	// The digest mismatch clears; B's refusal stands, on B's Model only.
	setGPUNodeCache(t, node2, []string{digest},
		v1alpha1.ModelCacheError{Digest: digest, Model: nsB + "/copy", Reason: v1alpha1.ReasonAccessNotProven,
			Message: "model " + nsB + "/copy: the cached bytes are not served"})
	got = waitModel(t, nsB, "copy", modelIs(nil, hasCondition(v1alpha1.ConditionReady, metav1.ConditionFalse, v1alpha1.ReasonAccessNotProven), 1))
	if msg := meta.FindStatusCondition(got.Status.Conditions, v1alpha1.ConditionReady).Message; !strings.Contains(msg, node2) {
		t.Errorf("AccessNotProven message does not name the node: %q", msg)
	}
	waitModel(t, nsA, "gated", modelIs(nil, hasCondition(v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonVerified), 1))

	// Nothing in B's namespace names A's namespace or Model.
	ctx := context.Background()
	eventually(t, func() error {
		var models v1alpha1.ModelList
		if err := k8sClient.List(ctx, &models, client.InNamespace(nsB)); err != nil {
			return err
		}
		var evs eventsv1.EventList
		if err := k8sClient.List(ctx, &evs, client.InNamespace(nsB)); err != nil {
			return err
		}
		for _, m := range models.Items {
			for _, c := range m.Status.Conditions {
				if strings.Contains(c.Message, nsA) {
					t.Errorf("model %s condition %s names tenant A: %q", m.Name, c.Type, c.Message)
				}
			}
		}
		for _, e := range evs.Items {
			if strings.Contains(e.Note, nsA) {
				t.Errorf("event %s names tenant A: %q", e.Reason, e.Note)
			}
		}
		if len(evs.Items) == 0 {
			return fmt.Errorf("no events in %s yet", nsB)
		}
		return nil
	})
}
