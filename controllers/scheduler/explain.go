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
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/aivm-dev/aivm-operator/api/v1alpha1"
)

// explain says why req fits nowhere: the first rule that rules out every
// node or GPU, with the numbers a user needs to act (what is largest
// free, where). It scans every node, so it runs only for requests that
// failed, and those wait parked until capacity grows.
func (s *Scheduler) explain(req *Request) (reason, message string) {
	s.stamp++
	d := &decision{req: req, now: s.clock.Now(), minCC: -1}
	if req.MinComputeCapability != "" {
		d.minCC = parseCC(req.MinComputeCapability)
	}
	d.avoidG = map[string]bool{}
	for _, u := range req.AvoidGPUs {
		d.avoidG[u] = true
	}
	var (
		total, notReady, cordoned, stale, selector, taints int
		usable, matching, unhealthy, fits, held            int
		bestFree                                           int64 = -1
		bestNode                                           string
		taintSeen                                          string
	)
	names := make([]string, 0, len(s.nodeByName))
	for name := range s.nodeByName {
		names = append(names, name)
	}
	sort.Strings(names) // stable messages
	k := max(req.GPUs, 1)
	for _, name := range names {
		n := s.nodes[s.nodeByName[name]]
		if !n.hasGPU {
			continue
		}
		total++
		switch {
		case !n.hasNode || !n.ready:
			notReady++
			continue
		case n.cordoned || n.gpuCordon:
			cordoned++
			continue
		case !s.fresh(n, d.now):
			stale++
			continue
		case !selectorMatches(req.NodeSelector, n.labels):
			selector++
			continue
		case !tolerated(req, n):
			taints++
			if taintSeen == "" {
				taintSeen = untolerated(req, n)
			}
			continue
		}
		usable++
		var free []int64
		for _, gid := range n.gpus {
			g := s.gpus[gid]
			if !g.healthy {
				unhealthy++
				continue
			}
			if !s.gpuMatches(d, g) {
				continue
			}
			if req.MIGProfile != "" {
				if !g.mig {
					continue
				}
				for _, m := range g.migs {
					if m.profile == req.MIGProfile && !d.avoidG[m.uuid] && m.memory >= req.Memory {
						matching++
						if m.reserved == 0 {
							free = append(free, m.memory)
						}
					}
				}
				continue
			}
			if g.mig {
				continue
			}
			matching++
			if s.opts.WholeGPUs && g.reserved > 0 {
				held++
				continue
			}
			free = append(free, g.free())
		}
		slices.Sort(free)
		slices.Reverse(free)
		if len(free) >= k {
			f := free[k-1]
			if f >= req.Memory {
				fits++
			}
			if f > bestFree {
				bestFree, bestNode = f, n.name
			}
		}
	}
	avoided := ""
	if len(req.AvoidGPUs) > 0 {
		avoided = fmt.Sprintf("; %d GPU(s) of failed earlier attempts are excluded", len(req.AvoidGPUs))
	}
	switch {
	case total == 0:
		return v1alpha1.ReasonNoReadyNode, "no GPU node reports to the operator (no GPUNode objects); is the node agent running?"
	case usable == 0 && selector+taints == 0:
		return v1alpha1.ReasonNoReadyNode, fmt.Sprintf("none of the %d GPU nodes takes jobs: %s", total,
			joinCounts(notReady, "NotReady or without a Node", cordoned, "cordoned", stale,
				fmt.Sprintf("with a node agent heartbeat older than %s", s.opts.HeartbeatStaleAfter)))
	case usable == 0:
		return v1alpha1.ReasonNoMatchingNode, fmt.Sprintf("no ready GPU node matches the kernel's nodeSelector and tolerations: %s",
			joinCounts(selector, fmt.Sprintf("do not match nodeSelector %s", formatSelector(req.NodeSelector)),
				taints, fmt.Sprintf("have taints the kernel does not tolerate (e.g. %s)", taintSeen),
				notReady+cordoned+stale, "are NotReady, cordoned or stale"))
	case matching == 0:
		return v1alpha1.ReasonNoMatchingGPU, fmt.Sprintf("no healthy GPU on the %d usable node(s) matches %s%s%s",
			usable, describeNeeds(req), unhealthyNote(unhealthy), avoided)
	}
	need := quantity(req.Memory)
	switch {
	case s.opts.WholeGPUs && req.MIGProfile == "" && fits == 0 && held > 0:
		return v1alpha1.ReasonNoGPUWithEnoughMemory, fmt.Sprintf("%d of the %d matching GPUs hold other jobs, and a job takes whole GPUs under the device plugin binding; "+
			"no usable node has %d free GPU(s)%s%s", held, matching, k, unhealthyNote(unhealthy), avoided)
	case req.MIGProfile != "":
		return v1alpha1.ReasonNoGPUWithEnoughMemory, fmt.Sprintf("all %d matching MIG devices of profile %s are in use%s", matching, req.MIGProfile, avoided)
	case max(req.Members, 1) > 1 && fits > 0:
		return v1alpha1.ReasonNoGPUWithEnoughMemory, fmt.Sprintf("a committee of %d needs %d distinct nodes with %d healthy GPU(s) of %s free each; only %d node(s) have that now%s",
			req.Members, req.Members, k, need, fits, avoided)
	case k == 1:
		return v1alpha1.ReasonNoGPUWithEnoughMemory, fmt.Sprintf("no healthy GPU with %s free; largest free is %s on %s%s%s",
			need, quantity(bestFree), bestNode, unhealthyNote(unhealthy), avoided)
	case bestFree < 0:
		return v1alpha1.ReasonNoGPUWithEnoughMemory, fmt.Sprintf("no node has %d matching healthy GPUs%s%s", k, unhealthyNote(unhealthy), avoided)
	default:
		return v1alpha1.ReasonNoGPUWithEnoughMemory, fmt.Sprintf("no node with %d healthy GPUs of %s free each; the best is %s with %d GPUs of at least %s free%s%s",
			k, need, bestNode, k, quantity(bestFree), unhealthyNote(unhealthy), avoided)
	}
}

