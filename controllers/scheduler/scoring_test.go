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
)

// TestScoring: binpack fills partly reserved GPUs and keeps whole GPUs
// free; spread takes the emptiest; a node caching the model wins a close
// call under either policy.
func TestScoring(t *testing.T) {
	// Node "used" has one GPU with 30Gi reserved (50Gi free) and one whole
	// 80Gi GPU; node "empty" has two whole GPUs.
	setup := func(c *cluster) {
		c.add("used", 2, 80*gi)
		c.add("empty", 2, 80*gi)
		c.s.Observe(JobKey{"ns", "holder"}, 1, 30*gi, []Placement{{Node: "used", GPUUUIDs: []string{"used-gpu0"}}})
	}
	for name, tc := range map[string]struct {
		policy Policy
		extra  func(c *cluster)
		req    func(*Request)
		want   string
	}{
		"binpack: the partly used GPU": {policy: PolicyBinpack, want: "used:used-gpu0"},
		"spread: the emptiest GPU":     {policy: PolicySpread, want: "empty:empty-gpu0"},
		"binpack: two GPUs, the tightest pair": {
			policy: PolicyBinpack, req: func(r *Request) { r.GPUs = 2 },
			want: "used:used-gpu0,used-gpu1",
		},
		"spread: two GPUs, the emptiest pair": {
			policy: PolicySpread, req: func(r *Request) { r.GPUs = 2 },
			want: "empty:empty-gpu0,empty-gpu1",
		},
		"binpack: too big for the partly used GPU takes a whole one on the same node": {
			policy: PolicyBinpack, req: func(r *Request) { r.Memory = 60 * gi },
			want: "used:used-gpu1",
		},
		"binpack: model cache beats a slightly tighter fit": {
			policy: PolicyBinpack,
			extra: func(c *cluster) {
				c.add("cached", 1, 56*gi, caches("d1"))
			},
			req:  func(r *Request) { r.ModelDigest = "d1" },
			want: "cached:cached-gpu0",
		},
		"spread: model cache beats a slightly emptier GPU": {
			policy: PolicySpread,
			extra: func(c *cluster) {
				c.add("cached", 1, 70*gi, caches("d1"))
			},
			req:  func(r *Request) { r.ModelDigest = "d1" },
			want: "cached:cached-gpu0",
		},
		"binpack: the cache bonus does not outweigh a far better fit": {
			policy: PolicyBinpack,
			extra: func(c *cluster) {
				c.add("cached", 1, 80*gi, caches("d1"))
			},
			req:  func(r *Request) { r.ModelDigest = "d1" },
			want: "used:used-gpu0",
		},
	} {
		t.Run(name, func(t *testing.T) {
			c := newCluster(t, tc.policy)
			setup(c)
			if tc.extra != nil {
				tc.extra(c)
			}
			r := c.req("ns", "job", 20*gi)
			if tc.req != nil {
				tc.req(&r)
			}
			if got := where(c.decide(r)); got != tc.want {
				t.Errorf("got %s, want %s", got, tc.want)
			}
		})
	}
}

// TestBinpackKeepsWholeGPUsFree: small jobs share one GPU until it is full,
// so a job needing a whole GPU still finds one.
func TestBinpackKeepsWholeGPUsFree(t *testing.T) {
	c := newCluster(t, PolicyBinpack)
	c.add("n", 2, 80*gi)
	for i, want := range []string{"n:n-gpu0", "n:n-gpu0", "n:n-gpu0", "n:n-gpu0"} {
		if got := where(c.decide(c.req("ns", string(rune('a'+i)), 20*gi))); got != want {
			t.Fatalf("small job %d: got %s, want %s", i, got, want)
		}
	}
	if got := where(c.decide(c.req("ns", "big", 80*gi))); got != "n:n-gpu1" {
		t.Fatalf("big job: got %s, want n:n-gpu1", got)
	}
}

// TestNewPolicyRefusesUnknown: a bad policy is refused by name.
func TestNewPolicyRefusesUnknown(t *testing.T) {
	if _, err := New(Options{Policy: "random"}); err == nil {
		t.Fatal("New accepted policy random")
	}
}
