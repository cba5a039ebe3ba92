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
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// maxGPUsPerMember bounds the GPUs of one member (Kernel spec.gpu.count).
const maxGPUsPerMember = 16

// gpuState is one GPU as the scheduler keeps it.
type gpuState struct {
	node     int32
	uuid     string
	product  string
	cc       int // major*100+minor; -1 when unknown
	total    int64
	reserved int64
	healthy  bool
	mig      bool
	migs     []migState
}

func (g *gpuState) free() int64 { return g.total - g.reserved }

// migState is one MIG device and whether a job holds it.
type migState struct {
	uuid     string
	profile  string
	memory   int64
	reserved int
}

// nodeState joins a node's GPUNode and Node.
type nodeState struct {
	name      string
	gpus      []int32
	hasGPU    bool // a GPUNode exists
	hasNode   bool // a Node exists
	gpuCordon bool // GPUNode spec.unschedulable
	ready     bool
	cordoned  bool
	labels    map[string]string
	taints    []corev1.Taint // NoSchedule and NoExecute only
	heartbeat time.Time
	cached    []string
	profiles  []string // MIG profiles present
}

// schedulable reports the node-wide conditions that do not depend on the
// request or the time: both objects exist, Ready, not cordoned.
func (n *nodeState) schedulable() bool {
	return n.hasGPU && n.hasNode && n.ready && !n.cordoned && !n.gpuCordon
}

// devRef finds a GPU or one of its MIG devices by UUID.
type devRef struct {
	gpu int32
	mig int32 // -1: the whole GPU
}

// reservation is what a placed job holds.
type reservation struct {
	attempt    int32
	memory     int64 // per GPU; <= 0 holds whole GPUs
	placements []Placement
	// assumed: decided here and not yet seen in the job's status. An
	// observed status without placements for this attempt is then older
	// than the decision and does not release it.
	assumed bool
}

// nodeID returns the id of the named node, creating its state.
func (s *Scheduler) nodeID(name string) int32 {
	if id, ok := s.nodeByName[name]; ok {
		return id
	}
	id := int32(len(s.nodes))
	if n := len(s.freeNodes); n > 0 {
		id = s.freeNodes[n-1]
		s.freeNodes = s.freeNodes[:n-1]
		s.nodes[id] = &nodeState{name: name}
	} else {
		s.nodes = append(s.nodes, &nodeState{name: name})
		s.nodeStamp = append(s.nodeStamp, 0)
		s.nodeOK = append(s.nodeOK, false)
	}
	s.nodeByName[name] = id
	return id
}

// dropNodeIfEmpty forgets a node that has neither a GPUNode nor a Node.
func (s *Scheduler) dropNodeIfEmpty(id int32) {
	n := s.nodes[id]
	if n.hasGPU || n.hasNode {
		return
	}
	for k := range s.nodeIndex {
		s.nodeIndex[k].remove(id)
	}
	delete(s.nodeByName, n.name)
	s.nodes[id] = nil
	s.freeNodes = append(s.freeNodes, id)
}

// UpsertGPUNode records a GPUNode's inventory, keeping the reservations
// that name its GPUs.
func (s *Scheduler) UpsertGPUNode(in GPUNode) {
	s.mu.Lock()
	defer s.mu.Unlock()
	id := s.nodeID(in.Name)
	n := s.nodes[id]
	s.clearGPUs(id)
	n.hasGPU = true
	n.gpuCordon = in.Unschedulable
	n.heartbeat = in.Heartbeat
	s.setCached(id, in.CachedModels)
	n.profiles = n.profiles[:0]
	for _, g := range in.GPUs {
		gs := &gpuState{node: id, uuid: g.UUID, product: g.Product, cc: parseCC(g.ComputeCapability),
			total: g.MemoryTotal, healthy: g.Healthy, mig: g.MIGEnabled}
		gid := s.newGPU(gs)
		n.gpus = append(n.gpus, gid)
		s.byUUID[g.UUID] = devRef{gpu: gid, mig: -1}
		for i, m := range g.MIGDevices {
			gs.migs = append(gs.migs, migState{uuid: m.UUID, profile: m.Profile, memory: m.Memory})
			s.byUUID[m.UUID] = devRef{gpu: gid, mig: int32(i)}
			if !slices.Contains(n.profiles, m.Profile) {
				n.profiles = append(n.profiles, m.Profile)
			}
		}
	}
	for key := range s.nodeJobs[in.Name] {
		s.apply(s.reservations[key], in.Name, +1)
	}
	s.reindexNode(id)
	s.queue.capacityChanged()
}

