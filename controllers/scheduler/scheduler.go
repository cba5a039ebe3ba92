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
	"sync"
	"time"

	"k8s.io/utils/clock"
)

// Defaults of Options.
const (
	// DefaultAgingInterval raises a waiting job's effective priority by one
	// per minute waited.
	DefaultAgingInterval = time.Minute
	// DefaultSampleSize is how many feasible spots a decision scores.
	DefaultSampleSize = 8
)

// Options configure a Scheduler.
type Options struct {
	// Policy is binpack (default) or spread.
	Policy Policy
	// Clock ages jobs and heartbeats; the real clock by default.
	Clock clock.PassiveClock
	// HeartbeatStaleAfter is how old a node agent's heartbeat may be for
	// its node to take jobs; zero or less ignores heartbeats.
	HeartbeatStaleAfter time.Duration
	// AgingInterval is the wait that raises a job's effective priority by one.
	AgingInterval time.Duration
	// SampleSize is how many feasible spots (outside nodes of failed
	// attempts) a decision scores before it stops looking; like
	// kube-scheduler's percentageOfNodesToScore, it bounds the cost of a
	// decision on a large, mostly empty cluster.
	SampleSize int
	// WholeGPUs gives each job whole GPUs: a GPU that holds a job takes no
	// other, whatever its free memory. Set it when pods get GPUs from the
	// NVIDIA device plugin, which hands out whole nvidia.com/gpu units (the
	// kubelet refuses a pod beyond the node's allocatable count); leave it
	// off to share GPUs by memory (visible-devices binding).
	WholeGPUs bool
}

// Scheduler keeps the state placement needs and decides placements. It is
// safe for concurrent use.
type Scheduler struct {
	mu    sync.Mutex
	opts  Options
	clock clock.PassiveClock

	nodes      []*nodeState
	nodeByName map[string]int32
	freeNodes  []int32
	gpus       []*gpuState
	freeGPUs   []int32
	byUUID     map[string]devRef

	// gpuIndex files usable whole GPUs (healthy, not MIG, on a schedulable
	// node) by free memory; nodeIndex[k] files schedulable nodes by the
	// k-th largest free memory of their usable GPUs.
	gpuIndex    bucketSet
	nodeIndex   [maxGPUsPerMember + 1]bucketSet
	migNodes    map[string]map[int32]struct{}
	cachedNodes map[string]map[int32]struct{}

	reservations map[JobKey]*reservation
	nodeJobs     map[string]map[JobKey]struct{}
	queue        *queue

	// Memoized node checks of the current decision (see nodeUsable).
	stamp     uint32
	nodeStamp []uint32
	nodeOK    []bool
}

// New returns an empty Scheduler.
func New(opts Options) (*Scheduler, error) {
	switch opts.Policy {
	case "":
		opts.Policy = PolicyBinpack
	case PolicyBinpack, PolicySpread:
	default:
		return nil, fmt.Errorf("scheduling policy %q is not binpack or spread", opts.Policy)
	}
	if opts.Clock == nil {
		opts.Clock = clock.RealClock{}
	}
	if opts.AgingInterval <= 0 {
		opts.AgingInterval = DefaultAgingInterval
	}
	if opts.SampleSize <= 0 {
		opts.SampleSize = DefaultSampleSize
	}
	return &Scheduler{
		opts:         opts,
		clock:        opts.Clock,
		nodeByName:   map[string]int32{},
		byUUID:       map[string]devRef{},
		migNodes:     map[string]map[int32]struct{}{},
		cachedNodes:  map[string]map[int32]struct{}{},
		reservations: map[JobKey]*reservation{},
		nodeJobs:     map[string]map[JobKey]struct{}{},
		queue:        newQueue(opts.AgingInterval),
	}, nil
}

// Enqueue queues req for placement, replacing an earlier request of the
// job. A job that already holds a reservation for req.Attempt is placed
// and is not queued again: the status that shows it may lag the decision.
func (s *Scheduler) Enqueue(req Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r, ok := s.reservations[req.Key]; ok && r.attempt == req.Attempt {
		return
	}
	s.queue.push(req)
}

