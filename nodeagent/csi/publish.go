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
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	csipb "github.com/container-storage-interface/spec/lib/go/csi"
	"github.com/go-logr/logr"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/aivm-dev/aivm-operator/internal/sha256hex"
)

// NodePublishVolume serves a Model at the target path: it pins the Model's
// snapshot, ensures it (fetching when needed), records the volume and
// bind-mounts the snapshot read-only. Publishing a volume again at the same
// target succeeds without doing anything.
func (d *Driver) NodePublishVolume(ctx context.Context, req *csipb.NodePublishVolumeRequest) (*csipb.NodePublishVolumeResponse, error) {
	id, target := req.GetVolumeId(), req.GetTargetPath()
	if err := checkVolume(id, target); err != nil {
		return nil, err
	}
	capability := req.GetVolumeCapability()
	if capability == nil {
		return nil, invalid("volume %s: volume capability is missing", id)
	}
	if capability.GetBlock() != nil {
		return nil, invalid("volume %s: %s volumes are directories: block access is not supported", id, DriverName)
	}
	rec, err := volumeFromContext(id, target, req.GetVolumeContext(), d.opts.WorkloadNamespace)
	if err != nil {
		return nil, err
	}
	if !d.lock(id) {
		return nil, status.Errorf(codes.Aborted, "volume %s: another operation on it is in progress", id)
	}
	defer d.unlock(id)
	log := logr.FromContextOrDiscard(ctx).WithValues("volume", id, "model", rec.model().String(), "target", target)

	prev, err := d.records.get(id)
	if err != nil {
		return nil, internalError(id, "read its record", err)
	}
	if prev != nil {
		if canonical(prev.TargetPath) != canonical(target) {
			return nil, status.Errorf(codes.FailedPrecondition, "volume %s is already published at %s", id, prev.TargetPath)
		}
		if prev.model() != rec.model() {
			return nil, status.Errorf(codes.AlreadyExists, "volume %s is already published at %s with model %s (digest %s)",
				id, target, prev.model(), prev.Digest)
		}
	}

	// Pin first, so that no garbage collection removes the snapshot
	// between ensuring and mounting it.
	if err := d.opts.Snapshots.Pin(rec.Digest, id); err != nil {
		return nil, internalError(id, "pin model "+rec.model().String(), err)
	}
	published := false
	defer func() {
		if published {
			return
		}
		if err := d.release(rec); err != nil {
			log.Error(err, "Releasing a volume that failed to publish")
		}
	}()

	mounted, err := isMountPoint(d.opts.mountInfo, target)
	if err != nil {
		return nil, internalError(id, "read mounts", err)
	}
	if prev != nil && mounted {
		published = true
		return &csipb.NodePublishVolumeResponse{}, nil
	}
	dir, err := d.opts.Snapshots.Ensure(ctx, rec.model())
	if err != nil {
		log.Info("Model could not be served", "err", err.Error())
		d.recordFailure(rec.model(), err)
		return nil, ensureError(rec.model(), err)
	}
	if d.opts.Failures != nil {
		d.opts.Failures.Served(rec.model().String(), rec.Digest)
	}
	if err := d.records.put(rec); err != nil {
		return nil, internalError(id, "record it", err)
	}
	if err := os.MkdirAll(target, 0o750); err != nil {
		return nil, internalError(id, "create target path", err)
	}
	if !mounted {
		if err := bindReadOnly(dir, target); err != nil {
			return nil, internalError(id, "mount model "+rec.model().String(), err)
		}
	}
	published = true
	log.Info("Published model volume", "snapshot", dir)
	return &csipb.NodePublishVolumeResponse{}, nil
}