// DeleteGPUNode forgets a GPUNode; its reservations stay and apply again
// if it comes back.
func (s *Scheduler) DeleteGPUNode(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	id, ok := s.nodeByName[name]
	if !ok {
		return
	}
	s.clearGPUs(id)
	s.setCached(id, nil)
	s.nodes[id].hasGPU = false
	s.reindexNode(id)
	s.dropNodeIfEmpty(id)
}

// UpsertNode records what the scheduler needs of a Kubernetes Node.
func (s *Scheduler) UpsertNode(in Node) {
	s.mu.Lock()
	defer s.mu.Unlock()
	id := s.nodeID(in.Name)
	n := s.nodes[id]
	n.hasNode = true
	n.ready = in.Ready
	n.cordoned = in.Unschedulable
	n.labels = in.Labels
	n.taints = n.taints[:0]
	for _, t := range in.Taints {
		if t.Effect == corev1.TaintEffectNoSchedule || t.Effect == corev1.TaintEffectNoExecute {
			n.taints = append(n.taints, t)
		}
	}
	s.reindexNode(id)
	s.queue.capacityChanged()
}

// DeleteNode forgets a Kubernetes Node: its GPUs take no new jobs.
func (s *Scheduler) DeleteNode(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	id, ok := s.nodeByName[name]
	if !ok {
		return
	}
	s.nodes[id].hasNode = false
	s.reindexNode(id)
	s.dropNodeIfEmpty(id)
}

// clearGPUs removes a node's GPUs from every index.
func (s *Scheduler) clearGPUs(id int32) {
	n := s.nodes[id]
	for _, gid := range n.gpus {
		g := s.gpus[gid]
		if ref, ok := s.byUUID[g.uuid]; ok && ref.gpu == gid {
			delete(s.byUUID, g.uuid)
		}
		for _, m := range g.migs {
			if ref, ok := s.byUUID[m.uuid]; ok && ref.gpu == gid {
				delete(s.byUUID, m.uuid)
			}
		}
		s.gpuIndex.remove(gid)
		s.gpus[gid] = nil
		s.freeGPUs = append(s.freeGPUs, gid)
	}
	n.gpus = n.gpus[:0]
	for _, p := range n.profiles {
		delete(s.migNodes[p], id)
	}
}

func (s *Scheduler) newGPU(g *gpuState) int32 {
	if n := len(s.freeGPUs); n > 0 {
		gid := s.freeGPUs[n-1]
		s.freeGPUs = s.freeGPUs[:n-1]
		s.gpus[gid] = g
		return gid
	}
	s.gpus = append(s.gpus, g)
	return int32(len(s.gpus) - 1)
}

// setCached replaces the node's cached model digests in the digest index.
func (s *Scheduler) setCached(id int32, digests []string) {
	n := s.nodes[id]
	for _, d := range n.cached {
		if set := s.cachedNodes[d]; set != nil {
			delete(set, id)
			if len(set) == 0 {
				delete(s.cachedNodes, d)
			}
		}
	}
	n.cached = append(n.cached[:0], digests...)
	for _, d := range digests {
		set := s.cachedNodes[d]
		if set == nil {
			set = map[int32]struct{}{}
			s.cachedNodes[d] = set
		}
		set[id] = struct{}{}
	}
}

