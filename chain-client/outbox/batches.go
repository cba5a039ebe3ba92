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
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/aivm-dev/aivm-operator/chain-client/merkle"
)

// Pending returns up to limit Pending entries, oldest first.
func (o *Outbox) Pending(limit int) ([]Entry, error) {
	it, err := o.db.Iterator(prefixPending, prefixEnd(prefixPending))
	if err != nil {
		return nil, fmt.Errorf("outbox: iterate pending: %w", err)
	}
	defer func() { _ = it.Close() }()
	var uids []string
	for ; it.Valid() && len(uids) < limit; it.Next() {
		uids = append(uids, string(it.Value()))
	}
	if err := it.Error(); err != nil {
		return nil, fmt.Errorf("outbox: iterate pending: %w", err)
	}
	out := make([]Entry, 0, len(uids))
	for _, uid := range uids {
		e, err := o.getEntry(uid)
		if err != nil {
			return nil, err
		}
		if e == nil || e.State != StatePending {
			// Moved on between the index read and this read.
			continue
		}
		out = append(out, *e)
	}
	return out, nil
}

// MarkBatched records b and moves its results from Pending to Batched in one
// synced write. It must be called before b.TxBytes is broadcast. Every UID
// must be Pending; otherwise nothing changes.
func (o *Outbox) MarkBatched(b Batch) error {
	if b.TxHash == "" || len(b.TxBytes) == 0 || len(b.UIDs) == 0 {
		return errors.New("outbox: batch needs a tx hash, tx bytes and at least one UID")
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed {
		return ErrClosed
	}
	if raw, err := o.db.Get(batchKey(b.TxHash)); err != nil {
		return fmt.Errorf("outbox: look up batch %s: %w", b.TxHash, err)
	} else if raw != nil {
		return fmt.Errorf("outbox: batch %s already stored", b.TxHash)
	}
	entries, err := o.entriesInState(b.UIDs, StatePending)
	if err != nil {
		return err
	}
	leaves := make([]merkle.Hash, len(entries))
	for i, e := range entries {
		leaves[i] = e.Leaf
	}
	root, err := merkle.Root(leaves)
	if err != nil {
		return fmt.Errorf("outbox: batch %s: %w", b.TxHash, err)
	}
	if root != b.Root {
		return fmt.Errorf("outbox: batch %s root %s does not match its results' root %s", b.TxHash, b.Root, root)
	}
	batch := o.db.NewBatch()
	defer func() { _ = batch.Close() }()
	for _, e := range entries {
		if err := batch.Delete(pendingKey(e.Seq)); err != nil {
			return fmt.Errorf("outbox: stage pending index delete: %w", err)
		}
		e.State = StateBatched
		e.TxHash = b.TxHash
		if err := putEntry(batch, e); err != nil {
			return err
		}
	}
	if err := putJSON(batch, batchKey(b.TxHash), &b); err != nil {
		return err
	}
	if err := batch.WriteSync(); err != nil {
		return fmt.Errorf("outbox: write batch %s: %w", b.TxHash, err)
	}
	return nil
}

// InFlight returns every stored batch that is neither committed nor
// rejected, ordered by account sequence.
func (o *Outbox) InFlight() ([]Batch, error) {
	it, err := o.db.Iterator(prefixBatch, prefixEnd(prefixBatch))
	if err != nil {
		return nil, fmt.Errorf("outbox: iterate batches: %w", err)
	}
	defer func() { _ = it.Close() }()
	var out []Batch
	for ; it.Valid(); it.Next() {
		var b Batch
		if err := json.Unmarshal(it.Value(), &b); err != nil {
			return nil, fmt.Errorf("outbox: decode batch %s: %w", it.Key()[len(prefixBatch):], err)
		}
		out = append(out, b)
	}
	if err := it.Error(); err != nil {
		return nil, fmt.Errorf("outbox: iterate batches: %w", err)
	}
	sortBatches(out)
	return out, nil
}

// MarkCommitted records that the transaction txHash was included at height
// with a zero code: its results become Committed with their root and proof,
// and the batch record is removed, in one synced write. It returns the
// committed entries in leaf order.
func (o *Outbox) MarkCommitted(txHash string, height int64) ([]Entry, error) {
	return o.finish(txHash, func(b *Batch, entries []*Entry) error {
		leaves := make([]merkle.Hash, len(entries))
		for i, e := range entries {
			leaves[i] = e.Leaf
		}
		tree, err := merkle.New(leaves)
		if err != nil {
			return err
		}
		if tree.Root() != b.Root {
			return fmt.Errorf("outbox: batch %s stored root %s differs from its leaves' root %s", txHash, b.Root, tree.Root())
		}
		for i, e := range entries {
			p, err := tree.Proof(i)
			if err != nil {
				return err
			}
			e.State = StateCommitted
			e.Height = height
			e.Root = b.Root
			e.Proof = &p
		}
		return nil
	})
}

// MarkRejected records that the chain permanently rejected txHash: its
// results become Rejected with the code, codespace and log, and the batch
// record is removed, in one synced write.
func (o *Outbox) MarkRejected(txHash string, code uint32, codespace, log string) ([]Entry, error) {
	return o.finish(txHash, func(_ *Batch, entries []*Entry) error {
		for _, e := range entries {
			e.State = StateRejected
			e.Code, e.Codespace, e.Log = code, codespace, log
		}
		return nil
	})
}

// Requeue returns the results of txHash to Pending, keeping their original
// order, and removes the batch record, in one synced write. Call it only once
// the transaction can no longer be included (its account sequence was used
// by another transaction, or the chain refused it before it entered a
// mempool); the results are then signed again in a new transaction.
func (o *Outbox) Requeue(txHash string) ([]Entry, error) {
	return o.finish(txHash, func(_ *Batch, entries []*Entry) error {
		for _, e := range entries {
			e.State = StatePending
			e.TxHash = ""
			e.Requeues++
		}
		return nil
	})
}

// Rejection is the chain's reason for refusing a result.
type Rejection struct {
	// Code and Codespace are the chain's error code.
	Code      uint32
	Codespace string
	// Log is the chain's message.
	Log string
}

// Settlement settles one result of a refused batch (see Split): exactly
// one of its fields is set.
type Settlement struct {
	// Rejected rejects the result for good with this reason.
	Rejected *Rejection
	// Committed records that the result is already on chain, carried by
	// another transaction.
	Committed *Inclusion
}

// Inclusion is where a result is on chain.
type Inclusion struct {
	// TxHash is the transaction that carried it.
	TxHash string
	// Height is the block that committed it.
	Height int64
	// Root is that batch's Merkle root.
	Root merkle.Hash
	// Proof is the result's inclusion proof under Root.
	Proof merkle.Proof
}

// Split settles a refused batch result by result, in one synced write: the
// UIDs in settled become Rejected or Committed as given, the batch's other
// results return to Pending (to be signed again), and the batch record is
// removed. Use it when the chain's refusal concerns only some results (job
// UIDs already on chain), so the others are not lost with them. A
// Committed settlement must carry a proof of the entry's leaf under its
// root.
func (o *Outbox) Split(txHash string, settled map[string]Settlement) ([]Entry, error) {
	return o.finish(txHash, func(_ *Batch, entries []*Entry) error {
		for _, e := range entries {
			st, ok := settled[e.UID]
			switch {
			case !ok:
				e.State = StatePending
				e.TxHash = ""
				e.Requeues++
			case st.Rejected != nil:
				e.State = StateRejected
				e.Code, e.Codespace, e.Log = st.Rejected.Code, st.Rejected.Codespace, st.Rejected.Log
			case st.Committed != nil:
				c := st.Committed
				if err := merkle.Verify(e.Leaf, c.Proof, c.Root); err != nil {
					return fmt.Errorf("outbox: job %q committed in %s: %w", e.UID, c.TxHash, err)
				}
				p := c.Proof
				e.State = StateCommitted
				e.TxHash, e.Height, e.Root, e.Proof = c.TxHash, c.Height, c.Root, &p
			default:
				return fmt.Errorf("outbox: empty settlement for job %q", e.UID)
			}
		}
		return nil
	})
}

func (o *Outbox) finish(txHash string, apply func(*Batch, []*Entry) error) ([]Entry, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed {
		return nil, ErrClosed
	}
	raw, err := o.db.Get(batchKey(txHash))
	if err != nil {
		return nil, fmt.Errorf("outbox: look up batch %s: %w", txHash, err)
	}
	if raw == nil {
		return nil, fmt.Errorf("%w: batch %s", ErrNotFound, txHash)
	}
	var b Batch
	if err := json.Unmarshal(raw, &b); err != nil {
		return nil, fmt.Errorf("outbox: decode batch %s: %w", txHash, err)
	}
	entries, err := o.entriesInState(b.UIDs, StateBatched)
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		if e.TxHash != txHash {
			return nil, fmt.Errorf("outbox: job %q belongs to batch %s, not %s", e.UID, e.TxHash, txHash)
		}
	}
	if err := apply(&b, entries); err != nil {
		return nil, err
	}
	batch := o.db.NewBatch()
	defer func() { _ = batch.Close() }()
	requeued := false
	out := make([]Entry, len(entries))
	for i, e := range entries {
		if err := putEntry(batch, e); err != nil {
			return nil, err
		}
		if e.State == StateCommitted {
			if err := batch.Set(commitKey(e.Height, e.UID), []byte{1}); err != nil {
				return nil, fmt.Errorf("outbox: stage commit index: %w", err)
			}
		}
		if e.State == StatePending {
			requeued = true
			if err := batch.Set(pendingKey(e.Seq), []byte(e.UID)); err != nil {
				return nil, fmt.Errorf("outbox: stage pending index: %w", err)
			}
		}
		out[i] = *e
	}
	if err := batch.Delete(batchKey(txHash)); err != nil {
		return nil, fmt.Errorf("outbox: stage batch delete: %w", err)
	}
	if err := batch.WriteSync(); err != nil {
		return nil, fmt.Errorf("outbox: finish batch %s: %w", txHash, err)
	}
	if requeued {
		o.signal()
	}
	return out, nil
}

