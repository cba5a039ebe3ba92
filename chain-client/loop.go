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
	"context"
	"errors"
	"fmt"
	"time"
)

// flight is a broadcast transaction awaiting inclusion.
type flight struct {
	hash    string
	txBytes []byte
	seq     uint64
	// uids is empty for a registration.
	uids []string
	// batchedAt is the height when the batch was built (or, for a batch
	// resumed after a restart, the first height seen since); 0: not yet known.
	batchedAt int64
	// sentHeight is the height at the last accepted broadcast; 0 means the
	// bytes must be (re)sent at the next step.
	sentHeight int64
	// consumedAt is the height at which the account sequence was seen past
	// seq while the hash was unknown; the transaction is dead if it is still
	// unknown at a later height.
	consumedAt int64
	// gone is set once the transaction left the in-flight set (settled,
	// or its results went back to Pending): it no longer holds its
	// sequence.
	gone bool
}

// IsUnreachable reports whether err (from Client.ChainError) is a failure
// to reach the chain, rather than a refusal or a local problem.
func IsUnreachable(err error) bool {
	var ue *unreachableError
	return errors.As(err, &ue)
}

// unreachableError marks a failed call to the chain.
type unreachableError struct{ err error }

func (e *unreachableError) Error() string { return "chain unreachable: " + e.err.Error() }
func (e *unreachableError) Unwrap() error { return e.err }

func unreachable(what string, err error) error {
	if errors.Is(err, context.Canceled) {
		return err
	}
	return &unreachableError{fmt.Errorf("%s: %w", what, err)}
}

// loop is the single goroutine that signs, broadcasts and confirms for one
// key: the signer queue.
type loop struct {
	c *Client
	o *Options

	synced        bool
	accountNumber uint64
	nextSeq       uint64
	height        int64

	batches []*flight
	reg     *flight
	// expires is the registration's expiry height; 0 when unknown.
	expires int64
	// renewBefore is the renewal margin: RenewBeforeBlocks, or half the
	// validity the chain grants when that is not more than RenewBeforeBlocks.
	renewBefore int64
	// marginWarned is set once the clamped margin was logged.
	marginWarned bool

	prunedAt       int64
	backoff        time.Duration
	retryAt        time.Time
	firstPendingAt time.Time
}

func newLoop(c *Client) *loop {
	return &loop{c: c, o: &c.opts, renewBefore: c.opts.RenewBeforeBlocks}
}

func (l *loop) run(ctx context.Context) error {
	stored, err := l.o.Outbox.InFlight()
	if err != nil {
		return fmt.Errorf("chainclient: load in-flight batches: %w", err)
	}
	for _, b := range stored {
		// Unknown whether these reached a node before the restart: look
		// them up and, if unknown, resend the same bytes at once.
		l.batches = append(l.batches, &flight{hash: b.TxHash, txBytes: b.TxBytes, seq: b.Sequence, uids: b.UIDs})
	}
	if len(stored) > 0 {
		l.c.log.Info("Resuming in-flight batches", "count", len(stored))
	}
	ticker := l.o.Clock.NewTicker(l.o.PollInterval)
	defer ticker.Stop()
	for {
		err := l.step(ctx)
		if ctx.Err() != nil {
			return nil
		}
		now := l.o.Clock.Now()
		if err != nil {
			l.backoff = min(max(2*l.backoff, l.o.MinBackoff), l.o.MaxBackoff)
			l.retryAt = now.Add(l.backoff)
			l.c.setChainErr(err)
			l.c.metrics.up.Set(0)
			l.c.log.Info("Chain step failed, backing off", "err", err.Error(), "backoff", l.backoff)
		} else if l.retryAt.IsZero() || !now.Before(l.retryAt) {
			l.backoff = 0
			l.retryAt = time.Time{}
			l.c.setChainErr(nil)
			l.c.metrics.up.Set(1)
		}
		l.c.metrics.inFlight.Set(float64(len(l.batches)))
		l.c.metrics.expires.Set(float64(l.expires))
		l.observeBatches()
		var wake <-chan time.Time
		switch {
		case !l.retryAt.IsZero() && now.Before(l.retryAt):
			wake = l.o.Clock.After(l.retryAt.Sub(now))
		case !l.firstPendingAt.IsZero():
			wake = l.o.Clock.After(max(l.firstPendingAt.Add(l.o.BatchDelay).Sub(now), 0))
		}
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C():
		case <-l.o.Outbox.Notify():
		case <-l.c.kick:
		case <-wake:
		}
	}
}

