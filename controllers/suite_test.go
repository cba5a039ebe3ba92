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
	"os"
	"testing"

	"github.com/aivm-dev/aivm-operator/internal/testutil"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/aivm-dev/aivm-operator/internal/testenv"
)

// The package's integration tests share one kube-apiserver and etcd,
// started by TestMain. Tests isolate themselves with their own namespaces
// (newNamespace) and, for cluster-scoped objects, unique names.
var (
	// cfg reaches the test API server.
	cfg *rest.Config
	// k8sClient is an uncached client of the test API server.
	k8sClient client.Client
)

// eventuallyTimeout bounds the waits of the package's tests.
const eventuallyTimeout = testutil.EventuallyTimeout

func TestMain(m *testing.M) {
	ctrl.SetLogger(testLogger())
	env, c, err := testenv.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	cfg = c
	k8sClient, err = client.New(cfg, client.Options{Scheme: testenv.Scheme()})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		_ = env.Stop()
		os.Exit(1)
	}
	code := m.Run()
	if err := env.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, err)
	}
	os.Exit(code)
}

// testLogger logs to stderr when AIVM_TEST_LOG is set and discards otherwise. It does not
// use t.Log, which must not be called once a test has finished.
func testLogger() logr.Logger {
	if os.Getenv("AIVM_TEST_LOG") == "" {
		return logr.Discard()
	}
	return funcr.New(func(prefix, args string) {
		fmt.Fprintln(os.Stderr, prefix, args)
	}, funcr.Options{Verbosity: 1})
}

// startManager starts a manager on the test API server with what the
// setup functions register (typically a reconciler's SetupWithManager),
// waits until its caches have synced, and stops it, waiting for it to
// return, when the test ends.
func startManager(t *testing.T, setups ...func(mgr ctrl.Manager) error) ctrl.Manager {
	t.Helper()
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                 testenv.Scheme(),
		Logger:                 testLogger(),
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Controller:             config.Controller{SkipNameValidation: ptr.To(true)},
	})
	if err != nil {
		t.Fatalf("new manager: %v", err)
	}
	for _, setup := range setups {
		if err := setup(mgr); err != nil {
			t.Fatalf("set up manager: %v", err)
		}
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
	syncCtx, syncCancel := context.WithTimeout(ctx, eventuallyTimeout)
	defer syncCancel()
	if !mgr.GetCache().WaitForCacheSync(syncCtx) {
		t.Fatal("manager caches did not sync")
	}
	return mgr
}

// newNamespace creates a namespace with a generated name and deletes it
// when the test ends.
func newNamespace(t *testing.T) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "test-"}}
	if err := k8sClient.Create(context.Background(), ns); err != nil {
		t.Fatalf("create namespace: %v", err)
	}
	t.Cleanup(func() { _ = k8sClient.Delete(context.Background(), ns) })
	return ns.Name
}

// eventually is testutil.Eventually.
func eventually(t *testing.T, fn func() error) {
	t.Helper()
	testutil.Eventually(t, fn)
}

// patchSpec re-reads obj, applies change and patches the difference, so a
// concurrent status write by a controller does not fail the update.
func patchSpec[T client.Object](t *testing.T, obj T, change func(T)) {
	t.Helper()
	ctx := context.Background()
	if err := k8sClient.Get(ctx, client.ObjectKeyFromObject(obj), obj); err != nil {
		t.Fatalf("get %s: %v", obj.GetName(), err)
	}
	before := obj.DeepCopyObject().(T)
	change(obj)
	if err := k8sClient.Patch(ctx, obj, client.MergeFrom(before)); err != nil {
		t.Fatalf("patch %s: %v", obj.GetName(), err)
	}
}

// mustCreate creates obj in the test API server or fails the test.
func mustCreate(t *testing.T, obj client.Object) {
	t.Helper()
	if err := k8sClient.Create(context.Background(), obj); err != nil {
		t.Fatalf("create %T %s: %v", obj, obj.GetName(), err)
	}
}

// hasCondition returns a check that the condition has the status and reason.
func hasCondition(typ string, status metav1.ConditionStatus, reason string) func([]metav1.Condition) error {
	return func(conds []metav1.Condition) error {
		c := meta.FindStatusCondition(conds, typ)
		if c == nil {
			return fmt.Errorf("no %s condition", typ)
		}
		if c.Status != status || c.Reason != reason {
			return fmt.Errorf("%s = %s/%s (%s), want %s/%s", typ, c.Status, c.Reason, c.Message, status, reason)
		}
		return nil
	}
}

// waitEvent waits for an event about the named object with the type and reason.
func waitEvent(t *testing.T, ns, name, typ, reason string) {
	t.Helper()
	eventually(t, func() error {
		var evs eventsv1.EventList
		if err := k8sClient.List(context.Background(), &evs, client.InNamespace(ns)); err != nil {
			return err
		}
		for _, e := range evs.Items {
			if e.Regarding.Name == name && e.Type == typ && e.Reason == reason {
				return nil
			}
		}
		return fmt.Errorf("no %s event %s for %s among %d events", typ, reason, name, len(evs.Items))
	})
}
