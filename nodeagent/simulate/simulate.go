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

// Package simulate backs the node agent with go-nvml's mock GPU servers
// (dgxa100, dgxh100, dgxh200, dgxb200), for the dev environment and tests.
//
// The mock servers model inventory and MIG partitioning; this package adds
// what they leave out and the agent needs: utilization and temperature, an
// NVML event set into which tests and the dev environment inject XID and ECC
// events (its Wait blocks up to its timeout and returns an injected event
// as soon as it is queued, as NVML's does), MIG device handles, and GPUs
// that fall off the bus.
package simulate

import (
	"crypto/sha256"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/dgxa100"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/dgxb200"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/dgxh100"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/dgxh200"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/server"
)

var profiles = map[string]func() *server.Server{
	"dgxa100": dgxa100.New,
	"dgxh100": dgxh100.New,
	"dgxh200": dgxh200.New,
	"dgxb200": dgxb200.New,
}

// Profiles returns the names New accepts, sorted.
func Profiles() []string {
	out := make([]string, 0, len(profiles))
	for p := range profiles {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

// maxMIGDevices is the number of MIG device slots of every simulated GPU.
const maxMIGDevices = 7

// Default telemetry of a simulated GPU.
const (
	defaultTemperature = 34
)

// Node is a simulated GPU node: a go-nvml mock server (which implements
// nvml.Interface) plus controls to change what it reports. Its methods are
// safe for concurrent use with the agent polling it.
type Node struct {
	*server.Server

	mu    sync.Mutex
	queue []nvml.EventData
	// queued is closed (and replaced) when an event is queued, waking the
	// callers blocked in the event set's Wait.
	queued chan struct{}
	// waiters counts the callers blocked in the event set's Wait.
	waiters int
	gpus    []*gpu
	profile string
}

type gpu struct {
	dev         *server.Device
	lost        bool
	utilization nvml.Utilization
	temperature uint32
	migHandles  map[[2]uint32]*mock.Device
}

// Option changes how New builds a Node.
type Option func(*config)

type config struct {
	seed string
}

// WithSeed derives the GPU UUIDs from seed (for example the node name), so
// a node keeps its UUIDs across agent restarts and two nodes never share
// one. Without it the mock's random UUIDs are kept.
func WithSeed(seed string) Option { return func(c *config) { c.seed = seed } }

// New returns a simulated node of the named profile (see Profiles), its GPUs
// idle, healthy and out of MIG mode.
func New(profile string, opts ...Option) (*Node, error) {
	build, ok := profiles[profile]
	if !ok {
		return nil, fmt.Errorf("unknown simulated profile %q (known: %s)", profile, strings.Join(Profiles(), ", "))
	}
	var c config
	for _, o := range opts {
		o(&c)
	}
	n := &Node{Server: build(), profile: profile, queued: make(chan struct{})}
	for i, d := range n.Server.Devices {
		dev := d.(*server.Device)
		if c.seed != "" {
			dev.UUID = "GPU-" + derivedUUID(fmt.Sprintf("%s/%s/%d", c.seed, profile, i))
		}
		// The mock reports neither used nor free memory; an idle GPU has
		// all of it free.
		dev.MemoryInfo.Used = 0
		dev.MemoryInfo.Free = dev.MemoryInfo.Total
		g := &gpu{dev: dev, temperature: defaultTemperature, migHandles: map[[2]uint32]*mock.Device{}}
		n.gpus = append(n.gpus, g)
		n.extendDevice(g)
	}
	n.extendServer()
	return n, nil
}

// Profile returns the profile the node was built from.
func (n *Node) Profile() string { return n.profile }

// Device returns the mock device at index i; tests may replace its
// function fields to inject NVML errors.
func (n *Node) Device(i int) *server.Device { return n.gpus[i].dev }

// UUID returns the UUID of the GPU at index i.
func (n *Node) UUID(i int) string { return n.gpus[i].dev.UUID }

// InjectXID queues a critical-XID event for the GPU at index i.
func (n *Node) InjectXID(i int, xid uint64) {
	n.inject(nvml.EventData{
		Device:            n.gpus[i].dev,
		EventType:         nvml.EventTypeXidCriticalError,
		EventData:         xid,
		GpuInstanceId:     0xFFFFFFFF,
		ComputeInstanceId: 0xFFFFFFFF,
	})
}

// InjectDoubleBitECC queues a double-bit ECC error event for the GPU at index i.
func (n *Node) InjectDoubleBitECC(i int) {
	n.inject(nvml.EventData{
		Device:            n.gpus[i].dev,
		EventType:         nvml.EventTypeDoubleBitEccError,
		GpuInstanceId:     0xFFFFFFFF,
		ComputeInstanceId: 0xFFFFFFFF,
	})
}

// InjectEvent queues an arbitrary NVML event.
func (n *Node) InjectEvent(e nvml.EventData) { n.inject(e) }

func (n *Node) inject(e nvml.EventData) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.queue = append(n.queue, e)
	close(n.queued)
	n.queued = make(chan struct{})
}

// PendingEvents returns the number of injected events no Wait has returned yet.
func (n *Node) PendingEvents() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return len(n.queue)
}

