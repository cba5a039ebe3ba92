package chainclient

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/aivm-dev/aivm-operator/chain-client/aivmv1"
	"github.com/aivm-dev/aivm-operator/chain-client/merkle"
	"github.com/aivm-dev/aivm-operator/chain-client/outbox"
	"github.com/aivm-dev/aivm-operator/chain-client/rpc"
	"github.com/aivm-dev/aivm-operator/chain-client/tx"
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

// resync reads the account and sets the next sequence. With hint set (the
// sequence a node said it expects, counting its mempool), the hint wins.
// Otherwise the next sequence is the chain's committed one, raised above
// every transaction still in flight: one held in a mempool has not used its
// sequence yet, and a transaction signed at it would take its place on a
// node without it, forcing its results to be signed again. A transaction
// refused at its first broadcast is not in flight, so its sequence is
// signed at again.
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

// resendRefused handles a resend refused for a reason that does not prove
// f can never land: its sequence, or a condition of the moment (funds,
// fees, a full mempool; a chain checks the fee before the sequence, so a
// node holding f itself can answer either). f may still sit in a mempool
// (its node's own, when the node keeps no cache of transactions seen, or
// another node's) and land, so signing its results again could put them on
// chain twice: f stays in flight, looked up by hash and resent after
// ResendAfterBlocks, until it lands or the chain's sequence passes it
// without it. Refusals those bytes can never get past (signature, decoding,
// size, a result already on chain) go to settleRefused instead.
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

func (l *loop) emit(e Event) {
	if l.o.OnEvent != nil {
		l.o.OnEvent(e)
	}
}

// register keeps the provider registered.
func (l *loop) register(ctx context.Context) error {
	if !l.registers() {
		return nil
	}
	if l.reg != nil {
		done, err := l.confirmOne(ctx, l.reg)
		if done {
			l.reg.gone = true
			l.reg = nil
		}
		if err != nil || !done {
			return err
		}
	}
	if l.expires != 0 && l.height < l.expires-l.renewBefore {
		return nil
	}
	p, err := l.o.Chain.Provider(ctx, l.c.address)
	if err != nil {
		return unreachable("query provider", err)
	}
	if p != nil {
		l.fitMargin(p)
	}
	if p != nil && l.height < p.GetExpiresHeight()-l.renewBefore {
		l.expires = p.GetExpiresHeight()
		return nil
	}
	if p != nil {
		l.expires = p.GetExpiresHeight()
	}
	msg, err := l.registration(ctx)
	if err != nil {
		return err
	}
	f, err := l.sign(msg, 0)
	if err != nil {
		return err
	}
	l.c.log.Info("Registering provider", "tx", f.hash, "expiresHeight", l.expires)
	br, err := l.o.Chain.BroadcastSync(ctx, f.txBytes)
	if err != nil {
		// The bytes may have arrived: keep them and resend.
		l.reg = f
		l.nextSeq++
		return unreachable("broadcast registration", err)
	}
	switch classify(br.Code, br.Codespace) {
	case outcomeAccepted:
		f.sentHeight = l.height
		l.reg = f
		l.nextSeq++
		return nil
	case outcomeWrongSequence:
		exp, ok := expectedSequence(br.Log)
		return l.resync(ctx, exp, ok)
	default:
		return fmt.Errorf("chain refused provider registration: code %d (%s): %s", br.Code, br.Codespace, br.Log)
	}
}

// fitMargin sets the renewal margin for the validity the chain granted p's
// committed registration: RenewBeforeBlocks, unless that is not below the
// validity, which would renew (and pay for) a registration at every step;
// then half the validity, with one warning.
func (l *loop) fitMargin(p *aivmv1.Provider) {
	validity := p.GetExpiresHeight() - p.GetRegisteredHeight()
	if validity <= 0 {
		return
	}
	l.renewBefore = l.o.RenewBeforeBlocks
	if l.renewBefore < validity {
		return
	}
	l.renewBefore = validity / 2
	if !l.marginWarned {
		l.marginWarned = true
		l.c.log.Info("RenewBeforeBlocks is not below the registration validity the chain grants; renewing when half of it is left",
			"renewBeforeBlocks", l.o.RenewBeforeBlocks, "validityBlocks", validity, "effectiveRenewBeforeBlocks", l.renewBefore)
	}
}