// Dequeue takes the job out of the queue (it no longer needs placement).
func (s *Scheduler) Dequeue(key JobKey) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.queue.remove(key)
}

// Observe records the reservations a job's status shows: the placements
// of attempt that have no outcome yet, each holding memory bytes on each
// of its GPUs (<= 0: the whole GPU). It replaces what the job held before.
// Empty placements release the job, unless the scheduler placed this very
// attempt itself and the status has not caught up yet.
func (s *Scheduler) Observe(key JobKey, attempt int32, memory int64, placements []Placement) {
	s.mu.Lock()
	defer s.mu.Unlock()
	old, had := s.reservations[key]
	if len(placements) == 0 {
		if had && old.assumed && old.attempt == attempt {
			return
		}
		s.drop(key)
		return
	}
	if had && old.attempt == attempt && old.memory == memory && samePlacements(old.placements, placements) {
		old.assumed = false // the status caught up with the decision
		return
	}
	s.drop(key)
	s.queue.remove(key)
	s.hold(key, &reservation{attempt: attempt, memory: memory, placements: clonePlacements(placements)})
}

// Release frees everything the job holds (it finished or was deleted) and
// takes it out of the queue.
func (s *Scheduler) Release(key JobKey) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.drop(key)
	s.queue.remove(key)
}

// Forget undoes a placement this scheduler decided for attempt whose
// recording failed; the caller queues the job again if it still needs one.
func (s *Scheduler) Forget(key JobKey, attempt int32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r, ok := s.reservations[key]; ok && r.assumed && r.attempt == attempt {
		s.drop(key)
	}
}

// Next decides the next queued request: placed (and reserved, as an
// assumed reservation until Observe sees it) or not placeable, with why.
// ok is false when nothing in the queue can be tried now.
func (s *Scheduler) Next() (d Decision, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.queue.pop(s.clock.Now())
	if e == nil {
		return Decision{}, false
	}
	req := &e.req
	if ps := s.placeRequest(req); ps != nil {
		s.hold(req.Key, &reservation{attempt: req.Attempt, memory: req.Memory, placements: ps, assumed: true})
		s.queue.placed(e.shape)
		return Decision{Request: *req, Placements: clonePlacements(ps)}, true
	}
	reason, msg := s.explain(req)
	s.queue.park(e)
	return Decision{Request: *req, Reason: reason, Message: msg}, true
}

// Stats is a snapshot for metrics.
type Stats struct {
	// Pending counts queued jobs by priority.
	Pending map[int32]int
	// ReservedBytes is the GPU memory reserved on each node.
	ReservedBytes map[string]int64
}

// Stats returns a snapshot of the queue and the reservations.
func (s *Scheduler) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := Stats{Pending: s.queue.pending(), ReservedBytes: map[string]int64{}}
	for _, n := range s.nodes {
		if n == nil || !n.hasGPU {
			continue
		}
		var sum int64
		for _, gid := range n.gpus {
			g := s.gpus[gid]
			sum += g.reserved
			for _, m := range g.migs {
				if m.reserved > 0 {
					sum += m.memory
				}
			}
		}
		st.ReservedBytes[n.name] = sum
	}
	return st
}

func samePlacements(a, b []Placement) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Member != b[i].Member || a[i].Node != b[i].Node || len(a[i].GPUUUIDs) != len(b[i].GPUUUIDs) {
			return false
		}
		for j := range a[i].GPUUUIDs {
			if a[i].GPUUUIDs[j] != b[i].GPUUUIDs[j] {
				return false
			}
		}
	}
	return true
}

func clonePlacements(ps []Placement) []Placement {
	out := make([]Placement, len(ps))
	for i, p := range ps {
		out[i] = Placement{Member: p.Member, Node: p.Node, GPUUUIDs: append([]string(nil), p.GPUUUIDs...)}
	}
	return out
}