// describeNeeds lists the GPU rules of req in words.
func describeNeeds(req *Request) string {
	var parts []string
	if len(req.Products) > 0 {
		parts = append(parts, fmt.Sprintf("products %q", req.Products))
	}
	if req.MinComputeCapability != "" {
		parts = append(parts, "compute capability >= "+req.MinComputeCapability)
	}
	if req.MIGProfile != "" {
		parts = append(parts, "MIG profile "+req.MIGProfile)
	}
	if len(parts) == 0 {
		return "the request"
	}
	return strings.Join(parts, " and ")
}

func unhealthyNote(n int) string {
	if n == 0 {
		return ""
	}
	return fmt.Sprintf(" (%d GPU(s) unhealthy)", n)
}

// joinCounts renders "2 NotReady, 1 cordoned", leaving out zero counts.
func joinCounts(pairs ...any) string {
	var parts []string
	for i := 0; i+1 < len(pairs); i += 2 {
		if n := pairs[i].(int); n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n, pairs[i+1].(string)))
		}
	}
	return strings.Join(parts, ", ")
}

func formatSelector(sel map[string]string) string {
	keys := make([]string, 0, len(sel))
	for k := range sel {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + sel[k]
	}
	return "{" + strings.Join(parts, ",") + "}"
}

// untolerated names the first taint of n that req does not tolerate.
func untolerated(req *Request, n *nodeState) string {
	for i := range n.taints {
		one := &nodeState{taints: n.taints[i : i+1]}
		if !tolerated(req, one) {
			return n.taints[i].ToString()
		}
	}
	return ""
}

// quantity renders bytes the way Kubernetes users write memory (40Gi).
func quantity(b int64) string {
	if b < 0 {
		b = 0
	}
	const gi = 1 << 30
	if b >= gi && b%gi != 0 {
		// Rounded down, so "largest free" never reads as enough.
		return strconv.FormatFloat(math.Floor(float64(b)/gi*10)/10, 'f', -1, 64) + "Gi"
	}
	return resource.NewQuantity(b, resource.BinarySI).String()
}
