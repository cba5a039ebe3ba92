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

// Package indexer declares the manager's field indexes in one place, so
// every controller that lists by them registers them once, from Setup.
package indexer

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/aivm-dev/aivm-operator/api/v1alpha1"
	"github.com/aivm-dev/aivm-operator/internal/modeldigest"
)

const (
	// JobKernelRef indexes InferenceJobs by spec.kernelRef.name, so a Kernel
	// change reaches the jobs that wait on it.
	JobKernelRef = "spec.kernelRef.name"
	// JobActiveNode indexes InferenceJobs by the nodes of their placements
	// that have no outcome yet, so a Node or GPUNode fault reaches the jobs
	// running there.
	JobActiveNode = "status.placements.activeNode"
	// KernelModelRef indexes Kernels by spec.modelRef.name, so a Model
	// change reaches the Kernels that reference it.
	KernelModelRef = "spec.modelRef.name"
	// ModelDigest indexes Models by their modelDigest, computed from the
	// spec (internal/modeldigest): for a single file its sha256.
	ModelDigest = "spec.modelDigest"
	// GPUNodeCachedModel indexes GPUNodes by each digest in
	// status.cachedModels.
	GPUNodeCachedModel = "status.cachedModels"
	// GPUNodeCacheError indexes GPUNodes by the digest of each entry in
	// status.modelCacheErrors.
	GPUNodeCacheError = "status.modelCacheErrors.digest"
	// PodJob indexes the workload namespace's Pods by the UID of their
	// InferenceJob (label aivm.dev/job-uid), so a job's pods are found
	// without scanning the namespace's.
	PodJob = "metadata.labels.jobUID"
	// PodJobKey indexes those Pods by their job's namespace and name label
	// (JobKey), so the pods of a job that is gone are found too.
	PodJobKey = "metadata.labels.jobKey"
)

// Setup registers every index with fi (the manager's field indexer). Call
// it once per manager, before the controllers start.
func Setup(ctx context.Context, fi client.FieldIndexer) error {
	if err := fi.IndexField(ctx, &v1alpha1.InferenceJob{}, JobKernelRef, jobKernelRef); err != nil {
		return fmt.Errorf("index inferencejobs by %s: %w", JobKernelRef, err)
	}
	if err := fi.IndexField(ctx, &v1alpha1.InferenceJob{}, JobActiveNode, jobActiveNodes); err != nil {
		return fmt.Errorf("index inferencejobs by %s: %w", JobActiveNode, err)
	}
	if err := fi.IndexField(ctx, &v1alpha1.Kernel{}, KernelModelRef, kernelModelRef); err != nil {
		return fmt.Errorf("index kernels by %s: %w", KernelModelRef, err)
	}
	if err := fi.IndexField(ctx, &v1alpha1.Model{}, ModelDigest, modelDigest); err != nil {
		return fmt.Errorf("index models by %s: %w", ModelDigest, err)
	}
	if err := fi.IndexField(ctx, &v1alpha1.GPUNode{}, GPUNodeCachedModel, gpuNodeCachedModels); err != nil {
		return fmt.Errorf("index gpunodes by %s: %w", GPUNodeCachedModel, err)
	}
	if err := fi.IndexField(ctx, &v1alpha1.GPUNode{}, GPUNodeCacheError, gpuNodeCacheErrors); err != nil {
		return fmt.Errorf("index gpunodes by %s: %w", GPUNodeCacheError, err)
	}
	if err := fi.IndexField(ctx, &corev1.Pod{}, PodJob, podJob); err != nil {
		return fmt.Errorf("index pods by %s: %w", PodJob, err)
	}
	if err := fi.IndexField(ctx, &corev1.Pod{}, PodJobKey, podJobKey); err != nil {
		return fmt.Errorf("index pods by %s: %w", PodJobKey, err)
	}
	return nil
}

// Labels of job pods the indexes read (the job controller's LabelJobUID,
// LabelJobNamespace and LabelJobName; this package sits below it).
const (
	labelJobUID       = "aivm.dev/job-uid"
	labelJobNamespace = "aivm.dev/job-namespace"
	labelJobName      = "aivm.dev/job-name"
)

// JobKey is the PodJobKey value of a job: its namespace and name label.
func JobKey(namespace, nameLabel string) string { return namespace + "/" + nameLabel }

// podJob returns the UID of the pod's InferenceJob, if it names one.
func podJob(o client.Object) []string {
	if uid := o.GetLabels()[labelJobUID]; uid != "" {
		return []string{uid}
	}
	return nil
}

// podJobKey returns the pod's job key, if its labels name a job.
func podJobKey(o client.Object) []string {
	l := o.GetLabels()
	if l[labelJobNamespace] == "" || l[labelJobName] == "" {
		return nil
	}
	return []string{JobKey(l[labelJobNamespace], l[labelJobName])}
}

func kernelModelRef(o client.Object) []string {
	return []string{o.(*v1alpha1.Kernel).Spec.ModelRef.Name}
}

// modelDigest returns the Model's digest, or none when its spec is invalid.
func modelDigest(o client.Object) []string {
	d, err := modeldigest.Of(&o.(*v1alpha1.Model).Spec)
	if err != nil {
		return nil
	}
	return []string{d}
}

func gpuNodeCachedModels(o client.Object) []string {
	return o.(*v1alpha1.GPUNode).Status.CachedModels
}

func gpuNodeCacheErrors(o client.Object) []string {
	var out []string
	for _, e := range o.(*v1alpha1.GPUNode).Status.ModelCacheErrors {
		out = append(out, e.Digest)
	}
	return out
}

func jobKernelRef(o client.Object) []string {
	return []string{o.(*v1alpha1.InferenceJob).Spec.KernelRef.Name}
}

// jobActiveNodes returns the distinct nodes of the job's placements that
// have no outcome.
func jobActiveNodes(o client.Object) []string {
	job := o.(*v1alpha1.InferenceJob)
	var nodes []string
	seen := map[string]bool{}
	for _, p := range job.Status.Placements {
		if p.Outcome != "" || p.Node == "" || seen[p.Node] {
			continue
		}
		seen[p.Node] = true
		nodes = append(nodes, p.Node)
	}
	return nodes
}
