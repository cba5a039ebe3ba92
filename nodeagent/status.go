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

package nodeagent

import (
	"regexp"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/api/resource"

	aivmv1alpha1 "github.com/aivm-dev/aivm-operator/api/v1alpha1"
	"github.com/aivm-dev/aivm-operator/internal/text"
)

// maxStatusGPUs and maxMIGDevices are the API's list bounds.
const (
	maxStatusGPUs       = 64
	maxStatusMIGDevices = 64
	maxReasonLength     = 1024
)

// GPULabels are the Node labels the agent owns; it sets those that apply
// and removes the others.
var GPULabels = []string{
	aivmv1alpha1.LabelGPUPresent,
	aivmv1alpha1.LabelGPUProduct,
	aivmv1alpha1.LabelGPUCount,
	aivmv1alpha1.LabelGPUMemory,
	aivmv1alpha1.LabelGPUComputeCapability,
	aivmv1alpha1.LabelGPUHealthyCount,
}

// StatusFor turns an inventory and the cached model digests into the
// GPUNode status the agent owns. It leaves conditions, heartbeatTime and
// modelCacheErrors empty: the publisher fills or keeps those.
func StatusFor(inv Inventory, cachedModels []string) aivmv1alpha1.GPUNodeStatus {
	st := aivmv1alpha1.GPUNodeStatus{
		GPUCount:          int32(len(inv.GPUs)),
		HealthyGPUCount:   int32(inv.HealthyCount()),
		DriverVersion:     inv.DriverVersion,
		CUDADriverVersion: inv.CUDADriverVersion,
		NVMLVersion:       inv.NVMLVersion,
	}
	if len(cachedModels) > 0 {
		st.CachedModels = append([]string(nil), cachedModels...)
	}
	gpus := inv.GPUs
	if len(gpus) > maxStatusGPUs {
		gpus = gpus[:maxStatusGPUs]
	}
	for _, g := range gpus {
		s := aivmv1alpha1.GPUStatus{
			Index:                    int32(g.Index),
			UUID:                     g.UUID,
			Product:                  text.Truncate(g.Product, 128),
			MemoryTotal:              bytesQuantity(g.MemoryTotal),
			MemoryUsed:               bytesQuantity(g.MemoryUsed),
			MemoryFree:               bytesQuantity(g.MemoryFree),
			ComputeCapability:        g.ComputeCapability,
			MIGMode:                  aivmv1alpha1.MIGMode(g.MIGMode),
			Health:                   aivmv1alpha1.GPUHealth(g.Health),
			HealthReason:             text.Truncate(g.HealthReason, maxReasonLength),
			UtilizationPercent:       g.UtilizationPercent,
			MemoryUtilizationPercent: g.MemoryUtilizationPercent,
			TemperatureCelsius:       g.TemperatureCelsius,
		}
		migs := g.MIGDevices
		if len(migs) > maxStatusMIGDevices {
			migs = migs[:maxStatusMIGDevices]
		}
		for _, m := range migs {
			s.MIGDevices = append(s.MIGDevices, aivmv1alpha1.MIGDevice{
				UUID:              m.UUID,
				Profile:           text.Truncate(m.Profile, 32),
				MemoryTotal:       bytesQuantity(m.MemoryTotal),
				GPUInstanceID:     m.GPUInstanceID,
				ComputeInstanceID: m.ComputeInstanceID,
			})
		}
		st.GPUs = append(st.GPUs, s)
	}
	return st
}

func bytesQuantity(b uint64) resource.Quantity {
	return *resource.NewQuantity(int64(min(b, 1<<62)), resource.BinarySI)
}

// LabelsFor returns the values of the GPU labels for an inventory: present,
// product (of the first GPU, as a label value), count, memory (the smallest
// GPU's memory in MiB), compute capability (the lowest) and healthy count.
// A node without GPUs gets none of them.
func LabelsFor(inv Inventory) map[string]string {
	if len(inv.GPUs) == 0 {
		return map[string]string{}
	}
	labels := map[string]string{
		aivmv1alpha1.LabelGPUPresent:      "true",
		aivmv1alpha1.LabelGPUCount:        strconv.Itoa(len(inv.GPUs)),
		aivmv1alpha1.LabelGPUHealthyCount: strconv.Itoa(inv.HealthyCount()),
	}
	var product, cc string
	var memory uint64
	for _, g := range inv.GPUs {
		if product == "" && g.Product != "" {
			product = g.Product
		}
		if g.MemoryTotal > 0 && (memory == 0 || g.MemoryTotal < memory) {
			memory = g.MemoryTotal
		}
		if g.ComputeCapability != "" && (cc == "" || lessCC(g.ComputeCapability, cc)) {
			cc = g.ComputeCapability
		}
	}
	if v := LabelValue(product); v != "" {
		labels[aivmv1alpha1.LabelGPUProduct] = v
	}
	if memory > 0 {
		labels[aivmv1alpha1.LabelGPUMemory] = strconv.FormatUint(memory>>20, 10)
	}
	if v := LabelValue(cc); v != "" {
		labels[aivmv1alpha1.LabelGPUComputeCapability] = v
	}
	return labels
}

// lessCC compares "major.minor" compute capabilities numerically.
func lessCC(a, b string) bool {
	am, an := splitCC(a)
	bm, bn := splitCC(b)
	return am < bm || (am == bm && an < bn)
}

func splitCC(s string) (int, int) {
	major, minor, _ := strings.Cut(s, ".")
	m, _ := strconv.Atoi(major)
	n, _ := strconv.Atoi(minor)
	return m, n
}

var labelUnsafe = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

// LabelValue turns a string into a valid label value: runs of other
// characters become "-", at most 63 characters, starting and ending with a
// letter or digit. "NVIDIA H100 80GB HBM3" becomes "NVIDIA-H100-80GB-HBM3".
func LabelValue(s string) string {
	v := labelUnsafe.ReplaceAllString(s, "-")
	if len(v) > 63 {
		v = v[:63]
	}
	return strings.Trim(v, "-._")
}
