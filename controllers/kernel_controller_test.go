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
	"net/http"
	"strings"
	"testing"

	"github.com/aivm-dev/aivm-operator/internal/testutil"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/aivm-dev/aivm-operator/api/v1alpha1"
	"github.com/aivm-dev/aivm-operator/internal/kerneldigest"
)

func startKernelAndModelControllers(t *testing.T) {
	t.Helper()
	startModelController(t, func(mgr ctrl.Manager) error {
		return NewKernelReconciler(mgr.GetClient(), mgr.GetAPIReader(), mgr.GetEventRecorder("kernel-controller")).SetupWithManager(mgr)
	})
}

// waitKernel waits until the Kernel's status, computed for its current
// generation, has Ready with the status and reason, and returns it.
func waitKernel(t *testing.T, ns, name string, status metav1.ConditionStatus, reason string, extra ...func(*v1alpha1.Kernel) error) *v1alpha1.Kernel {
	t.Helper()
	k := &v1alpha1.Kernel{}
	check := hasCondition(v1alpha1.ConditionReady, status, reason)
	eventually(t, func() error {
		if err := k8sClient.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, k); err != nil {
			return err
		}
		if k.Status.ObservedGeneration != k.Generation {
			return fmt.Errorf("status is for generation %d, object is at %d", k.Status.ObservedGeneration, k.Generation)
		}
		if err := check(k.Status.Conditions); err != nil {
			return err
		}
		for _, e := range extra {
			if err := e(k); err != nil {
				return err
			}
		}
		return nil
	})
	return k
}

// hasDigests checks that the Kernel's status carries both digests.
func hasDigests(k *v1alpha1.Kernel) error {
	if k.Status.KernelDigest == "" || k.Status.ModelDigest == "" {
		return fmt.Errorf("digests %q, %q; want both set", k.Status.KernelDigest, k.Status.ModelDigest)
	}
	return nil
}

// noDigests checks that the Kernel's status carries no digest.
func noDigests(k *v1alpha1.Kernel) error {
	if k.Status.KernelDigest != "" || k.Status.ModelDigest != "" {
		return fmt.Errorf("digests %q, %q; want none", k.Status.KernelDigest, k.Status.ModelDigest)
	}
	return nil
}

func getModel(t *testing.T, ns, name string) *v1alpha1.Model {
	t.Helper()
	m := &v1alpha1.Model{}
	if err := k8sClient.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestKernelFollowsModel(t *testing.T) {
	startKernelAndModelControllers(t)
	ns := newNamespace(t)
	mustCreate(t, testutil.MakeKernel(ns, "k", "llama").Obj())
	k := waitKernel(t, ns, "k", metav1.ConditionFalse, v1alpha1.ReasonModelNotFound)
	if k.Status.KernelDigest != "" {
		t.Errorf("digest %q set without a model", k.Status.KernelDigest)
	}

	srv := newModelServer(t, "")
	mustCreate(t, testutil.MakeModel(ns, "llama", srv.URL+"/weights", srv.digest).Obj())
	k = waitKernel(t, ns, "k", metav1.ConditionTrue, v1alpha1.ReasonReady)
	want, err := kerneldigest.Digest(&k.Spec, &getModel(t, ns, "llama").Spec)
	if err != nil {
		t.Fatal(err)
	}
	if k.Status.KernelDigest != want || k.Status.ModelDigest != srv.digest {
		t.Errorf("status digests = %q, %q; want %q, %q", k.Status.KernelDigest, k.Status.ModelDigest, want, srv.digest)
	}
	waitEvent(t, ns, "k", "Normal", "DigestComputed")

	// A node fetched bytes that do not match: the kernel must not run.
	node := "kernel-" + ns
	setGPUNodeCache(t, node, nil, v1alpha1.ModelCacheError{Digest: srv.digest, Reason: v1alpha1.ReasonDigestMismatch, Message: "sha256 mismatch"})
	k = waitKernel(t, ns, "k", metav1.ConditionFalse, v1alpha1.ReasonModelNotVerified)
	if msg := meta.FindStatusCondition(k.Status.Conditions, v1alpha1.ConditionReady).Message; !strings.Contains(msg, "llama") {
		t.Errorf("message does not name the model: %q", msg)
	}
	waitEvent(t, ns, "k", "Warning", v1alpha1.ReasonModelNotVerified)

	// The node fetches good bytes: ready again.
	setGPUNodeCache(t, node, []string{srv.digest})
	waitKernel(t, ns, "k", metav1.ConditionTrue, v1alpha1.ReasonReady)

	// The source goes away and no node holds the bytes: the model is not ready.
	setGPUNodeCache(t, node, nil)
	srv.status.Store(http.StatusServiceUnavailable)
	patchSpec(t, &v1alpha1.Model{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "llama"}}, func(m *v1alpha1.Model) {
		m.Spec.SizeBytes = ptr.To(int64(len(srv.data)))
	})
	// The kernel's identity is still known while its model is not ready.
	waitKernel(t, ns, "k", metav1.ConditionFalse, v1alpha1.ReasonModelNotReady, hasDigests)

	// The model is deleted: no digest describes a model that is gone.
	if err := k8sClient.Delete(context.Background(), getModel(t, ns, "llama")); err != nil {
		t.Fatal(err)
	}
	waitKernel(t, ns, "k", metav1.ConditionFalse, v1alpha1.ReasonModelNotFound, noDigests)
}

