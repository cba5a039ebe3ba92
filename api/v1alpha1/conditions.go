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

package v1alpha1

// Condition types. Every kind reports its state in status.conditions; these
// are the types it uses.
const (
	// ConditionReady is True when the object can be used: a Model whose bytes
	// are verified and reachable, a Kernel whose Model is ready and whose
	// runtime is valid, a GPUNode whose agent heartbeat is fresh.
	ConditionReady = "Ready"
	// ConditionVerified is True on a Model once a node has checked its bytes
	// against spec.sha256.
	ConditionVerified = "Verified"

	// ConditionAdmitted is True once an InferenceJob passed admission checks
	// (kernel found and ready, not suspended) and is queued.
	ConditionAdmitted = "Admitted"
	// ConditionScheduled is True once an InferenceJob has a placement.
	ConditionScheduled = "Scheduled"
	// ConditionRunning is True while an InferenceJob's runtime pod runs.
	ConditionRunning = "Running"
	// ConditionSucceeded is True once an InferenceJob produced a result.
	ConditionSucceeded = "Succeeded"
	// ConditionFailed is True once an InferenceJob failed for good.
	ConditionFailed = "Failed"
	// ConditionReported is True once an InferenceJob's result is on chain.
	ConditionReported = "Reported"
)

// Condition reasons. Each names a cause a user can act on.
const (
	// ReasonVerified: a node fetched the bytes and they matched the digest.
	ReasonVerified = "Verified"
	// ReasonPendingVerification: no node has verified the bytes yet.
	ReasonPendingVerification = "PendingVerification"
	// ReasonDigestMismatch: a node fetched bytes whose sha256 differs from spec.sha256.
	ReasonDigestMismatch = "DigestMismatch"
	// ReasonSourceUnreachable: the artifact source could not be reached.
	ReasonSourceUnreachable = "SourceUnreachable"
	// ReasonSourceReachable: the artifact source answered.
	ReasonSourceReachable = "SourceReachable"
	// ReasonSizeMismatch: the source's size differs from spec.sizeBytes.
	ReasonSizeMismatch = "SizeMismatch"
	// ReasonInvalidSource: the Model's uri cannot be fetched as written.
	ReasonInvalidSource = "InvalidSource"
	// ReasonCredentialsNotFound: the Secret named by spec.credentialsSecretRef is missing.
	ReasonCredentialsNotFound = "CredentialsNotFound"
	// ReasonSourceDigestMismatch: the source answered, but a response
	// header that states the content's sha256 (X-Linked-Etag, Repr-Digest,
	// Digest) states another one than the Model's, so the source does not
	// serve these bytes (docs/security.md, "Model cache").
	ReasonSourceDigestMismatch = "SourceDigestMismatch"
	// ReasonAccessNotProven: a node holds the Model's bytes in its cache but
	// did not serve them, because the Model's own source and credentials
	// did not show they can fetch them (docs/security.md, "Model cache").
	ReasonAccessNotProven = "AccessNotProven"

	// ReasonReady: everything the object depends on is ready.
	ReasonReady = "Ready"
	// ReasonModelNotFound: the Kernel's model does not exist.
	ReasonModelNotFound = "ModelNotFound"
	// ReasonModelNotVerified: the Kernel's model exists but is not verified.
	ReasonModelNotVerified = "ModelNotVerified"
	// ReasonModelNotReady: the Kernel's model exists but is not ready.
	ReasonModelNotReady = "ModelNotReady"
	// ReasonInvalidRuntime: the Kernel's runtime settings cannot run.
	ReasonInvalidRuntime = "InvalidRuntime"

	// ReasonKernelNotFound: the job's kernel does not exist.
	ReasonKernelNotFound = "KernelNotFound"
	// ReasonKernelNotReady: the job's kernel exists but is not ready.
	ReasonKernelNotReady = "KernelNotReady"
	// ReasonSuspended: spec.suspend is true.
	ReasonSuspended = "Suspended"
	// ReasonQueued: the job waits in the scheduling queue.
	ReasonQueued = "Queued"
	// ReasonNoGPUWithEnoughMemory: no healthy GPU has enough free memory.
	ReasonNoGPUWithEnoughMemory = "NoGPUWithEnoughMemory"
	// ReasonNoMatchingGPU: no GPU matches the kernel's product or compute capability.
	ReasonNoMatchingGPU = "NoMatchingGPU"
	// ReasonNoReadyNode: no GPU node can take jobs (none reports, or all are
	// NotReady, cordoned or without a fresh node agent heartbeat).
	ReasonNoReadyNode = "NoReadyNode"
	// ReasonNoMatchingNode: no ready GPU node matches the kernel's
	// nodeSelector and tolerates its taints.
	ReasonNoMatchingNode = "NoMatchingNode"
	// ReasonPlaced: a node and GPUs were chosen.
	ReasonPlaced = "Placed"
	// ReasonPodRunning: the runtime pod is running.
	ReasonPodRunning = "PodRunning"
	// ReasonRuntimeExited: the runtime exited with a non-zero code.
	ReasonRuntimeExited = "RuntimeExited"
	// ReasonDeadlineExceeded: spec.activeDeadlineSeconds passed.
	ReasonDeadlineExceeded = "DeadlineExceeded"
	// ReasonBackoffLimitExceeded: more attempts failed than spec.backoffLimit allows.
	ReasonBackoffLimitExceeded = "BackoffLimitExceeded"
	// ReasonGPUUnhealthy: a GPU the job ran on became unhealthy.
	ReasonGPUUnhealthy = "GPUUnhealthy"
	// ReasonResultReceived: the runtime posted a valid result.
	ReasonResultReceived = "ResultReceived"
	// ReasonCommitteeDisagreement: committee members' outputs did not agree under the policy.
	ReasonCommitteeDisagreement = "CommitteeDisagreement"
	// ReasonAdmitted: the job's kernel is ready and the job is not suspended.
	ReasonAdmitted = "Admitted"
	// ReasonWaitingForPlacement: the current attempt has no placement yet.
	ReasonWaitingForPlacement = "WaitingForPlacement"
	// ReasonPodPending: the runtime pod exists but does not run yet.
	ReasonPodPending = "PodPending"
	// ReasonBackoff: an attempt failed; the next one starts after a backoff.
	ReasonBackoff = "Backoff"
	// ReasonFinished: the job succeeded or failed; nothing runs.
	ReasonFinished = "Finished"
	// ReasonOOMKilled: the runtime pod's container was killed for memory.
	ReasonOOMKilled = "OOMKilled"
	// ReasonImagePullFailed: a container image of the runtime pod could not be pulled.
	ReasonImagePullFailed = "ImagePullFailed"
	// ReasonPodDeleted: the runtime pod was deleted before it finished.
	ReasonPodDeleted = "PodDeleted"
	// ReasonPodNotOwned: a pod with the placement's name exists that the
	// operator did not build for it; it is never adopted, and the next
	// attempt's pod has another name.
	ReasonPodNotOwned = "PodNotOwned"
	// ReasonAdmissionRejected: the node's kubelet refused the pod
	// (OutOf<resource>, UnexpectedAdmissionError), for the node's capacity
	// and not the job's fault: retried elsewhere, not counted against
	// backoffLimit.
	ReasonAdmissionRejected = "AdmissionRejected"
	// ReasonFailedCreate: a job's pod could not be created (a quota, an
	// admission webhook, an input that cannot be read); the event says why.
	ReasonFailedCreate = "FailedCreate"
	// ReasonPodStuckPending: the runtime pod stayed Pending past the kernel's startup timeout.
	ReasonPodStuckPending = "PodStuckPending"
	// ReasonPodFailed: the pod failed without a container exit code (evicted, rejected by the kubelet).
	ReasonPodFailed = "PodFailed"
	// ReasonNodeNotReady: the node of a placement is NotReady, gone, or its agent's heartbeat is stale.
	ReasonNodeNotReady = "NodeNotReady"
	// ReasonAttemptFailed: another member of the committee attempt failed, so this one was stopped.
	ReasonAttemptFailed = "AttemptFailed"
	// ReasonNoResult: the runtime exited 0 without its result being accepted.
	ReasonNoResult = "NoResult"

	// ReasonReportDisabled: spec.report is false.
	ReasonReportDisabled = "ReportDisabled"
	// ReasonReportPending: the result waits in the outbox.
	ReasonReportPending = "ReportPending"
	// ReasonCommitted: the result's transaction is in a block.
	ReasonCommitted = "Committed"
	// ReasonChainRejected: the chain rejected the result's transaction.
	ReasonChainRejected = "ChainRejected"
	// ReasonInvalidReceipt: the job's receipt does not match its result or
	// does not verify, so it is not sent.
	ReasonInvalidReceipt = "InvalidReceipt"
	// ReasonKernelDigestUnknown: neither the result nor the job's Kernel
	// gives the kernel and model digests, so the signed record cannot be rebuilt.
	ReasonKernelDigestUnknown = "KernelDigestUnknown"
	// ReasonChainUnreachable: the chain's RPC endpoint could not be reached.
	ReasonChainUnreachable = "ChainUnreachable"

	// ReasonHeartbeat: the node agent's heartbeat is fresh.
	ReasonHeartbeat = "Heartbeat"
	// ReasonHeartbeatMissed: the node agent's heartbeat is stale.
	ReasonHeartbeatMissed = "HeartbeatMissed"
)
