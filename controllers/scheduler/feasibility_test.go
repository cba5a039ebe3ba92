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

	corev1 "k8s.io/api/core/v1"

	"github.com/aivm-dev/aivm-operator/api/v1alpha1"
)

// TestFeasibility: each rule alone decides between two nodes, or rules
// out every node with the reason and message the job's Scheduled
// condition will carry.
func TestFeasibility(t *testing.T) {
	for name, tc := range map[string]struct {
		setup func(c *cluster)
		req   func(*Request)
		want  string
	}{
		"memory per GPU": {
			setup: func(c *cluster) { c.add("small", 1, 24*gi); c.add("big", 1, 80*gi) },
			req:   func(r *Request) { r.Memory = 40 * gi },
			want:  "big:big-gpu0",
		},
		"GPU count on one node": {
			setup: func(c *cluster) { c.add("two", 2, 80*gi); c.add("four", 4, 80*gi) },
			req:   func(r *Request) { r.GPUs = 4 },
			want:  "four:four-gpu0,four-gpu1,four-gpu2,four-gpu3",
		},
		"GPU count spread over nodes does not count": {
			setup: func(c *cluster) { c.add("a", 2, 80*gi); c.add("b", 2, 80*gi) },
			req:   func(r *Request) { r.GPUs = 4 },
			want:  v1alpha1.ReasonNoGPUWithEnoughMemory + ": no node has 4 matching healthy GPUs",
		},
		"product list": {
			setup: func(c *cluster) { c.add("a", 1, 80*gi); c.add("h", 1, 80*gi, product(h100, "9.0")) },
			req:   func(r *Request) { r.Products = []string{h100} },
			want:  "h:h-gpu0",
		},
		"minimum compute capability": {
			setup: func(c *cluster) { c.add("a", 1, 80*gi); c.add("h", 1, 80*gi, product(h100, "9.0")) },
			req:   func(r *Request) { r.MinComputeCapability = "8.9" },
			want:  "h:h-gpu0",
		},
		"compute capability compares numerically": {
			setup: func(c *cluster) {
				c.add("old", 1, 80*gi, product("X", "9.2"))
				c.add("new", 1, 80*gi, product("Y", "10.0"))
			},
			req:  func(r *Request) { r.MinComputeCapability = "10.0" },
			want: "new:new-gpu0",
		},
		"MIG profile takes a free device of the profile": {
			setup: func(c *cluster) {
				c.add("whole", 1, 80*gi)
				c.add("mig", 2, 80*gi, migGPU(1, 7, "1g.10gb", 10*gi))
			},
			req:  func(r *Request) { r.MIGProfile, r.Memory = "1g.10gb", 8*gi },
			want: "mig:MIG-mig-gpu1-0",
		},
		"whole-GPU request never lands on a MIG GPU": {
			setup: func(c *cluster) { c.add("mig", 1, 80*gi, migGPU(0, 7, "1g.10gb", 10*gi)) },
			req:   func(r *Request) { r.Memory = 8 * gi },
			want:  v1alpha1.ReasonNoMatchingGPU + ": no healthy GPU on the 1 usable node(s) matches the request",
		},
		"node selector": {
			setup: func(c *cluster) { c.add("a", 1, 80*gi); c.add("b", 1, 80*gi, label("pool", "gold")) },
			req:   func(r *Request) { r.NodeSelector = map[string]string{"pool": "gold"} },
			want:  "b:b-gpu0",
		},
		"untolerated NoSchedule taint": {
			setup: func(c *cluster) {
				c.add("tainted", 1, 80*gi, taint("gpu", corev1.TaintEffectNoSchedule))
				c.add("plain", 1, 24*gi)
			},
			req:  func(r *Request) { r.Memory = 20 * gi },
			want: "plain:plain-gpu0",
		},
		"tolerated taint": {
			setup: func(c *cluster) { c.add("tainted", 1, 80*gi, taint("gpu", corev1.TaintEffectNoSchedule)) },
			req: func(r *Request) {
				r.Tolerations = []corev1.Toleration{{Key: "gpu", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule}}
			},
			want: "tainted:tainted-gpu0",
		},
		"PreferNoSchedule taint does not keep jobs off": {
			setup: func(c *cluster) { c.add("soft", 1, 80*gi, taint("gpu", corev1.TaintEffectPreferNoSchedule)) },
			want:  "soft:soft-gpu0",
		},
		"unhealthy GPU": {
			setup: func(c *cluster) { c.add("a", 2, 80*gi, unhealthy(0)) },
			want:  "a:a-gpu1",
		},
		"NotReady node": {
			setup: func(c *cluster) { c.add("down", 1, 80*gi, notReady()); c.add("up", 1, 24*gi) },
			req:   func(r *Request) { r.Memory = 20 * gi },
			want:  "up:up-gpu0",
		},
		"cordoned node": {
			setup: func(c *cluster) { c.add("cordoned", 1, 80*gi, cordoned()); c.add("open", 1, 24*gi) },
			req:   func(r *Request) { r.Memory = 20 * gi },
			want:  "open:open-gpu0",
		},
		"GPUNode spec.unschedulable": {
			setup: func(c *cluster) { c.add("held", 1, 80*gi, gpuNodeCordoned()); c.add("open", 1, 24*gi) },
			req:   func(r *Request) { r.Memory = 20 * gi },
			want:  "open:open-gpu0",
		},
		"stale heartbeat": {
			setup: func(c *cluster) {
				c.add("stale", 1, 80*gi, heartbeatAt(t0.Add(-101*time.Second)))
				c.add("fresh", 1, 24*gi, heartbeatAt(t0.Add(-99*time.Second)))
			},
			req:  func(r *Request) { r.Memory = 20 * gi },
			want: "fresh:fresh-gpu0",
		},
		"GPUNode without its Node": {
			setup: func(c *cluster) {
				c.s.UpsertGPUNode(GPUNode{Name: "orphan", GPUs: gpus("orphan", 1, 80*gi, a100, "8.0"), Heartbeat: t0})
				c.add("real", 1, 24*gi)
			},
			req:  func(r *Request) { r.Memory = 20 * gi },
			want: "real:real-gpu0",
		},
		"GPUs of a failed attempt are never used again": {
			setup: func(c *cluster) { c.add("a", 2, 80*gi) },
			req:   func(r *Request) { r.AvoidGPUs = []string{"a-gpu0", "a-gpu1"} },
			want: v1alpha1.ReasonNoMatchingGPU + ": no healthy GPU on the 1 usable node(s) matches the request" +
				"; 2 GPU(s) of failed earlier attempts are excluded",
		},
		"the node of a failed attempt loses to any other": {
			setup: func(c *cluster) { c.add("failed", 2, 80*gi); c.add("other", 1, 24*gi) },
			req: func(r *Request) {
				r.Memory, r.AvoidGPUs, r.AvoidNodes = 20*gi, []string{"failed-gpu0"}, []string{"failed"}
			},
			want: "other:other-gpu0",
		},
		"the node of a failed attempt is used when nothing else fits": {
			setup: func(c *cluster) { c.add("failed", 2, 80*gi); c.add("other", 1, 24*gi) },
			req: func(r *Request) {
				r.Memory, r.AvoidGPUs, r.AvoidNodes = 40*gi, []string{"failed-gpu0"}, []string{"failed"}
			},
			want: "failed:failed-gpu1",
		},
	} {
		t.Run(name, func(t *testing.T) {
			c := newCluster(t, PolicyBinpack)
			tc.setup(c)
			r := c.req("ns", "job", 10*gi)
			if tc.req != nil {
				tc.req(&r)
			}
			if got := where(c.decide(r)); got != tc.want {
				t.Errorf("got  %s\nwant %s", got, tc.want)
			}
		})
	}
}

