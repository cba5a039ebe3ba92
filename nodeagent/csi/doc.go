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

// Package csi is the node plugin of the models.aivm.dev CSI driver: it serves
// Models to job pods as read-only inline ephemeral volumes, so job pods pass
// Pod Security "restricted" (which forbids hostPath) and never hold a model
// credential. The node agent serves it on a unix socket and registers it with
// the kubelet through the plugin registration socket.
//
// A publish ensures the Model's snapshot directory in the node cache, pins it
// against garbage collection, records the volume on disk and bind-mounts the
// snapshot read-only at the pod's target path. The record lets a restarted
// agent take its pins again (reconciled against /proc/self/mountinfo). See
// docs/csi-driver.md.
package csi

import (
	"context"
)

// DriverName is the CSI driver's name, as pods and the CSIDriver object name it.
const DriverName = "models.aivm.dev"

// Volume attributes (volumeAttributes of a pod's inline CSI volume).
const (
	// AttrModelNamespace is the Model's namespace; it must be the pod's.
	AttrModelNamespace = "model.aivm.dev/namespace"
	// AttrModelName is the Model's name.
	AttrModelName = "model.aivm.dev/name"
	// AttrModelDigest is the Model's status.modelDigest the pod expects.
	AttrModelDigest = "model.aivm.dev/digest"
)

// Attributes the kubelet adds (CSIDriver podInfoOnMount: true).
const (
	attrPodName      = "csi.storage.k8s.io/pod.name"
	attrPodNamespace = "csi.storage.k8s.io/pod.namespace"
	attrPodUID       = "csi.storage.k8s.io/pod.uid"
	attrEphemeral    = "csi.storage.k8s.io/ephemeral"
)

// ModelRef names a Model and the digest of its content a volume asks for.
type ModelRef struct {
	// Namespace and Name are the Model's.
	Namespace, Name string
	// Digest is the Model's modelDigest, lowercase hex sha256.
	Digest string
}

// String names the Model for messages: namespace/name.
func (r ModelRef) String() string { return r.Namespace + "/" + r.Name }

// FailureRecorder hears which Models the driver refused to serve because
// their bytes failed the digest or size check, and which were served, so
// the node's GPUNode can say so (nodeagent.PublishFailures is one).
type FailureRecorder interface {
	// PublishFailed records that model (namespace/name) with digest was
	// refused for reason; file names the failing file of a file set.
	PublishFailed(model, digest, reason, file string, err error)
	// Served forgets the failures of digest's bytes, and model's own
	// (namespace/name) refusals: model was served digest.
	Served(model, digest string)
}

// Snapshots is what the driver needs from the node's model cache.
// Implementations fetch with the Model's credentials, which only the node
// agent reads, and return errors that wrap the causes below or the artifact
// package's error types, so the driver can choose the CSI code.
type Snapshots interface {
	// Ensure makes the Model's verified snapshot directory exist and
	// returns its path. It fails, wrapping ErrDigestChanged, when the
	// Model's digest is no longer ref.Digest.
	Ensure(ctx context.Context, ref ModelRef) (dir string, err error)
	// Pin keeps the snapshot of digest from garbage collection on behalf
	// of a volume until Unpin; pinning twice for one volume is one pin.
	Pin(digest, volumeID string) error
	// Unpin releases the volume's pin; an unknown pin is no error.
	Unpin(digest, volumeID string) error
}
