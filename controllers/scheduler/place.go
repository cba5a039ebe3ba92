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
	"slices"
	"time"

	"k8s.io/klog/v2"
)

// Scoring weights, in bytes of fit so they compare with memory. A node
// that caches the model is worth 16 GiB of tighter (binpack) or looser
// (spread) fit; a node that held a failed attempt loses to any other.
const (
	cacheBonus     int64 = 16 << 30
	avoidedPenalty int64 = 1 << 50
)

// candidate is one feasible spot for a member.
type candidate struct {
	node  int32
	gpus  [maxGPUsPerMember]int32
	n     int
	mig   int32 // MIG device index on gpus[0], or -1
	score int64
}

// decision is the scratch state of one decision.
type decision struct {
	req     *Request
	now     time.Time
	exclude []int32 // nodes of committee members already chosen
	avoidG  map[string]bool
	avoidN  map[int32]bool
	minCC   int
}

// placeRequest finds a spot for every member on distinct nodes, or none.
func (s *Scheduler) placeRequest(req *Request) []Placement {
	s.stamp++
	d := &decision{req: req, now: s.clock.Now(), minCC: -1}
	if req.MinComputeCapability != "" {
		d.minCC = parseCC(req.MinComputeCapability)
	}
	if len(req.AvoidGPUs) > 0 {
		d.avoidG = make(map[string]bool, len(req.AvoidGPUs))
		for _, u := range req.AvoidGPUs {
			d.avoidG[u] = true
		}
	}
	if len(req.AvoidNodes) > 0 {
		d.avoidN = make(map[int32]bool, len(req.AvoidNodes))
		for _, n := range req.AvoidNodes {
			if id, ok := s.nodeByName[n]; ok {
				d.avoidN[id] = true
			}
		}
	}
	members := max(req.Members, 1)
	out := make([]Placement, 0, members)
	for m := 0; m < members; m++ {
		c, ok := s.placeMember(d)
		if !ok {
			return nil
		}
		d.exclude = append(d.exclude, c.node)
		s.stamp++ // the memoized node checks predate this exclusion
		p := Placement{Member: int32(m), Node: s.nodes[c.node].name}
		if c.mig >= 0 {
			p.GPUUUIDs = []string{s.gpus[c.gpus[0]].migs[c.mig].uuid}
		} else {
			p.GPUUUIDs = make([]string, c.n)
			for i := 0; i < c.n; i++ {
				p.GPUUUIDs[i] = s.gpus[c.gpus[i]].uuid
			}
		}
		out = append(out, p)
	}
	return out
}

func (s *Scheduler) placeMember(d *decision) (candidate, bool) {
	switch {
	case d.req.MIGProfile != "":
		return s.placeMIG(d)
	case max(d.req.GPUs, 1) == 1:
		return s.placeSingle(d)
	default:
		return s.placeMulti(d)
	}
}

// placeSingle searches the per-GPU free-memory buckets from the request's
// size up (binpack: tightest fit first) or from the top down (spread),
// scoring the first SampleSize feasible GPUs.
func (s *Scheduler) placeSingle(d *decision) (candidate, bool) {
	best := candidate{node: -1, mig: -1}
	found := 0
	consider := func(gid int32) bool {
		g := s.gpus[gid]
		if !s.fits(g, d.req.Memory) || !s.gpuMatches(d, g) || !s.nodeUsable(d, g.node) {
			return false
		}
		c := candidate{node: g.node, n: 1, mig: -1, score: s.fitScore(g.free() - d.req.Memory)}
		c.gpus[0] = gid
		s.bonus(d, &c)
		if s.better(&c, &best) {
			best = c
		}
		return !d.avoidN[g.node]
	}
	lo := bucketOf(d.req.Memory)
	s.scanBuckets(&s.gpuIndex, lo, func(id int32) bool {
		if consider(id) {
			found++
		}
		return found >= s.opts.SampleSize
	})
	// Nodes that already hold the model may lie outside the sample.
	if set := s.cachedNodes[d.req.ModelDigest]; d.req.ModelDigest != "" && len(set) <= 4*s.opts.SampleSize {
		for nid := range set {
			for _, gid := range s.nodes[nid].gpus {
				if s.gpuIndex.has(gid) {
					consider(gid)
				}
			}
		}
	}
	return best, best.node >= 0
}

