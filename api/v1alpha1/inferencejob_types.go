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

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// MaxInlineInputBytes bounds spec.input.text in bytes of UTF-8; larger inputs
// go in a ConfigMap or Secret.
const MaxInlineInputBytes = 65536

// InferenceJobSpec is one inference request.
// +kubebuilder:validation:XValidation:rule="self.kernelRef == oldSelf.kernelRef",fieldPath=".kernelRef",reason="FieldValueInvalid",message="kernelRef is immutable"
// +kubebuilder:validation:XValidation:rule="self.input == oldSelf.input",fieldPath=".input",reason="FieldValueInvalid",message="input is immutable"
// +kubebuilder:validation:XValidation:rule="self.parameters == oldSelf.parameters",fieldPath=".parameters",reason="FieldValueInvalid",message="parameters are immutable"
type InferenceJobSpec struct {
	// kernelRef names the Kernel in the job's namespace. Immutable.
	// +required
	KernelRef LocalObjectReference `json:"kernelRef"`

	// input is the prompt: inline text, or a key of a ConfigMap or Secret.
	// Exactly one form. Immutable.
	// +required
	Input JobInput `json:"input"`

	// parameters control generation. Immutable.
	// +optional
	// +kubebuilder:default={}
	Parameters GenerationParameters `json:"parameters,omitempty"`

	// priority orders the queue: higher first, FIFO within a priority.
	// +optional
	// +kubebuilder:default=0
	// +kubebuilder:validation:Minimum=-1000
	// +kubebuilder:validation:Maximum=1000
	Priority int32 `json:"priority,omitempty"`

	// suspend keeps the job out of scheduling while true (Kueue admits jobs by
	// clearing it). Suspending a running job stops its pods.
	// +optional
	// +kubebuilder:default=false
	Suspend *bool `json:"suspend,omitempty"`

	// activeDeadlineSeconds bounds the job's run time from its first start;
	// past it the job fails with DeadlineExceeded.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=604800
	ActiveDeadlineSeconds *int64 `json:"activeDeadlineSeconds,omitempty"`

	// backoffLimit is the number of retries after failed attempts.
	// +optional
	// +kubebuilder:default=3
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=10
	BackoffLimit *int32 `json:"backoffLimit,omitempty"`

	// report sends the signed result to the chain.
	// +optional
	// +kubebuilder:default=true
	Report *bool `json:"report,omitempty"`

	// ttlSecondsAfterFinished deletes the job (and the ConfigMaps it owns)
	// this many seconds after it succeeded or failed; unset keeps it. A job
	// whose result is reported on chain is kept until Reported is True.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=31536000
	TTLSecondsAfterFinished *int32 `json:"ttlSecondsAfterFinished,omitempty"`
}

// JobInput is the prompt of a job, in exactly one of its forms.
// +kubebuilder:validation:XValidation:rule="[has(self.text), has(self.configMapKeyRef), has(self.secretKeyRef)].filter(x, x).size() == 1",message="input needs exactly one of text, configMapKeyRef or secretKeyRef"
type JobInput struct {
	// text is the prompt itself, at most 64 KiB (65536 bytes of UTF-8).
	// +optional
	// +kubebuilder:validation:MaxLength=65536
	// +kubebuilder:validation:XValidation:rule="size(self) > 65536 || size(bytes(self)) <= 65536",reason="FieldValueForbidden",message="input.text must be at most 65536 bytes of UTF-8; put larger inputs in a ConfigMap or Secret"
	Text *string `json:"text,omitempty"`

	// configMapKeyRef names a key of a ConfigMap in the job's namespace.
	// +optional
	ConfigMapKeyRef *KeyReference `json:"configMapKeyRef,omitempty"`

	// secretKeyRef names a key of a Secret in the job's namespace.
	// +optional
	SecretKeyRef *KeyReference `json:"secretKeyRef,omitempty"`
}

// KeyReference names a key of a ConfigMap or Secret in the same namespace.
type KeyReference struct {
	// name is the object's name.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
	// key is the key within the object.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[-._a-zA-Z0-9]+$`
	Key string `json:"key"`
}

