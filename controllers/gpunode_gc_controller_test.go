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
	"time"

	"github.com/aivm-dev/aivm-operator/internal/testutil"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	clocktesting "k8s.io/utils/clock/testing"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	aivmv1alpha1 "github.com/aivm-dev/aivm-operator/api/v1alpha1"
)

// TestGPUNodeGC runs the reconciler against the package's shared
// kube-apiserver (TestMain): once in a manager, once by direct Reconcile
// calls on a fake clock.
func TestGPUNodeGC(t *testing.T) {
	t.Run("manager", func(t *testing.T) { testGCWithManager(t, k8sClient) })
	t.Run("heartbeat", func(t *testing.T) { testHeartbeat(t, k8sClient) })
}

func testGCWithManager(t *testing.T, c client.Client) {
	startManager(t, func(mgr ctrl.Manager) error {
		return NewGPUNodeGCReconciler(mgr.GetClient(), mgr.GetAPIReader(), mgr.GetEventRecorder("gpunode-gc"),
			WithHeartbeatStaleAfter(0)).SetupWithManager(mgr)
	})

	// A GPUNode whose Node lives, one whose Node is deleted, one that
	// never had a Node and one whose Node was replaced under its name.
	kept := gcCreateNode(t, c, "gc-kept")
	gcCreateGPUNode(t, c, "gc-kept", kept)
	doomed := gcCreateNode(t, c, "gc-deleted")
	gcCreateGPUNode(t, c, "gc-deleted", doomed)
	gcCreateGPUNode(t, c, "gc-orphan", nil)
	replaced := gcCreateNode(t, c, "gc-replaced")
	gcCreateGPUNode(t, c, "gc-replaced", replaced)

	// The controller has seen everything once the orphan is gone.
	gcWaitGone(t, c, "gc-orphan")

	if err := c.Delete(context.Background(), doomed); err != nil {
		t.Fatal(err)
	}
	gcWaitGone(t, c, "gc-deleted")

	if err := c.Delete(context.Background(), replaced); err != nil {
		t.Fatal(err)
	}
	gcCreateNode(t, c, "gc-replaced") // same name, new UID
	gcWaitGone(t, c, "gc-replaced")

	// A change to the kept GPUNode queues its reconcile; an orphan made
	// after it is queued behind it (one worker, one informer, in order).
	// Once the orphan is gone, the kept GPUNode's pass has run, and its
	// Node exists, so it stays.
	keptGPUNode := &aivmv1alpha1.GPUNode{}
	if err := c.Get(context.Background(), client.ObjectKey{Name: "gc-kept"}, keptGPUNode); err != nil {
		t.Fatal(err)
	}
	touched := keptGPUNode.DeepCopy()
	touched.Labels = map[string]string{"aivm.dev/test-touch": "1"}
	if err := c.Patch(context.Background(), touched, client.MergeFrom(keptGPUNode)); err != nil {
		t.Fatal(err)
	}
	gcCreateGPUNode(t, c, "gc-sentinel", nil)
	gcWaitGone(t, c, "gc-sentinel")
	if err := c.Get(context.Background(), client.ObjectKey{Name: "gc-kept"}, &aivmv1alpha1.GPUNode{}); err != nil {
		t.Errorf("GPUNode of a live Node: %v", err)
	}
}

func testHeartbeat(t *testing.T, c client.Client) {
	ctx := context.Background()
	now := time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC)
	clk := clocktesting.NewFakeClock(now)
	r := NewGPUNodeGCReconciler(c, c, nil, WithGCClock(clk),
		WithHeartbeatStaleAfter(100*time.Second))

	node := gcCreateNode(t, c, "hb-node")
	gn := gcCreateGPUNode(t, c, "hb-node", node)
	orig := gn.DeepCopy()
	gn.Status.HeartbeatTime = &metav1.Time{Time: now.Add(-30 * time.Second)}
	meta.SetStatusCondition(&gn.Status.Conditions, metav1.Condition{
		Type: aivmv1alpha1.ConditionReady, Status: metav1.ConditionTrue, Reason: aivmv1alpha1.ReasonHeartbeat, Message: "fresh",
	})
	if err := c.Status().Patch(ctx, gn, client.MergeFrom(orig)); err != nil {
		t.Fatal(err)
	}
	req := ctrl.Request{NamespacedName: types.NamespacedName{Name: "hb-node"}}

	res, err := r.Reconcile(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if res.RequeueAfter != 70*time.Second {
		t.Errorf("fresh heartbeat: RequeueAfter = %s, want 70s (when it would go stale)", res.RequeueAfter)
	}
	if ready := gcReadyOf(t, c, "hb-node"); ready.Status != metav1.ConditionTrue {
		t.Errorf("fresh heartbeat: Ready = %+v", ready)
	}

	clk.Step(70 * time.Second)
	if _, err := r.Reconcile(ctx, req); err != nil {
		t.Fatal(err)
	}
	ready := gcReadyOf(t, c, "hb-node")
	if ready.Status != metav1.ConditionFalse || ready.Reason != aivmv1alpha1.ReasonHeartbeatMissed ||
		!strings.Contains(ready.Message, "2026-11-25T08:59:30Z") {
		t.Errorf("stale heartbeat: Ready = %+v", ready)
	}

	// A GPUNode whose Node is gone is deleted by a direct reconcile too.
	if err := c.Delete(ctx, node); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Reconcile(ctx, req); err != nil {
		t.Fatal(err)
	}
	if err := c.Get(ctx, req.NamespacedName, &aivmv1alpha1.GPUNode{}); !apierrors.IsNotFound(err) {
		t.Errorf("GPUNode of a deleted Node: get error %v, want NotFound", err)
	}
	// And reconciling what is gone is a no-op.
	if _, err := r.Reconcile(ctx, req); err != nil {
		t.Errorf("reconcile of a gone GPUNode: %v", err)
	}
}

func gcReadyOf(t *testing.T, c client.Client, name string) metav1.Condition {
	t.Helper()
	gn := &aivmv1alpha1.GPUNode{}
	if err := c.Get(context.Background(), client.ObjectKey{Name: name}, gn); err != nil {
		t.Fatal(err)
	}
	if cond := meta.FindStatusCondition(gn.Status.Conditions, aivmv1alpha1.ConditionReady); cond != nil {
		return *cond
	}
	return metav1.Condition{}
}

func gcCreateNode(t *testing.T, c client.Client, name string) *corev1.Node {
	t.Helper()
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if err := c.Create(context.Background(), node); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Delete(context.Background(), node) })
	return node
}

// gcCreateGPUNode creates a GPUNode owned by node (nil: no owner).
func gcCreateGPUNode(t *testing.T, c client.Client, name string, node *corev1.Node) *aivmv1alpha1.GPUNode {
	t.Helper()
	b := testutil.MakeGPUNode(name)
	if node != nil {
		b.OwnedBy(node)
	}
	gn := b.Obj()
	if err := c.Create(context.Background(), gn); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Delete(context.Background(), gn) })
	return gn
}

// gcWaitGone polls until the GPUNode is gone.
func gcWaitGone(t *testing.T, c client.Client, name string) {
	t.Helper()
	eventually(t, func() error {
		err := c.Get(context.Background(), client.ObjectKey{Name: name}, &aivmv1alpha1.GPUNode{})
		switch {
		case apierrors.IsNotFound(err):
			return nil
		case err != nil:
			return err
		}
		return fmt.Errorf("GPUNode %s still exists", name)
	})
}