func TestKernelInvalidRuntime(t *testing.T) {
	startKernelAndModelControllers(t)
	ns := newNamespace(t)
	srv := newModelServer(t, "")
	mustCreate(t, testutil.MakeModel(ns, "llama", srv.URL+"/weights", srv.digest).Obj()) // needs 8Gi

	k := testutil.MakeKernel(ns, "k", "llama").Obj()
	k.Spec.Runtime.Image = "ghcr.io/AIVM/runtime:v1"
	mustCreate(t, k)
	got := waitKernel(t, ns, "k", metav1.ConditionFalse, v1alpha1.ReasonInvalidRuntime, noDigests)
	if msg := meta.FindStatusCondition(got.Status.Conditions, v1alpha1.ConditionReady).Message; !strings.Contains(msg, "runtime.image") {
		t.Errorf("message = %q", msg)
	}
	waitEvent(t, ns, "k", "Warning", v1alpha1.ReasonInvalidRuntime)

	patchSpec(t, &v1alpha1.Kernel{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "k"}}, func(k *v1alpha1.Kernel) {
		k.Spec.Runtime.Image = "ghcr.io/aivm/runtime:v1"
	})
	waitKernel(t, ns, "k", metav1.ConditionTrue, v1alpha1.ReasonReady, hasDigests)

	// The runtime becomes invalid: the digests of the valid spec go.
	patchSpec(t, &v1alpha1.Kernel{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "k"}}, func(k *v1alpha1.Kernel) {
		k.Spec.GPU.Count = 2
		k.Spec.GPU.Memory = ptr.To(resource.MustParse("2Gi"))
	})
	got = waitKernel(t, ns, "k", metav1.ConditionFalse, v1alpha1.ReasonInvalidRuntime, noDigests)
	if msg := meta.FindStatusCondition(got.Status.Conditions, v1alpha1.ConditionReady).Message; !strings.Contains(msg, "less than model llama's gpuMemory 8Gi") {
		t.Errorf("message = %q", msg)
	}
}

// goldenKernelDigest is the digest of newKernel's spec, as the API server
// stores it (defaults applied), with a gguf Model of goldenModelSHA. It must
// never change without a new encoding version. The value was cross-checked
// with the independent encoder in docs/kernel-digest.md.
const (
	goldenModelSHA     = "3a6eb0790f39ac87c94f3856b2dd2c5d110e6811602261a9a923d3bb23adc8b7"
	goldenKernelDigest = "sha256:9564e783a68705bd923ca891610fffc3399a9f3197ce90485c3e187d28c3f862"
)