// GenerationParameters control text generation.
type GenerationParameters struct {
	// maxTokens bounds the number of generated tokens.
	// +optional
	// +kubebuilder:default=256
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=131072
	MaxTokens int32 `json:"maxTokens,omitempty"`

	// temperature is the sampling temperature as a decimal string, 0 to 2;
	// "0" is greedy decoding.
	// +optional
	// +kubebuilder:validation:MaxLength=8
	// +kubebuilder:validation:Pattern=`^[0-9](\.[0-9]{1,4})?$`
	// +kubebuilder:validation:XValidation:rule="!self.matches('^[0-9](\\\\.[0-9]{1,4})?$') || double(self) <= 2.0",message="temperature must be between 0 and 2"
	Temperature string `json:"temperature,omitempty"`

	// topP is the nucleus sampling mass as a decimal string, above 0 and at most 1.
	// +optional
	// +kubebuilder:validation:MaxLength=8
	// +kubebuilder:validation:Pattern=`^[0-9](\.[0-9]{1,4})?$`
	// +kubebuilder:validation:XValidation:rule="!self.matches('^[0-9](\\\\.[0-9]{1,4})?$') || (double(self) > 0.0 && double(self) <= 1.0)",message="topP must be above 0 and at most 1"
	TopP string `json:"topP,omitempty"`

	// seed overrides the kernel's determinism seed for this job.
	// +optional
	// +kubebuilder:validation:Minimum=0
	Seed *int64 `json:"seed,omitempty"`

	// stop sequences end generation.
	// +optional
	// +kubebuilder:validation:MaxItems=8
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=128
	Stop []string `json:"stop,omitempty"`
}

// Placement is where one attempt of one committee member ran.
type Placement struct {
	// attempt is the attempt number, from 1.
	// +required
	// +kubebuilder:validation:Minimum=1
	Attempt int32 `json:"attempt"`
	// member is the committee member index, from 0.
	// +optional
	// +kubebuilder:validation:Minimum=0
	Member int32 `json:"member,omitempty"`
	// node is the node's name.
	// +required
	// +kubebuilder:validation:MaxLength=253
	Node string `json:"node"`
	// gpuUUIDs are the NVML UUIDs of the GPUs (or MIG devices) given to the pod.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:items:MaxLength=128
	GPUUUIDs []string `json:"gpuUUIDs,omitempty"`
	// pod is the runtime pod's name.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	Pod string `json:"pod,omitempty"`
	// podUID is the runtime pod's UID, set by the job controller once the pod
	// exists. The result endpoint accepts a post only from this pod.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	PodUID string `json:"podUID,omitempty"`
	// placedTime is when the placement was decided.
	// +optional
	PlacedTime *metav1.Time `json:"placedTime,omitempty"`
	// kernelDigest is the Kernel's status.kernelDigest when the placement
	// was decided, written by the scheduler with the placement. The result
	// endpoint requires a posted result to name it (empty: the Kernel's
	// current digest is required).
	// +optional
	// +kubebuilder:validation:MaxLength=71
	KernelDigest string `json:"kernelDigest,omitempty"`
	// modelDigest is the Kernel's status.modelDigest when the placement was
	// decided, written by the scheduler with the placement; checked like
	// kernelDigest.
	// +optional
	// +kubebuilder:validation:MaxLength=71
	ModelDigest string `json:"modelDigest,omitempty"`
	// outcome is how this placement's pod ended: empty while it is pending or
	// running. Written by the job controller.
	// +optional
	Outcome PlacementOutcome `json:"outcome,omitempty"`
	// reason is a PascalCase cause of a Failed outcome (OOMKilled,
	// RuntimeExited, GPUUnhealthy, NodeNotReady, DeadlineExceeded, ...).
	// +optional
	// +kubebuilder:validation:MaxLength=64
	Reason string `json:"reason,omitempty"`
	// message says what happened, for people.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	Message string `json:"message,omitempty"`
	// exitCode is the runtime container's exit code, when it exited.
	// +optional
	ExitCode *int32 `json:"exitCode,omitempty"`
	// finishedTime is when the outcome was recorded.
	// +optional
	FinishedTime *metav1.Time `json:"finishedTime,omitempty"`
}

// PlacementOutcome is how a placement's pod ended.
// +kubebuilder:validation:Enum=Succeeded;Failed
type PlacementOutcome string

const (
	// PlacementSucceeded means the pod's result was accepted.
	PlacementSucceeded PlacementOutcome = "Succeeded"
	// PlacementFailed means the attempt failed on this placement; a retry avoids
	// its node and GPUs.
	PlacementFailed PlacementOutcome = "Failed"
)