// EventWaiters returns the number of callers blocked in the event set's
// Wait. With one consumer, no pending event and one waiter, every event
// injected so far has been handled and the consumer is waiting for the next.
func (n *Node) EventWaiters() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.waiters
}

// waitEvent is the event set's Wait: it returns the oldest queued event,
// waiting up to timeoutMs milliseconds for one (not at all for 0), and
// ERROR_TIMEOUT when none came.
func (n *Node) waitEvent(timeoutMs uint32) (nvml.EventData, nvml.Return) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if len(n.queue) == 0 && timeoutMs > 0 {
		n.waiters++
		t := time.NewTimer(time.Duration(timeoutMs) * time.Millisecond)
		for expired := false; len(n.queue) == 0 && !expired; {
			queued := n.queued
			n.mu.Unlock()
			select {
			case <-queued:
			case <-t.C:
				expired = true
			}
			n.mu.Lock()
		}
		t.Stop()
		n.waiters--
	}
	if len(n.queue) == 0 {
		return nvml.EventData{}, nvml.ERROR_TIMEOUT
	}
	e := n.queue[0]
	n.queue = slices.Delete(n.queue, 0, 1)
	return e, nvml.SUCCESS
}

// Detach makes the GPU at index i fall off the bus: every NVML call on it,
// and every lookup of it, returns ERROR_GPU_IS_LOST until Reattach.
func (n *Node) Detach(i int) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.gpus[i].lost = true
}

// Reattach brings back a GPU detached with Detach, as a reset would.
func (n *Node) Reattach(i int) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.gpus[i].lost = false
}

// SetMemoryUsed sets the framebuffer memory in use on the GPU at index i.
func (n *Node) SetMemoryUsed(i int, used uint64) {
	dev := n.gpus[i].dev
	dev.Lock()
	defer dev.Unlock()
	used = min(used, dev.MemoryInfo.Total)
	dev.MemoryInfo.Used = used
	dev.MemoryInfo.Free = dev.MemoryInfo.Total - used
}

// SetUtilization sets the GPU and memory utilization percentages of the GPU
// at index i.
func (n *Node) SetUtilization(i int, gpuPercent, memoryPercent uint32) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.gpus[i].utilization = nvml.Utilization{Gpu: gpuPercent, Memory: memoryPercent}
}

// SetTemperature sets the core temperature of the GPU at index i.
func (n *Node) SetTemperature(i int, celsius uint32) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.gpus[i].temperature = celsius
}

// EnableMIG puts the GPU at index i in MIG mode and creates one GPU instance
// per profile id (nvml.GPU_INSTANCE_PROFILE_*), each with one compute
// instance spanning it.
func (n *Node) EnableMIG(i int, giProfiles ...int) error {
	dev := n.gpus[i].dev
	if ret, _ := dev.SetMigMode(nvml.DEVICE_MIG_ENABLE); ret != nvml.SUCCESS {
		return fmt.Errorf("enable mig on gpu %d: %w", i, ret)
	}
	for _, p := range giProfiles {
		info, ret := dev.GetGpuInstanceProfileInfo(p)
		if ret != nvml.SUCCESS {
			return fmt.Errorf("gpu instance profile %d on gpu %d: %w", p, i, ret)
		}
		gi, ret := dev.CreateGpuInstance(&info)
		if ret != nvml.SUCCESS {
			return fmt.Errorf("create gpu instance of profile %d on gpu %d: %w", p, i, ret)
		}
		sgi := gi.(*server.GpuInstance)
		ciProfile := ciProfileFor(info.SliceCount)
		ciInfo, ret := gi.GetComputeInstanceProfileInfo(ciProfile, nvml.COMPUTE_INSTANCE_ENGINE_PROFILE_SHARED)
		if ret != nvml.SUCCESS {
			return fmt.Errorf("compute instance profile for gpu instance profile %d on gpu %d: %w", p, i, ret)
		}
		if _, ret := gi.CreateComputeInstance(&ciInfo); ret != nvml.SUCCESS {
			return fmt.Errorf("create compute instance on gpu %d: %w", i, ret)
		}
		sgi.GetComputeInstanceByIdFunc = func(id int) (nvml.ComputeInstance, nvml.Return) {
			sgi.RLock()
			defer sgi.RUnlock()
			for ci := range sgi.ComputeInstances {
				if int(ci.Info.Id) == id {
					return ci, nvml.SUCCESS
				}
			}
			return nil, nvml.ERROR_NOT_FOUND
		}
	}
	return nil
}

