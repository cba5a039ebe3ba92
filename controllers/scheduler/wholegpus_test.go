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

package scheduler

import (
	"fmt"
	"strings"
	"testing"
	"time"

	clocktesting "k8s.io/utils/clock/testing"

	"github.com/aivm-dev/aivm-operator/api/v1alpha1"
)

// TestWholeGPUs: under the device plugin a pod gets whole nvidia.com/gpu
// units, so on an 8-GPU node the ninth small job must wait (the kubelet
// would refuse its pod), with an explanation that says why; shared by
// memory, the same node takes all nine. A multi-GPU job needs free GPUs
// too, and a finished job frees its GPU for the next.
func TestWholeGPUs(t *testing.T) {
	for _, whole := range []bool{true, false} {
		t.Run(fmt.Sprintf("whole=%v", whole), func(t *testing.T) {
			clk := clocktesting.NewFakeClock(t0)
			s, err := New(Options{Policy: PolicyBinpack, Clock: clk, HeartbeatStaleAfter: 100 * time.Second, WholeGPUs: whole})
			if err != nil {
				t.Fatal(err)
			}
			c := &cluster{t: t, s: s, clock: clk}
			c.add("n", 8, 80*gi)
			used := map[string]bool{}
			for i := range 8 {
				d := c.decide(c.req("ns", fmt.Sprintf("small-%d", i), 4*gi))
				if !d.Placed() {
					t.Fatalf("job %d: %s", i, where(d))
				}
				used[d.Placements[0].GPUUUIDs[0]] = true
			}
			if whole && len(used) != 8 {
				t.Errorf("8 jobs on %d GPUs, want one each", len(used))
			}
			ninth := c.decide(c.req("ns", "ninth", 4*gi))
			if ninth.Placed() == whole {
				t.Fatalf("the ninth 4Gi job on 8 GPUs: %s; want placed only when GPUs are shared by memory", where(ninth))
			}
			if !whole {
				return
			}
			if ninth.Reason != v1alpha1.ReasonNoGPUWithEnoughMemory || !strings.Contains(ninth.Message, "whole GPUs") {
				t.Errorf("reason %s %q, want it to say jobs take whole GPUs", ninth.Reason, ninth.Message)
			}
			c.s.Release(JobKey{Namespace: "ns", Name: "small-0"})
			if d := c.decide(c.req("ns", "after", 4*gi)); !d.Placed() {
				t.Errorf("after a job ended: %s", where(d))
			}
		})
	}
}
