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

// Package discovery reads a node's GPUs through NVML and watches their
// health through NVML events. It is the node agent's only use of go-nvml,
// which needs cgo; package nodeagent (the publisher, the cache manager and
// the agent's loop) and nodeagent/agent (its wiring) build without it.
//
// The logic is plain Go over nvml.Interface, so the go-nvml mock servers
// (see package simulate) stand in for real GPUs in tests and in the dev
// environment.
//
// [Discoverer.WatchHealth] handles GPU health events as NVML reports them
// and signals [Discoverer.HealthChanged], which the agent waits on
// (nodeagent.AgentOptions.HealthChanged), so a fault is published at once
// rather than at the next poll.
package discovery

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/go-logr/logr"
	"k8s.io/utils/clock"

	"github.com/aivm-dev/aivm-operator/nodeagent"
)

// ErrNVMLNotFound is returned by Open when the NVML library
// (libnvidia-ml.so.1) cannot be loaded: the node has no NVIDIA driver, or the
// container was started without the NVIDIA container toolkit.
var ErrNVMLNotFound = errors.New("nvml library libnvidia-ml.so.1 not found")

// Options configure a Discoverer.
type Options struct {
	// Log receives the discoverer's log lines; the zero value discards them.
	Log logr.Logger
	// XIDs decides which XIDs are critical; nil means NewXIDFilter("", "").
	XIDs *XIDFilter
	// Clock times WatchHealth's backoff after NVML errors; nil means the
	// real clock.
	Clock clock.Clock
}

// Discoverer reads the GPU inventory of a node through NVML. It initializes
// NVML once (Open), keeps the device handles and an event set for critical
// XID and ECC events between polls, and shuts NVML down on Close. It is safe
// for concurrent use.
//
// The event set has one consumer at a time. While WatchHealth runs, it
// handles each critical event as it arrives and signals HealthChanged, so
// the agent publishes a fault at once; otherwise (for example a single poll
// with --once) Poll handles the events queued since the last poll.
type Discoverer struct {
	lib   nvml.Interface
	log   logr.Logger
	xids  XIDFilter
	clock clock.Clock

	// stop is closed by Close to end WatchHealth.
	stop chan struct{}
	// changed receives (without blocking the watcher) when WatchHealth
	// marked a GPU unhealthy.
	changed chan struct{}

	mu        sync.Mutex
	closed    bool
	events    nvml.EventSet
	eventsErr error
	// watchDone is closed when the running WatchHealth returns; nil while
	// none runs, and then Poll handles the queued events itself.
	watchDone chan struct{}
	// watchErrs counts the failed event waits of WatchHealth since the
	// last poll, which reports them in Inventory.CallErrors.
	watchErrs int

	driverVersion string
	cudaVersion   string
	nvmlVersion   string

	devices  []*device
	byUUID   map[string]*device
	unnamed  map[int]error
	migNames map[migKey]string
}

// device is what the discoverer remembers about one GPU between polls.
type device struct {
	uuid   string
	index  int
	handle nvml.Device

	// Last values read, reported while the GPU is lost.
	product     string
	memoryTotal uint64
	cc          string
	migMode     nodeagent.MIGMode

	// lost is why the GPU cannot be found; nil while it can.
	lost error
	// fault is the first critical event seen; it stays until the GPU is
	// seen gone and back (reset or re-attached) or the agent restarts.
	fault string
	// watchErr is why the GPU's health events are not watched.
	watchErr error
}

type migKey struct {
	parent        string
	gpuInstanceID int
	ciID          int
}