// ciProfileFor returns the compute instance profile spanning a GPU instance
// of the given slice count.
func ciProfileFor(slices uint32) int {
	switch slices {
	case 1:
		return nvml.COMPUTE_INSTANCE_PROFILE_1_SLICE
	case 2:
		return nvml.COMPUTE_INSTANCE_PROFILE_2_SLICE
	case 3:
		return nvml.COMPUTE_INSTANCE_PROFILE_3_SLICE
	case 4:
		return nvml.COMPUTE_INSTANCE_PROFILE_4_SLICE
	case 6:
		return nvml.COMPUTE_INSTANCE_PROFILE_6_SLICE
	case 8:
		return nvml.COMPUTE_INSTANCE_PROFILE_8_SLICE
	default:
		return nvml.COMPUTE_INSTANCE_PROFILE_7_SLICE
	}
}

func (n *Node) isLost(g *gpu) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return g.lost
}

// extendServer adds the event set and the lost-GPU behaviour to the server.
func (n *Node) extendServer() {
	s := n.Server
	byIndex, byUUID := s.DeviceGetHandleByIndexFunc, s.DeviceGetHandleByUUIDFunc
	s.DeviceGetHandleByIndexFunc = func(i int) (nvml.Device, nvml.Return) {
		if i >= 0 && i < len(n.gpus) && n.isLost(n.gpus[i]) {
			return nil, nvml.ERROR_GPU_IS_LOST
		}
		return byIndex(i)
	}
	s.DeviceGetHandleByUUIDFunc = func(uuid string) (nvml.Device, nvml.Return) {
		for _, g := range n.gpus {
			if g.dev.UUID == uuid && n.isLost(g) {
				return nil, nvml.ERROR_GPU_IS_LOST
			}
		}
		return byUUID(uuid)
	}
	s.EventSetCreateFunc = func() (nvml.EventSet, nvml.Return) {
		es := &mock.EventSet{}
		es.WaitFunc = n.waitEvent
		es.FreeFunc = func() nvml.Return { return nvml.SUCCESS }
		return es, nvml.SUCCESS
	}
}

// extendDevice fills in the device functions the mock leaves out and makes
// the existing ones fail once the GPU is detached.
func (n *Node) extendDevice(g *gpu) {
	d := g.dev
	lost := func() bool { return n.isLost(g) }

	uuid, name, mem, cc, mig := d.GetUUIDFunc, d.GetNameFunc, d.GetMemoryInfoFunc, d.GetCudaComputeCapabilityFunc, d.GetMigModeFunc
	d.GetUUIDFunc = func() (string, nvml.Return) {
		if lost() {
			return "", nvml.ERROR_GPU_IS_LOST
		}
		return uuid()
	}
	d.GetNameFunc = func() (string, nvml.Return) {
		if lost() {
			return "", nvml.ERROR_GPU_IS_LOST
		}
		return name()
	}
	d.GetMemoryInfoFunc = func() (nvml.Memory, nvml.Return) {
		if lost() {
			return nvml.Memory{}, nvml.ERROR_GPU_IS_LOST
		}
		d.RLock()
		defer d.RUnlock()
		return mem()
	}
	d.GetCudaComputeCapabilityFunc = func() (int, int, nvml.Return) {
		if lost() {
			return 0, 0, nvml.ERROR_GPU_IS_LOST
		}
		return cc()
	}
	d.GetMigModeFunc = func() (int, int, nvml.Return) {
		if lost() {
			return 0, 0, nvml.ERROR_GPU_IS_LOST
		}
		return mig()
	}
	d.GetUtilizationRatesFunc = func() (nvml.Utilization, nvml.Return) {
		n.mu.Lock()
		defer n.mu.Unlock()
		if g.lost {
			return nvml.Utilization{}, nvml.ERROR_GPU_IS_LOST
		}
		return g.utilization, nvml.SUCCESS
	}
	d.GetTemperatureFunc = func(sensor nvml.TemperatureSensors) (uint32, nvml.Return) {
		n.mu.Lock()
		defer n.mu.Unlock()
		if g.lost {
			return 0, nvml.ERROR_GPU_IS_LOST
		}
		if sensor != nvml.TEMPERATURE_GPU {
			return 0, nvml.ERROR_NOT_SUPPORTED
		}
		return g.temperature, nvml.SUCCESS
	}
	d.GetSupportedEventTypesFunc = func() (uint64, nvml.Return) {
		if lost() {
			return 0, nvml.ERROR_GPU_IS_LOST
		}
		return uint64(nvml.EventTypeSingleBitEccError | nvml.EventTypeDoubleBitEccError |
			nvml.EventTypeXidCriticalError | nvml.EventTypePState | nvml.EventTypeClock), nvml.SUCCESS
	}
	d.RegisterEventsFunc = func(uint64, nvml.EventSet) nvml.Return {
		if lost() {
			return nvml.ERROR_GPU_IS_LOST
		}
		return nvml.SUCCESS
	}
	d.GetGpuInstanceByIdFunc = func(id int) (nvml.GpuInstance, nvml.Return) {
		d.RLock()
		defer d.RUnlock()
		for gi := range d.GpuInstances {
			if int(gi.Info.Id) == id {
				return gi, nvml.SUCCESS
			}
		}
		return nil, nvml.ERROR_NOT_FOUND
	}
	d.GetMaxMigDeviceCountFunc = func() (int, nvml.Return) {
		if lost() {
			return 0, nvml.ERROR_GPU_IS_LOST
		}
		return maxMIGDevices, nvml.SUCCESS
	}
	d.GetMigDeviceHandleByIndexFunc = func(i int) (nvml.Device, nvml.Return) {
		if lost() {
			return nil, nvml.ERROR_GPU_IS_LOST
		}
		list := n.migDevices(g)
		if i < 0 || i >= maxMIGDevices {
			return nil, nvml.ERROR_INVALID_ARGUMENT
		}
		if i >= len(list) {
			return nil, nvml.ERROR_NOT_FOUND
		}
		return list[i], nvml.SUCCESS
	}
}

