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

package chainclient

import (
	"bytes"
	"context"
	"fmt"

	"google.golang.org/protobuf/proto"

	"github.com/aivm-dev/aivm-operator/chain-client/aivmv1"
	"github.com/aivm-dev/aivm-operator/chain-client/merkle"
	"github.com/aivm-dev/aivm-operator/chain-client/outbox"
	"github.com/aivm-dev/aivm-operator/chain-client/rpc"
	"github.com/aivm-dev/aivm-operator/chain-client/tx"
)

// confirm looks up every in-flight transaction and settles those that are
// in a block or can no longer get there.
func (l *loop) confirm(ctx context.Context) error {
	kept := l.batches[:0]
	var firstErr error
	for i, f := range l.batches {
		if firstErr != nil {
			kept = append(kept, l.batches[i:]...)
			break
		}
		done, err := l.confirmOne(ctx, f)
		if err != nil {
			firstErr = err
		}
		if done {
			f.gone = true
		} else {
			kept = append(kept, f)
		}
	}
	l.batches = kept
	return firstErr
}

// confirmOne returns done when f left the in-flight set.
func (l *loop) confirmOne(ctx context.Context, f *flight) (done bool, err error) {
	res, err := l.o.Chain.Tx(ctx, f.hash)
	if err != nil {
		return false, unreachable("look up tx "+f.hash, err)
	}
	if res.Found {
		return true, l.settleIncluded(ctx, f, res)
	}
	if f.consumedAt != 0 {
		if l.height > f.consumedAt {
			l.c.log.Info("Transaction can no longer be included; signing again", "tx", f.hash, "sequence", f.seq)
			return true, l.requeue(ctx, f, 0, false)
		}
		return false, nil
	}
	if f.sentHeight != 0 && l.height-f.sentHeight < l.o.ResendAfterBlocks {
		return false, nil
	}
	// Unknown to the tx index for a while (it may lag, or a node may run
	// without one): the application state says whether the batch landed.
	if landed, err := l.landed(ctx, f); err != nil || landed {
		return landed, err
	}
	br, err := l.o.Chain.BroadcastSync(ctx, f.txBytes)
	if err != nil {
		f.sentHeight = 0
		return false, unreachable("broadcast tx "+f.hash, err)
	}
	switch classify(br.Code, br.Codespace) {
	case outcomeAccepted:
		f.sentHeight = l.height
		return false, nil
	case outcomeWrongSequence, outcomeRetryLater:
		return l.resendRefused(ctx, f, br)
	default:
		return true, l.settleRefused(ctx, f, br.Code, br.Codespace, br.Log)
	}
}

// resendRefused handles a resend refused for its sequence or a condition of
// the moment: f may still land, so it stays in flight until it does or the
// account's sequence passes it without it (docs/chain-client.md).
func (l *loop) resendRefused(ctx context.Context, f *flight, br rpc.BroadcastResult) (done bool, err error) {
	_, seq, err := l.o.Chain.Account(ctx, l.c.address)
	if err != nil {
		return false, unreachable("read account", err)
	}
	if seq > f.seq {
		// The sequence is used: by this transaction, or by another one.
		// The account is read before the results, so a batch included
		// by then shows in the state read next.
		if f.uids == nil {
			// A registration: decide a block later, by hash.
			f.consumedAt = l.height
			return false, nil
		}
		if landed, err := l.landed(ctx, f); err != nil || landed {
			return landed, err
		}
		l.c.log.Info("Account sequence used by another transaction; signing the batch again", "tx", f.hash, "sequence", f.seq)
		return true, l.requeue(ctx, f, 0, false)
	}
	f.sentHeight = l.height
	if classify(br.Code, br.Codespace) == outcomeRetryLater {
		// Reported like the refusal of a first broadcast, for the operator
		// to fix (fund the account, raise the fee); f waits meanwhile.
		return false, fmt.Errorf("chain refused resent transaction %s, kept in flight as it may still land: code %d (%s): %s",
			f.hash, br.Code, br.Codespace, br.Log)
	}
	exp, ok := expectedSequence(br.Log)
	l.c.log.Info("Resent transaction refused for its sequence, which the chain has not used yet; waiting for it",
		"tx", f.hash, "sequence", f.seq, "accountSequence", seq, "log", br.Log)
	if ok && exp < f.seq && !l.signedAt(exp) {
		// The node misses a sequence below f that nothing of ours in
		// flight will fill: sign the next transactions from there, or f
		// can never land.
		return false, l.resync(ctx, exp, true)
	}
	return false, nil
}

