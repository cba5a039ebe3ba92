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

package controllers_test

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/rest"
	clocktesting "k8s.io/utils/clock/testing"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	aivmv1alpha1 "github.com/aivm-dev/aivm-operator/api/v1alpha1"
	"github.com/aivm-dev/aivm-operator/controllers"
	"github.com/aivm-dev/aivm-operator/internal/testenv"
)

// TestGPUNodeGC runs the reconciler against a real kube-apiserver. It starts
// its own envtest rather than sharing one through TestMain, so it does not
// depend on which other controllers' tests live in this package.
func TestGPUNodeGC(t *testing.T) {
	env, cfg, err := testenv.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := env.Stop(); err != nil {
			t.Errorf("stop envtest: %v", err)
		}
	})
	c, err := client.New(cfg, client.Options{Scheme: testenv.Scheme()})
	if err != nil {
		t.Fatal(err)
	}

	t.Run("manager", func(t *testing.T) { testGCWithManager(t, cfg, c) })
	t.Run("heartbeat", func(t *testing.T) { testHeartbeat(t, c) })
}

func testGCWithManager(t *testing.T, cfg *rest.Config, c client.Client) {
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                 testenv.Scheme(),
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Logger:                 zap.New(zap.UseDevMode(true), zap.WriteTo(testWriter{t})),
	})
	if err != nil {
		t.Fatal(err)
	}
	r := controllers.NewGPUNodeGCReconciler(mgr.GetClient(), mgr.GetAPIReader(), mgr.GetEventRecorder("gpunode-gc"),
		controllers.WithHeartbeatStaleAfter(0))
	if err := r.SetupWithManager(mgr); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("manager: %v", err)
		}
	})

	// A GPUNode whose Node lives, one whose Node is deleted, one that
	// never had a Node and one whose Node was replaced under its name.
	kept := createNode(t, c, "gc-kept")
	createGPUNode(t, c, "gc-kept", kept)
	doomed := createNode(t, c, "gc-deleted")
	createGPUNode(t, c, "gc-deleted", doomed)
	createGPUNode(t, c, "gc-orphan", nil)
	replaced := createNode(t, c, "gc-replaced")
	createGPUNode(t, c, "gc-replaced", replaced)

	// The controller has seen everything once the orphan is gone.
	waitGone(t, c, "gc-orphan")

	if err := c.Delete(context.Background(), doomed); err != nil {
		t.Fatal(err)
	}
	waitGone(t, c, "gc-deleted")

	if err := c.Delete(context.Background(), replaced); err != nil {
		t.Fatal(err)
	}
	createNode(t, c, "gc-replaced") // same name, new UID
	waitGone(t, c, "gc-replaced")

	// Deleting another Node triggers one more pass; the kept GPUNode's
	// Node exists, so it stays.
	other := createNode(t, c, "gc-other")
	if err := c.Delete(context.Background(), other); err != nil {
		t.Fatal(err)
	}
	if err := c.Get(context.Background(), client.ObjectKey{Name: "gc-kept"}, &aivmv1alpha1.GPUNode{}); err != nil {
		t.Errorf("GPUNode of a live Node: %v", err)
	}
}

func testHeartbeat(t *testing.T, c client.Client) {
	ctx := context.Background()
	now := time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC)
	clk := clocktesting.NewFakeClock(now)
	r := controllers.NewGPUNodeGCReconciler(c, c, nil, controllers.WithGCClock(clk),
		controllers.WithHeartbeatStaleAfter(100*time.Second))

	node := createNode(t, c, "hb-node")
	gn := createGPUNode(t, c, "hb-node", node)
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
	if ready := readyOf(t, c, "hb-node"); ready.Status != metav1.ConditionTrue {
		t.Errorf("fresh heartbeat: Ready = %+v", ready)
	}

	clk.Step(70 * time.Second)
	if _, err := r.Reconcile(ctx, req); err != nil {
		t.Fatal(err)
	}
	ready := readyOf(t, c, "hb-node")
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

func readyOf(t *testing.T, c client.Client, name string) metav1.Condition {
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

func createNode(t *testing.T, c client.Client, name string) *corev1.Node {
	t.Helper()
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if err := c.Create(context.Background(), node); err != nil {
		t.Fatal(err)
	}
	return node
}

// createGPUNode creates a GPUNode owned by node (nil: no owner).
func createGPUNode(t *testing.T, c client.Client, name string, node *corev1.Node) *aivmv1alpha1.GPUNode {
	t.Helper()
	gn := &aivmv1alpha1.GPUNode{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if node != nil {
		gn.OwnerReferences = []metav1.OwnerReference{{APIVersion: "v1", Kind: "Node", Name: node.Name, UID: node.UID}}
	}
	if err := c.Create(context.Background(), gn); err != nil {
		t.Fatal(err)
	}
	return gn
}

// waitGone polls, for at most 30 s, until the GPUNode is gone.
func waitGone(t *testing.T, c client.Client, name string) {
	t.Helper()
	err := wait.PollUntilContextTimeout(context.Background(), 50*time.Millisecond, 30*time.Second, true,
		func(ctx context.Context) (bool, error) {
			err := c.Get(ctx, client.ObjectKey{Name: name}, &aivmv1alpha1.GPUNode{})
			if apierrors.IsNotFound(err) {
				return true, nil
			}
			return false, err
		})
	if err != nil {
		t.Fatalf("GPUNode %s not deleted: %v", name, err)
	}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
