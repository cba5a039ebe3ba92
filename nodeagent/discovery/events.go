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
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
)

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

// notify signals ch without blocking; a signal already pending stands for both.
func notify(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}