// landed checks the chain's state for a batch's first result: stored by
// this very transaction means the batch is committed (and is settled as
// such).
func (l *loop) landed(ctx context.Context, f *flight) (bool, error) {
	if len(f.uids) == 0 {
		return false, nil
	}
	stored, err := l.o.Chain.Result(ctx, f.uids[0])
	if err != nil {
		return false, unreachable("query result of job "+f.uids[0], err)
	}
	if stored == nil || stored.GetTxHash() != f.hash {
		return false, nil
	}
	return true, l.settleIncluded(ctx, f, rpc.TxResult{Found: true, Height: stored.GetHeight()})
}

// settleIncluded handles a transaction found in a block.
func (l *loop) settleIncluded(ctx context.Context, f *flight, res rpc.TxResult) error {
	if f.uids == nil {
		return l.settleRegistration(ctx, f, res.Code, res.Codespace, res.Log)
	}
	if res.Code == CodeOK {
		entries, err := l.o.Outbox.MarkCommitted(f.hash, res.Height)
		if err != nil {
			return fmt.Errorf("record commit of %s: %w", f.hash, err)
		}
		l.c.log.V(1).Info("Batch committed", "tx", f.hash, "height", res.Height, "results", len(entries))
		l.c.metrics.transactions.WithLabelValues("committed").Inc()
		l.c.metrics.results.WithLabelValues("committed").Add(float64(len(entries)))
		if f.batchedAt > 0 && res.Height >= f.batchedAt {
			l.c.metrics.commitLag.Observe(float64(res.Height - f.batchedAt))
		}
		for _, e := range entries {
			l.emit(Event{Type: EventCommitted, UID: e.UID, TxHash: e.TxHash, Height: e.Height, Root: e.Root, Proof: e.Proof})
		}
		return nil
	}
	return l.settleRefused(ctx, f, res.Code, res.Codespace, res.Log)
}

// settleRefused handles a non-zero code for a batch that will therefore
// never be included as is (refused at CheckTx or failed in its block).
func (l *loop) settleRefused(ctx context.Context, f *flight, code uint32, codespace, log string) error {
	if f.uids == nil {
		return l.settleRegistration(ctx, f, code, codespace, log)
	}
	switch classify(code, codespace) {
	case outcomeWrongSequence:
		exp, ok := expectedSequence(log)
		return l.requeue(ctx, f, exp, ok)
	case outcomeNotRegistered:
		l.expires = 0
		return l.requeue(ctx, f, 0, false)
	case outcomeRetryLater:
		if err := l.requeue(ctx, f, 0, false); err != nil {
			return err
		}
		return fmt.Errorf("chain refused batch %s: code %d (%s): %s", f.hash, code, codespace, log)
	case outcomeDuplicate:
		return l.splitDuplicates(ctx, f, code, codespace, log)
	}
	entries, err := l.o.Outbox.MarkRejected(f.hash, code, codespace, log)
	if err != nil {
		return fmt.Errorf("record rejection of %s: %w", f.hash, err)
	}
	l.c.log.Info("Chain rejected batch", "tx", f.hash, "code", code, "codespace", codespace, "log", log, "results", len(entries))
	l.c.metrics.transactions.WithLabelValues("rejected").Inc()
	l.c.metrics.results.WithLabelValues("rejected").Add(float64(len(entries)))
	for _, e := range entries {
		l.emit(Event{Type: EventRejected, UID: e.UID, TxHash: e.TxHash, Code: code, Codespace: codespace, Log: log})
	}
	return nil
}

