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
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/aivm-dev/aivm-operator/api/v1alpha1"
	"github.com/aivm-dev/aivm-operator/controllers/scheduler"
	"github.com/aivm-dev/aivm-operator/internal/modeldigest"
)

// This file turns API objects into the scheduler's inputs and its
// decisions into InferenceJob status; scheduling_controller.go keeps the flow.

// jobKey is the scheduler's name for a job.
func jobKey(job *v1alpha1.InferenceJob) scheduler.JobKey {
	return scheduler.JobKey{Namespace: job.Namespace, Name: job.Name}
}

// jobFinished reports whether Succeeded or Failed is True.
func jobFinished(job *v1alpha1.InferenceJob) bool {
	return meta.IsStatusConditionTrue(job.Status.Conditions, v1alpha1.ConditionSucceeded) ||
		meta.IsStatusConditionTrue(job.Status.Conditions, v1alpha1.ConditionFailed)
}

// needsPlacement is step 2 of the lifecycle handshake (docs/job-lifecycle.md):
// admitted, not suspended, not finished, attempts >= 1, and no placement
// for the current attempt yet; or never admitted and admissible on kernel
// (Ready), when the placement write admits it (awaitsFirstAdmission).
func needsPlacement(job *v1alpha1.InferenceJob, kernel *v1alpha1.Kernel) bool {
	if awaitsFirstAdmission(job, kernel) {
		return true
	}
	if !meta.IsStatusConditionTrue(job.Status.Conditions, v1alpha1.ConditionAdmitted) ||
		(job.Spec.Suspend != nil && *job.Spec.Suspend) || jobFinished(job) || job.Status.Attempts < 1 {
		return false
	}
	for _, p := range job.Status.Placements {
		if p.Attempt == job.Status.Attempts {
			return false
		}
	}
	return true
}

// schedAttempt is the attempt the scheduler places: the current one, or
// 1 for a job whose first admission comes with its placement.
func schedAttempt(job *v1alpha1.InferenceJob) int32 {
	return max(job.Status.Attempts, 1)
}

// activePlacements are the placements that hold GPUs: the current
// attempt's, without an outcome, of a job that is not finished.
func activePlacements(job *v1alpha1.InferenceJob) []scheduler.Placement {
	if jobFinished(job) || !job.DeletionTimestamp.IsZero() {
		return nil
	}
	var out []scheduler.Placement
	for _, p := range job.Status.Placements {
		if p.Attempt == job.Status.Attempts && p.Outcome == "" {
			out = append(out, scheduler.Placement{Member: p.Member, Node: p.Node, GPUUUIDs: p.GPUUUIDs})
		}
	}
	return out
}

// memoryPerGPU is the Kernel's gpu.memory, else the Model's gpuMemory
// divided among the GPUs (as the Kernel API documents); for a MIG device
// the whole gpuMemory. Zero when the Kernel is unknown: a reservation then
// holds whole GPUs.
func memoryPerGPU(kernel *v1alpha1.Kernel, model *v1alpha1.Model) int64 {
	if kernel == nil {
		return 0
	}
	if m := kernel.Spec.GPU.Memory; m != nil {
		return m.Value()
	}
	if model == nil {
		return 0
	}
	total := model.Spec.GPUMemory.Value()
	count := int64(max(kernel.Spec.GPU.Count, 1))
	if kernel.Spec.GPU.MIGProfile != "" {
		count = 1
	}
	return (total + count - 1) / count
}

