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

// Package nodeagent polls a node's GPU inventory (an [InventorySource]:
// NVML through package nodeagent/discovery, which alone needs cgo), scans
// the node-local model cache and publishes the result as the node's
// GPUNode. Package nodeagent/agent wires it to the API server.
//
// A GPU fault wakes the [Agent] ([AgentOptions.HealthChanged]), so it is
// published at once rather than at the next poll.
//
// A [CacheManager] keeps the node-local model cache: it prefetches the
// Models whose spec.prefetch.nodeSelector matches the node's labels (on
// goroutines of its own, so downloads never delay a poll), remembers why a
// fetch failed for the GPUNode's status.modelCacheErrors, and evicts the
// least recently used models above a size limit, never one a running job
// pins, a Model with cachePolicy Pinned, or a Model prefetched on the node.
// The [Agent] publishes its failures ([AgentOptions.CacheErrors]) and polls
// at once when it signals a change ([AgentOptions.Wake]).
package nodeagent

// Health is the health of one GPU as the agent sees it.
type Health string

// Health values.
const (
	// HealthHealthy: NVML answers for the GPU and no critical event was seen.
	HealthHealthy Health = "Healthy"
	// HealthUnhealthy: a critical XID or ECC event was seen, an NVML query
	// failed, or the GPU disappeared.
	HealthUnhealthy Health = "Unhealthy"
	// HealthUnknown: NVML answers for the GPU but its health events cannot
	// be watched.
	HealthUnknown Health = "Unknown"
)

// MIGMode says whether a GPU is partitioned with Multi-Instance GPU.
type MIGMode string

// MIG modes.
const (
	// MIGEnabled: the GPU runs in MIG mode.
	MIGEnabled MIGMode = "Enabled"
	// MIGDisabled: the GPU supports MIG but runs without it.
	MIGDisabled MIGMode = "Disabled"
	// MIGUnsupported: the GPU does not support MIG.
	MIGUnsupported MIGMode = "Unsupported"
)

// Inventory is what one poll of NVML found on the node.
type Inventory struct {
	// DriverVersion is the NVIDIA kernel driver version, e.g. "550.54.15".
	DriverVersion string `json:"driverVersion"`
	// CUDADriverVersion is the CUDA version the driver supports, e.g. "12.4".
	CUDADriverVersion string `json:"cudaDriverVersion"`
	// NVMLVersion is the NVML library version.
	NVMLVersion string `json:"nvmlVersion"`
	// GPUs lists every GPU the agent has seen since it started, ordered by
	// index; a GPU that disappeared stays listed as Unhealthy.
	GPUs []GPU `json:"gpus,omitempty"`
	// CallErrors counts the NVML calls that failed during this poll, and
	// the health watcher's failed event waits since the last poll.
	CallErrors int `json:"callErrors"`
}

// HealthyCount returns how many GPUs are Healthy.
func (inv *Inventory) HealthyCount() int {
	n := 0
	for i := range inv.GPUs {
		if inv.GPUs[i].Health == HealthHealthy {
			n++
		}
	}
	return n
}

// GPU describes one physical GPU.
type GPU struct {
	// Index is the NVML device index.
	Index int `json:"index"`
	// UUID is the NVML UUID ("GPU-..."); empty when NVML could not tell it.
	UUID string `json:"uuid"`
	// Product is the NVML product name, e.g. "NVIDIA H100 80GB HBM3".
	Product string `json:"product"`
	// MemoryTotal is the framebuffer size in bytes.
	MemoryTotal uint64 `json:"memoryTotal"`
	// MemoryUsed is the framebuffer memory in use, in bytes.
	MemoryUsed uint64 `json:"memoryUsed"`
	// MemoryFree is the framebuffer memory free, in bytes.
	MemoryFree uint64 `json:"memoryFree"`
	// ComputeCapability is the CUDA compute capability, e.g. "8.0".
	ComputeCapability string `json:"computeCapability"`
	// MIGMode is the current MIG mode.
	MIGMode MIGMode `json:"migMode"`
	// MIGDevices lists the MIG devices when MIGMode is Enabled.
	MIGDevices []MIGDevice `json:"migDevices,omitempty"`
	// Health is the GPU's health.
	Health Health `json:"health"`
	// HealthReason says why the GPU is not Healthy; empty when it is.
	HealthReason string `json:"healthReason,omitempty"`
	// UtilizationPercent is the GPU utilization over the last sample
	// period; nil when NVML does not report it.
	UtilizationPercent *int32 `json:"utilizationPercent,omitempty"`
	// MemoryUtilizationPercent is the memory controller utilization; nil
	// when NVML does not report it.
	MemoryUtilizationPercent *int32 `json:"memoryUtilizationPercent,omitempty"`
	// TemperatureCelsius is the GPU core temperature; nil when NVML does
	// not report it.
	TemperatureCelsius *int32 `json:"temperatureCelsius,omitempty"`
}

// MIGDevice describes one MIG device (a GPU instance plus compute instance).
type MIGDevice struct {
	// UUID is the MIG device UUID ("MIG-...").
	UUID string `json:"uuid"`
	// Profile is the MIG profile name, e.g. "1g.5gb" or "1c.2g.10gb";
	// empty when NVML could not tell it.
	Profile string `json:"profile,omitempty"`
	// MemoryTotal is the MIG device's memory in bytes.
	MemoryTotal uint64 `json:"memoryTotal"`
	// GPUInstanceID is the GPU instance id on the parent GPU.
	GPUInstanceID int32 `json:"gpuInstanceID"`
	// ComputeInstanceID is the compute instance id within the GPU instance.
	ComputeInstanceID int32 `json:"computeInstanceID"`
}