// splitDuplicates handles a batch refused because some of its job UIDs are
// already on chain. A result this provider already put there (same record;
// the outbox was lost, say) is recorded as committed, with its proof
// rebuilt from the carrying transaction when the chain can return it; any
// other duplicate is rejected with where it already is; the rest go back
// to Pending, so one stale result does not sink a whole batch.
func (l *loop) splitDuplicates(ctx context.Context, f *flight, code uint32, codespace, log string) error {
	settled := map[string]outbox.Settlement{}
	for _, uid := range f.uids {
		stored, err := l.o.Chain.Result(ctx, uid)
		if err != nil {
			return unreachable("query result of job "+uid, err)
		}
		if stored == nil {
			continue
		}
		if inc, err := l.ownInclusion(ctx, uid, stored); err != nil {
			return err
		} else if inc != nil {
			settled[uid] = outbox.Settlement{Committed: inc}
			continue
		}
		settled[uid] = outbox.Settlement{Rejected: &outbox.Rejection{Code: code, Codespace: codespace, Log: fmt.Sprintf(
			"result already on chain in transaction %s at height %d, submitted by %s", stored.GetTxHash(), stored.GetHeight(), stored.GetProvider())}}
	}
	if len(settled) == 0 {
		// The chain named a duplicate it does not hold: refuse the batch
		// rather than loop on it.
		for _, uid := range f.uids {
			settled[uid] = outbox.Settlement{Rejected: &outbox.Rejection{Code: code, Codespace: codespace, Log: log}}
		}
	}
	entries, err := l.o.Outbox.Split(f.hash, settled)
	if err != nil {
		return fmt.Errorf("split batch %s: %w", f.hash, err)
	}
	var rejected, committed int
	for _, e := range entries {
		switch e.State {
		case outbox.StateRejected:
			rejected++
			l.emit(Event{Type: EventRejected, UID: e.UID, TxHash: e.TxHash, Code: e.Code, Codespace: e.Codespace, Log: e.Log})
		case outbox.StateCommitted:
			committed++
			l.emit(Event{Type: EventCommitted, UID: e.UID, TxHash: e.TxHash, Height: e.Height, Root: e.Root, Proof: e.Proof})
		}
	}
	requeued := len(entries) - rejected - committed
	l.c.log.Info("Chain refused results already on chain", "tx", f.hash, "rejected", rejected, "alreadyCommitted", committed, "requeued", requeued)
	l.c.metrics.transactions.WithLabelValues("rejected").Inc()
	l.c.metrics.results.WithLabelValues("rejected").Add(float64(rejected))
	l.c.metrics.results.WithLabelValues("committed").Add(float64(committed))
	l.c.metrics.results.WithLabelValues("resigned").Add(float64(requeued))
	return nil
}

// ownInclusion returns where uid's result is on chain when this provider
// put that same record there and the carrying transaction can be fetched
// to rebuild the proof; nil otherwise.
func (l *loop) ownInclusion(ctx context.Context, uid string, stored *aivmv1.StoredResult) (*outbox.Inclusion, error) {
	fetcher, ok := l.o.Chain.(TxFetcher)
	if !ok || stored.GetProvider() != l.c.address {
		return nil, nil
	}
	e, err := l.o.Outbox.Get(uid)
	if err != nil {
		return nil, err
	}
	mine := &aivmv1.ResultRecord{}
	if err := proto.Unmarshal(e.Record, mine); err != nil || !proto.Equal(mine, stored.GetResult()) {
		return nil, nil
	}
	raw, err := fetcher.TxBytes(ctx, stored.GetTxHash())
	if err != nil {
		return nil, unreachable("fetch tx "+stored.GetTxHash(), err)
	}
	decoded, err := tx.Decode(raw)
	if err != nil {
		return nil, fmt.Errorf("decode tx %s: %w", stored.GetTxHash(), err)
	}
	msgs, err := decoded.Msgs()
	if err != nil {
		return nil, fmt.Errorf("decode tx %s: %w", stored.GetTxHash(), err)
	}
	for _, m := range msgs {
		sub, ok := m.(*aivmv1.MsgSubmitResults)
		if !ok || !bytes.Equal(sub.GetMerkleRoot(), stored.GetMerkleRoot()) {
			continue
		}
		leaves := make([]merkle.Hash, len(sub.GetResults()))
		for i, r := range sub.GetResults() {
			canon, err := proto.MarshalOptions{Deterministic: true}.Marshal(r)
			if err != nil {
				return nil, err
			}
			leaves[i] = merkle.LeafHash(canon)
		}
		tree, err := merkle.New(leaves)
		if err != nil {
			continue
		}
		root := tree.Root()
		if !bytes.Equal(root[:], stored.GetMerkleRoot()) || int(stored.GetIndex()) >= len(leaves) || leaves[stored.GetIndex()] != e.Leaf {
			continue
		}
		p, err := tree.Proof(int(stored.GetIndex()))
		if err != nil {
			return nil, err
		}
		return &outbox.Inclusion{TxHash: stored.GetTxHash(), Height: stored.GetHeight(), Root: tree.Root(), Proof: p}, nil
	}
	return nil, nil
}

// requeue returns a dead batch's results to Pending and re-syncs the
// sequence; f no longer counts as in flight.
func (l *loop) requeue(ctx context.Context, f *flight, hint uint64, haveHint bool) error {
	f.gone = true
	if f.uids == nil {
		// A registration is not in the outbox; register() signs a new one.
		return l.resync(ctx, hint, haveHint)
	}
	entries, err := l.o.Outbox.Requeue(f.hash)
	if err != nil {
		return fmt.Errorf("requeue %s: %w", f.hash, err)
	}
	l.c.metrics.transactions.WithLabelValues("resigned").Inc()
	l.c.metrics.results.WithLabelValues("resigned").Add(float64(len(entries)))
	return l.resync(ctx, hint, haveHint)
}
