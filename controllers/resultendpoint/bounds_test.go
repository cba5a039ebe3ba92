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
	"errors"
	"math"
	"net/http"
	"strings"
	"testing"

	"k8s.io/utils/ptr"

	aivmv1alpha1 "github.com/aivm-dev/aivm-operator/api/v1alpha1"
	"github.com/aivm-dev/aivm-operator/controllers"
	"github.com/aivm-dev/aivm-operator/internal/testutil"
	"github.com/aivm-dev/aivm-operator/runtime-image/envelope"
	"github.com/aivm-dev/aivm-operator/runtime-image/runner"
)

// TestLimits: each numeric field of an envelope is held to what its job
// allows, and the refusal names the field.
func TestLimits(t *testing.T) {
	job := func(change func(*aivmv1alpha1.InferenceJob)) *aivmv1alpha1.InferenceJob {
		j := testutil.MakeInferenceJob("ns", "j", "k", "hello").Obj()
		j.Spec.Parameters.MaxTokens = 8
		if change != nil {
			change(j)
		}
		return j
	}
	placed := &aivmv1alpha1.Placement{Attempt: 1, GPUUUIDs: []string{"GPU-a", "GPU-b"}}
	unplaced := &aivmv1alpha1.Placement{Attempt: 1}
	ok := func(change func(*envelope.Envelope)) *envelope.Envelope {
		e := &envelope.Envelope{InputTokens: 5, OutputTokens: 8,
			Timings: envelope.Timings{LoadMillis: 5, PromptMillis: 2, GenerateMillis: 30, TotalMillis: 40}, GPUUUIDs: []string{"GPU-b"}}
		if change != nil {
			change(e)
		}
		return e
	}
	hour := ptr.To[int64](3600)
	cases := []struct {
		name    string
		job     *aivmv1alpha1.InferenceJob
		p       *aivmv1alpha1.Placement
		binding controllers.GPUBinding
		env     *envelope.Envelope
		refuse  string // the field named; "" accepts
	}{
		{"within every bound", job(nil), placed, controllers.GPUBindingVisibleDevices, ok(nil), ""},
		{"outputTokens at maxTokens", job(nil), placed, "", ok(func(e *envelope.Envelope) { e.OutputTokens = 8 }), ""},
		{"outputTokens over maxTokens", job(nil), placed, "", ok(func(e *envelope.Envelope) { e.OutputTokens = 1000000 }), "outputTokens 1000000"},
		{"maxTokens left out is the runtime's default", job(func(j *aivmv1alpha1.InferenceJob) { j.Spec.Parameters.MaxTokens = 0 }), placed, "",
			ok(func(e *envelope.Envelope) { e.OutputTokens = runner.DefaultMaxTokens }), ""},
		{"over the runtime's default", job(func(j *aivmv1alpha1.InferenceJob) { j.Spec.Parameters.MaxTokens = 0 }), placed, "",
			ok(func(e *envelope.Envelope) { e.OutputTokens = runner.DefaultMaxTokens + 1 }), "outputTokens"},
		{"inputTokens at bytes plus special tokens", job(nil), placed, "", ok(func(e *envelope.Envelope) { e.InputTokens = 5 + maxSpecialTokens }), ""},
		{"inputTokens over bytes plus special tokens", job(nil), placed, "", ok(func(e *envelope.Envelope) { e.InputTokens = 6 + maxSpecialTokens }), "inputTokens"},
		{"loadMillis past the deadline", job(func(j *aivmv1alpha1.InferenceJob) { j.Spec.ActiveDeadlineSeconds = hour }), placed, "",
			ok(func(e *envelope.Envelope) { e.Timings.LoadMillis = 3600*1000 + 1 }), "timings.loadMillis"},
		{"totalMillis at the deadline", job(func(j *aivmv1alpha1.InferenceJob) { j.Spec.ActiveDeadlineSeconds = hour }), placed, "",
			ok(func(e *envelope.Envelope) { e.Timings.TotalMillis = 3600 * 1000 }), ""},
		{"totalMillis past the deadline", job(func(j *aivmv1alpha1.InferenceJob) { j.Spec.ActiveDeadlineSeconds = hour }), placed, "",
			ok(func(e *envelope.Envelope) { e.Timings.TotalMillis = 3600*1000 + 1 }), "timings.totalMillis"},
		{"promptMillis 2^62", job(nil), placed, "", ok(func(e *envelope.Envelope) { e.Timings.PromptMillis = 1 << 62 }), "timings.promptMillis"},
		{"generateMillis 2^62", job(nil), placed, "", ok(func(e *envelope.Envelope) { e.Timings.GenerateMillis = 1 << 62 }), "timings.generateMillis"},
		{"no deadline: two days", job(nil), placed, "", ok(func(e *envelope.Envelope) { e.Timings.TotalMillis = 2 * 86400 * 1000 }), ""},
		{"no deadline: past two days", job(nil), placed, "", ok(func(e *envelope.Envelope) { e.Timings.GenerateMillis = 2*86400*1000 + 1 }), "timings.generateMillis"},
		{"max int64 tokens", job(nil), placed, "", ok(func(e *envelope.Envelope) { e.InputTokens = math.MaxInt64 }), "inputTokens"},
		{"visible-devices: a GPU the placement did not give", job(nil), placed, controllers.GPUBindingVisibleDevices,
			ok(func(e *envelope.Envelope) { e.GPUUUIDs = []string{"GPU-z"} }), "gpuUUIDs"},
		{"device-plugin: the plugin's own pick", job(nil), placed, controllers.GPUBindingDevicePlugin,
			ok(func(e *envelope.Envelope) { e.GPUUUIDs = []string{"GPU-z"} }), ""},
		{"device-plugin: more GPUs than placed", job(nil), placed, controllers.GPUBindingDevicePlugin,
			ok(func(e *envelope.Envelope) { e.GPUUUIDs = []string{"GPU-x", "GPU-y", "GPU-z"} }), "gpuUUIDs lists 3"},
		{"a placement without GPUs binds none", job(nil), unplaced, controllers.GPUBindingVisibleDevices,
			ok(func(e *envelope.Envelope) { e.GPUUUIDs = []string{"GPU-z"} }), ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := limitsOf(c.job, c.p, len("hello"), c.binding).check(c.env)
			if c.refuse == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			var rf *refusal
			if !errors.As(err, &rf) || rf.code != http.StatusBadRequest || rf.reason != ReasonOutOfBounds || !strings.Contains(rf.message, c.refuse) {
				t.Fatalf("got %v, want 400 %s naming %q", err, ReasonOutOfBounds, c.refuse)
			}
		})
	}
}