func (l *loop) registers() bool {
	return l.o.Registration != nil || l.o.RegistrationFunc != nil
}

// registration returns the message to register with.
func (l *loop) registration(ctx context.Context) (*aivmv1.MsgRegisterProvider, error) {
	var msg *aivmv1.MsgRegisterProvider
	if l.o.RegistrationFunc != nil {
		m, err := l.o.RegistrationFunc(ctx)
		if err != nil {
			return nil, fmt.Errorf("build provider registration: %w", err)
		}
		if m == nil {
			return nil, errors.New("build provider registration: no message")
		}
		msg = proto.Clone(m).(*aivmv1.MsgRegisterProvider)
	} else {
		msg = proto.Clone(l.o.Registration).(*aivmv1.MsgRegisterProvider)
	}
	msg.Provider = l.c.address
	return msg, nil
}

func (l *loop) settleRegistration(ctx context.Context, f *flight, code uint32, codespace, log string) error {
	switch classify(code, codespace) {
	case outcomeAccepted:
		p, err := l.o.Chain.Provider(ctx, l.c.address)
		if err != nil {
			return unreachable("query provider", err)
		}
		if p == nil {
			return errors.New("provider registration committed but the chain does not know the provider")
		}
		l.expires = p.GetExpiresHeight()
		l.fitMargin(p)
		l.c.log.Info("Provider registered", "tx", f.hash, "expiresHeight", l.expires)
		l.c.metrics.transactions.WithLabelValues("registration").Inc()
		return nil
	case outcomeWrongSequence:
		exp, ok := expectedSequence(log)
		return l.resync(ctx, exp, ok)
	default:
		return fmt.Errorf("chain refused provider registration %s: code %d (%s): %s", f.hash, code, codespace, log)
	}
}

// sign builds and signs a transaction with the next sequence (not yet
// consumed: the caller advances nextSeq once the bytes may be out).
func (l *loop) sign(msg proto.Message, results int) (*flight, error) {
	size := uint64(proto.Size(msg) + txOverhead)
	gas := l.o.GasBase + l.o.GasPerByte*size + l.o.GasPerResult*uint64(results)
	fee := uint64(math.Ceil(float64(gas) * l.o.GasPrice))
	txBytes, hash, err := tx.BuildAndSign(tx.SignInput{
		Key:           l.o.Key,
		ChainID:       l.o.ChainID,
		AccountNumber: l.accountNumber,
		Sequence:      l.nextSeq,
		Msgs:          []proto.Message{msg},
		FeeAmount:     fee,
		FeeDenom:      l.o.FeeDenom,
		GasLimit:      gas,
	})
	if err != nil {
		return nil, fmt.Errorf("sign transaction: %w", err)
	}
	return &flight{hash: hash, txBytes: txBytes, seq: l.nextSeq, batchedAt: l.height}, nil
}

// observeBatches sets the outbox's Batched count and the age of the oldest
// result transaction in flight.
func (l *loop) observeBatches() {
	var results int
	var oldest int64
	for _, f := range l.batches {
		if f.uids == nil {
			continue
		}
		results += len(f.uids)
		if f.batchedAt == 0 {
			f.batchedAt = l.height
		}
		if f.batchedAt > 0 {
			oldest = max(oldest, l.height-f.batchedAt)
		}
	}
	l.c.metrics.batched.Set(float64(results))
	l.c.metrics.oldestAge.Set(float64(oldest))
}

// maxSendRounds bounds the batches refused for their sequence in one step.
const maxSendRounds = 3

