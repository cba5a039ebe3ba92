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
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/go-logr/logr"
	"k8s.io/utils/clock"
)

// ErrNVMLNotFound is returned by Open when the NVML library
// (libnvidia-ml.so.1) cannot be loaded: the node has no NVIDIA driver, or the
// container was started without the NVIDIA container toolkit.
var ErrNVMLNotFound = errors.New("nvml library libnvidia-ml.so.1 not found")

// maxEventsPerPoll bounds how many queued NVML events one poll handles, so a
// storm of events cannot stall the inventory.
const maxEventsPerPoll = 256

// eventWaitTimeout bounds one blocking wait of WatchHealth for an NVML
// event, so that it notices a cancelled context or Close within that time.
// An event ends the wait at once.
const eventWaitTimeout = time.Second

// Backoff of WatchHealth after a failed NVML event wait: the first retry
// waits eventErrorBackoffFirst, each further failure doubles it, up to
// eventErrorBackoffLimit.
const (
	eventErrorBackoffFirst = time.Second
	eventErrorBackoffLimit = 30 * time.Second
)

// noInstance is the GPU or compute instance id NVML puts in an event that is
// not scoped to a MIG device.
const noInstance = 0xFFFFFFFF

// watchedEvents are the NVML events that can make a GPU unhealthy.
const watchedEvents = uint64(nvml.EventTypeXidCriticalError | nvml.EventTypeDoubleBitEccError)

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
	migMode     MIGMode

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
func (d *Discoverer) Poll() Inventory {
	d.mu.Lock()
	defer d.mu.Unlock()
	var errs int
	inv := Inventory{
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
	inv.GPUs = make([]GPU, 0, len(d.devices)+len(d.unnamed))
	indices := map[int]bool{}
	for _, dev := range d.devices {
		inv.GPUs = append(inv.GPUs, d.collect(dev, &errs))
		indices[dev.index] = true
	}
	for idx, err := range d.unnamed {
		if indices[idx] {
			continue
		}
		inv.GPUs = append(inv.GPUs, GPU{
			Index:        idx,
			MIGMode:      MIGUnsupported,
			Health:       HealthUnhealthy,
			HealthReason: "NVML cannot identify the GPU: " + err.Error(),
		})
	}
	slices.SortFunc(inv.GPUs, func(a, b GPU) int {
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

// watch registers the GPU's critical events with the event set.
func (d *Discoverer) watch(dev *device) {
	if d.events == nil {
		dev.watchErr = d.eventsErr
		return
	}
	supported, ret := dev.handle.GetSupportedEventTypes()
	if ret != nvml.SUCCESS {
		dev.watchErr = fmt.Errorf("get supported event types: %w", ret)
		return
	}
	mask := watchedEvents & supported
	if mask == 0 {
		dev.watchErr = errors.New("gpu reports neither xid nor ecc events")
		return
	}
	if ret := dev.handle.RegisterEvents(mask, d.events); ret != nvml.SUCCESS {
		dev.watchErr = fmt.Errorf("register events: %w", ret)
		return
	}
	dev.watchErr = nil
}

// HealthChanged receives when WatchHealth has marked a GPU unhealthy, so the
// agent polls and publishes at once (AgentOptions.HealthChanged). Signals
// coalesce: one receive may stand for several faults.
func (d *Discoverer) HealthChanged() <-chan struct{} { return d.changed }

// WatchHealth handles the critical XID and ECC events as NVML reports them,
// until ctx is done or Close is called, and then returns nil. It blocks in
// the event set's Wait for at most eventWaitTimeout at a time; each event is
// handled as Poll would handle it (the same XID filter and health reason,
// the GPU staying unhealthy until it is reset or the agent restarts), and a
// GPU newly marked unhealthy signals HealthChanged. While it runs, Poll
// leaves the event set to it. A failed wait is counted in the next poll's
// CallErrors, logged once per NVML error, and retried after a backoff of
// 1 s doubling up to 30 s. Without an event set (NVML could not create one)
// it returns nil at once: the GPUs' health is reported Unknown. It returns
// an error if NVML is closed or another WatchHealth runs.
func (d *Discoverer) WatchHealth(ctx context.Context) error {
	d.mu.Lock()
	switch {
	case d.closed:
		d.mu.Unlock()
		return errors.New("watch gpu health events: nvml is closed")
	case d.watchDone != nil:
		d.mu.Unlock()
		return errors.New("watch gpu health events: already watched")
	case d.events == nil:
		d.mu.Unlock()
		return nil
	}
	done := make(chan struct{})
	d.watchDone = done
	es := d.events
	d.mu.Unlock()
	defer func() {
		d.mu.Lock()
		d.watchDone = nil
		d.mu.Unlock()
		close(done)
	}()

	d.log.Info("Watching GPU health events", "waitTimeout", eventWaitTimeout)
	logged := map[nvml.Return]bool{}
	var backoff time.Duration
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-d.stop:
			return nil
		default:
		}
		e, ret := waitEvent(es, eventWaitTimeout)
		switch ret {
		case nvml.SUCCESS:
			backoff = 0
			d.mu.Lock()
			if d.closed {
				d.mu.Unlock()
				return nil
			}
			changed := d.handleEvent(e)
			d.mu.Unlock()
			if changed {
				notify(d.changed)
			}
			continue
		case nvml.ERROR_TIMEOUT:
			backoff = 0
			continue
		}
		d.mu.Lock()
		d.watchErrs++
		d.mu.Unlock()
		backoff = min(max(2*backoff, eventErrorBackoffFirst), eventErrorBackoffLimit)
		if !logged[ret] {
			logged[ret] = true
			d.log.Info("NVML event wait failed; retrying with backoff (logged once per error)", "error", ret, "backoff", backoff)
		}
		t := d.clock.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-d.stop:
			t.Stop()
			return nil
		case <-t.C():
		}
	}
}

// waitEvent waits for one event; an NVML implementation that panics (an
// incomplete mock) reads as ERROR_UNKNOWN.
func waitEvent(es nvml.EventSet, timeout time.Duration) (e nvml.EventData, ret nvml.Return) {
	defer func() {
		if recover() != nil {
			e, ret = nvml.EventData{}, nvml.ERROR_UNKNOWN
		}
	}()
	return es.Wait(uint32(timeout / time.Millisecond))
}

// drainEvents handles the events queued in the event set without waiting.
func (d *Discoverer) drainEvents(errs *int) {
	if d.events == nil {
		return
	}
	for range maxEventsPerPoll {
		e, ret := d.events.Wait(0)
		if ret == nvml.ERROR_TIMEOUT {
			return
		}
		if ret != nvml.SUCCESS {
			*errs++
			d.log.Info("NVML event wait failed", "error", ret)
			return
		}
		d.handleEvent(e)
	}
}

// handleEvent marks the GPU of a critical event unhealthy. It reports
// whether a GPU that had no fault has one now. The caller holds d.mu.
func (d *Discoverer) handleEvent(e nvml.EventData) (changed bool) {
	var reason string
	switch e.EventType {
	case nvml.EventTypeXidCriticalError:
		if d.xids.Ignored(e.EventData) {
			d.log.V(1).Info("Ignoring application XID", "xid", e.EventData)
			return false
		}
		reason = xidReason(e.EventData)
	case nvml.EventTypeDoubleBitEccError:
		reason = "ECC double-bit error"
	default:
		return false
	}
	if e.GpuInstanceId != noInstance && e.ComputeInstanceId != noInstance {
		reason += fmt.Sprintf(" (MIG GPU instance %d, compute instance %d)", e.GpuInstanceId, e.ComputeInstanceId)
	}
	// A GPU that fails may report critical events without bound; only the
	// event that changes its health is logged at Info, repeats at V(1).
	dev := d.eventDevice(e.Device)
	if dev == nil {
		// A critical event that names no known GPU could be on any of them.
		for _, dev := range d.devices {
			if dev.fault == "" {
				dev.fault = reason + " on an unidentified GPU"
				changed = true
			}
		}
		log := d.log
		if !changed {
			log = log.V(1)
		}
		log.Info("Critical GPU event on an unidentified GPU; marking every GPU unhealthy", "reason", reason)
		return changed
	}
	if dev.fault != "" {
		d.log.V(1).Info("Further critical event on an unhealthy GPU", "uuid", dev.uuid, "index", dev.index, "reason", reason, "fault", dev.fault)
		return false
	}
	dev.fault = reason
	d.log.Info("GPU unhealthy", "uuid", dev.uuid, "index", dev.index, "reason", reason)
	return true
}

// eventDevice finds the GPU an event names: by handle, which works even
// when the GPU no longer answers, then by UUID.
func (d *Discoverer) eventDevice(h nvml.Device) *device {
	if h == nil {
		return nil
	}
	for _, dev := range d.devices {
		if sameHandle(dev.handle, h) {
			return dev
		}
	}
	if uuid, ret := h.GetUUID(); ret == nvml.SUCCESS {
		return d.byUUID[uuid]
	}
	return nil
}

// sameHandle compares two device handles without panicking on handle types
// that are not comparable.
func sameHandle(a, b nvml.Device) (same bool) {
	defer func() {
		if recover() != nil {
			same = false
		}
	}()
	return a == b
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
func (d *Discoverer) collect(dev *device, errs *int) (g GPU) {
	g = GPU{
		Index:             dev.index,
		UUID:              dev.uuid,
		Product:           dev.product,
		MemoryTotal:       dev.memoryTotal,
		ComputeCapability: dev.cc,
		MIGMode:           dev.migMode,
	}
	if g.MIGMode == "" {
		g.MIGMode = MIGUnsupported
	}
	if dev.lost != nil {
		g.Health = HealthUnhealthy
		g.HealthReason = joinReasons(dev.fault, "GPU lost: "+dev.lost.Error())
		return g
	}
	var failures []string
	defer func() {
		if r := recover(); r != nil {
			*errs++
			g.Health = HealthUnhealthy
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
		g.MIGMode = MIGUnsupported
	case check("get mig mode", ret, false) && current == nvml.DEVICE_MIG_ENABLE:
		g.MIGMode = MIGEnabled
		g.MIGDevices = d.migDevices(dev, check)
	case ret == nvml.SUCCESS:
		g.MIGMode = MIGDisabled
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
		g.Health = HealthUnhealthy
		g.HealthReason = joinReasons(append([]string{dev.fault}, failures...)...)
	case dev.watchErr != nil:
		g.Health = HealthUnknown
		g.HealthReason = "health events not watched: " + dev.watchErr.Error()
	default:
		g.Health = HealthHealthy
	}
	return g
}

// migDevices lists the MIG devices of a GPU in MIG mode.
func (d *Discoverer) migDevices(dev *device, check func(string, nvml.Return, bool) bool) []MIGDevice {
	h := dev.handle
	maxCount, ret := h.GetMaxMigDeviceCount()
	if !check("get max mig device count", ret, false) {
		return nil
	}
	var out []MIGDevice
	for i := 0; i < maxCount; i++ {
		mh, ret := h.GetMigDeviceHandleByIndex(i)
		if ret == nvml.ERROR_NOT_FOUND {
			continue
		}
		if !check(fmt.Sprintf("get mig device %d", i), ret, false) {
			continue
		}
		var m MIGDevice
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
	slices.SortFunc(out, func(a, b MIGDevice) int {
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
