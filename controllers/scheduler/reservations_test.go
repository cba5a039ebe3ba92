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
	"testing"

	"github.com/aivm-dev/aivm-operator/api/v1alpha1"
)

// TestCommittee: members land on distinct nodes, all or none.
func TestCommittee(t *testing.T) {
	c := newCluster(t, PolicyBinpack)
	c.add("a", 2, 80*gi)
	c.add("b", 2, 80*gi)
	c.add("c", 2, 80*gi)
	d := c.decide(c.req("ns", "three", 40*gi, func(r *Request) { r.Members = 3 }))
	nodes := map[string]bool{}
	for i, p := range d.Placements {
		if p.Member != int32(i) {
			t.Errorf("placement %d is member %d", i, p.Member)
		}
		nodes[p.Node] = true
	}
	if len(d.Placements) != 3 || len(nodes) != 3 {
		t.Fatalf("committee of 3: %s, want 3 members on 3 distinct nodes", where(d))
	}

	// Four members on three nodes: none placed, nothing reserved.
	d = c.decide(c.req("ns", "four", 40*gi, func(r *Request) { r.Members = 4 }))
	if d.Placed() || d.Reason != v1alpha1.ReasonNoGPUWithEnoughMemory {
		t.Fatalf("committee of 4 on 3 nodes: %s, want unplaced", where(d))
	}
	// Each node has 80+40 = 120Gi left: three single 40Gi jobs per node fit.
	for i := 0; i < 9; i++ {
		if d := c.decide(c.req("ns", string(rune('a'+i)), 40*gi)); !d.Placed() {
			t.Fatalf("job %d after the failed committee: %s; the failed committee held GPUs", i, where(d))
		}
	}
}

// TestReservationsRebuiltFromStatus: a new scheduler that observes the
// placements in job status never gives their GPUs out again.
func TestReservationsRebuiltFromStatus(t *testing.T) {
	c := newCluster(t, PolicyBinpack)
	c.add("n", 2, 80*gi)
	// Placements recorded before a restart: 60Gi on gpu0, the whole of gpu1
	// (memory 0: the Kernel is gone, so the whole GPU is assumed held).
	c.s.Observe(JobKey{"ns", "big"}, 1, 60*gi, []Placement{{Node: "n", GPUUUIDs: []string{"n-gpu0"}}})
	c.s.Observe(JobKey{"ns", "unknown"}, 2, 0, []Placement{{Node: "n", GPUUUIDs: []string{"n-gpu1"}}})
	if got := where(c.decide(c.req("ns", "j1", 20*gi))); got != "n:n-gpu0" {
		t.Fatalf("20Gi job: %s, want n:n-gpu0 (20Gi left there)", got)
	}
	d := c.decide(c.req("ns", "j2", 10*gi))
	if d.Placed() {
		t.Fatalf("10Gi job placed at %s; every GPU is fully reserved", where(d))
	}
	// j2 is withdrawn; the whole-GPU job finishes: its GPU is free again.
	c.s.Dequeue(JobKey{"ns", "j2"})
	c.s.Release(JobKey{"ns", "unknown"})
	if got := where(c.decide(c.req("ns", "j3", 80*gi))); got != "n:n-gpu1" {
		t.Fatalf("80Gi job after release: %s, want n:n-gpu1", got)
	}
}

// TestReservationsSurviveGPUNodeUpdates: a GPUNode rewritten by its agent
// (heartbeat, health) keeps the reservations on its GPUs, also when the
// placements were observed before the GPUNode arrived.
func TestReservationsSurviveGPUNodeUpdates(t *testing.T) {
	c := newCluster(t, PolicyBinpack)
	c.s.Observe(JobKey{"ns", "early"}, 1, 70*gi, []Placement{{Node: "n", GPUUUIDs: []string{"n-gpu0"}}})
	c.add("n", 1, 80*gi)
	c.add("n", 1, 80*gi) // the next heartbeat
	if d := c.decide(c.req("ns", "j", 20*gi)); d.Placed() {
		t.Fatalf("placed on %s; only 10Gi is free", where(d))
	}
}

