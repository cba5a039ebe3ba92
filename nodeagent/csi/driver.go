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

package csi

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	csipb "github.com/container-storage-interface/spec/lib/go/csi"
	"github.com/go-logr/logr"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// DriverOptions configure a Driver.
type DriverOptions struct {
	// NodeID is the name of the Node the driver serves (NodeGetInfo). Required.
	NodeID string
	// StateDir holds the volume records (<StateDir>/volumes/<id>.json). It
	// must survive agent restarts (a host directory). Required.
	StateDir string
	// Snapshots ensures and pins Model snapshots. Required.
	Snapshots Snapshots
	// Failures, when set, hears the Models refused for their content and
	// the Models served.
	Failures FailureRecorder
	// WorkloadNamespace is the operator's workload namespace: its pods are
	// made by the manager alone, so they may mount Models of any
	// namespace. Empty: every pod only its own namespace's Models.
	WorkloadNamespace string
	// Version is reported by GetPluginInfo; "dev" when empty.
	Version string
	// Log receives the driver's log lines.
	Log logr.Logger

	// mountInfo replaces /proc/self/mountinfo (tests).
	mountInfo string
}

// Driver is the models.aivm.dev CSI identity and node service.
type Driver struct {
	csipb.UnimplementedIdentityServer
	csipb.UnimplementedNodeServer

	opts    DriverOptions
	records records
	ready   atomic.Bool

	mu   sync.Mutex
	busy map[string]bool // volume IDs with an operation in progress
}

// NewDriver returns a driver; Reconcile must run before it serves.
func NewDriver(opts DriverOptions) (*Driver, error) {
	switch {
	case opts.NodeID == "":
		return nil, errors.New("csi driver needs the node name")
	case opts.StateDir == "":
		return nil, errors.New("csi driver needs a state directory")
	case opts.Snapshots == nil:
		return nil, errors.New("csi driver needs a snapshot source")
	}
	if opts.Version == "" {
		opts.Version = "dev"
	}
	if opts.mountInfo == "" {
		opts.mountInfo = defaultMountInfo
	}
	recs, err := openRecords(opts.StateDir)
	if err != nil {
		return nil, err
	}
	return &Driver{opts: opts, records: recs, busy: map[string]bool{}}, nil
}

// Reconcile takes the pins of the volumes still mounted again and releases
// the records of those whose mount is gone (the node rebooted, or the
// kubelet unmounted them while the agent was down). Run it once at start,
// before serving; Probe reports ready afterwards.
func (d *Driver) Reconcile(ctx context.Context) error {
	log := d.opts.Log
	recs, listErr := d.records.list()
	if listErr != nil {
		// One unreadable record must not keep the driver from serving
		// every other volume; it stays on disk for a person to look at.
		log.Error(listErr, "Skipping volume records that cannot be read")
	}
	points, err := mountPoints(d.opts.mountInfo)
	if err != nil {
		return err
	}
	var errs []error
	for _, r := range recs {
		if points[canonical(r.TargetPath)] {
			if err := d.opts.Snapshots.Pin(r.Digest, r.VolumeID); err != nil {
				errs = append(errs, fmt.Errorf("volume %s: pin model %s: %w", r.VolumeID, r.model(), err))
				continue
			}
			log.Info("Volume still published; pinned its model again", "volume", r.VolumeID, "model", r.model().String(), "target", r.TargetPath)
			continue
		}
		if err := d.opts.Snapshots.Unpin(r.Digest, r.VolumeID); err != nil {
			errs = append(errs, fmt.Errorf("volume %s: unpin model %s: %w", r.VolumeID, r.model(), err))
			continue
		}
		if err := d.records.remove(r.VolumeID); err != nil {
			errs = append(errs, err)
			continue
		}
		log.Info("Released a volume whose mount is gone", "volume", r.VolumeID, "model", r.model().String(), "target", r.TargetPath)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("reconcile published volumes: %w", err)
	}
	d.ready.Store(true)
	return ctx.Err()
}

// lock marks a volume busy; false when an operation on it is in progress,
// which the CSI spec answers with Aborted.
func (d *Driver) lock(id string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.busy[id] {
		return false
	}
	d.busy[id] = true
	return true
}

func (d *Driver) unlock(id string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.busy, id)
}

// GetPluginInfo names the driver.
func (d *Driver) GetPluginInfo(context.Context, *csipb.GetPluginInfoRequest) (*csipb.GetPluginInfoResponse, error) {
	return &csipb.GetPluginInfoResponse{Name: DriverName, VendorVersion: d.opts.Version}, nil
}

// GetPluginCapabilities lists none: the driver has no controller service and
// its volumes have no topology.
func (d *Driver) GetPluginCapabilities(context.Context, *csipb.GetPluginCapabilitiesRequest) (*csipb.GetPluginCapabilitiesResponse, error) {
	return &csipb.GetPluginCapabilitiesResponse{}, nil
}

// Probe is ready once published volumes have been reconciled.
func (d *Driver) Probe(context.Context, *csipb.ProbeRequest) (*csipb.ProbeResponse, error) {
	return &csipb.ProbeResponse{Ready: wrapperspb.Bool(d.ready.Load())}, nil
}

// NodeGetInfo returns the node's name as its ID.
func (d *Driver) NodeGetInfo(context.Context, *csipb.NodeGetInfoRequest) (*csipb.NodeGetInfoResponse, error) {
	return &csipb.NodeGetInfoResponse{NodeId: d.opts.NodeID}, nil
}

// NodeGetCapabilities lists none: no staging, stats, expansion or health.
func (d *Driver) NodeGetCapabilities(context.Context, *csipb.NodeGetCapabilitiesRequest) (*csipb.NodeGetCapabilitiesResponse, error) {
	return &csipb.NodeGetCapabilitiesResponse{}, nil
}