// MemberResult is one committee member's accepted result (a single-member
// job has one), written by the result endpoint after it checked the post.
type MemberResult struct {
	// attempt is the attempt whose pod posted it.
	// +required
	// +kubebuilder:validation:Minimum=1
	Attempt int32 `json:"attempt"`
	// member is the committee member index, from 0.
	// +optional
	// +kubebuilder:validation:Minimum=0
	Member int32 `json:"member,omitempty"`
	// pod is the name of the pod that posted it.
	// +required
	// +kubebuilder:validation:MaxLength=253
	Pod string `json:"pod"`
	// outputDigest is the lowercase hex sha256 of the output, recomputed by
	// the manager from the posted output.
	// +required
	// +kubebuilder:validation:MaxLength=64
	OutputDigest string `json:"outputDigest"`
	// outputKey is the key of the job's result ConfigMap holding this output.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	OutputKey string `json:"outputKey,omitempty"`
	// inputTokens is the number of prompt tokens.
	// +optional
	InputTokens int64 `json:"inputTokens,omitempty"`
	// outputTokens is the number of generated tokens.
	// +optional
	OutputTokens int64 `json:"outputTokens,omitempty"`
	// durationMillis is the inference time in milliseconds.
	// +optional
	DurationMillis int64 `json:"durationMillis,omitempty"`
	// engine is the engine name and version that produced it.
	// +optional
	// +kubebuilder:validation:MaxLength=128
	Engine string `json:"engine,omitempty"`
	// gpuUUIDs are the GPUs the runtime container saw.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:items:MaxLength=128
	GPUUUIDs []string `json:"gpuUUIDs,omitempty"`
	// receivedTime is when the manager accepted it.
	// +optional
	ReceivedTime *metav1.Time `json:"receivedTime,omitempty"`
}

// JobResult is the verified result of a job. Its four digests are in the
// signed record's canonical form: 64 lowercase hex digits, no "sha256:"
// prefix (docs/result-endpoint.md).
type JobResult struct {
	// outputDigest is the lowercase hex sha256 of the output bytes.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	OutputDigest string `json:"outputDigest,omitempty"`
	// inputDigest is the lowercase hex sha256 of the input bytes.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	InputDigest string `json:"inputDigest,omitempty"`
	// kernelDigest is the Kernel's kernelDigest the result ran with, as 64
	// lowercase hex digits: the identity of what ran, part of the signed
	// record. (Results written before the canonical form may carry the
	// "sha256:" prefix.)
	// +optional
	// +kubebuilder:validation:MaxLength=71
	KernelDigest string `json:"kernelDigest,omitempty"`
	// modelDigest is the lowercase hex sha256 of the weights that ran, part
	// of the signed record.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	ModelDigest string `json:"modelDigest,omitempty"`
	// outputConfigMapRef names the ConfigMap holding the output; outputKey
	// is the key.
	// +optional
	OutputConfigMapRef *LocalObjectReference `json:"outputConfigMapRef,omitempty"`
	// outputKey is the key of outputConfigMapRef holding the agreed output
	// ("sha256-" + outputDigest: agreeing members share one copy).
	// +optional
	// +kubebuilder:validation:MaxLength=253
	OutputKey string `json:"outputKey,omitempty"`
	// attempt is the attempt whose members produced the result.
	// +optional
	// +kubebuilder:validation:Minimum=1
	Attempt int32 `json:"attempt,omitempty"`
	// agreedMembers are the committee members that posted the agreed output,
	// ascending.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=16
	AgreedMembers []int32 `json:"agreedMembers,omitempty"`
	// dissenters are the members whose accepted output differed when the
	// result was decided, ascending.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=16
	Dissenters []int32 `json:"dissenters,omitempty"`
	// decidedTime is when the result was decided.
	// +optional
	DecidedTime *metav1.Time `json:"decidedTime,omitempty"`
	// inputTokens is the number of prompt tokens.
	// +optional
	InputTokens int64 `json:"inputTokens,omitempty"`
	// outputTokens is the number of generated tokens.
	// +optional
	OutputTokens int64 `json:"outputTokens,omitempty"`
	// durationMillis is the inference time in milliseconds.
	// +optional
	DurationMillis int64 `json:"durationMillis,omitempty"`
	// receipt is the provider's signed statement of the result.
	// +optional
	Receipt *Receipt `json:"receipt,omitempty"`
}

