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

package resultendpoint

import (
	"context"
	"net/http"
	"slices"
	"time"

	aivmv1alpha1 "github.com/aivm-dev/aivm-operator/api/v1alpha1"
	"github.com/aivm-dev/aivm-operator/controllers"
	"github.com/aivm-dev/aivm-operator/runtime-image/envelope"
	"github.com/aivm-dev/aivm-operator/runtime-image/runner"
)

// maxSpecialTokens is what a tokenizer may add to one token per input byte:
// a beginning-of-text token, a dummy prefix, an end-of-text token for an
// empty prompt. Byte-level BPE and byte-fallback tokenizers never give
// more than one token per byte, so inputTokens ≤ input bytes + this.
const maxSpecialTokens = 16

// maxTimingWithoutDeadline bounds each timing of a job without
// activeDeadlineSeconds: the largest startupSeconds plus the largest
// inferenceSeconds a Kernel allows (86400 each).
const maxTimingWithoutDeadline = 2 * 86400 * time.Second

// maxDeadline is the largest activeDeadlineSeconds the API allows; a
// larger one (an object the schema did not check) binds no further.
const maxDeadline = 604800 * time.Second

// limits are what one job allows its envelope to claim. Every bound fits
// an int64 with room to add two of them, so DurationMillis (prompt plus
// generate) cannot overflow once the envelope is within them.
type limits struct {
	maxOutputTokens int64
	maxInputTokens  int64
	maxMillis       int64
	// gpus are the placement's GPU UUIDs; exact says the pod sees exactly
	// those (visible-devices binding), otherwise only their number binds.
	gpus  []string
	exact bool
}

// limitsOf derives the bounds of a post for job's placement p whose input
// is inputBytes long. binding is how the manager gives pods their GPUs.
func limitsOf(job *aivmv1alpha1.InferenceJob, p *aivmv1alpha1.Placement, inputBytes int, binding controllers.GPUBinding) limits {
	l := limits{
		maxOutputTokens: int64(job.Spec.Parameters.MaxTokens),
		maxInputTokens:  int64(inputBytes) + maxSpecialTokens,
		maxMillis:       maxTimingWithoutDeadline.Milliseconds(),
		gpus:            p.GPUUUIDs,
		exact:           binding == controllers.GPUBindingVisibleDevices,
	}
	if l.maxOutputTokens <= 0 {
		// The runtime's default when the job leaves maxTokens out.
		l.maxOutputTokens = runner.DefaultMaxTokens
	}
	if d := job.Spec.ActiveDeadlineSeconds; d != nil && *d > 0 {
		l.maxMillis = min(*d, int64(maxDeadline/time.Second)) * 1000
	}
	return l
}

// check refuses the first field of env beyond l with 400 OutOfBounds,
// naming the field. decode has already refused negative values.
func (l limits) check(env *envelope.Envelope) error {
	for _, f := range []struct {
		name  string
		value int64
		max   int64
		what  string
	}{
		{"outputTokens", env.OutputTokens, l.maxOutputTokens, "the job's maxTokens"},
		{"inputTokens", env.InputTokens, l.maxInputTokens, "the input's bytes plus special tokens"},
		{"timings.loadMillis", env.Timings.LoadMillis, l.maxMillis, "the job's deadline"},
		{"timings.promptMillis", env.Timings.PromptMillis, l.maxMillis, "the job's deadline"},
		{"timings.generateMillis", env.Timings.GenerateMillis, l.maxMillis, "the job's deadline"},
		{"timings.totalMillis", env.Timings.TotalMillis, l.maxMillis, "the job's deadline"},
	} {
		if f.value < 0 || f.value > f.max {
			return refuse(http.StatusBadRequest, ReasonOutOfBounds, "%s %d exceeds %s (%d)", f.name, f.value, f.what, f.max)
		}
	}
	if len(l.gpus) == 0 {
		return nil
	}
	if len(env.GPUUUIDs) > len(l.gpus) {
		return refuse(http.StatusBadRequest, ReasonOutOfBounds, "gpuUUIDs lists %d GPUs, the placement gave %d", len(env.GPUUUIDs), len(l.gpus))
	}
	if l.exact {
		for _, g := range env.GPUUUIDs {
			if !slices.Contains(l.gpus, g) {
				return refuse(http.StatusBadRequest, ReasonOutOfBounds, "gpuUUIDs names %.128q, which is not a GPU of the placement", g)
			}
		}
	}
	return nil
}

// checkBounds refuses an envelope that claims more than its job allows: more
// tokens than maxTokens or the input can give, timings past the job's
// deadline, GPUs the placement did not give. See docs/result-endpoint.md.
func (s *Server) checkBounds(ctx context.Context, job *aivmv1alpha1.InferenceJob, p *aivmv1alpha1.Placement, env *envelope.Envelope) error {
	// An inline input costs nothing; the copy of a referenced one is read
	// here and again by check.
	input, err := s.readInput(ctx, job, p)
	if err != nil {
		return err
	}
	return limitsOf(job, p, len(input), s.gpuBinding).check(env)
}