func TestKernelDigestStableAndChanging(t *testing.T) {
	startKernelAndModelControllers(t)
	ns1, ns2 := newNamespace(t), newNamespace(t)

	// Same content under different names, in different namespaces, whose
	// models have different URIs: the same digest.
	mustCreate(t, testutil.MakeModel(ns1, "llama", "file:///models/a.gguf", goldenModelSHA).Obj())
	mustCreate(t, testutil.MakeModel(ns2, "llama-copy", "https://mirror.invalid/a.gguf", goldenModelSHA).Obj())
	mustCreate(t, testutil.MakeKernel(ns1, "k", "llama").Obj())
	mustCreate(t, testutil.MakeKernel(ns2, "other-name", "llama-copy").Obj())
	hasDigest := func(k *v1alpha1.Kernel) error {
		if k.Status.KernelDigest == "" {
			return fmt.Errorf("no digest yet")
		}
		return nil
	}
	k1 := waitKernel(t, ns1, "k", metav1.ConditionTrue, v1alpha1.ReasonReady, hasDigest)
	// The second model's source does not resolve: its kernel is not ready,
	// but its identity is already known.
	k2 := waitKernel(t, ns2, "other-name", metav1.ConditionFalse, v1alpha1.ReasonModelNotReady, hasDigest)
	if k1.Status.KernelDigest != goldenKernelDigest || k2.Status.KernelDigest != goldenKernelDigest {
		t.Fatalf("digests %s and %s, want the golden %s", k1.Status.KernelDigest, k2.Status.KernelDigest, goldenKernelDigest)
	}

	seen := map[string]string{goldenKernelDigest: "golden"}
	key := &v1alpha1.Kernel{ObjectMeta: metav1.ObjectMeta{Namespace: ns1, Name: "k"}}
	// changed waits for a digest computed for the kernel's new generation
	// and checks it is new.
	changed := func(field string) {
		t.Helper()
		k := waitKernel(t, ns1, "k", metav1.ConditionTrue, v1alpha1.ReasonReady, func(k *v1alpha1.Kernel) error {
			if _, old := seen[k.Status.KernelDigest]; old {
				return fmt.Errorf("digest %s not new yet", k.Status.KernelDigest)
			}
			return nil
		})
		seen[k.Status.KernelDigest] = field
	}
	for field, change := range map[string]func(*v1alpha1.Kernel){
		"runtime.image": func(k *v1alpha1.Kernel) { k.Spec.Runtime.Image = "ghcr.io/aivm-dev/aivm-runtime:v2" },
		"runtime.engine": func(k *v1alpha1.Kernel) {
			k.Spec.Runtime.Engine = v1alpha1.EngineOpenAI
			k.Spec.Runtime.Port = ptr.To(int32(8000))
		},
		"runtime.args": func(k *v1alpha1.Kernel) { k.Spec.Runtime.Args = []string{"--max-tokens", "65"} },
		"runtime.env":  func(k *v1alpha1.Kernel) { k.Spec.Runtime.Env = append(k.Spec.Runtime.Env, corevEnv("TOP_K", "1")) },
		"gpu.count":    func(k *v1alpha1.Kernel) { k.Spec.GPU.Count++ },
		"gpu.products": func(k *v1alpha1.Kernel) { k.Spec.GPU.Products = []string{"NVIDIA H100 80GB HBM3"} },
		"gpu.minComputeCapability": func(k *v1alpha1.Kernel) {
			k.Spec.GPU.MinComputeCapability = "9.0"
		},
		"determinism.seed":  func(k *v1alpha1.Kernel) { k.Spec.Determinism.Seed = ptr.To(*k.Spec.Determinism.Seed + 1) },
		"determinism.dtype": func(k *v1alpha1.Kernel) { k.Spec.Determinism.DType = v1alpha1.DTypeBFloat16 },
		"determinism.batchInvariant": func(k *v1alpha1.Kernel) {
			k.Spec.Determinism.BatchInvariant = ptr.To(!*k.Spec.Determinism.BatchInvariant)
		},
		"determinism.deterministicAlgorithms": func(k *v1alpha1.Kernel) {
			k.Spec.Determinism.DeterministicAlgorithms = !k.Spec.Determinism.DeterministicAlgorithms
		},
		"committee.replicas":    func(k *v1alpha1.Kernel) { k.Spec.Committee.Replicas++ },
		"committee.aggregation": func(k *v1alpha1.Kernel) { k.Spec.Committee.Aggregation = v1alpha1.AggregationFirst },
	} {
		patchSpec(t, key, change)
		changed(field)
	}

	// The model's format decides the output too; the kernel follows it.
	patchSpec(t, &v1alpha1.Model{ObjectMeta: metav1.ObjectMeta{Namespace: ns1, Name: "llama"}}, func(m *v1alpha1.Model) {
		m.Spec.Format = v1alpha1.ModelFormatSafetensors
	})
	changed("model.format")

	// Pointing at a model with other bytes changes it as well.
	mustCreate(t, testutil.MakeModel(ns1, "mistral", "file:///models/b.gguf", randomDigest()).Obj())
	patchSpec(t, key, func(k *v1alpha1.Kernel) { k.Spec.ModelRef.Name = "mistral" })
	changed("model.sha256")

	// Fields that do not decide the output leave it alone.
	before := waitKernel(t, ns1, "k", metav1.ConditionTrue, v1alpha1.ReasonReady).Status.KernelDigest
	patchSpec(t, key, func(k *v1alpha1.Kernel) { k.Spec.Timeouts.InferenceSeconds = 42 })
	if after := waitKernel(t, ns1, "k", metav1.ConditionTrue, v1alpha1.ReasonReady).Status.KernelDigest; after != before {
		t.Errorf("timeouts changed the digest: %s -> %s", before, after)
	}
}

func TestValidateImageRef(t *testing.T) {
	good := []string{
		"busybox", "library/busybox:1.36", "ghcr.io/aivm-dev/aivm-runtime:v0.1.0", "localhost:5000/a/b",
		"registry.example.com:443/team/model-runner@sha256:" + strings.Repeat("c", 64),
		"repo:tag@sha256:" + strings.Repeat("d", 64), "[::1]:5000/x", "a__b/c-d.e",
	}
	bad := []string{
		"", "Busybox", "ghcr.io/AIVM/runtime", "repo:", "repo@sha256:abc", "repo@sha256:" + strings.Repeat("C", 64),
		"repo:-tag", "/repo", "repo/", "a b", "repo:" + strings.Repeat("t", 129), "http://ghcr.io/x",
	}
	for _, ref := range good {
		if err := validateImageRef(ref); err != nil {
			t.Errorf("validateImageRef(%q): %v", ref, err)
		}
	}
	for _, ref := range bad {
		if err := validateImageRef(ref); err == nil {
			t.Errorf("validateImageRef(%q) accepted", ref)
		}
	}
}

func corevEnv(name, value string) corev1.EnvVar { return corev1.EnvVar{Name: name, Value: value} }