// placeMulti searches the nodes filed under their k-th largest free GPU
// memory, k = GPUs per member.
func (s *Scheduler) placeMulti(d *decision) (candidate, bool) {
	k := d.req.GPUs
	if k > maxGPUsPerMember {
		return candidate{}, false
	}
	best := candidate{node: -1, mig: -1}
	found := 0
	consider := func(nid int32) bool {
		if !s.nodeUsable(d, nid) {
			return false
		}
		c, ok := s.pickGPUs(d, nid, k)
		if !ok {
			return false
		}
		s.bonus(d, &c)
		if s.better(&c, &best) {
			best = c
		}
		return !d.avoidN[nid]
	}
	s.scanBuckets(&s.nodeIndex[k], bucketOf(d.req.Memory), func(id int32) bool {
		if consider(id) {
			found++
		}
		return found >= s.opts.SampleSize
	})
	if set := s.cachedNodes[d.req.ModelDigest]; d.req.ModelDigest != "" && len(set) <= 4*s.opts.SampleSize {
		for nid := range set {
			if s.nodeIndex[k].has(nid) {
				consider(nid)
			}
		}
	}
	return best, best.node >= 0
}

// pickGPUs chooses k GPUs of one node: the tightest fits (binpack) or the
// emptiest (spread).
func (s *Scheduler) pickGPUs(d *decision, nid int32, k int) (candidate, bool) {
	var buf [64]int32
	fit := buf[:0]
	for _, gid := range s.nodes[nid].gpus {
		if g := s.gpus[gid]; g.healthy && !g.mig && s.fits(g, d.req.Memory) && s.gpuMatches(d, g) {
			fit = append(fit, gid)
		}
	}
	if len(fit) < k {
		return candidate{}, false
	}
	slices.SortFunc(fit, func(a, b int32) int {
		fa, fb := s.gpus[a].free(), s.gpus[b].free()
		if s.opts.Policy == PolicySpread {
			fa, fb = fb, fa
		}
		switch {
		case fa < fb:
			return -1
		case fa > fb:
			return 1
		}
		return 0
	})
	c := candidate{node: nid, n: k, mig: -1}
	var spare int64
	for i := 0; i < k; i++ {
		c.gpus[i] = fit[i]
		spare += s.gpus[fit[i]].free() - d.req.Memory
	}
	c.score = s.fitScore(spare)
	return c, true
}

// placeMIG looks only at nodes that have MIG devices of the profile.
func (s *Scheduler) placeMIG(d *decision) (candidate, bool) {
	best := candidate{node: -1, mig: -1}
	found := 0
	for nid := range s.migNodes[d.req.MIGProfile] {
		if !s.nodeUsable(d, nid) {
			continue
		}
		c := candidate{node: nid, n: 1, mig: -1}
		free := 0
		for _, gid := range s.nodes[nid].gpus {
			g := s.gpus[gid]
			if !g.healthy || !g.mig || !s.gpuMatches(d, g) {
				continue
			}
			for i, m := range g.migs {
				if m.profile != d.req.MIGProfile || m.reserved > 0 || m.memory < d.req.Memory || d.avoidG[m.uuid] {
					continue
				}
				free++
				if c.mig < 0 {
					c.gpus[0], c.mig = gid, int32(i)
				}
			}
		}
		if c.mig < 0 {
			continue
		}
		// Binpack fills nodes with few free devices of the profile left.
		c.score = s.fitScore(int64(free) << 30)
		s.bonus(d, &c)
		if s.better(&c, &best) {
			best = c
		}
		if !d.avoidN[nid] {
			found++
		}
		if found >= s.opts.SampleSize {
			break
		}
	}
	return best, best.node >= 0
}

// better reports whether c beats best: higher score; on a tie the node
// with less free memory (binpack: fill nodes already in use, keep whole
// nodes free) or more (spread); then the GPU seen first, for stable answers.
func (s *Scheduler) better(c, best *candidate) bool {
	if best.node < 0 || c.score != best.score {
		return best.node < 0 || c.score > best.score
	}
	cf, bf := s.nodeFree(c.node), s.nodeFree(best.node)
	if cf != bf {
		return (cf < bf) == (s.opts.Policy == PolicyBinpack)
	}
	return c.gpus[0] < best.gpus[0]
}