// TestLimitsKeepRecordsReportable: the largest envelope the bounds let
// through gives a record the reporter takes (no negative count or
// duration; DurationMillis cannot overflow), for the widest job the API
// allows.
func TestLimitsKeepRecordsReportable(t *testing.T) {
	j := testutil.MakeInferenceJob("ns", "j", "k", "hello").Obj()
	j.Spec.Parameters.MaxTokens = 131072
	j.Spec.ActiveDeadlineSeconds = ptr.To[int64](604800)
	for _, d := range []*int64{j.Spec.ActiveDeadlineSeconds, nil, ptr.To[int64](math.MaxInt64)} {
		j.Spec.ActiveDeadlineSeconds = d
		l := limitsOf(j, &aivmv1alpha1.Placement{}, math.MaxInt32, "")
		env := &envelope.Envelope{InputTokens: l.maxInputTokens, OutputTokens: l.maxOutputTokens,
			Timings: envelope.Timings{LoadMillis: l.maxMillis, PromptMillis: l.maxMillis, GenerateMillis: l.maxMillis, TotalMillis: l.maxMillis}}
		if err := l.check(env); err != nil {
			t.Fatalf("deadline %v: the bounds refuse their own maxima: %v", d, err)
		}
		// accept's sum, as the reporter then reads it.
		if sum := env.Timings.PromptMillis + env.Timings.GenerateMillis; sum < 0 || env.InputTokens < 0 || env.OutputTokens < 0 {
			t.Errorf("deadline %v: durationMillis %d, tokens %d/%d: the reporter would refuse it", d, sum, env.InputTokens, env.OutputTokens)
		}
	}
}

// TestBoundsAttacks: the counts and the overflow of issue 24 are refused
// by the running endpoint with 400 naming the field, and nothing lands in
// the job's status.
func TestBoundsAttacks(t *testing.T) {
	f := newFixture(t, func(j *aivmv1alpha1.InferenceJob) { j.Spec.Parameters.MaxTokens = 8 })
	tok := f.token(f.pod)
	counts := f.envelope(1, 0, " world")
	counts.OutputTokens = 1000000
	post(t, tok, counts).want(t, http.StatusBadRequest, ReasonOutOfBounds, "outputTokens 1000000 exceeds the job's maxTokens (8)")
	overflow := f.envelope(1, 0, " world")
	overflow.Timings.PromptMillis, overflow.Timings.GenerateMillis = 1<<62, 1<<62
	post(t, tok, overflow).want(t, http.StatusBadRequest, ReasonOutOfBounds, "timings.promptMillis 4611686018427387904")
	input := f.envelope(1, 0, " world")
	input.InputTokens = int64(len("hello")) + maxSpecialTokens + 1
	post(t, tok, input).want(t, http.StatusBadRequest, ReasonOutOfBounds, "inputTokens")
	f.nothingWritten()
	// The same pod's honest envelope still goes through.
	post(t, tok, f.envelope(1, 0, " world")).want(t, http.StatusOK, ReasonAccepted, "")
	if got := f.get().Status.Result; got == nil || got.OutputTokens != 3 || got.DurationMillis != 32 {
		t.Errorf("result %+v, want outputTokens 3 and durationMillis 32", got)
	}
}