// migDevices returns the MIG device handles of a GPU, one per compute
// instance, ordered by GPU instance and compute instance id. Handles are
// kept, so a MIG device keeps its UUID.
func (n *Node) migDevices(g *gpu) []nvml.Device {
	d := g.dev
	type inst struct {
		gi, ci uint32
		memory uint64
	}
	var insts []inst
	d.RLock()
	for gi := range d.GpuInstances {
		memMiB := gi.MIGProfiles.GpuInstanceProfiles[int(gi.Info.ProfileId)].MemorySizeMB
		gi.RLock()
		for ci := range gi.ComputeInstances {
			insts = append(insts, inst{gi: gi.Info.Id, ci: ci.Info.Id, memory: memMiB << 20})
		}
		gi.RUnlock()
	}
	d.RUnlock()
	slices.SortFunc(insts, func(a, b inst) int {
		if a.gi != b.gi {
			return int(a.gi) - int(b.gi)
		}
		return int(a.ci) - int(b.ci)
	})
	n.mu.Lock()
	defer n.mu.Unlock()
	out := make([]nvml.Device, 0, len(insts))
	for _, in := range insts {
		key := [2]uint32{in.gi, in.ci}
		h := g.migHandles[key]
		if h == nil {
			h = newMIGHandle(d, in.gi, in.ci, in.memory)
			g.migHandles[key] = h
		}
		out = append(out, h)
	}
	return out
}

func newMIGHandle(parent *server.Device, gi, ci uint32, memory uint64) *mock.Device {
	uuid := "MIG-" + derivedUUID(fmt.Sprintf("%s/%d/%d", parent.UUID, gi, ci))
	h := &mock.Device{}
	h.GetUUIDFunc = func() (string, nvml.Return) { return uuid, nvml.SUCCESS }
	h.GetMemoryInfoFunc = func() (nvml.Memory, nvml.Return) {
		return nvml.Memory{Total: memory, Free: memory}, nvml.SUCCESS
	}
	h.GetGpuInstanceIdFunc = func() (int, nvml.Return) { return int(gi), nvml.SUCCESS }
	h.GetComputeInstanceIdFunc = func() (int, nvml.Return) { return int(ci), nvml.SUCCESS }
	h.IsMigDeviceHandleFunc = func() (bool, nvml.Return) { return true, nvml.SUCCESS }
	h.GetDeviceHandleFromMigDeviceHandleFunc = func() (nvml.Device, nvml.Return) { return parent, nvml.SUCCESS }
	return h
}

// derivedUUID formats the first 16 bytes of sha256(s) as a UUID.
func derivedUUID(s string) string {
	sum := sha256.Sum256([]byte(s))
	b := sum[:16]
	b[6] = b[6]&0x0f | 0x50 // version 5 style: name-based
	b[8] = b[8]&0x3f | 0x80 // RFC 4122 variant
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