// Open initializes NVML through lib, lists the GPUs and registers them for
// critical XID and ECC events. It returns ErrNVMLNotFound when lib cannot
// load the NVML library. Call Close to release NVML.
func Open(lib nvml.Interface, opts Options) (*Discoverer, error) {
	ret := lib.Init()
	if ret == nvml.ERROR_LIBRARY_NOT_FOUND {
		return nil, ErrNVMLNotFound
	}
	if ret != nvml.SUCCESS {
		return nil, fmt.Errorf("initialize nvml: %w", ret)
	}
	d := &Discoverer{
		lib:      lib,
		log:      opts.Log,
		clock:    opts.Clock,
		stop:     make(chan struct{}),
		changed:  make(chan struct{}, 1),
		byUUID:   map[string]*device{},
		unnamed:  map[int]error{},
		migNames: map[migKey]string{},
	}
	if d.clock == nil {
		d.clock = clock.RealClock{}
	}
	if opts.XIDs != nil {
		d.xids = *opts.XIDs
	} else {
		d.xids, _ = NewXIDFilter("", "")
	}
	if v, ret := lib.SystemGetDriverVersion(); ret == nvml.SUCCESS {
		d.driverVersion = v
	}
	if v, ret := lib.SystemGetNVMLVersion(); ret == nvml.SUCCESS {
		d.nvmlVersion = v
	}
	if v, ret := lib.SystemGetCudaDriverVersion(); ret == nvml.SUCCESS {
		d.cudaVersion = FormatCUDAVersion(v)
	}
	es, ret := lib.EventSetCreate()
	if ret != nvml.SUCCESS {
		d.eventsErr = fmt.Errorf("create nvml event set: %w", ret)
		d.log.Info("GPU health events cannot be watched", "error", d.eventsErr)
	} else {
		d.events = es
	}
	var errs int
	d.enumerate(&errs)
	d.log.Info("NVML opened", "driverVersion", d.driverVersion, "cudaDriverVersion", d.cudaVersion,
		"nvmlVersion", d.nvmlVersion, "gpus", len(d.devices), "ignoredXIDs", d.xids.IgnoredList())
	return d, nil
}

// FormatCUDAVersion turns NVML's integer CUDA driver version (1000*major +
// 10*minor) into "major.minor", e.g. 12040 into "12.4".
func FormatCUDAVersion(v int) string {
	return fmt.Sprintf("%d.%d", v/1000, (v%1000)/10)
}

// Close stops WatchHealth (waiting at most one event wait for it to
// return), frees the event set and shuts NVML down. It is safe to call twice.
func (d *Discoverer) Close() error {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil
	}
	d.closed = true
	close(d.stop)
	watchDone := d.watchDone
	d.mu.Unlock()
	// The event set must not be freed while the watcher waits on it.
	if watchDone != nil {
		<-watchDone
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	var errs []error
	if d.events != nil {
		if ret := d.events.Free(); ret != nvml.SUCCESS {
			errs = append(errs, fmt.Errorf("free nvml event set: %w", ret))
		}
	}
	if ret := d.lib.Shutdown(); ret != nvml.SUCCESS {
		errs = append(errs, fmt.Errorf("shut down nvml: %w", ret))
	}
	return errors.Join(errs...)
}

// Poll handles the health events queued since the last poll (unless
// WatchHealth runs and handles them as they come), looks for GPUs that
// appeared or disappeared, and reads every GPU. An error on one GPU marks
// that GPU Unhealthy and leaves the others as they are.
func (d *Discoverer) Poll() nodeagent.Inventory {
	d.mu.Lock()
	defer d.mu.Unlock()
	var errs int
	inv := nodeagent.Inventory{
		DriverVersion:     d.driverVersion,
		CUDADriverVersion: d.cudaVersion,
		NVMLVersion:       d.nvmlVersion,
	}
	if d.closed {
		return inv
	}
	if d.watchDone == nil {
		d.drainEvents(&errs)
	}
	errs += d.watchErrs
	d.watchErrs = 0
	d.enumerate(&errs)
	inv.GPUs = make([]nodeagent.GPU, 0, len(d.devices)+len(d.unnamed))
	indices := map[int]bool{}
	for _, dev := range d.devices {
		inv.GPUs = append(inv.GPUs, d.collect(dev, &errs))
		indices[dev.index] = true
	}
	for idx, err := range d.unnamed {
		if indices[idx] {
			continue
		}
		inv.GPUs = append(inv.GPUs, nodeagent.GPU{
			Index:        idx,
			MIGMode:      nodeagent.MIGUnsupported,
			Health:       nodeagent.HealthUnhealthy,
			HealthReason: "NVML cannot identify the GPU: " + err.Error(),
		})
	}
	slices.SortFunc(inv.GPUs, func(a, b nodeagent.GPU) int {
		if a.Index != b.Index {
			return a.Index - b.Index
		}
		return strings.Compare(a.UUID, b.UUID)
	})
	inv.CallErrors = errs
	return inv
}