// Receipt is the provider's signature over a result's leaf hash.
type Receipt struct {
	// leafHash is the hex sha256 leaf hash of the canonical result record.
	// +required
	// +kubebuilder:validation:MaxLength=64
	LeafHash string `json:"leafHash"`
	// signature is the base64 64-byte secp256k1 signature over leafHash.
	// +required
	// +kubebuilder:validation:MaxLength=128
	Signature string `json:"signature"`
	// signerAddress is the provider's bech32 account address.
	// +required
	// +kubebuilder:validation:MaxLength=128
	SignerAddress string `json:"signerAddress"`
}

// ChainStatus is where a job's result landed on chain.
type ChainStatus struct {
	// txHash is the hash of the transaction that carried the result.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	TxHash string `json:"txHash,omitempty"`
	// height is the block height that committed it.
	// +optional
	Height int64 `json:"height,omitempty"`
	// batchRoot is the hex Merkle root of the batch.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	BatchRoot string `json:"batchRoot,omitempty"`
	// proof is the hex Merkle path from the result's leaf to batchRoot.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=66
	Proof []string `json:"proof,omitempty"`
	// leafIndex is the result's position in the batch.
	// +optional
	LeafIndex int32 `json:"leafIndex,omitempty"`
	// batchSize is the number of results in the batch (the Merkle tree's
	// size); with leafIndex and proof it verifies the result against batchRoot.
	// +optional
	// +kubebuilder:validation:Minimum=1
	BatchSize int32 `json:"batchSize,omitempty"`
}

// InferenceJobStatus is the observed state of an InferenceJob.
type InferenceJobStatus struct {
	// conditions: Admitted, Scheduled, Running, Succeeded, Failed, Reported.
	// +optional
	// +listType=map
	// +listMapKey=type
	// +kubebuilder:validation:MaxItems=16
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// observedGeneration is the generation the status was computed for.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// attempts is the number of attempts started.
	// +optional
	Attempts int32 `json:"attempts,omitempty"`

	// placements records every attempt's node, GPUs and pod, newest last.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=128
	Placements []Placement `json:"placements,omitempty"`

	// memberResults are the accepted results of the current attempt's
	// members, one per member; a committee's decision is recomputed from them.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=64
	MemberResults []MemberResult `json:"memberResults,omitempty"`

	// startTime is when the first attempt started.
	// +optional
	StartTime *metav1.Time `json:"startTime,omitempty"`

	// completionTime is when the job succeeded or failed for good.
	// +optional
	CompletionTime *metav1.Time `json:"completionTime,omitempty"`

	// result is the verified result.
	// +optional
	Result *JobResult `json:"result,omitempty"`

	// chain is where the result landed on chain.
	// +optional
	Chain *ChainStatus `json:"chain,omitempty"`
}

// InferenceJob is one inference request run on a Kernel.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=ij,categories=aivm
// +kubebuilder:printcolumn:name="Kernel",type=string,JSONPath=`.spec.kernelRef.name`
// +kubebuilder:printcolumn:name="Succeeded",type=string,JSONPath=`.status.conditions[?(@.type=="Succeeded")].status`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Succeeded")].reason`
// +kubebuilder:printcolumn:name="Node",type=string,JSONPath=`.status.placements[-1:].node`
// +kubebuilder:printcolumn:name="Attempts",type=integer,JSONPath=`.status.attempts`
// +kubebuilder:printcolumn:name="Reported",type=string,JSONPath=`.status.conditions[?(@.type=="Reported")].status`
// +kubebuilder:printcolumn:name="GPU",type=string,JSONPath=`.status.placements[-1:].gpuUUIDs`,priority=1
// +kubebuilder:printcolumn:name="TxHash",type=string,JSONPath=`.status.chain.txHash`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type InferenceJob struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec is the request.
	// +required
	Spec InferenceJobSpec `json:"spec"`
	// status is the observed state.
	// +optional
	Status InferenceJobStatus `json:"status,omitempty"`
}

// InferenceJobList is a list of InferenceJobs.
// +kubebuilder:object:root=true
type InferenceJobList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	// items are the InferenceJobs.
	Items []InferenceJob `json:"items"`
}

func init() { register(&InferenceJob{}, &InferenceJobList{}) }
