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

// Package scheduler decides where InferenceJobs run: which node and which
// GPUs (or MIG devices), from an incrementally kept picture of the GPU
// nodes, their Kubernetes Nodes and the reservations of placed jobs. It is
// plain Go with no API client; the scheduling controller in controllers/
// feeds it and records its decisions. See docs/scheduler.md.
package scheduler

import (
	"time"

	corev1 "k8s.io/api/core/v1"
)

// Policy is how the scheduler chooses among GPUs that fit.
type Policy string

// Policies.
const (
	// PolicyBinpack fills partly reserved GPUs first and keeps whole GPUs
	// free for big models.
	PolicyBinpack Policy = "binpack"
	// PolicySpread puts each job on the GPUs with the most free memory.
	PolicySpread Policy = "spread"
)

// GPU is one GPU of a GPUNode as the node agent reports it.
type GPU struct {
	// UUID is the NVML UUID.
	UUID string
	// Product is the NVML product name.
	Product string
	// MemoryTotal is the GPU's memory in bytes.
	MemoryTotal int64
	// ComputeCapability is "major.minor".
	ComputeCapability string
	// Healthy is false for an Unhealthy or Unknown GPU.
	Healthy bool
	// MIGEnabled GPUs are given out only as MIG devices.
	MIGEnabled bool
	// MIGDevices are the GPU's MIG instances.
	MIGDevices []MIGDevice
}

// MIGDevice is one MIG instance.
type MIGDevice struct {
	// UUID is the MIG device UUID.
	UUID string
	// Profile is the MIG profile, e.g. "1g.10gb".
	Profile string
	// Memory is the instance's memory in bytes.
	Memory int64
}

// GPUNode is a node's GPU inventory (the GPUNode object of that name).
type GPUNode struct {
	// Name is the node's name.
	Name string
	// GPUs are the node's GPUs.
	GPUs []GPU
	// Heartbeat is when the node agent last reported; zero means never.
	Heartbeat time.Time
	// CachedModels are the model digests in the node's cache.
	CachedModels []string
	// Unschedulable is the GPUNode's spec.unschedulable.
	Unschedulable bool
}

// Node is what the scheduler needs of a Kubernetes Node.
type Node struct {
	// Name is the node's name.
	Name string
	// Ready is the Node's Ready condition.
	Ready bool
	// Unschedulable is spec.unschedulable (cordoned).
	Unschedulable bool
	// Labels are the Node's labels, matched against node selectors.
	Labels map[string]string
	// Taints are the Node's taints; NoSchedule and NoExecute ones must be tolerated.
	Taints []corev1.Taint
}

// JobKey names a job.
type JobKey struct {
	Namespace string
	Name      string
}

// String returns namespace/name.
func (k JobKey) String() string { return k.Namespace + "/" + k.Name }

// Request is one attempt of a job that needs placement.
type Request struct {
	// Key names the job.
	Key JobKey
	// Attempt is the attempt to place (status.attempts).
	Attempt int32
	// Priority is spec.priority: higher first.
	Priority int32
	// Created orders jobs of one priority (FIFO) and ages them.
	Created time.Time
	// Members is the committee size: members go on distinct nodes, all or none.
	Members int
	// GPUs is the number of GPUs per member, all on one node.
	GPUs int
	// Memory is the free memory in bytes each GPU (or MIG device) must have.
	Memory int64
	// Products, when set, are the accepted NVML product names.
	Products []string
	// MinComputeCapability, when set, is the lowest accepted "major.minor".
	MinComputeCapability string
	// MIGProfile asks for one MIG device of this profile instead of GPUs.
	MIGProfile string
	// NodeSelector must match the Node's labels.
	NodeSelector map[string]string
	// Tolerations must tolerate the Node's NoSchedule and NoExecute taints.
	Tolerations []corev1.Toleration
	// ModelDigest gives a bonus to nodes whose cache holds the model.
	ModelDigest string
	// AvoidGPUs failed an earlier attempt: never used again (hard).
	AvoidGPUs []string
	// AvoidNodes held a failed earlier attempt: used only when nothing else fits (soft).
	AvoidNodes []string
}

// Placement is where one committee member runs.
type Placement struct {
	// Member is the committee member index, from 0.
	Member int32
	// Node is the node's name.
	Node string
	// GPUUUIDs are the GPUs or the MIG device given to the member.
	GPUUUIDs []string
}

// Decision is the outcome of one scheduling step for one request.
type Decision struct {
	// Request is the request decided.
	Request Request
	// Placements has one entry per member when the request was placed;
	// the scheduler has reserved them already. Empty when unplaceable.
	Placements []Placement
	// Reason is a v1alpha1 reason constant when unplaceable.
	Reason string
	// Message explains Reason in words a user can act on.
	Message string
}

// Placed reports whether the decision placed the request.
func (d Decision) Placed() bool { return len(d.Placements) > 0 }