// requestFor builds the scheduler's request for the job's current attempt.
// Earlier attempts' failed placements are avoided: their GPUs always, their
// nodes when anything else fits.
func requestFor(job *v1alpha1.InferenceJob, kernel *v1alpha1.Kernel, model *v1alpha1.Model) scheduler.Request {
	g := kernel.Spec.GPU
	r := scheduler.Request{
		Key:                  jobKey(job),
		Attempt:              schedAttempt(job),
		Priority:             job.Spec.Priority,
		Created:              job.CreationTimestamp.Time,
		Members:              int(max(kernel.Spec.Committee.Replicas, 1)),
		GPUs:                 int(max(g.Count, 1)),
		Memory:               memoryPerGPU(kernel, model),
		Products:             g.Products,
		MinComputeCapability: g.MinComputeCapability,
		MIGProfile:           g.MIGProfile,
		NodeSelector:         kernel.Spec.NodeSelector,
		Tolerations:          kernel.Spec.Tolerations,
	}
	// A spec modeldigest refuses has no cached copies to prefer.
	r.ModelDigest, _ = modeldigest.Of(&model.Spec)
	for _, p := range job.Status.Placements {
		if p.Outcome != v1alpha1.PlacementFailed {
			continue
		}
		r.AvoidGPUs = append(r.AvoidGPUs, p.GPUUUIDs...)
		if !slices.Contains(r.AvoidNodes, p.Node) {
			r.AvoidNodes = append(r.AvoidNodes, p.Node)
		}
	}
	return r
}

// toSchedulerGPUNode converts a GPUNode's inventory.
func toSchedulerGPUNode(gn *v1alpha1.GPUNode) scheduler.GPUNode {
	out := scheduler.GPUNode{Name: gn.Name, CachedModels: gn.Status.CachedModels, Unschedulable: gn.Spec.Unschedulable}
	if hb := gn.Status.HeartbeatTime; hb != nil {
		out.Heartbeat = hb.Time
	}
	for _, g := range gn.Status.GPUs {
		sg := scheduler.GPU{
			UUID: g.UUID, Product: g.Product, MemoryTotal: g.MemoryTotal.Value(),
			ComputeCapability: g.ComputeCapability, Healthy: g.Health == v1alpha1.GPUHealthy,
			MIGEnabled: g.MIGMode == v1alpha1.MIGEnabled,
		}
		for _, m := range g.MIGDevices {
			sg.MIGDevices = append(sg.MIGDevices, scheduler.MIGDevice{UUID: m.UUID, Profile: m.Profile, Memory: m.MemoryTotal.Value()})
		}
		out.GPUs = append(out.GPUs, sg)
	}
	return out
}

// toSchedulerNode converts what the scheduler needs of a Node.
func toSchedulerNode(n *corev1.Node) scheduler.Node {
	ready := false
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			ready = c.Status == corev1.ConditionTrue
		}
	}
	return scheduler.Node{Name: n.Name, Ready: ready, Unschedulable: n.Spec.Unschedulable, Labels: n.Labels, Taints: n.Spec.Taints}
}

// setPlaced appends the decision's placements for the attempt and sets
// Scheduled=True, in one status write (with the job's first admission,
// when this is its first decision).
func setPlaced(job *v1alpha1.InferenceJob, d scheduler.Decision, now metav1.Time) {
	nodes := make([]string, 0, len(d.Placements))
	for _, p := range d.Placements {
		job.Status.Placements = append(job.Status.Placements, v1alpha1.Placement{
			Attempt: d.Request.Attempt, Member: p.Member, Node: p.Node,
			GPUUUIDs: append([]string(nil), p.GPUUUIDs...), PlacedTime: &now,
		})
		nodes = append(nodes, fmt.Sprintf("%s (%s)", p.Node, strings.Join(p.GPUUUIDs, ", ")))
	}
	msg := fmt.Sprintf("attempt %d placed on %s", d.Request.Attempt, strings.Join(nodes, "; "))
	meta.SetStatusCondition(&job.Status.Conditions, metav1.Condition{
		Type: v1alpha1.ConditionScheduled, Status: metav1.ConditionTrue, Reason: v1alpha1.ReasonPlaced,
		Message: truncateMessage(msg), ObservedGeneration: job.Generation, LastTransitionTime: now,
	})
}

// setUnplaced sets Scheduled=False with the scheduler's reason and message.
func setUnplaced(job *v1alpha1.InferenceJob, d scheduler.Decision, now metav1.Time) {
	meta.SetStatusCondition(&job.Status.Conditions, metav1.Condition{
		Type: v1alpha1.ConditionScheduled, Status: metav1.ConditionFalse, Reason: d.Reason,
		Message: truncateMessage(d.Message), ObservedGeneration: job.Generation, LastTransitionTime: now,
	})
}