// step does one round: sync, confirm, register, send.
func (l *loop) step(ctx context.Context) error {
	now := l.o.Clock.Now()
	if !l.retryAt.IsZero() && now.Before(l.retryAt) {
		return nil
	}
	h, err := l.o.Chain.Height(ctx)
	if err != nil {
		return unreachable("read height", err)
	}
	l.height = h
	if !l.synced {
		if err := l.resync(ctx, 0, false); err != nil {
			return err
		}
	}
	if err := l.confirm(ctx); err != nil {
		return err
	}
	if err := l.prune(); err != nil {
		return err
	}
	if err := l.register(ctx); err != nil {
		return err
	}
	if l.registers() && l.height >= l.expires {
		// Not (or no longer) registered: results would be refused.
		return nil
	}
	return l.send(ctx)
}

// pruneBatch bounds the entries one prune removes.
const pruneBatch = 10_000

// prune drops committed results older than RetainBlocks, every tenth of
// that span.
func (l *loop) prune() error {
	if l.o.RetainBlocks <= 0 || l.height-l.prunedAt < max(l.o.RetainBlocks/10, 1) {
		return nil
	}
	n, err := l.o.Outbox.PruneCommitted(l.height-l.o.RetainBlocks, pruneBatch)
	if err != nil {
		return err
	}
	if n < pruneBatch {
		l.prunedAt = l.height
	}
	if n > 0 {
		l.c.log.V(1).Info("Pruned committed results", "count", n, "belowHeight", l.height-l.o.RetainBlocks)
	}
	return nil
}

// resync reads the account and sets the next sequence: hint when set (the
// sequence a node expects), else the chain's, raised above every transaction
// in flight (docs/chain-client.md, "The account sequence").
func (l *loop) resync(ctx context.Context, hint uint64, haveHint bool) error {
	num, seq, err := l.o.Chain.Account(ctx, l.c.address)
	if err != nil {
		if errors.Is(err, ErrAccountNotFound) {
			return fmt.Errorf("account %s does not exist on chain %s (fund it first): %w", l.c.address, l.o.ChainID, err)
		}
		return unreachable("read account", err)
	}
	l.accountNumber = num
	next := seq
	if haveHint {
		next = hint
	} else {
		// Transactions in flight (after a restart: those signed before it)
		// may still be in a mempool; never sign a second one with their
		// sequence.
		for _, f := range l.inflight() {
			if f.seq >= next {
				next = f.seq + 1
			}
		}
	}
	if l.synced && next != l.nextSeq {
		l.c.log.Info("Re-synced account sequence", "from", l.nextSeq, "to", next)
	}
	l.nextSeq = next
	l.synced = true
	return nil
}

// signedAt reports whether a transaction in flight has sequence seq.
func (l *loop) signedAt(seq uint64) bool {
	for _, f := range l.inflight() {
		if f.seq == seq {
			return true
		}
	}
	return false
}

// inflight returns the transactions in flight: batches and the
// registration, less those that left meanwhile.
func (l *loop) inflight() []*flight {
	var out []*flight
	for _, f := range l.batches {
		if !f.gone {
			out = append(out, f)
		}
	}
	if l.reg != nil && !l.reg.gone {
		out = append(out, l.reg)
	}
	return out
}

func (l *loop) emit(e Event) {
	if l.o.OnEvent != nil {
		l.o.OnEvent(e)
	}
}
