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

package v1alpha1

import (
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// GPUHealth is a GPU's health as the node agent sees it.
// +kubebuilder:validation:Enum=Healthy;Unhealthy;Unknown
type GPUHealth string

// GPU health values.
const (
	GPUHealthy   GPUHealth = "Healthy"
	GPUUnhealthy GPUHealth = "Unhealthy"
	GPUUnknown   GPUHealth = "Unknown"
)

// MIGMode is a GPU's multi-instance mode.
// +kubebuilder:validation:Enum=Enabled;Disabled;Unsupported
type MIGMode string

// MIG modes.
const (
	MIGEnabled     MIGMode = "Enabled"
	MIGDisabled    MIGMode = "Disabled"
	MIGUnsupported MIGMode = "Unsupported"
)

// Node labels the node agent sets.
const (
	LabelGPUPresent           = "aivm.dev/gpu.present"
	LabelGPUProduct           = "aivm.dev/gpu.product"
	LabelGPUCount             = "aivm.dev/gpu.count"
	LabelGPUMemory            = "aivm.dev/gpu.memory"
	LabelGPUComputeCapability = "aivm.dev/gpu.compute-capability"
	LabelGPUHealthyCount      = "aivm.dev/gpu.healthy-count"
)

// GPUNodeSpec holds the provider's settings for a GPU node.
type GPUNodeSpec struct {
	// unschedulable keeps new jobs off this node's GPUs; running jobs finish.
	// +optional
	Unschedulable bool `json:"unschedulable,omitempty"`
}

// GPUStatus is one GPU as NVML reports it.
type GPUStatus struct {
	// index is the NVML device index.
	// +required
	// +kubebuilder:validation:Minimum=0
	Index int32 `json:"index"`
	// uuid is the NVML UUID (GPU-...).
	// +required
	// +kubebuilder:validation:MaxLength=128
	UUID string `json:"uuid"`
	// product is the NVML product name.
	// +optional
	// +kubebuilder:validation:MaxLength=128
	Product string `json:"product,omitempty"`
	// memoryTotal is the GPU's total memory.
	// +optional
	MemoryTotal resource.Quantity `json:"memoryTotal,omitempty"`
	// memoryUsed is the memory in use.
	// +optional
	MemoryUsed resource.Quantity `json:"memoryUsed,omitempty"`
	// memoryFree is the memory free.
	// +optional
	MemoryFree resource.Quantity `json:"memoryFree,omitempty"`
	// computeCapability is the CUDA compute capability, "major.minor".
	// +optional
	// +kubebuilder:validation:MaxLength=8
	ComputeCapability string `json:"computeCapability,omitempty"`
	// migMode is the GPU's multi-instance mode.
	// +optional
	MIGMode MIGMode `json:"migMode,omitempty"`
	// migDevices are the MIG instances when migMode is Enabled.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=64
	MIGDevices []MIGDevice `json:"migDevices,omitempty"`
	// health is Healthy, Unhealthy (see healthReason) or Unknown.
	// +optional
	Health GPUHealth `json:"health,omitempty"`
	// healthReason says why a GPU is not healthy, e.g. "XID 79: GPU has fallen off the bus".
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	HealthReason string `json:"healthReason,omitempty"`
	// utilizationPercent is the GPU's compute utilization.
	// +optional
	UtilizationPercent *int32 `json:"utilizationPercent,omitempty"`
	// memoryUtilizationPercent is the GPU's memory-bandwidth utilization.
	// +optional
	MemoryUtilizationPercent *int32 `json:"memoryUtilizationPercent,omitempty"`
	// temperatureCelsius is the GPU core temperature.
	// +optional
	TemperatureCelsius *int32 `json:"temperatureCelsius,omitempty"`
}

// MIGDevice is one MIG instance of a GPU.
type MIGDevice struct {
	// uuid is the MIG device's UUID (MIG-...).
	// +required
	// +kubebuilder:validation:MaxLength=128
	UUID string `json:"uuid"`
	// profile is the MIG profile, e.g. "1g.10gb".
	// +optional
	// +kubebuilder:validation:MaxLength=32
	Profile string `json:"profile,omitempty"`
	// memoryTotal is the instance's memory.
	// +optional
	MemoryTotal resource.Quantity `json:"memoryTotal,omitempty"`
	// gpuInstanceID is the NVML GPU instance id.
	// +optional
	GPUInstanceID int32 `json:"gpuInstanceID,omitempty"`
	// computeInstanceID is the NVML compute instance id.
	// +optional
	ComputeInstanceID int32 `json:"computeInstanceID,omitempty"`
}

// ModelCacheError is a failure to place a model in a node's cache.
type ModelCacheError struct {
	// digest is the Model's status.modelDigest (for a single-file Model,
	// its sha256).
	// +required
	// +kubebuilder:validation:MaxLength=64
	Digest string `json:"digest"`
	// file is the path, in the Model's directory, of the file that failed,
	// when one file did.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	File string `json:"file,omitempty"`
	// model is the namespace/name of the Model whose fetch or publish
	// failed. A failure for reason AccessNotProven concerns that Model
	// alone (its source or credentials), and its message is shown only on
	// that Model, never on other Models of the same digest.
	// +optional
	// +kubebuilder:validation:MaxLength=317
	Model string `json:"model,omitempty"`
	// reason is a PascalCase cause, e.g. DigestMismatch.
	// +required
	// +kubebuilder:validation:MaxLength=64
	Reason string `json:"reason"`
	// message gives the details.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	Message string `json:"message,omitempty"`
	// time is when it happened.
	// +optional
	Time *metav1.Time `json:"time,omitempty"`
}

// GPUNodeStatus is the live GPU inventory of a node.
type GPUNodeStatus struct {
	// conditions: Ready (the agent's heartbeat is fresh).
	// +optional
	// +listType=map
	// +listMapKey=type
	// +kubebuilder:validation:MaxItems=8
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// gpus lists the node's GPUs by index.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=64
	GPUs []GPUStatus `json:"gpus,omitempty"`
	// gpuCount is the number of GPUs.
	// +optional
	GPUCount int32 `json:"gpuCount,omitempty"`
	// healthyGPUCount is the number of healthy GPUs.
	// +optional
	HealthyGPUCount int32 `json:"healthyGPUCount,omitempty"`
	// driverVersion is the NVIDIA driver version.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	DriverVersion string `json:"driverVersion,omitempty"`
	// cudaDriverVersion is the CUDA version the driver supports, "major.minor".
	// +optional
	// +kubebuilder:validation:MaxLength=64
	CUDADriverVersion string `json:"cudaDriverVersion,omitempty"`
	// nvmlVersion is the NVML library version.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	NVMLVersion string `json:"nvmlVersion,omitempty"`
	// heartbeatTime is when the agent last reported.
	// +optional
	HeartbeatTime *metav1.Time `json:"heartbeatTime,omitempty"`
	// cachedModels are the sha256 digests present in the node's model cache.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=1024
	// +kubebuilder:validation:items:MaxLength=64
	CachedModels []string `json:"cachedModels,omitempty"`
	// modelCacheErrors are recent failures to cache models, newest last.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=32
	ModelCacheErrors []ModelCacheError `json:"modelCacheErrors,omitempty"`
}

// GPUNode is the live GPU inventory of one node, named after the node.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=gn,categories=aivm
// +kubebuilder:printcolumn:name="GPUs",type=integer,JSONPath=`.status.gpuCount`
// +kubebuilder:printcolumn:name="Healthy",type=integer,JSONPath=`.status.healthyGPUCount`
// +kubebuilder:printcolumn:name="Product",type=string,JSONPath=`.status.gpus[0].product`
// +kubebuilder:printcolumn:name="Driver",type=string,JSONPath=`.status.driverVersion`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Heartbeat",type=date,JSONPath=`.status.heartbeatTime`
// +kubebuilder:printcolumn:name="CUDA",type=string,JSONPath=`.status.cudaDriverVersion`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type GPUNode struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec holds the provider's settings.
	// +optional
	Spec GPUNodeSpec `json:"spec,omitempty"`
	// status is the live inventory.
	// +optional
	Status GPUNodeStatus `json:"status,omitempty"`
}

// GPUNodeList is a list of GPUNodes.
// +kubebuilder:object:root=true
type GPUNodeList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	// items are the GPUNodes.
	Items []GPUNode `json:"items"`
}

func init() { register(&GPUNode{}, &GPUNodeList{}) }
