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

package outbox

import (
	"context"
	"fmt"
)

// maxGroup bounds how many Enqueue calls share one synced write.
const maxGroup = 4096

type enqueueRequest struct {
	items []Item
	done  chan error
}

// Enqueue durably stores items as Pending and returns once they are synced to
// disk. An item whose UID is already present, in any state, is skipped, so
// Enqueue is idempotent. Invalid items fail the whole call and store nothing.
// Concurrent calls share one synced write.
func (o *Outbox) Enqueue(ctx context.Context, items ...Item) error {
	for _, it := range items {
		if err := ValidateItem(it); err != nil {
			return err
		}
	}
	if len(items) == 0 {
		return nil
	}
	req := &enqueueRequest{items: items, done: make(chan error, 1)}
	select {
	case o.requests <- req:
	case <-o.stop:
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	// Once handed over the write is not withdrawn; wait for its outcome so the
	// caller knows whether the items are durable.
	select {
	case err := <-req.done:
		return err
	case <-o.loopDone:
		select {
		case err := <-req.done:
			return err
		default:
			return ErrClosed
		}
	}
}

func (o *Outbox) commitLoop() {
	defer close(o.loopDone)
	group := make([]*enqueueRequest, 0, 64)
	for {
		group = group[:0]
		select {
		case <-o.stop:
			o.failWaiting()
			return
		case req := <-o.requests:
			group = append(group, req)
		}
	drain:
		for len(group) < maxGroup {
			select {
			case req := <-o.requests:
				group = append(group, req)
			default:
				break drain
			}
		}
		err := o.writeGroup(group)
		for _, req := range group {
			req.done <- err
		}
		if err == nil {
			o.signal()
		}
	}
}

func (o *Outbox) failWaiting() {
	for {
		select {
		case req := <-o.requests:
			req.done <- ErrClosed
		default:
			return
		}
	}
}

// writeGroup stores the items of all requests in one synced batch.
func (o *Outbox) writeGroup(group []*enqueueRequest) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	batch := o.db.NewBatch()
	defer func() { _ = batch.Close() }()
	seen := make(map[string]struct{})
	seq := o.nextSeq
	added := 0
	for _, req := range group {
		for _, it := range req.items {
			if _, dup := seen[it.UID]; dup {
				continue
			}
			seen[it.UID] = struct{}{}
			exists, err := o.db.Has(entryKey(it.UID))
			if err != nil {
				return fmt.Errorf("outbox: look up %q: %w", it.UID, err)
			}
			if exists {
				continue
			}
			e := Entry{UID: it.UID, Seq: seq, Leaf: it.Leaf, Record: it.Record, State: StatePending}
			if err := putEntry(batch, &e); err != nil {
				return err
			}
			if err := batch.Set(pendingKey(seq), []byte(it.UID)); err != nil {
				return fmt.Errorf("outbox: stage pending index: %w", err)
			}
			seq++
			added++
		}
	}
	if added == 0 {
		return nil
	}
	if err := batch.Set(keyNextSeq, be64(seq)); err != nil {
		return fmt.Errorf("outbox: stage sequence counter: %w", err)
	}
	if err := batch.WriteSync(); err != nil {
		return fmt.Errorf("outbox: write %d entries: %w", added, err)
	}
	o.nextSeq = seq
	o.log.V(1).Info("Enqueued results", "count", added, "callers", len(group))
	return nil
}
