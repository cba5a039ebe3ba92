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

// Package envelope is the result a job pod's runtime posts to the manager's
// result endpoint (docs/runtime-contract.md), and the canonical digests both
// sides compute. The manager trusts none of the posted digests it can
// recompute: it checks the output digest against the posted output and the
// input digest against the job's own input.
package envelope

import (
	"github.com/aivm-dev/aivm-operator/internal/sha256hex"
)

// Version names the envelope format; the endpoint refuses other versions.
const Version = "aivm.dev/result/v1"

// MaxOutputBytes is the largest output an envelope may carry. The runtime
// stops generating before it; the endpoint refuses larger posts
// (OutputTooLarge). It leaves room below the 1 MiB ConfigMap limit.
const MaxOutputBytes = 512 << 10

// MaxBodyBytes bounds a whole posted envelope; the endpoint stops reading
// beyond it.
const MaxBodyBytes = MaxOutputBytes + 64<<10

// Envelope is one member's result for one attempt of a job.
type Envelope struct {
	// Version is Version.
	Version string `json:"version"`
	// JobUID, Namespace and Job name the InferenceJob.
	JobUID    string `json:"jobUID"`
	Namespace string `json:"namespace"`
	Job       string `json:"job"`
	// Attempt and Member say which placement ran it.
	Attempt int32 `json:"attempt"`
	Member  int32 `json:"member"`
	// Output is the generated text (UTF-8).
	Output string `json:"output"`
	// FinishReason is the engine's finish reason (stop, length, max_bytes).
	FinishReason string `json:"finishReason,omitempty"`
	// InputTokens and OutputTokens count prompt and generated tokens.
	InputTokens  int64 `json:"inputTokens"`
	OutputTokens int64 `json:"outputTokens"`
	// Timings in milliseconds.
	Timings Timings `json:"timings"`
	// Engine is the engine name and version.
	Engine string `json:"engine"`
	// GPUUUIDs are the GPUs the runtime container saw.
	GPUUUIDs []string `json:"gpuUUIDs,omitempty"`
	// Digests are the canonical digests of what ran (see Digest).
	Digests Digests `json:"digests"`
}

// Timings are the phases of a run, in milliseconds.
type Timings struct {
	LoadMillis     int64 `json:"loadMillis"`
	PromptMillis   int64 `json:"promptMillis"`
	GenerateMillis int64 `json:"generateMillis"`
	TotalMillis    int64 `json:"totalMillis"`
}

// Digests are sha256 digests, each "sha256:" followed by 64 lowercase hex
// digits (sha256hex.Prefixed).
type Digests struct {
	// Input is Digest of the input bytes exactly as the job holds them.
	Input string `json:"input"`
	// Output is Digest of the output's UTF-8 bytes.
	Output string `json:"output"`
	// Model is the Model's status.modelDigest the pod was given.
	Model string `json:"model"`
	// Kernel is the Kernel's status.kernelDigest the pod was given.
	Kernel string `json:"kernel"`
}

// Digest is the canonical digest of b: "sha256:" + lowercase hex sha256.
func Digest(b []byte) string {
	return sha256hex.Prefix + sha256hex.Of(b)
}