func (o *Outbox) entriesInState(uids []string, want State) ([]*Entry, error) {
	seen := make(map[string]struct{}, len(uids))
	out := make([]*Entry, 0, len(uids))
	for _, uid := range uids {
		if _, dup := seen[uid]; dup {
			return nil, fmt.Errorf("outbox: job %q listed twice in one batch", uid)
		}
		seen[uid] = struct{}{}
		e, err := o.getEntry(uid)
		if err != nil {
			return nil, err
		}
		if e == nil {
			return nil, fmt.Errorf("%w: job %q", ErrNotFound, uid)
		}
		if e.State != want {
			return nil, fmt.Errorf("outbox: job %q is %s, not %s", uid, e.State, want)
		}
		out = append(out, e)
	}
	return out, nil
}

// PruneCommitted deletes up to limit Committed entries whose block is below
// height, oldest first, in one synced write, and returns how many it
// deleted. A pruned job UID is unknown to the outbox afterwards: enqueueing
// it again would send it again (and the chain would refuse the duplicate),
// so prune only what the callers are done with.
func (o *Outbox) PruneCommitted(height int64, limit int) (int, error) {
	if height <= 0 || limit <= 0 {
		return 0, nil
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed {
		return 0, ErrClosed
	}
	it, err := o.db.Iterator(prefixCommit, commitKey(height, ""))
	if err != nil {
		return 0, fmt.Errorf("outbox: iterate commits: %w", err)
	}
	var keys [][]byte
	for ; it.Valid() && len(keys) < limit; it.Next() {
		keys = append(keys, append([]byte(nil), it.Key()...))
	}
	err = it.Error()
	_ = it.Close()
	if err != nil {
		return 0, fmt.Errorf("outbox: iterate commits: %w", err)
	}
	if len(keys) == 0 {
		return 0, nil
	}
	batch := o.db.NewBatch()
	defer func() { _ = batch.Close() }()
	for _, k := range keys {
		uid := string(k[len(prefixCommit)+8:])
		if err := batch.Delete(k); err != nil {
			return 0, fmt.Errorf("outbox: stage prune: %w", err)
		}
		if err := batch.Delete(entryKey(uid)); err != nil {
			return 0, fmt.Errorf("outbox: stage prune: %w", err)
		}
	}
	if err := batch.WriteSync(); err != nil {
		return 0, fmt.Errorf("outbox: prune %d entries: %w", len(keys), err)
	}
	return len(keys), nil
}

func commitKey(height int64, uid string) []byte {
	k := append(append([]byte{}, prefixCommit...), be64(uint64(height))...)
	return append(k, uid...)
}

func sortBatches(bs []Batch) {
	slices.SortStableFunc(bs, func(a, b Batch) int { return cmp.Compare(a.Sequence, b.Sequence) })
}
