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
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	clocktesting "k8s.io/utils/clock/testing"
)

const gi int64 = 1 << 30

// t0 is the fake clock's start.
var t0 = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

// cluster is a scheduler on a fake clock with helpers to build its nodes.
type cluster struct {
	t     *testing.T
	s     *Scheduler
	clock *clocktesting.FakeClock
}

func newCluster(t *testing.T, policy Policy) *cluster {
	t.Helper()
	clk := clocktesting.NewFakeClock(t0)
	s, err := New(Options{Policy: policy, Clock: clk, HeartbeatStaleAfter: 100 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return &cluster{t: t, s: s, clock: clk}
}

// nodeOpt changes a node before it is added.
type nodeOpt func(*GPUNode, *Node)

// gpus returns n healthy GPUs named <node>-gpu<i> with mem bytes each.
func gpus(node string, n int, mem int64, product, cc string) []GPU {
	out := make([]GPU, n)
	for i := range out {
		out[i] = GPU{UUID: fmt.Sprintf("%s-gpu%d", node, i), Product: product, MemoryTotal: mem, ComputeCapability: cc, Healthy: true}
	}
	return out
}

const (
	a100 = "NVIDIA A100-SXM4-80GB"
	h100 = "NVIDIA H100 80GB HBM3"
)

// add adds a Ready node with a fresh heartbeat and n A100s of mem bytes.
func (c *cluster) add(name string, n int, mem int64, opts ...nodeOpt) {
	gn := GPUNode{Name: name, GPUs: gpus(name, n, mem, a100, "8.0"), Heartbeat: c.clock.Now()}
	node := Node{Name: name, Ready: true, Labels: map[string]string{"kubernetes.io/hostname": name}}
	for _, o := range opts {
		o(&gn, &node)
	}
	c.s.UpsertGPUNode(gn)
	c.s.UpsertNode(node)
}

func product(p, cc string) nodeOpt {
	return func(g *GPUNode, _ *Node) {
		for i := range g.GPUs {
			g.GPUs[i].Product, g.GPUs[i].ComputeCapability = p, cc
		}
	}
}

func label(k, v string) nodeOpt { return func(_ *GPUNode, n *Node) { n.Labels[k] = v } }

func taint(k string, e corev1.TaintEffect) nodeOpt {
	return func(_ *GPUNode, n *Node) { n.Taints = append(n.Taints, corev1.Taint{Key: k, Value: "true", Effect: e}) }
}

func unhealthy(i int) nodeOpt { return func(g *GPUNode, _ *Node) { g.GPUs[i].Healthy = false } }

func notReady() nodeOpt { return func(_ *GPUNode, n *Node) { n.Ready = false } }

func cordoned() nodeOpt { return func(_ *GPUNode, n *Node) { n.Unschedulable = true } }

func gpuNodeCordoned() nodeOpt { return func(g *GPUNode, _ *Node) { g.Unschedulable = true } }

func heartbeatAt(t time.Time) nodeOpt { return func(g *GPUNode, _ *Node) { g.Heartbeat = t } }

func caches(d string) nodeOpt {
	return func(g *GPUNode, _ *Node) { g.CachedModels = append(g.CachedModels, d) }
}

// migGPU turns GPU i into a MIG GPU with n devices of profile.
func migGPU(i, n int, profile string, mem int64) nodeOpt {
	return func(g *GPUNode, _ *Node) {
		g.GPUs[i].MIGEnabled = true
		for j := 0; j < n; j++ {
			g.GPUs[i].MIGDevices = append(g.GPUs[i].MIGDevices,
				MIGDevice{UUID: fmt.Sprintf("MIG-%s-%d", g.GPUs[i].UUID, j), Profile: profile, Memory: mem})
		}
	}
}

// req builds a request for one GPU of mem bytes, created now.
func (c *cluster) req(ns, name string, mem int64, opts ...func(*Request)) Request {
	r := Request{Key: JobKey{Namespace: ns, Name: name}, Attempt: 1, Created: c.clock.Now(), Members: 1, GPUs: 1, Memory: mem}
	for _, o := range opts {
		o(&r)
	}
	return r
}

// decide enqueues r and returns the decision on it.
func (c *cluster) decide(r Request) Decision {
	c.t.Helper()
	c.s.Enqueue(r)
	d, ok := c.s.Next()
	if !ok {
		c.t.Fatalf("no decision for %s", r.Key)
	}
	if d.Request.Key != r.Key {
		c.t.Fatalf("decided %s, want %s", d.Request.Key, r.Key)
	}
	return d
}

// where renders a decision as "node:gpu,gpu node:gpu" or "reason: message".
func where(d Decision) string {
	if !d.Placed() {
		return d.Reason + ": " + d.Message
	}
	out := ""
	for i, p := range d.Placements {
		if i > 0 {
			out += " "
		}
		out += p.Node + ":"
		for j, u := range p.GPUUUIDs {
			if j > 0 {
				out += ","
			}
			out += u
		}
	}
	return out
}
