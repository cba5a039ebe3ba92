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

package discovery

import (
	"fmt"
	"slices"
	"strings"

	"github.com/NVIDIA/go-nvml/pkg/nvml"

	"github.com/aivm-dev/aivm-operator/nodeagent"
)

// migDevices lists the MIG devices of a GPU in MIG mode.
func (d *Discoverer) migDevices(dev *device, check func(string, nvml.Return, bool) bool) []nodeagent.MIGDevice {
	h := dev.handle
	maxCount, ret := h.GetMaxMigDeviceCount()
	if !check("get max mig device count", ret, false) {
		return nil
	}
	var out []nodeagent.MIGDevice
	for i := 0; i < maxCount; i++ {
		mh, ret := h.GetMigDeviceHandleByIndex(i)
		if ret == nvml.ERROR_NOT_FOUND {
			continue
		}
		if !check(fmt.Sprintf("get mig device %d", i), ret, false) {
			continue
		}
		var m nodeagent.MIGDevice
		uuid, ret := mh.GetUUID()
		if !check(fmt.Sprintf("get uuid of mig device %d", i), ret, false) {
			continue
		}
		m.UUID = uuid
		if mem, ret := mh.GetMemoryInfo(); check("get memory info of "+uuid, ret, false) {
			m.MemoryTotal = mem.Total
		}
		gi, ret := mh.GetGpuInstanceId()
		if !check("get gpu instance id of "+uuid, ret, false) {
			continue
		}
		ci, ret := mh.GetComputeInstanceId()
		if !check("get compute instance id of "+uuid, ret, false) {
			continue
		}
		m.GPUInstanceID, m.ComputeInstanceID = int32(gi), int32(ci)
		m.Profile = d.migProfile(dev, gi, ci)
		out = append(out, m)
	}
	slices.SortFunc(out, func(a, b nodeagent.MIGDevice) int {
		if a.GPUInstanceID != b.GPUInstanceID {
			return int(a.GPUInstanceID - b.GPUInstanceID)
		}
		return int(a.ComputeInstanceID - b.ComputeInstanceID)
	})
	return out
}

// migProfile names the MIG profile of a GPU instance and compute instance
// the way nvidia-smi does ("3g.20gb", or "1c.3g.20gb" when the compute
// instance uses fewer slices than its GPU instance). Names are cached; ""
// means NVML could not tell.
func (d *Discoverer) migProfile(dev *device, giID, ciID int) (name string) {
	key := migKey{dev.uuid, giID, ciID}
	if n, ok := d.migNames[key]; ok {
		return n
	}
	defer func() {
		if r := recover(); r != nil {
			name = ""
		}
	}()
	gi, ret := dev.handle.GetGpuInstanceById(giID)
	if ret != nvml.SUCCESS {
		return ""
	}
	giInfo, ret := gi.GetInfo()
	if ret != nvml.SUCCESS {
		return ""
	}
	giProfile, ret := dev.handle.GetGpuInstanceProfileInfo(int(giInfo.ProfileId))
	if ret != nvml.SUCCESS {
		return ""
	}
	giName := nvmlProfileName(dev.handle, int(giInfo.ProfileId))
	if giName == "" {
		giName = MIGProfileName(giProfile.SliceCount, 0, giProfile.MemorySizeMB, dev.memoryTotal)
	}
	name = giName
	if ci, ret := gi.GetComputeInstanceById(ciID); ret == nvml.SUCCESS {
		if ciInfo, ret := ci.GetInfo(); ret == nvml.SUCCESS {
			ciProfile, ret := gi.GetComputeInstanceProfileInfo(int(ciInfo.ProfileId), nvml.COMPUTE_INSTANCE_ENGINE_PROFILE_SHARED)
			if ret == nvml.SUCCESS && ciProfile.SliceCount != 0 && ciProfile.SliceCount < giProfile.SliceCount {
				name = fmt.Sprintf("%dc.%s", ciProfile.SliceCount, giName)
			}
		}
	}
	d.migNames[key] = name
	return name
}

// MIGProfileName builds a MIG profile name from the GPU instance's slice
// count, the compute instance's slice count (0 or equal: the whole GPU
// instance), the GPU instance's memory in MiB and the parent GPU's memory in
// bytes. Memory is named in GB as NVIDIA does: the instance's share of the
// GPU in eighths (rounded up, forgiving a 5% overshoot that some drivers
// report), times the GPU's size in GB.
func MIGProfileName(giSlices, ciSlices uint32, memoryMiB uint64, parentBytes uint64) string {
	parentMiB := parentBytes / (1 << 20)
	var gb uint64
	if parentMiB > 0 {
		parentGB := (parentMiB + 512) / 1024
		// eighths = ceil(memory*8/parent - 0.05)
		num := memoryMiB * 800
		slack := parentMiB * 5
		eighths := uint64(1)
		if num > slack {
			eighths = max(1, (num-slack+parentMiB*100-1)/(parentMiB*100))
		}
		gb = (eighths*parentGB*2 + 8) / 16
	} else {
		gb = (memoryMiB + 1023) / 1024
	}
	if ciSlices != 0 && ciSlices < giSlices {
		return fmt.Sprintf("%dc.%dg.%dgb", ciSlices, giSlices, gb)
	}
	return fmt.Sprintf("%dg.%dgb", giSlices, gb)
}

// nvmlProfileName returns the GPU instance profile name NVML itself reports
// (drivers that implement the v2 profile query), without its "MIG " prefix;
// "" when NVML does not say.
func nvmlProfileName(h nvml.Device, profile int) (name string) {
	defer func() {
		if recover() != nil {
			name = ""
		}
	}()
	info, ret := h.GetGpuInstanceProfileInfoV(profile).V2()
	if ret != nvml.SUCCESS {
		return ""
	}
	b := make([]byte, 0, len(info.Name))
	for _, c := range info.Name {
		if c == 0 {
			break
		}
		b = append(b, byte(c))
	}
	return strings.TrimPrefix(strings.TrimSpace(string(b)), "MIG ")
}