// nodeFree is the free memory of the node's usable GPUs.
func (s *Scheduler) nodeFree(nid int32) int64 {
	var sum int64
	for _, gid := range s.nodes[nid].gpus {
		if g := s.gpus[gid]; g.healthy && !g.mig {
			sum += g.free()
		}
	}
	return sum
}

// scanBuckets visits ids in the buckets that can hold lo's size: upward
// from lo for binpack, downward from the top for spread, until visit
// returns true.
func (s *Scheduler) scanBuckets(set *bucketSet, lo int, visit func(int32) bool) {
	if s.opts.Policy == PolicySpread {
		for b := set.top(); b >= lo; b-- {
			for _, id := range set.buckets[b] {
				if visit(id) {
					return
				}
			}
		}
		return
	}
	for b := lo; b <= set.top(); b++ {
		for _, id := range set.buckets[b] {
			if visit(id) {
				return
			}
		}
	}
}

// fitScore turns the memory left over after a placement into a score.
func (s *Scheduler) fitScore(spare int64) int64 {
	if s.opts.Policy == PolicySpread {
		return spare
	}
	return -spare
}

func (s *Scheduler) bonus(d *decision, c *candidate) {
	if d.req.ModelDigest != "" {
		if _, ok := s.cachedNodes[d.req.ModelDigest][c.node]; ok {
			c.score += cacheBonus
		}
	}
	if d.avoidN[c.node] {
		c.score -= avoidedPenalty
	}
}

// fits reports whether g can take a job that needs memory bytes: enough
// free memory, and with WholeGPUs no job on it yet.
func (s *Scheduler) fits(g *gpuState, memory int64) bool {
	if s.opts.WholeGPUs && g.reserved > 0 {
		return false
	}
	return g.free() >= memory
}

// gpuMatches checks the per-GPU rules: product, compute capability and
// GPUs that failed an earlier attempt.
func (s *Scheduler) gpuMatches(d *decision, g *gpuState) bool {
	if len(d.req.Products) > 0 && !slices.Contains(d.req.Products, g.product) {
		return false
	}
	if d.minCC >= 0 && g.cc < d.minCC {
		return false
	}
	return !d.avoidG[g.uuid]
}

// nodeUsable checks the per-node rules that the indexes do not: heartbeat
// age, committee members already there, node selector and taints. The
// answer is memoized for the decision.
func (s *Scheduler) nodeUsable(d *decision, nid int32) bool {
	if s.nodeStamp[nid] == s.stamp {
		return s.nodeOK[nid]
	}
	ok := s.checkNode(d, s.nodes[nid])
	if ok {
		ok = !slices.Contains(d.exclude, nid)
	}
	s.nodeStamp[nid], s.nodeOK[nid] = s.stamp, ok
	return ok
}

func (s *Scheduler) checkNode(d *decision, n *nodeState) bool {
	return n.schedulable() && s.fresh(n, d.now) && selectorMatches(d.req.NodeSelector, n.labels) && tolerated(d.req, n)
}

// fresh reports whether the node agent's heartbeat is recent enough.
func (s *Scheduler) fresh(n *nodeState, now time.Time) bool {
	if s.opts.HeartbeatStaleAfter <= 0 {
		return true
	}
	return !n.heartbeat.IsZero() && now.Sub(n.heartbeat) <= s.opts.HeartbeatStaleAfter
}

func selectorMatches(sel, labels map[string]string) bool {
	for k, v := range sel {
		if got, ok := labels[k]; !ok || got != v {
			return false
		}
	}
	return true
}

// tolerated reports whether every NoSchedule and NoExecute taint of the
// node is tolerated by the request.
func tolerated(req *Request, n *nodeState) bool {
	for i := range n.taints {
		ok := false
		for j := range req.Tolerations {
			if req.Tolerations[j].ToleratesTaint(klog.Background(), &n.taints[i], true) {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	return true
}