// TestAssumedPlacement: the scheduler's own decision holds until the job's
// status shows it; a status older than the decision does not release it,
// the same job is not queued twice, and Forget undoes it.
func TestAssumedPlacement(t *testing.T) {
	c := newCluster(t, PolicyBinpack)
	c.add("n", 1, 80*gi)
	key := JobKey{"ns", "j"}
	r := c.req("ns", "j", 60*gi)
	if d := c.decide(r); !d.Placed() {
		t.Fatalf("first decision: %s", where(d))
	}
	// A stale copy of the job (no placements yet) is observed and queued again.
	c.s.Observe(key, 1, 60*gi, nil)
	c.s.Enqueue(r)
	if d, ok := c.s.Next(); ok {
		t.Fatalf("the placed job was decided again: %s", where(d))
	}
	if d := c.decide(c.req("ns", "other", 30*gi)); d.Placed() {
		t.Fatalf("other placed on %s: the assumed placement was dropped", where(d))
	}
	// The write failed: Forget frees the GPU for the parked job.
	c.s.Forget(key, 1)
	d, ok := c.s.Next()
	if !ok || d.Request.Key.Name != "other" || !d.Placed() {
		t.Fatalf("after Forget: %v %s, want other placed", ok, where(d))
	}
}

// TestObservedRelease: placements with an outcome (observed as none) free
// their GPUs, and a new attempt replaces the old one's reservation.
func TestObservedRelease(t *testing.T) {
	c := newCluster(t, PolicyBinpack)
	c.add("n", 1, 80*gi)
	key := JobKey{"ns", "j"}
	c.s.Observe(key, 1, 80*gi, []Placement{{Node: "n", GPUUUIDs: []string{"n-gpu0"}}})
	if d := c.decide(c.req("ns", "x", 80*gi)); d.Placed() {
		t.Fatalf("x placed on a reserved GPU: %s", where(d))
	}
	c.s.Observe(key, 2, 80*gi, nil) // attempt 1 failed, attempt 2 not placed yet
	d, ok := c.s.Next()
	if !ok || !d.Placed() || d.Request.Key.Name != "x" {
		t.Fatalf("after the release: %v %s, want x placed", ok, where(d))
	}
}

// TestParkedJobsRetry: a job that did not fit is tried again once capacity
// grows (a release, a new node), without being queued again.
func TestParkedJobsRetry(t *testing.T) {
	c := newCluster(t, PolicyBinpack)
	c.add("n", 1, 40*gi)
	if d := c.decide(c.req("ns", "big", 60*gi)); d.Placed() {
		t.Fatalf("big placed: %s", where(d))
	}
	if _, ok := c.s.Next(); ok {
		t.Fatal("a parked job was tried again with no change in capacity")
	}
	c.add("m", 1, 80*gi)
	d, ok := c.s.Next()
	if !ok || where(d) != "m:m-gpu0" {
		t.Fatalf("after a node joined: %v %s, want m:m-gpu0", ok, where(d))
	}
}

// TestUnhealthyGPUStopsPlacements: a GPU reported unhealthy takes no new
// jobs; healthy again, it does.
func TestUnhealthyGPUStopsPlacements(t *testing.T) {
	c := newCluster(t, PolicyBinpack)
	c.add("n", 1, 80*gi)
	c.add("n", 1, 80*gi, unhealthy(0))
	if d := c.decide(c.req("ns", "j", 10*gi)); d.Placed() {
		t.Fatalf("placed on an unhealthy GPU: %s", where(d))
	}
	c.add("n", 1, 80*gi)
	if d, ok := c.s.Next(); !ok || where(d) != "n:n-gpu0" {
		t.Fatalf("after recovery: %v %s", ok, where(d))
	}
}
