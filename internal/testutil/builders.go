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

package testutil

import (
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/aivm-dev/aivm-operator/api/v1alpha1"
)

// RuntimeImage is the digest-pinned runtime image MakeKernel uses.
const RuntimeImage = "ghcr.io/aivm-dev/aivm-runtime@sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"

// ModelWrapper builds a Model for a test: MakeModel(...).Prefetch(...).Obj().
type ModelWrapper struct{ v1alpha1.Model }

// MakeModel returns a single-file GGUF Model from uri with the sha256
// digest, needing 8Gi of GPU memory.
func MakeModel(ns, name, uri, digest string) *ModelWrapper {
	return &ModelWrapper{v1alpha1.Model{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: v1alpha1.ModelSpec{
			URI:       uri,
			SHA256:    digest,
			Format:    v1alpha1.ModelFormatGGUF,
			GPUMemory: resource.MustParse("8Gi"),
		},
	}}
}

// GPUMemory sets spec.gpuMemory.
func (w *ModelWrapper) GPUMemory(q string) *ModelWrapper {
	w.Spec.GPUMemory = resource.MustParse(q)
	return w
}

// Prefetch sets spec.prefetch to the nodes with the labels; nil clears it.
func (w *ModelWrapper) Prefetch(labels map[string]string) *ModelWrapper {
	w.Spec.Prefetch = nil
	if labels != nil {
		w.Spec.Prefetch = &v1alpha1.ModelPrefetch{NodeSelector: metav1.LabelSelector{MatchLabels: labels}}
	}
	return w
}

// PrefetchSelector sets spec.prefetch to the nodes sel selects; nil clears it.
func (w *ModelWrapper) PrefetchSelector(sel *metav1.LabelSelector) *ModelWrapper {
	w.Spec.Prefetch = nil
	if sel != nil {
		w.Spec.Prefetch = &v1alpha1.ModelPrefetch{NodeSelector: *sel}
	}
	return w
}

// Obj returns the Model.
func (w *ModelWrapper) Obj() *v1alpha1.Model { return &w.Model }

// KernelWrapper builds a Kernel for a test: MakeKernel(...).Obj().
type KernelWrapper struct{ v1alpha1.Kernel }

// MakeKernel returns a Kernel of the model on RuntimeImage (args
// --max-tokens 64), deterministic with seed 7, float32 and batch
// invariance.
func MakeKernel(ns, name, model string) *KernelWrapper {
	return &KernelWrapper{v1alpha1.Kernel{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: v1alpha1.KernelSpec{
			ModelRef: v1alpha1.LocalObjectReference{Name: model},
			Runtime: v1alpha1.KernelRuntime{
				Image: RuntimeImage,
				Args:  []string{"--max-tokens", "64"},
			},
			Determinism: v1alpha1.Determinism{Seed: ptr.To(int64(7)), DType: v1alpha1.DTypeFloat32, BatchInvariant: ptr.To(true)},
		},
	}}
}

// Image sets spec.runtime.image.
func (w *KernelWrapper) Image(image string) *KernelWrapper {
	w.Spec.Runtime.Image = image
	return w
}

// Obj returns the Kernel.
func (w *KernelWrapper) Obj() *v1alpha1.Kernel { return &w.Kernel }

// InferenceJobWrapper builds an InferenceJob for a test.
type InferenceJobWrapper struct{ v1alpha1.InferenceJob }

// MakeInferenceJob returns a job of the kernel with the text prompt.
func MakeInferenceJob(ns, name, kernel, prompt string) *InferenceJobWrapper {
	return &InferenceJobWrapper{v1alpha1.InferenceJob{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: v1alpha1.InferenceJobSpec{
			KernelRef: v1alpha1.LocalObjectReference{Name: kernel},
			Input:     v1alpha1.JobInput{Text: ptr.To(prompt)},
		},
	}}
}

// Obj returns the InferenceJob.
func (w *InferenceJobWrapper) Obj() *v1alpha1.InferenceJob { return &w.InferenceJob }

// GPUNodeWrapper builds a GPUNode for a test.
type GPUNodeWrapper struct{ v1alpha1.GPUNode }

// MakeGPUNode returns an empty GPUNode.
func MakeGPUNode(name string) *GPUNodeWrapper {
	return &GPUNodeWrapper{v1alpha1.GPUNode{ObjectMeta: metav1.ObjectMeta{Name: name}}}
}

// OwnedBy makes the Node (name and UID) the GPUNode's owner, as the node
// agent does.
func (w *GPUNodeWrapper) OwnedBy(node metav1.Object) *GPUNodeWrapper {
	w.OwnerReferences = []metav1.OwnerReference{{APIVersion: "v1", Kind: "Node", Name: node.GetName(), UID: node.GetUID()}}
	return w
}

// Obj returns the GPUNode.
func (w *GPUNodeWrapper) Obj() *v1alpha1.GPUNode { return &w.GPUNode }