// reindexNode puts a node's GPUs in, or takes them out of, the
// free-memory indexes after anything about the node changed.
func (s *Scheduler) reindexNode(id int32) {
	n := s.nodes[id]
	if !n.schedulable() {
		for _, gid := range n.gpus {
			s.gpuIndex.remove(gid)
		}
		for k := range s.nodeIndex {
			s.nodeIndex[k].remove(id)
		}
		for _, p := range n.profiles {
			delete(s.migNodes[p], id)
		}
		return
	}
	for _, gid := range n.gpus {
		if g := s.gpus[gid]; g.healthy && !g.mig {
			s.gpuIndex.set(gid, bucketOf(g.free()))
		} else {
			s.gpuIndex.remove(gid)
		}
	}
	s.reindexNodeK(id)
	for _, p := range n.profiles {
		set := s.migNodes[p]
		if set == nil {
			set = map[int32]struct{}{}
			s.migNodes[p] = set
		}
		set[id] = struct{}{}
	}
}

// reindexNodeK files the node under the k-th largest free memory of its
// usable GPUs, for every k of multi-GPU requests.
func (s *Scheduler) reindexNodeK(id int32) {
	var buf [64]int64
	free := buf[:0]
	for _, gid := range s.nodes[id].gpus {
		if g := s.gpus[gid]; g.healthy && !g.mig {
			free = append(free, g.free())
		}
	}
	slices.Sort(free)
	slices.Reverse(free)
	for k := 2; k <= maxGPUsPerMember; k++ {
		if k <= len(free) {
			s.nodeIndex[k].set(id, bucketOf(free[k-1]))
		} else {
			s.nodeIndex[k].remove(id)
		}
	}
}

// apply adds (sign +1) or removes (-1) a reservation's hold on the GPUs
// of the named node.
func (s *Scheduler) apply(r *reservation, node string, sign int) {
	if r == nil {
		return
	}
	for _, p := range r.placements {
		if p.Node != node {
			continue
		}
		for _, u := range p.GPUUUIDs {
			ref, ok := s.byUUID[u]
			if !ok {
				continue
			}
			g := s.gpus[ref.gpu]
			if s.nodes[g.node].name != node {
				continue
			}
			if ref.mig >= 0 {
				g.migs[ref.mig].reserved += sign
				continue
			}
			amount := r.memory
			if amount <= 0 || amount > g.total || s.opts.WholeGPUs {
				amount = g.total
			}
			g.reserved += int64(sign) * amount
		}
	}
}

// hold records r for key and applies it to the GPUs it names.
func (s *Scheduler) hold(key JobKey, r *reservation) {
	s.reservations[key] = r
	s.queue.inFlight(key.Namespace, +1)
	for _, node := range placementNodes(r.placements) {
		jobs := s.nodeJobs[node]
		if jobs == nil {
			jobs = map[JobKey]struct{}{}
			s.nodeJobs[node] = jobs
		}
		jobs[key] = struct{}{}
		s.apply(r, node, +1)
		if id, ok := s.nodeByName[node]; ok {
			s.reindexNode(id)
		}
	}
}

// drop removes key's reservation and frees what it held.
func (s *Scheduler) drop(key JobKey) {
	r, ok := s.reservations[key]
	if !ok {
		return
	}
	delete(s.reservations, key)
	s.queue.inFlight(key.Namespace, -1)
	for _, node := range placementNodes(r.placements) {
		s.apply(r, node, -1)
		if jobs := s.nodeJobs[node]; jobs != nil {
			delete(jobs, key)
			if len(jobs) == 0 {
				delete(s.nodeJobs, node)
			}
		}
		if id, ok := s.nodeByName[node]; ok {
			s.reindexNode(id)
		}
	}
	s.queue.capacityChanged()
}

// placementNodes returns the distinct nodes of ps.
func placementNodes(ps []Placement) []string {
	nodes := make([]string, 0, len(ps))
	for _, p := range ps {
		if !slices.Contains(nodes, p.Node) {
			nodes = append(nodes, p.Node)
		}
	}
	return nodes
}

// parseCC turns "8.6" into 806; -1 when it does not parse.
func parseCC(s string) int {
	maj, minor, ok := strings.Cut(s, ".")
	if !ok {
		return -1
	}
	a, err1 := strconv.Atoi(maj)
	b, err2 := strconv.Atoi(minor)
	if err1 != nil || err2 != nil {
		return -1
	}
	return a*100 + b
}