// send folds pending results into batches while there is room in flight.
func (l *loop) send(ctx context.Context) error {
	refused := 0
	for len(l.batches) < l.o.MaxInFlight && refused < maxSendRounds {
		entries, err := l.o.Outbox.Pending(l.o.MaxBatchResults)
		if err != nil {
			return err
		}
		if len(entries) == 0 {
			l.firstPendingAt = time.Time{}
			return nil
		}
		now := l.o.Clock.Now()
		if len(entries) < l.o.MaxBatchResults {
			if l.firstPendingAt.IsZero() {
				l.firstPendingAt = now
			}
			if now.Sub(l.firstPendingAt) < l.o.BatchDelay {
				return nil
			}
		}
		f, err := l.buildBatch(entries)
		if err != nil {
			return err
		}
		l.firstPendingAt = time.Time{}
		l.nextSeq++
		br, err := l.o.Chain.BroadcastSync(ctx, f.txBytes)
		if err != nil {
			// The bytes may have reached the node: keep them, resend later.
			l.batches = append(l.batches, f)
			return unreachable("broadcast batch "+f.hash, err)
		}
		if classify(br.Code, br.Codespace) != outcomeAccepted {
			// Refused at CheckTx: the sequence was not used.
			l.nextSeq = f.seq
		}
		switch classify(br.Code, br.Codespace) {
		case outcomeAccepted:
			f.sentHeight = l.height
			l.batches = append(l.batches, f)
			l.c.metrics.transactions.WithLabelValues("broadcast").Inc()
		case outcomeWrongSequence:
			refused++
			exp, ok := expectedSequence(br.Log)
			l.c.log.Info("Account sequence mismatch; re-syncing", "tx", f.hash, "sequence", f.seq, "log", br.Log)
			if err := l.requeue(ctx, f, exp, ok); err != nil {
				return err
			}
		default:
			if err := l.settleRefused(ctx, f, br.Code, br.Codespace, br.Log); err != nil {
				return err
			}
			if l.expires == 0 && l.registers() {
				return nil
			}
		}
	}
	return nil
}

// buildBatch takes the oldest pending entries that fit in one transaction,
// signs it and stores it in the outbox before anything is broadcast.
func (l *loop) buildBatch(entries []outbox.Entry) (*flight, error) {
	msg := &aivmv1.MsgSubmitResults{Provider: l.c.address, MerkleRoot: make([]byte, merkle.Size)}
	size := proto.Size(msg) + txOverhead
	var leaves []merkle.Hash
	var uids []string
	for _, e := range entries {
		rec := &aivmv1.ResultRecord{}
		if err := proto.Unmarshal(e.Record, rec); err != nil {
			return nil, fmt.Errorf("decode stored record of job %q: %w", e.UID, err)
		}
		// Field tag, length varint and the record itself.
		add := 1 + protoVarintLen(len(e.Record)) + len(e.Record)
		if len(uids) > 0 && size+add > l.o.MaxTxBytes {
			break
		}
		size += add
		msg.Results = append(msg.Results, rec)
		leaves = append(leaves, e.Leaf)
		uids = append(uids, e.UID)
	}
	var f *flight
	var root merkle.Hash
	for {
		var err error
		if root, err = merkle.Root(leaves); err != nil {
			return nil, err
		}
		msg.MerkleRoot = root[:]
		if f, err = l.sign(msg, len(uids)); err != nil {
			return nil, err
		}
		if len(f.txBytes) <= l.o.MaxTxBytes || len(uids) == 1 {
			break
		}
		// The estimate fell short: drop the newer half and sign again.
		n := len(uids) / 2
		msg.Results, leaves, uids = msg.Results[:n], leaves[:n], uids[:n]
	}
	f.uids = uids
	if err := l.o.Outbox.MarkBatched(outbox.Batch{TxHash: f.hash, TxBytes: f.txBytes, Sequence: f.seq, UIDs: uids, Root: root}); err != nil {
		return nil, fmt.Errorf("store batch before broadcast: %w", err)
	}
	return f, nil
}

func protoVarintLen(n int) int {
	l := 1
	for n >= 0x80 {
		n >>= 7
		l++
	}
	return l
}