// enumerate lists the GPUs NVML knows now: new ones are added and watched,
// known ones missing from the list are looked up by UUID and marked lost if
// that fails, and lost ones that came back are treated as reset.
func (d *Discoverer) enumerate(errs *int) {
	clear(d.unnamed)
	seen := make(map[string]bool, len(d.devices))
	count, ret := d.lib.DeviceGetCount()
	if ret != nvml.SUCCESS {
		*errs++
		d.log.Info("NVML cannot count GPUs", "error", ret)
		count = 0
	}
	for i := 0; i < count; i++ {
		h, ret := d.lib.DeviceGetHandleByIndex(i)
		if ret != nvml.SUCCESS {
			*errs++
			d.unnamed[i] = fmt.Errorf("get handle of gpu %d: %w", i, ret)
			continue
		}
		uuid, ret := h.GetUUID()
		if ret != nvml.SUCCESS || uuid == "" {
			*errs++
			d.unnamed[i] = fmt.Errorf("get uuid of gpu %d: %w", i, ret)
			continue
		}
		seen[uuid] = true
		dev := d.byUUID[uuid]
		if dev == nil {
			dev = &device{uuid: uuid, index: i, handle: h}
			d.devices = append(d.devices, dev)
			d.byUUID[uuid] = dev
			d.describe(dev)
			d.watch(dev)
			continue
		}
		dev.index, dev.handle = i, h
		d.found(dev)
	}
	for _, dev := range d.devices {
		if seen[dev.uuid] {
			continue
		}
		h, ret := d.lib.DeviceGetHandleByUUID(dev.uuid)
		if ret != nvml.SUCCESS {
			*errs++
			if dev.lost == nil {
				dev.lost = fmt.Errorf("look up %s: %w", dev.uuid, ret)
				d.log.Info("GPU lost", "uuid", dev.uuid, "index", dev.index, "error", ret)
			}
			continue
		}
		dev.handle = h
		d.found(dev)
	}
}

// found records that a known GPU answers; if it was lost, it came back after
// a reset or re-attach, so its old fault is cleared and it is watched again.
func (d *Discoverer) found(dev *device) {
	if dev.lost == nil {
		return
	}
	d.log.Info("GPU is back", "uuid", dev.uuid, "index", dev.index, "previousFault", dev.fault)
	dev.lost = nil
	dev.fault = ""
	d.watch(dev)
}

// describe reads what identifies a new GPU, so that it can be reported even
// if it is lost before the next poll.
func (d *Discoverer) describe(dev *device) {
	defer func() { _ = recover() }()
	if name, ret := dev.handle.GetName(); ret == nvml.SUCCESS {
		dev.product = name
	}
	if mem, ret := dev.handle.GetMemoryInfo(); ret == nvml.SUCCESS {
		dev.memoryTotal = mem.Total
	}
	if major, minor, ret := dev.handle.GetCudaComputeCapability(); ret == nvml.SUCCESS {
		dev.cc = fmt.Sprintf("%d.%d", major, minor)
	}
}

