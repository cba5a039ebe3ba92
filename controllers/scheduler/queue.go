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
	"container/heap"
	"fmt"
	"slices"
	"strconv"
	"time"
)

// entry is a queued request.
type entry struct {
	req Request
	// order is fixed at enqueue: priority*aging - created. Aging raises every
	// waiting job's effective priority at the same rate, so the order of two
	// jobs never changes with time and needs no re-sorting.
	order  int64
	shape  string
	index  int
	parked bool
}

// entryHeap is a max-heap on order (ties: name), used for each namespace's
// active jobs and for each shape's parked jobs.
type entryHeap []*entry

func (h entryHeap) Len() int { return len(h) }
func (h entryHeap) Less(i, j int) bool {
	if h[i].order != h[j].order {
		return h[i].order > h[j].order
	}
	return h[i].req.Key.Name < h[j].req.Key.Name
}
func (h entryHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}
func (h *entryHeap) Push(x any) { e := x.(*entry); e.index = len(*h); *h = append(*h, e) }
func (h *entryHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	e.index = -1
	return e
}

// namespaceQueue holds one namespace's active jobs and its fair-share state.
type namespaceQueue struct {
	name     string
	active   entryHeap
	inFlight int    // placed jobs holding reservations
	served   uint64 // when this namespace was last served, for round robin
}

// parkedShape holds jobs of one shape that did not fit. They wait until
// capacity grows; then only the first is tried again, and the next one
// after it was placed, so a freed GPU costs one retry, not one per job.
type parkedShape struct {
	jobs entryHeap
	gen  uint64 // capacity generation when the shape last failed
}

// queue orders pending requests: effective priority (priority plus one per
// aging interval waited), then fair share between namespaces (fewest
// placed jobs in flight, then round robin), then FIFO.
type queue struct {
	aging      time.Duration
	entries    map[JobKey]*entry
	namespaces map[string]*namespaceQueue
	parked     map[string]*parkedShape
	gen        uint64 // bumped whenever capacity may have grown
	served     uint64
}

func newQueue(aging time.Duration) *queue {
	return &queue{aging: aging, entries: map[JobKey]*entry{}, namespaces: map[string]*namespaceQueue{}, parked: map[string]*parkedShape{}}
}

func (q *queue) ns(name string) *namespaceQueue {
	n := q.namespaces[name]
	if n == nil {
		n = &namespaceQueue{name: name}
		q.namespaces[name] = n
	}
	return n
}

func (q *queue) capacityChanged() { q.gen++ }

func (q *queue) inFlight(ns string, d int) { q.ns(ns).inFlight += d }

// push adds or replaces req.
func (q *queue) push(req Request) {
	if old, ok := q.entries[req.Key]; ok {
		if old.req.Attempt == req.Attempt && equalRequests(&old.req, &req) {
			return
		}
		q.remove(req.Key)
	}
	e := &entry{req: req, shape: shapeOf(&req), index: -1}
	e.order = int64(req.Priority)*int64(q.aging) - req.Created.UnixNano()
	q.entries[req.Key] = e
	heap.Push(&q.ns(req.Key.Namespace).active, e)
}

// remove drops key from the queue.
func (q *queue) remove(key JobKey) {
	e, ok := q.entries[key]
	if !ok {
		return
	}
	delete(q.entries, key)
	if e.parked {
		p := q.parked[e.shape]
		heap.Remove(&p.jobs, e.index)
		if p.jobs.Len() == 0 {
			delete(q.parked, e.shape)
		}
		return
	}
	heap.Remove(&q.ns(key.Namespace).active, e.index)
}

// pop takes the next request to decide, or nil when none may be tried.
func (q *queue) pop(now time.Time) *entry {
	for _, p := range q.parked {
		if p.gen != q.gen {
			p.gen = q.gen
			q.unparkOne(p)
		}
	}
	var best *namespaceQueue
	var bestEff int64
	for _, n := range q.namespaces {
		if n.active.Len() == 0 {
			continue
		}
		eff := q.effective(n.active[0], now)
		if best == nil || eff > bestEff ||
			(eff == bestEff && (n.inFlight < best.inFlight ||
				(n.inFlight == best.inFlight && (n.served < best.served ||
					(n.served == best.served && n.name < best.name))))) {
			best, bestEff = n, eff
		}
	}
	if best == nil {
		return nil
	}
	q.served++
	best.served = q.served
	e := heap.Pop(&best.active).(*entry)
	delete(q.entries, e.req.Key)
	return e
}

// effective is the job's priority raised by one per aging interval waited.
func (q *queue) effective(e *entry, now time.Time) int64 {
	waited := now.Sub(e.req.Created)
	if waited < 0 {
		waited = 0
	}
	return int64(e.req.Priority) + int64(waited/q.aging)
}

// park keeps an unplaceable request until capacity grows.
func (q *queue) park(e *entry) {
	p := q.parked[e.shape]
	if p == nil {
		p = &parkedShape{}
		q.parked[e.shape] = p
	}
	p.gen = q.gen
	e.parked = true
	q.entries[e.req.Key] = e
	heap.Push(&p.jobs, e)
}

// placed is called after a request of shape was placed: the next parked
// job of that shape may fit too.
func (q *queue) placed(shape string) {
	if p := q.parked[shape]; p != nil {
		q.unparkOne(p)
	}
}

func (q *queue) unparkOne(p *parkedShape) {
	if p.jobs.Len() == 0 {
		return
	}
	e := heap.Pop(&p.jobs).(*entry)
	if p.jobs.Len() == 0 {
		delete(q.parked, e.shape)
	}
	e.parked = false
	heap.Push(&q.ns(e.req.Key.Namespace).active, e)
}

// pending counts queued requests by priority.
func (q *queue) pending() map[int32]int {
	out := map[int32]int{}
	for _, e := range q.entries {
		out[e.req.Priority]++
	}
	return out
}

// shapeOf names what decides whether a request fits: two requests of one
// shape fit in the same places. Requests that avoid GPUs are their own shape.
func shapeOf(r *Request) string {
	b := make([]byte, 0, 64)
	b = strconv.AppendInt(b, int64(r.Members), 10)
	b = append(b, '|')
	b = strconv.AppendInt(b, int64(r.GPUs), 10)
	b = append(b, '|')
	b = strconv.AppendInt(b, r.Memory, 10)
	b = append(b, '|')
	b = append(b, r.MIGProfile...)
	b = append(b, '|')
	b = append(b, r.MinComputeCapability...)
	for _, p := range r.Products {
		b = append(b, '|')
		b = append(b, p...)
	}
	if len(r.NodeSelector) > 0 {
		keys := make([]string, 0, len(r.NodeSelector))
		for k := range r.NodeSelector {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			b = append(b, "|s:"...)
			b = append(b, k...)
			b = append(b, '=')
			b = append(b, r.NodeSelector[k]...)
		}
	}
	for _, t := range r.Tolerations {
		b = fmt.Appendf(b, "|t:%s:%s:%s:%s", t.Key, t.Operator, t.Value, t.Effect)
	}
	if len(r.AvoidGPUs) > 0 || len(r.AvoidNodes) > 0 {
		b = append(b, "|job:"...)
		b = append(b, r.Key.String()...)
	}
	return string(b)
}

func equalRequests(a, b *Request) bool {
	return a.Priority == b.Priority && a.Created.Equal(b.Created) && shapeOf(a) == shapeOf(b) &&
		a.ModelDigest == b.ModelDigest && slices.Equal(a.AvoidGPUs, b.AvoidGPUs) && slices.Equal(a.AvoidNodes, b.AvoidNodes)
}
