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
	"testing"

	"github.com/aivm-dev/aivm-operator/internal/testutil"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/aivm-dev/aivm-operator/api/v1alpha1"
)

// staleClient serves a fixed old copy of one object on Get, as an informer
// cache does until it has seen the reconciler's own last write.
type staleClient struct {
	client.Client
	key   client.ObjectKey
	stale client.Object
}

func (c staleClient) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	if key == c.key {
		if _, same := obj.(*v1alpha1.Kernel); same {
			c.stale.(*v1alpha1.Kernel).DeepCopyInto(obj.(*v1alpha1.Kernel))
			return nil
		}
	}
	return c.Client.Get(ctx, key, obj, opts...)
}

// setModelReady writes the Model's status as the Model controller would
// for its current generation.
func setModelReady(t *testing.T, m *v1alpha1.Model) {
	t.Helper()
	ctx := context.Background()
	if err := k8sClient.Get(ctx, client.ObjectKeyFromObject(m), m); err != nil {
		t.Fatal(err)
	}
	m.Status.ObservedGeneration = m.Generation
	for _, typ := range []string{v1alpha1.ConditionVerified, v1alpha1.ConditionReady} {
		meta.SetStatusCondition(&m.Status.Conditions, metav1.Condition{
			Type: typ, Status: metav1.ConditionTrue, Reason: typ, ObservedGeneration: m.Generation,
		})
	}
	if err := k8sClient.Status().Update(ctx, m); err != nil {
		t.Fatal(err)
	}
}

// TestKernelStatusFromStaleCache: the reconciler reads a Kernel from a
// cache that has not yet seen its own last status write. Its patch must not
// mix that stale copy with the stored status: either it is refused and
// retried, or the stored status ends right.
func TestKernelStatusFromStaleCache(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t)
	model := testutil.MakeModel(ns, "llama", "file:///models/a.gguf", goldenModelSHA).Obj()
	mustCreate(t, model)
	setModelReady(t, model)
	mustCreate(t, testutil.MakeKernel(ns, "k", "llama").Obj())
	key := client.ObjectKey{Namespace: ns, Name: "k"}
	reconcileWith := func(c client.Client) ctrl.Result {
		t.Helper()
		res, err := NewKernelReconciler(c, k8sClient, nil).Reconcile(ctx, ctrl.Request{NamespacedName: key})
		if err != nil {
			t.Fatalf("reconcile: %v", err)
		}
		return res
	}
	stored := func() *v1alpha1.Kernel {
		t.Helper()
		k := &v1alpha1.Kernel{}
		if err := k8sClient.Get(ctx, key, k); err != nil {
			t.Fatal(err)
		}
		return k
	}

	// Ready with the first digest: this copy is what the stale cache keeps.
	reconcileWith(k8sClient)
	old := stored()
	if err := hasCondition(v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonReady)(old.Status.Conditions); err != nil {
		t.Fatal(err)
	}

	// The model changes; until its controller catches up the kernel is
	// not ready, with the new digest.
	patchSpec(t, &v1alpha1.Model{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "llama"}}, func(m *v1alpha1.Model) {
		m.Spec.Format = v1alpha1.ModelFormatSafetensors
	})
	reconcileWith(k8sClient)
	notReady := stored()
	if err := hasCondition(v1alpha1.ConditionReady, metav1.ConditionFalse, v1alpha1.ReasonModelNotReady)(notReady.Status.Conditions); err != nil {
		t.Fatal(err)
	}
	if notReady.Status.KernelDigest == old.Status.KernelDigest {
		t.Fatal("the model's format did not change the digest")
	}

	// The model is ready again; the reconciler still sees the first copy.
	setModelReady(t, model)
	res := reconcileWith(staleClient{Client: k8sClient, key: key, stale: old})
	got := stored()
	ready := hasCondition(v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonReady)(got.Status.Conditions)
	switch {
	case ready == nil && got.Status.KernelDigest == notReady.Status.KernelDigest:
		// Right from the stale copy: fine.
	case got.ResourceVersion == notReady.ResourceVersion && res.RequeueAfter > 0:
		// Refused and retried: the next run reads a fresh copy.
		reconcileWith(k8sClient)
		got = stored()
		if err := hasCondition(v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonReady)(got.Status.Conditions); err != nil {
			t.Fatalf("after the retry: %v", err)
		}
	default:
		c := meta.FindStatusCondition(got.Status.Conditions, v1alpha1.ConditionReady)
		t.Fatalf("a patch from the stale copy left Ready=%s/%s with digest %s, and no retry (requeue %v)",
			c.Status, c.Reason, got.Status.KernelDigest, res.RequeueAfter)
	}
}
