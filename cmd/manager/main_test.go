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

package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	aivmv1alpha1 "github.com/aivm-dev/aivm-operator/api/v1alpha1"
	"github.com/aivm-dev/aivm-operator/internal/testenv"
)

var cfg *rest.Config

func TestMain(m *testing.M) {
	if os.Getenv(managerProcessEnv) != "" {
		// The benchmarks' manager child process uses their API server.
		os.Exit(m.Run())
	}
	env, c, err := testenv.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	cfg = c
	code := m.Run()
	_ = env.Stop()
	os.Exit(code)
}

// TestManagerRunsControllers starts the manager as main does, with the
// default flags, and watches its controllers act on real objects.
func TestManagerRunsControllers(t *testing.T) {
	// Not testr: the manager may log after the test returns.
	ctrl.SetLogger(logr.Discard())
	var opts options
	fs := flag.NewFlagSet("manager", flag.ContinueOnError)
	opts.bindFlags(fs, &zap.Options{})
	if err := fs.Parse(nil); err != nil {
		t.Fatal(err)
	}
	opts.metricsAddr, opts.probeAddr = "0", "127.0.0.1:0"
	opts.results.bindAddress = "127.0.0.1:0"

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c, err := client.New(cfg, client.Options{Scheme: testenv.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "manager-smoke"}}
	if err := c.Create(ctx, ns); err != nil {
		t.Fatal(err)
	}
	// The self-managed result certificate lives in the manager's namespace.
	t.Setenv(PodNamespaceEnv, ns.Name)

	done := make(chan error, 1)
	go func() { done <- run(ctx, cfg, opts) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("manager: %v", err)
		}
	})
	weights := filepath.Join(t.TempDir(), "w.gguf")
	model := &aivmv1alpha1.Model{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: "m"},
		Spec: aivmv1alpha1.ModelSpec{
			URI:       "file://" + weights,
			SHA256:    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
			GPUMemory: resource.MustParse("1Gi"),
		},
	}
	kernel := &aivmv1alpha1.Kernel{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: "k"},
		Spec: aivmv1alpha1.KernelSpec{
			ModelRef: aivmv1alpha1.LocalObjectReference{Name: "m"},
			Runtime:  aivmv1alpha1.KernelRuntime{Image: "ghcr.io/aivm-dev/aivm-runtime:v0.1.0"},
		},
	}
	text := "hello"
	job := &aivmv1alpha1.InferenceJob{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: "j"},
		Spec: aivmv1alpha1.InferenceJobSpec{
			KernelRef: aivmv1alpha1.LocalObjectReference{Name: "k"},
			Input:     aivmv1alpha1.JobInput{Text: &text},
		},
	}
	for _, o := range []client.Object{model, kernel, job} {
		if err := c.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}

	// A GPUNode whose Node does not exist: the GPUNode controller removes it.
	orphan := &aivmv1alpha1.GPUNode{ObjectMeta: metav1.ObjectMeta{Name: "gone-node"}}
	if err := c.Create(ctx, orphan); err != nil {
		t.Fatal(err)
	}

	// The Model controller judges the model (a file:// source is checked on
	// the nodes, so it is Ready and waits for a node to verify it); the
	// Kernel controller follows it and computes the kernel digest.
	deadline := time.Now().Add(30 * time.Second)
	for {
		if err := c.Get(ctx, client.ObjectKeyFromObject(model), model); err != nil {
			t.Fatal(err)
		}
		if err := c.Get(ctx, client.ObjectKeyFromObject(kernel), kernel); err != nil {
			t.Fatal(err)
		}
		if err := c.Get(ctx, client.ObjectKeyFromObject(job), job); err != nil {
			t.Fatal(err)
		}
		orphanErr := c.Get(ctx, client.ObjectKeyFromObject(orphan), orphan)
		certErr := c.Get(ctx, client.ObjectKey{Namespace: ns.Name, Name: opts.results.certSecret}, &corev1.Secret{})
		verified := meta.FindStatusCondition(model.Status.Conditions, aivmv1alpha1.ConditionVerified)
		ready := meta.FindStatusCondition(kernel.Status.Conditions, aivmv1alpha1.ConditionReady)
		if verified != nil && verified.Status == metav1.ConditionUnknown && verified.Reason == aivmv1alpha1.ReasonPendingVerification &&
			ready != nil && ready.Status == metav1.ConditionTrue && kernel.Status.ModelDigest == model.Spec.SHA256 &&
			kernel.Status.KernelDigest != "" && apierrors.IsNotFound(orphanErr) && certErr == nil &&
			meta.IsStatusConditionTrue(job.Status.Conditions, aivmv1alpha1.ConditionAdmitted) && job.Status.Attempts == 1 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("controllers did not converge within 30s: want Model Verified=Unknown/PendingVerification, "+
				"Kernel Ready=True with the model's digest and a kernel digest, orphan GPUNode deleted, job admitted, result certificate Secret issued; "+
				"got model %+v kernel %+v orphan GPUNode: %v, job %+v, certificate Secret: %v", model.Status, kernel.Status, orphanErr, job.Status, certErr)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