// collect reads one GPU. It never panics: a failing or incomplete NVML
// implementation makes this GPU Unhealthy and nothing else.
func (d *Discoverer) collect(dev *device, errs *int) (g nodeagent.GPU) {
	g = nodeagent.GPU{
		Index:             dev.index,
		UUID:              dev.uuid,
		Product:           dev.product,
		MemoryTotal:       dev.memoryTotal,
		ComputeCapability: dev.cc,
		MIGMode:           dev.migMode,
	}
	if g.MIGMode == "" {
		g.MIGMode = nodeagent.MIGUnsupported
	}
	if dev.lost != nil {
		g.Health = nodeagent.HealthUnhealthy
		g.HealthReason = joinReasons(dev.fault, "GPU lost: "+dev.lost.Error())
		return g
	}
	var failures []string
	defer func() {
		if r := recover(); r != nil {
			*errs++
			g.Health = nodeagent.HealthUnhealthy
			g.HealthReason = joinReasons(dev.fault, fmt.Sprintf("NVML call failed: %v", r))
		}
	}()
	// check records a failed call; it returns true on success.
	check := func(op string, ret nvml.Return, optional bool) bool {
		if ret == nvml.SUCCESS {
			return true
		}
		if optional && ret == nvml.ERROR_NOT_SUPPORTED {
			return false
		}
		*errs++
		// A GPU whose queries fail (even with ERROR_GPU_IS_LOST) while it
		// can still be looked up is unhealthy for this poll; only a failed
		// lookup marks it lost, so that its fault is not cleared when the
		// next lookup succeeds.
		failures = append(failures, fmt.Sprintf("%s: %v", op, ret))
		return false
	}
	h := dev.handle

	if name, ret := h.GetName(); check("get name", ret, false) {
		dev.product, g.Product = name, name
	}
	if mem, ret := h.GetMemoryInfo(); check("get memory info", ret, false) {
		dev.memoryTotal = mem.Total
		g.MemoryTotal, g.MemoryUsed, g.MemoryFree = mem.Total, mem.Used, mem.Free
	}
	if major, minor, ret := h.GetCudaComputeCapability(); check("get compute capability", ret, false) {
		dev.cc = fmt.Sprintf("%d.%d", major, minor)
		g.ComputeCapability = dev.cc
	}
	current, _, ret := h.GetMigMode()
	switch {
	case ret == nvml.ERROR_NOT_SUPPORTED:
		g.MIGMode = nodeagent.MIGUnsupported
	case check("get mig mode", ret, false) && current == nvml.DEVICE_MIG_ENABLE:
		g.MIGMode = nodeagent.MIGEnabled
		g.MIGDevices = d.migDevices(dev, check)
	case ret == nvml.SUCCESS:
		g.MIGMode = nodeagent.MIGDisabled
	}
	dev.migMode = g.MIGMode
	if u, ret := h.GetUtilizationRates(); check("get utilization", ret, true) {
		g.UtilizationPercent = ptr(clampPercent(u.Gpu))
		g.MemoryUtilizationPercent = ptr(clampPercent(u.Memory))
	}
	if t, ret := h.GetTemperature(nvml.TEMPERATURE_GPU); check("get temperature", ret, true) {
		g.TemperatureCelsius = ptr(int32(min(t, 1000)))
	}

	switch {
	case dev.fault != "" || len(failures) > 0:
		g.Health = nodeagent.HealthUnhealthy
		g.HealthReason = joinReasons(append([]string{dev.fault}, failures...)...)
	case dev.watchErr != nil:
		g.Health = nodeagent.HealthUnknown
		g.HealthReason = "health events not watched: " + dev.watchErr.Error()
	default:
		g.Health = nodeagent.HealthHealthy
	}
	return g
}

func joinReasons(parts ...string) string {
	out := parts[:0:0]
	for _, p := range parts {
		if p != "" {
			out = append(out, p)
		}
	}
	return strings.Join(out, "; ")
}

func clampPercent(v uint32) int32 { return int32(min(v, 100)) }

func ptr[T any](v T) *T { return &v }