// NodeUnpublishVolume unmounts the target, releases the pin, deletes the
// record and removes the target directory. An unknown volume or an absent
// mount is no error, so retries succeed.
func (d *Driver) NodeUnpublishVolume(ctx context.Context, req *csipb.NodeUnpublishVolumeRequest) (*csipb.NodeUnpublishVolumeResponse, error) {
	id, target := req.GetVolumeId(), req.GetTargetPath()
	if err := checkVolume(id, target); err != nil {
		return nil, err
	}
	if !d.lock(id) {
		return nil, status.Errorf(codes.Aborted, "volume %s: another operation on it is in progress", id)
	}
	defer d.unlock(id)
	log := logr.FromContextOrDiscard(ctx).WithValues("volume", id, "target", target)

	if err := unmountAll(d.opts.mountInfo, target); err != nil {
		return nil, internalError(id, "unmount", err)
	}
	rec, err := d.records.get(id)
	if err != nil {
		return nil, internalError(id, "read its record", err)
	}
	// A record of another target belongs to a publish still in place.
	if rec != nil && canonical(rec.TargetPath) == canonical(target) {
		if err := d.release(rec); err != nil {
			return nil, internalError(id, "release", err)
		}
		log.Info("Unpublished model volume", "model", rec.model().String())
	}
	if err := os.Remove(target); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, internalError(id, "remove target path", err)
	}
	return &csipb.NodeUnpublishVolumeResponse{}, nil
}

// release drops a volume's pin and then its record, so a crash in between
// leaves a record that the next start releases.
func (d *Driver) release(r *record) error {
	if err := d.opts.Snapshots.Unpin(r.Digest, r.VolumeID); err != nil {
		return fmt.Errorf("unpin model %s: %w", r.model(), err)
	}
	return d.records.remove(r.VolumeID)
}

// checkVolume checks the volume ID and target path every call carries.
func checkVolume(id, target string) error {
	switch {
	case id == "":
		return invalid("volume ID is missing")
	case !validVolumeID(id):
		return invalid("volume ID %q is not valid: want at most %d letters, digits, '.', '_' or '-'", id, maxVolumeIDLength)
	case target == "":
		return invalid("volume %s: target path is missing", id)
	case !filepath.IsAbs(target) || strings.ContainsRune(target, 0):
		return invalid("volume %s: target path %q is not an absolute path", id, target)
	}
	return nil
}

// volumeFromContext reads the Model and pod from the volume attributes and
// refuses what the driver does not serve: a persistent volume, a Model in
// another namespace than the pod's (unless the pod is in the operator's
// workload namespace, where only the manager creates pods), a malformed
// digest.
func volumeFromContext(id, target string, vc map[string]string, workloadNamespace string) (*record, error) {
	if vc[attrEphemeral] != "true" {
		return nil, invalid("volume %s: %s serves only inline ephemeral volumes (%s=true from the kubelet)", id, DriverName, attrEphemeral)
	}
	r := &record{
		VolumeID: id, TargetPath: filepath.Clean(target),
		Namespace: vc[AttrModelNamespace], Name: vc[AttrModelName], Digest: vc[AttrModelDigest],
		PodNamespace: vc[attrPodNamespace], PodName: vc[attrPodName], PodUID: vc[attrPodUID],
	}
	switch {
	case r.PodNamespace == "":
		return nil, invalid("volume %s: the pod's namespace is unknown: the CSIDriver %s must set podInfoOnMount: true", id, DriverName)
	case r.Name == "" || r.Namespace == "":
		return nil, invalid("volume %s: volumeAttributes %s and %s must name the Model", id, AttrModelNamespace, AttrModelName)
	case len(validation.IsDNS1123Label(r.Namespace)) > 0 || len(validation.IsDNS1123Subdomain(r.Name)) > 0:
		return nil, invalid("volume %s: %q/%q is not a valid Model namespace and name", id, r.Namespace, r.Name)
	case r.Namespace != r.PodNamespace && (workloadNamespace == "" || r.PodNamespace != workloadNamespace):
		return nil, status.Errorf(codes.PermissionDenied, "volume %s: model %s is not in the pod's namespace %s: a pod may use only Models of its own namespace",
			id, r.model(), r.PodNamespace)
	}
	if !sha256hex.IsCanonical(r.Digest) {
		return nil, invalid("volume %s: model %s: volumeAttribute %s %q is not a lowercase hex sha256", id, r.model(), AttrModelDigest, r.Digest)
	}
	return r, nil
}
