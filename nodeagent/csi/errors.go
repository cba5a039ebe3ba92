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

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/aivm-dev/aivm-operator/api/v1alpha1"
	"github.com/aivm-dev/aivm-operator/artifact"
)

// Causes a Snapshots implementation wraps, so the driver picks the code.
var (
	// ErrModelNotFound: no Model of that namespace and name.
	ErrModelNotFound = errors.New("model not found")
	// ErrDigestChanged: the Model's digest is not the one the volume asks for.
	ErrDigestChanged = errors.New("model digest changed")
	// ErrCredentialsNotFound: the Model's credentials Secret is missing or
	// unreadable, or lacks its key.
	ErrCredentialsNotFound = errors.New("credentials not found")
)

// Reasons in error messages for causes the API does not name.
const (
	reasonModelNotFound = "ModelNotFound"
	reasonDigestChanged = "DigestChanged"
	reasonFetchTimeout  = "FetchInProgress"
)

// ensureError turns a failed Ensure into a CSI status whose message names the
// Model and the cause; the kubelet shows it in the pod's events. Errors from
// Snapshots never carry a token (artifact redacts sources, Secrets are named
// by namespace, name and key), and a refusal for AccessNotProven
// (PermissionDenied) names only the pod's own Model, its source and its
// digests, never who else holds the bytes.
func ensureError(ref ModelRef, err error) error {
	code, reason := classify(err)
	return status.Errorf(code, "model %s (digest %s): %s: %v", ref, ref.Digest, reason, err)
}

func classify(err error) (codes.Code, string) {
	var dm *artifact.DigestMismatchError
	var sm *artifact.SizeMismatchError
	var ad *artifact.AccessDeniedError
	var sdm *artifact.SourceDigestMismatchError
	switch {
	case errors.As(err, &ad):
		// Before the content causes: a failed proof wraps the digest
		// mismatch of a verifying download.
		return codes.PermissionDenied, v1alpha1.ReasonAccessNotProven
	case errors.As(err, &sdm):
		return codes.FailedPrecondition, v1alpha1.ReasonSourceDigestMismatch
	case errors.Is(err, ErrModelNotFound):
		return codes.NotFound, reasonModelNotFound
	case errors.Is(err, ErrDigestChanged):
		return codes.FailedPrecondition, reasonDigestChanged
	case errors.Is(err, ErrCredentialsNotFound):
		return codes.FailedPrecondition, v1alpha1.ReasonCredentialsNotFound
	case errors.As(err, &dm):
		return codes.FailedPrecondition, v1alpha1.ReasonDigestMismatch
	case errors.As(err, &sm):
		return codes.FailedPrecondition, artifact.ReasonSizeMismatch
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		// The fetch goes on in the background; the kubelet's retry joins it.
		return codes.DeadlineExceeded, reasonFetchTimeout
	}
	if r := artifact.ErrorReason(err); r == v1alpha1.ReasonSourceUnreachable {
		return codes.Unavailable, r
	}
	return codes.Internal, artifact.ReasonFetchFailed
}

// recordFailure tells the FailureRecorder about a refusal for the content
// of the bytes (a digest or size mismatch) or because the Model's own
// source did not prove access to cached bytes (AccessNotProven, shown on
// that Model alone); other failures (a source that does not answer, a
// Model that changed) are not the node's to report.
func (d *Driver) recordFailure(ref ModelRef, err error) {
	if d.opts.Failures == nil {
		return
	}
	_, reason := classify(err)
	switch reason {
	case v1alpha1.ReasonDigestMismatch, artifact.ReasonSizeMismatch, v1alpha1.ReasonAccessNotProven:
	default:
		return
	}
	file := ""
	var fe *artifact.FileError
	if errors.As(err, &fe) {
		file = fe.Path
	}
	d.opts.Failures.PublishFailed(ref.String(), ref.Digest, reason, file, err)
}

// internalError reports a failure of the node itself (mount, state files).
func internalError(volumeID, what string, err error) error {
	return status.Errorf(codes.Internal, "volume %s: %s: %v", volumeID, what, err)
}

func invalid(format string, args ...any) error {
	return status.Error(codes.InvalidArgument, fmt.Sprintf(format, args...))
}
