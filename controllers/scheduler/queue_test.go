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
	"time"

	"github.com/google/go-cmp/cmp"
)

// order enqueues every request, then returns the job names in the order
// the scheduler decides them.
func (c *cluster) order(reqs ...Request) []string {
	for _, r := range reqs {
		c.s.Enqueue(r)
	}
	var out []string
	for {
		d, ok := c.s.Next()
		if !ok {
			return out
		}
		out = append(out, d.Request.Key.Name)
	}
}

func withPriority(p int32) func(*Request) { return func(r *Request) { r.Priority = p } }

func createdAt(t time.Time) func(*Request) { return func(r *Request) { r.Created = t } }

// TestQueueOrder: priority first, FIFO within a priority, and aging lifts a
// job that waited long enough above newer jobs of higher priority.
func TestQueueOrder(t *testing.T) {
	for name, tc := range map[string]struct {
		reqs func(c *cluster) []Request
		want []string
	}{
		"priority, then FIFO": {
			reqs: func(c *cluster) []Request {
				return []Request{
					c.req("ns", "low-1", gi, createdAt(t0)),
					c.req("ns", "high-2", gi, withPriority(10), createdAt(t0.Add(2*time.Second))),
					c.req("ns", "high-1", gi, withPriority(10), createdAt(t0.Add(time.Second))),
					c.req("ns", "low-2", gi, createdAt(t0.Add(3*time.Second))),
				}
			},
			want: []string{"high-1", "high-2", "low-1", "low-2"},
		},
		"aging: 10 minutes waited beats 5 points of priority": {
			reqs: func(c *cluster) []Request {
				return []Request{
					c.req("ns", "new-high", gi, withPriority(5), createdAt(t0)),
					c.req("ns", "old-low", gi, createdAt(t0.Add(-10*time.Minute))),
				}
			},
			want: []string{"old-low", "new-high"},
		},
		"aging: 4 minutes waited does not beat 5 points": {
			reqs: func(c *cluster) []Request {
				return []Request{
					c.req("ns", "new-high", gi, withPriority(5), createdAt(t0)),
					c.req("ns", "old-low", gi, createdAt(t0.Add(-4*time.Minute))),
				}
			},
			want: []string{"new-high", "old-low"},
		},
	} {
		t.Run(name, func(t *testing.T) {
			c := newCluster(t, PolicyBinpack)
			c.add("n", 8, 80*gi)
			if diff := cmp.Diff(tc.want, c.order(tc.reqs(c)...)); diff != "" {
				t.Errorf("order (-want +got):\n%s", diff)
			}
		})
	}
}

// TestAgingFollowsTheClock: the same two jobs swap places once the old one
// has waited long enough, with no change but the clock.
func TestAgingFollowsTheClock(t *testing.T) {
	c := newCluster(t, PolicyBinpack)
	c.add("n", 8, 80*gi)
	low := c.req("ns", "low", gi, createdAt(t0))
	high := c.req("ns", "high", gi, withPriority(3), createdAt(t0.Add(time.Minute)))
	c.s.Enqueue(low)
	c.s.Enqueue(high)
	c.clock.Step(2 * time.Minute) // low waited 2m: effective 2 < 3+1
	if d, _ := c.s.Next(); d.Request.Key.Name != "high" {
		t.Fatalf("after 2m: first is %s, want high", d.Request.Key.Name)
	}
	c.s.Release(JobKey{"ns", "high"})
	high.Key.Name = "high-2"
	high.Created = c.clock.Now()
	c.s.Enqueue(high)
	c.clock.Step(10 * time.Minute) // low: 12, high-2: 3+10
	if d, _ := c.s.Next(); d.Request.Key.Name != "high-2" {
		t.Fatalf("after 12m: first is %s, want high-2", d.Request.Key.Name)
	}
	c.s.Enqueue(c.req("ns", "high-3", gi, withPriority(3)))
	c.clock.Step(5 * time.Minute) // low: 17, high-3: 3+5
	if d, _ := c.s.Next(); d.Request.Key.Name != "low" {
		t.Fatalf("after 17m: first is %s, want low", d.Request.Key.Name)
	}
}

// TestNamespaceFairness: at equal effective priority, namespaces take
// turns (fewest jobs in flight first), so one namespace's burst does not
// hold back another's jobs.
func TestNamespaceFairness(t *testing.T) {
	c := newCluster(t, PolicyBinpack)
	c.add("n", 8, 80*gi)
	var reqs []Request
	for i, name := range []string{"a1", "a2", "a3", "a4", "a5"} {
		reqs = append(reqs, c.req("team-a", name, gi, createdAt(t0.Add(time.Duration(i)*time.Second))))
	}
	reqs = append(reqs,
		c.req("team-b", "b1", gi, createdAt(t0.Add(10*time.Second))),
		c.req("team-b", "b2", gi, createdAt(t0.Add(11*time.Second))),
		c.req("team-c", "c1", gi, createdAt(t0.Add(12*time.Second))),
	)
	want := []string{"a1", "b1", "c1", "a2", "b2", "a3", "a4", "a5"}
	if diff := cmp.Diff(want, c.order(reqs...)); diff != "" {
		t.Errorf("order (-want +got):\n%s", diff)
	}
}

// TestFairnessCountsJobsInFlight: a namespace with jobs already placed
// waits behind one with none.
func TestFairnessCountsJobsInFlight(t *testing.T) {
	c := newCluster(t, PolicyBinpack)
	c.add("n", 8, 80*gi)
	c.s.Observe(JobKey{"busy", "running"}, 1, gi, []Placement{{Node: "n", GPUUUIDs: []string{"n-gpu0"}}})
	got := c.order(
		c.req("busy", "busy-1", gi, createdAt(t0)),
		c.req("idle", "idle-1", gi, createdAt(t0.Add(time.Second))),
	)
	if diff := cmp.Diff([]string{"idle-1", "busy-1"}, got); diff != "" {
		t.Errorf("order (-want +got):\n%s", diff)
	}
}