// TestUnplaceableExplains: when nothing fits, the reason is the first rule
// that rules everything out and the message says what to change.
func TestUnplaceableExplains(t *testing.T) {
	for name, tc := range map[string]struct {
		setup func(c *cluster)
		req   func(*Request)
		want  string
	}{
		"no GPU nodes": {
			setup: func(*cluster) {},
			want:  v1alpha1.ReasonNoReadyNode + ": no GPU node reports to the operator (no GPUNode objects); is the node agent running?",
		},
		"no node takes jobs": {
			setup: func(c *cluster) {
				c.add("a", 1, 80*gi, notReady())
				c.add("b", 1, 80*gi, cordoned())
				c.add("c", 1, 80*gi, heartbeatAt(t0.Add(-time.Hour)))
			},
			want: v1alpha1.ReasonNoReadyNode + ": none of the 3 GPU nodes takes jobs: 1 NotReady or without a Node, 1 cordoned, 1 with a node agent heartbeat older than 1m40s",
		},
		"selector and taints": {
			setup: func(c *cluster) {
				c.add("a", 1, 80*gi)
				c.add("b", 1, 80*gi, label("pool", "gold"), taint("dedicated", corev1.TaintEffectNoSchedule))
			},
			req: func(r *Request) { r.NodeSelector = map[string]string{"pool": "gold"} },
			want: v1alpha1.ReasonNoMatchingNode + ": no ready GPU node matches the kernel's nodeSelector and tolerations: " +
				"1 do not match nodeSelector {pool=gold}, 1 have taints the kernel does not tolerate (e.g. dedicated=true:NoSchedule)",
		},
		"product and compute capability": {
			setup: func(c *cluster) { c.add("a", 2, 80*gi, unhealthy(1)) },
			req:   func(r *Request) { r.Products, r.MinComputeCapability = []string{h100}, "9.0" },
			want: v1alpha1.ReasonNoMatchingGPU + `: no healthy GPU on the 1 usable node(s) matches products ["NVIDIA H100 80GB HBM3"]` +
				" and compute capability >= 9.0 (1 GPU(s) unhealthy)",
		},
		"memory: largest free and where": {
			setup: func(c *cluster) {
				c.add("node-1", 1, 16*gi)
				c.add("node-3", 1, 22*gi+gi/2)
				c.add("node-2", 1, 80*gi, unhealthy(0))
			},
			req:  func(r *Request) { r.Memory = 40 * gi },
			want: v1alpha1.ReasonNoGPUWithEnoughMemory + ": no healthy GPU with 40Gi free; largest free is 22.5Gi on node-3 (1 GPU(s) unhealthy)",
		},
		"memory for several GPUs": {
			setup: func(c *cluster) { c.add("a", 4, 24*gi); c.add("b", 2, 80*gi) },
			req:   func(r *Request) { r.Memory, r.GPUs = 40*gi, 4 },
			want:  v1alpha1.ReasonNoGPUWithEnoughMemory + ": no node with 4 healthy GPUs of 40Gi free each; the best is a with 4 GPUs of at least 24Gi free",
		},
		"MIG devices all in use": {
			setup: func(c *cluster) {
				c.add("m", 1, 80*gi, migGPU(0, 1, "1g.10gb", 10*gi))
				c.s.Observe(JobKey{"ns", "holder"}, 1, 0, []Placement{{Node: "m", GPUUUIDs: []string{"MIG-m-gpu0-0"}}})
			},
			req:  func(r *Request) { r.MIGProfile, r.Memory = "1g.10gb", 0 },
			want: v1alpha1.ReasonNoGPUWithEnoughMemory + ": all 1 matching MIG devices of profile 1g.10gb are in use",
		},
		"committee short of nodes": {
			setup: func(c *cluster) { c.add("a", 8, 80*gi); c.add("b", 8, 80*gi); c.add("c", 8, 16*gi) },
			req:   func(r *Request) { r.Members, r.Memory = 3, 40*gi },
			want:  v1alpha1.ReasonNoGPUWithEnoughMemory + ": a committee of 3 needs 3 distinct nodes with 1 healthy GPU(s) of 40Gi free each; only 2 node(s) have that now",
		},
	} {
		t.Run(name, func(t *testing.T) {
			c := newCluster(t, PolicyBinpack)
			tc.setup(c)
			r := c.req("ns", "job", 10*gi)
			if tc.req != nil {
				tc.req(&r)
			}
			if got := where(c.decide(r)); got != tc.want {
				t.Errorf("got  %s\nwant %s", got, tc.want)
			}
		})
	}
}
