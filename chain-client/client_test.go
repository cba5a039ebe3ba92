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

package chainclient_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	cmthttp "github.com/cometbft/cometbft/rpc/client/http"
	coretypes "github.com/cometbft/cometbft/rpc/core/types"
	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/proto"

	chainclient "github.com/aivm-dev/aivm-operator/chain-client"
	"github.com/aivm-dev/aivm-operator/chain-client/aivmv1"
	"github.com/aivm-dev/aivm-operator/chain-client/devnet"
	"github.com/aivm-dev/aivm-operator/chain-client/keys"
	"github.com/aivm-dev/aivm-operator/chain-client/merkle"
	"github.com/aivm-dev/aivm-operator/chain-client/outbox"
	"github.com/aivm-dev/aivm-operator/chain-client/receipt"
	"github.com/aivm-dev/aivm-operator/chain-client/rpc"
	"github.com/aivm-dev/aivm-operator/chain-client/tx"
)

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	t.Cleanup(cancel)
	return ctx
}

// checkOnChain asserts that every record is stored on chain as committed in
// the outbox, with a proof that verifies against the stored root.
func checkOnChain(t *testing.T, env *chainEnv, r *reporter, recs []*aivmv1.ResultRecord) {
	t.Helper()
	ctx := ctxT(t)
	for _, rec := range recs {
		e, err := r.client.Get(rec.GetJobUid())
		if err != nil {
			t.Fatal(err)
		}
		if e.State != outbox.StateCommitted {
			t.Fatalf("job %s is %s (code %d %s: %s), want Committed", e.UID, e.State, e.Code, e.Codespace, e.Log)
		}
		var stored *aivmv1.StoredResult
		retry(t, func() (err error) { stored, err = env.rpc.Result(ctx, rec.GetJobUid()); return err })
		if stored == nil {
			t.Fatalf("job %s is not on chain", rec.GetJobUid())
		}
		if !proto.Equal(stored.GetResult(), rec) {
			t.Fatalf("job %s: chain holds %v, want %v", rec.GetJobUid(), stored.GetResult(), rec)
		}
		if stored.GetTxHash() != e.TxHash || stored.GetHeight() != e.Height || stored.GetIndex() != uint32(e.Proof.LeafIndex) {
			t.Fatalf("job %s: chain has tx %s height %d index %d, outbox has %s %d %d", e.UID,
				stored.GetTxHash(), stored.GetHeight(), stored.GetIndex(), e.TxHash, e.Height, e.Proof.LeafIndex)
		}
		root, err := merkle.HashFromBytes(stored.GetMerkleRoot())
		if err != nil {
			t.Fatal(err)
		}
		if err := merkle.Verify(e.Leaf, *e.Proof, root); err != nil {
			t.Fatalf("job %s: proof against the chain's root: %v", e.UID, err)
		}
	}
}

// walkCommitted calls fn with the height and messages of every
// successfully executed transaction in the devnet's blocks.
func walkCommitted(t *testing.T, env *chainEnv, fn func(height int64, msgs []proto.Message)) {
	t.Helper()
	ctx := ctxT(t)
	c, err := cmthttp.New(env.node.RPCURL())
	if err != nil {
		t.Fatal(err)
	}
	var height int64
	retry(t, func() (err error) { height, err = env.rpc.Height(ctx); return err })
	for h := int64(1); h <= height; h++ {
		hh := h
		var block *coretypes.ResultBlock
		retry(t, func() (err error) { block, err = c.Block(ctx, &hh); return err })
		if len(block.Block.Txs) == 0 {
			continue
		}
		var results *coretypes.ResultBlockResults
		retry(t, func() (err error) { results, err = c.BlockResults(ctx, &hh); return err })
		for i, raw := range block.Block.Txs {
			if results.TxResults[i].Code != 0 {
				continue
			}
			d, err := tx.Decode(raw)
			if err != nil {
				t.Fatal(err)
			}
			msgs, err := d.Msgs()
			if err != nil {
				t.Fatal(err)
			}
			fn(h, msgs)
		}
	}
}

// countInBlocks counts, per job UID, the results in successfully executed
// MsgSubmitResults transactions.
func countInBlocks(t *testing.T, env *chainEnv) map[string]int {
	t.Helper()
	counts := map[string]int{}
	walkCommitted(t, env, func(_ int64, msgs []proto.Message) {
		for _, m := range msgs {
			if sub, ok := m.(*aivmv1.MsgSubmitResults); ok {
				for _, r := range sub.GetResults() {
					counts[r.GetJobUid()]++
				}
			}
		}
	})
	return counts
}

// registrationHeights returns the heights of the blocks that committed a
// registration of provider, in order.
func registrationHeights(t *testing.T, env *chainEnv, provider string) []int64 {
	t.Helper()
	var hs []int64
	walkCommitted(t, env, func(h int64, msgs []proto.Message) {
		for _, m := range msgs {
			if reg, ok := m.(*aivmv1.MsgRegisterProvider); ok && reg.GetProvider() == provider {
				hs = append(hs, h)
			}
		}
	})
	return hs
}

// waitRegistrations waits until the chain holds a registration of the
// reporter's provider made at least after blocks after its first one, and
// returns the heights of every registration the chain committed.
func waitRegistrations(t *testing.T, env *chainEnv, r *reporter, after int64) []int64 {
	t.Helper()
	ctx := ctxT(t)
	var p *aivmv1.Provider
	retry(t, func() (err error) { p, err = env.rpc.Provider(ctx, r.client.Address()); return err })
	if p == nil {
		t.Fatal("provider not registered")
	}
	first := p.GetRegisteredHeight()
	eventually(t, fmt.Sprintf("a registration %d blocks after the first", after), func() bool {
		p, err := env.rpc.Provider(ctx, r.client.Address())
		return err == nil && p != nil && p.GetRegisteredHeight() >= first+after
	})
	return registrationHeights(t, env, r.client.Address())
}

// retry runs a read-only RPC call up to five times: a pooled keep-alive
// connection the node closes at the wrong moment fails one POST, which the
// HTTP client does not retry by itself.
func retry(t *testing.T, call func() error) {
	t.Helper()
	var err error
	for range 5 {
		if err = call(); err == nil {
			return
		}
	}
	t.Fatal(err)
}

func checkExactlyOnce(t *testing.T, env *chainEnv, uids []string) {
	t.Helper()
	counts := countInBlocks(t, env)
	for _, u := range uids {
		if counts[u] != 1 {
			t.Errorf("job %s is in %d committed transactions, want 1", u, counts[u])
		}
	}
	if len(counts) != len(uids) {
		t.Errorf("chain holds %d distinct results, want %d", len(counts), len(uids))
	}
}

// signedTx is a distinct signed transaction carrying a result, and the
// codes CheckTx answered each time it was offered.
type signedTx struct {
	hash  string
	codes []uint32
}

func (s signedTx) accepted() bool {
	for _, c := range s.codes {
		if c == 0 {
			return true
		}
	}
	return false
}

// signedByUID returns, per job UID, the distinct signed transactions
// carrying its result that were offered to the devnet's mempool, committed
// or not, in the order first offered.
func signedByUID(t *testing.T, env *chainEnv) map[string][]signedTx {
	t.Helper()
	env.offers.mu.Lock()
	defer env.offers.mu.Unlock()
	out := map[string][]signedTx{}
	for _, hash := range env.offers.order {
		of := env.offers.txs[hash]
		d, err := tx.Decode(of.raw)
		if err != nil {
			continue // not a transaction a client built
		}
		msgs, err := d.Msgs()
		if err != nil {
			continue
		}
		for _, m := range msgs {
			if sub, ok := m.(*aivmv1.MsgSubmitResults); ok {
				for _, r := range sub.GetResults() {
					out[r.GetJobUid()] = append(out[r.GetJobUid()], signedTx{hash: hash, codes: append([]uint32(nil), of.codes...)})
				}
			}
		}
	}
	return out
}

// checkSignedOnce asserts that each job UID was signed into exactly one
// distinct transaction, counting every transaction offered to the chain,
// whether or not it reached a block: a second signature is what could put
// a result on chain twice.
func checkSignedOnce(t *testing.T, env *chainEnv, uids []string) {
	t.Helper()
	signed := signedByUID(t, env)
	for _, u := range uids {
		if len(signed[u]) != 1 {
			t.Errorf("job %s was signed into %d distinct transactions, want 1: %+v", u, len(signed[u]), signed[u])
		}
	}
}

// checkResignedAfterRefusal is checkSignedOnce for tests that force the
// chain to refuse a batch at CheckTx with code: each job UID was signed
// into exactly one transaction the mempool accepted, and otherwise only
// into transactions refused with code (which entered no mempool, so could
// never land).
func checkResignedAfterRefusal(t *testing.T, env *chainEnv, uids []string, code uint32) {
	t.Helper()
	signed := signedByUID(t, env)
	for _, u := range uids {
		accepted := 0
		for _, s := range signed[u] {
			switch {
			case s.accepted():
				accepted++
			case len(s.codes) == 0 || s.codes[0] != code:
				t.Errorf("job %s was signed into tx %s, refused with codes %v, want code %d", u, s.hash, s.codes, code)
			}
		}
		if accepted != 1 {
			t.Errorf("job %s was signed into %d transactions the mempool accepted, want 1: %+v", u, accepted, signed[u])
		}
	}
}

func TestResultsCommittedAndQueryable(t *testing.T) {
	k := keyFor(t, "committed")
	env := startChain(t, devnet.Config{Accounts: map[string]uint64{addrOf(t, k): testFunds}})
	reg := prometheus.NewRegistry()
	r := startReporter(t, env, k, t.TempDir(), func(o *chainclient.Options) { o.Metrics = reg })

	recs := records("job", 0, 250)
	if err := r.client.Enqueue(ctxT(t), recs[:120]...); err != nil {
		t.Fatal(err)
	}
	// Enqueueing again, with overlap, adds nothing twice.
	if err := r.client.Enqueue(ctxT(t), recs[100:]...); err != nil {
		t.Fatal(err)
	}
	r.events.waitFinal(t, uidsOf(recs))
	checkOnChain(t, env, r, recs)
	checkExactlyOnce(t, env, uidsOf(recs))
	checkSignedOnce(t, env, uidsOf(recs))

	var p *aivmv1.Provider
	retry(t, func() (err error) { p, err = env.rpc.Provider(ctxT(t), r.client.Address()); return err })
	want := registration()
	want.Provider = r.client.Address()
	if p == nil || !proto.Equal(p.GetRegistration(), want) {
		t.Fatalf("provider on chain = %v, want registration %v", p, want)
	}
	// Batches hold at most MaxBatchResults results.
	txs := map[string]int{}
	for _, rec := range recs {
		e, _ := r.client.Get(rec.GetJobUid())
		txs[e.TxHash]++
	}
	for h, n := range txs {
		if n > 100 {
			t.Errorf("tx %s carries %d results, more than MaxBatchResults 100", h, n)
		}
	}
	if r.client.ChainError() != nil {
		t.Errorf("ChainError = %v on a healthy chain", r.client.ChainError())
	}
	if got := metricValue(t, reg, "aivm_chain_results_total", "committed"); got != float64(len(recs)) {
		t.Errorf("aivm_chain_results_total{outcome=committed} = %v, want %d", got, len(recs))
	}
	if got := metricValue(t, reg, "aivm_chain_transactions_total", "committed"); got != float64(len(txs)) {
		t.Errorf("aivm_chain_transactions_total{outcome=committed} = %v, want %d", got, len(txs))
	}
	// Each batch's lag was observed: it is committed at least one block
	// after the height it was built at.
	lag := histogramOf(t, reg, "aivm_chain_commit_lag_blocks")
	if lag.GetSampleCount() != uint64(len(txs)) || lag.GetSampleSum() < float64(len(txs)) {
		t.Errorf("aivm_chain_commit_lag_blocks: %d samples summing to %v blocks, want %d of at least a block each",
			lag.GetSampleCount(), lag.GetSampleSum(), len(txs))
	}
	if got := metricValue(t, reg, "aivm_chain_outbox_results", "Pending"); got != 0 {
		t.Errorf("aivm_chain_outbox_results{state=Pending} = %v with every result committed", got)
	}
}

// histogramOf returns the unlabelled histogram name from reg.
func histogramOf(t *testing.T, reg *prometheus.Registry, name string) *dto.Histogram {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() == name && len(f.GetMetric()) == 1 {
			return f.GetMetric()[0].GetHistogram()
		}
	}
	t.Fatalf("no histogram %s", name)
	return nil
}

// metricValue returns the value of the series of family name whose only
// label has value label (or the unlabelled series when label is empty).
func metricValue(t *testing.T, reg *prometheus.Registry, name, label string) float64 {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			if label == "" || (len(m.GetLabel()) == 1 && m.GetLabel()[0].GetValue() == label) {
				if m.GetCounter() != nil {
					return m.GetCounter().GetValue()
				}
				return m.GetGauge().GetValue()
			}
		}
	}
	return 0
}

func TestInvalidRecordIsRefusedAndNothingStored(t *testing.T) {
	k := keyFor(t, "invalid")
	env := startChain(t, devnet.Config{Accounts: map[string]uint64{addrOf(t, k): testFunds}})
	r := startReporter(t, env, k, t.TempDir(), nil)
	bad := record("bad")
	bad.OutputDigest = "not-a-digest"
	if err := r.client.Enqueue(ctxT(t), record("good"), bad); err == nil {
		t.Fatal("invalid record enqueued")
	}
	if _, err := r.client.Get("good"); !errors.Is(err, outbox.ErrNotFound) {
		t.Fatalf("valid record of a refused call was stored: %v", err)
	}
}

// TestSequenceMismatchRecovered has a second signer with the same key use
// sequences behind the client's back; the client's next batch is refused
// with "account sequence mismatch", and it re-syncs and sends again.
func TestSequenceMismatchRecovered(t *testing.T) {
	k := keyFor(t, "sequence")
	env := startChain(t, devnet.Config{Accounts: map[string]uint64{addrOf(t, k): testFunds}})
	r := startReporter(t, env, k, t.TempDir(), nil)
	first := records("first", 0, 30)
	if err := r.client.Enqueue(ctxT(t), first...); err != nil {
		t.Fatal(err)
	}
	r.events.waitFinal(t, uidsOf(first))

	// The other signer: three registrations with the next sequences.
	ctx := ctxT(t)
	num, seq, err := env.rpc.Account(ctx, addrOf(t, k))
	if err != nil {
		t.Fatal(err)
	}
	var last string
	for i := range uint64(3) {
		msg := registration()
		msg.Provider = addrOf(t, k)
		msg.Moniker = "other-signer"
		raw, hash, err := tx.BuildAndSign(tx.SignInput{Key: k, ChainID: env.node.ChainID(), AccountNumber: num,
			Sequence: seq + i, Msgs: []proto.Message{msg}, FeeAmount: 10_000, FeeDenom: "unes", GasLimit: 400_000})
		if err != nil {
			t.Fatal(err)
		}
		br, err := env.rpc.BroadcastSync(ctx, raw)
		if err != nil || br.Code != 0 {
			t.Fatalf("other signer's tx: %+v, %v", br, err)
		}
		last = hash
	}
	if res, err := env.rpc.WaitForTx(ctx, last, 20*time.Millisecond); err != nil || res.Code != 0 {
		t.Fatalf("other signer's last tx: %+v, %v", res, err)
	}

	second := records("second", 0, 30)
	if err := r.client.Enqueue(ctxT(t), second...); err != nil {
		t.Fatal(err)
	}
	r.events.waitFinal(t, uidsOf(second))
	checkOnChain(t, env, r, append(first, second...))
	requeued := 0
	for _, rec := range second {
		e, _ := r.client.Get(rec.GetJobUid())
		requeued += e.Requeues
	}
	if requeued == 0 {
		t.Fatal("no result was re-signed: the sequence mismatch path did not run")
	}
	checkExactlyOnce(t, env, uidsOf(append(first, second...)))
	checkSignedOnce(t, env, uidsOf(first))
	// The second batch was refused for its sequence at CheckTx, on purpose,
	// and only then signed again.
	checkResignedAfterRefusal(t, env, uidsOf(second), devnet.CodeWrongSequence)
}

// TestChainOutageDrains stops the devnet while results keep coming, then
// restarts it: the outbox drains, nothing lost, nothing twice.
func TestChainOutageDrains(t *testing.T) {
	k := keyFor(t, "outage")
	env := startChain(t, devnet.Config{Accounts: map[string]uint64{addrOf(t, k): testFunds}})
	r := startReporter(t, env, k, t.TempDir(), nil)
	before := records("before", 0, 100)
	if err := r.client.Enqueue(ctxT(t), before...); err != nil {
		t.Fatal(err)
	}
	r.events.waitFinal(t, uidsOf(before))

	env.stop(t)
	during := records("during", 0, 200)
	for i := 0; i < len(during); i += 20 {
		if err := r.client.Enqueue(ctxT(t), during[i:i+20]...); err != nil {
			t.Fatal(err)
		}
	}
	// The client notices the outage (bounded wait, no fixed sleep).
	deadline := time.Now().Add(waitLimit)
	for r.client.ChainError() == nil {
		if time.Now().After(deadline) {
			t.Fatal("client did not report the chain as unreachable")
		}
		r.client.Kick()
		time.Sleep(10 * time.Millisecond)
	}
	if err := r.client.ChainError(); !chainclient.IsUnreachable(err) {
		t.Fatalf("ChainError %v is not an unreachable-chain error", err)
	}
	counts, err := r.box.Counts()
	if err != nil {
		t.Fatal(err)
	}
	if counts[outbox.StateCommitted] != len(before) || counts[outbox.StatePending]+counts[outbox.StateBatched] != len(during) {
		t.Fatalf("outbox during the outage = %v", counts)
	}

	env.start(t)
	r.events.waitFinal(t, uidsOf(during))
	all := append(before, during...)
	checkOnChain(t, env, r, all)
	checkExactlyOnce(t, env, uidsOf(all))
	// Results in flight when the node stopped (and left its mempool) were
	// sent again with the same bytes, never signed again.
	checkSignedOnce(t, env, uidsOf(all))
}

// TestRejectedResultsSurface: a job UID another provider already put on
// chain is refused for good, and reported as rejected with the chain's code.
func TestRejectedResultsSurface(t *testing.T) {
	ka, kb := keyFor(t, "provider-a"), keyFor(t, "provider-b")
	env := startChain(t, devnet.Config{Accounts: map[string]uint64{addrOf(t, ka): testFunds, addrOf(t, kb): testFunds}})
	b := startReporter(t, env, kb, t.TempDir(), nil)
	taken := record("taken")
	if err := b.client.Enqueue(ctxT(t), taken); err != nil {
		t.Fatal(err)
	}
	b.events.waitFinal(t, []string{"taken"})

	// a's batch holds the taken UID and fresh ones: only the taken one is
	// refused, the others are signed again and committed.
	a := startReporter(t, env, ka, t.TempDir(), func(o *chainclient.Options) { o.BatchDelay = 200 * time.Millisecond })
	fresh := records("fresh", 0, 4)
	if err := a.client.Enqueue(ctxT(t), append([]*aivmv1.ResultRecord{taken}, fresh...)...); err != nil {
		t.Fatal(err)
	}
	a.events.waitFinal(t, append([]string{"taken"}, uidsOf(fresh)...))
	checkOnChain(t, env, a, fresh)
	e, err := a.client.Get("taken")
	if err != nil {
		t.Fatal(err)
	}
	if e.State != outbox.StateRejected || e.Codespace != aivmv1.Codespace || e.Code != devnet.CodeDuplicateResult || !strings.Contains(e.Log, "already on chain") {
		t.Fatalf("entry = %+v, want Rejected with aivm code %d", e, devnet.CodeDuplicateResult)
	}
	a.events.mu.Lock()
	ev := a.events.byUID["taken"]
	a.events.mu.Unlock()
	if len(ev) != 1 || ev[0].Type != chainclient.EventRejected || ev[0].Code != devnet.CodeDuplicateResult {
		t.Fatalf("events = %+v, want one Rejected", ev)
	}
	if e0, _ := a.client.Get(fresh[0].GetJobUid()); e0.Requeues != 1 {
		t.Fatalf("fresh result requeued %d times, want 1 (it shared the refused batch)", e0.Requeues)
	}
	// Signed again only after the chain refused their first batch.
	checkResignedAfterRefusal(t, env, uidsOf(fresh), devnet.CodeDuplicateResult)
	// And a's later results still go through.
	later := records("later", 0, 5)
	if err := a.client.Enqueue(ctxT(t), later...); err != nil {
		t.Fatal(err)
	}
	a.events.waitFinal(t, uidsOf(later))
	checkOnChain(t, env, a, later)
}

// TestRegistrationRenewed runs past several registration lifetimes: the
// chain records renewals, each no earlier than RenewBeforeBlocks before the
// registration it renews expires (so never one per loop step), and results
// sent later still land.
func TestRegistrationRenewed(t *testing.T) {
	const valid, margin = 100, 20
	k := keyFor(t, "renewal")
	env := startChain(t, devnet.Config{
		Accounts:            map[string]uint64{addrOf(t, k): testFunds},
		BlockTime:           20 * time.Millisecond,
		ProviderValidBlocks: valid,
	})
	r := startReporter(t, env, k, t.TempDir(), func(o *chainclient.Options) { o.RenewBeforeBlocks = margin })
	first := records("renew-a", 0, 5)
	if err := r.client.Enqueue(ctxT(t), first...); err != nil {
		t.Fatal(err)
	}
	r.events.waitFinal(t, uidsOf(first))
	// Two renewals: the earliest the second can be is 2*(valid-margin)+2
	// blocks after the first registration.
	regs := waitRegistrations(t, env, r, 2*(valid-margin)+2)
	if len(regs) < 3 {
		t.Fatalf("registrations at heights %v, want at least 3", regs)
	}
	for i := 1; i < len(regs); i++ {
		if regs[i] <= regs[i-1]+valid-margin {
			t.Errorf("registration at height %d renews the one at %d, expiring at %d, more than %d blocks early (all: %v)",
				regs[i], regs[i-1], regs[i-1]+valid, margin, regs)
		}
	}
	later := records("renew-b", 0, 5)
	if err := r.client.Enqueue(ctxT(t), later...); err != nil {
		t.Fatal(err)
	}
	r.events.waitFinal(t, uidsOf(later))
	checkOnChain(t, env, r, append(first, later...))
}

func TestNewValidatesOptions(t *testing.T) {
	box, err := outbox.Open(t.TempDir(), outbox.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer box.Close()
	k := keyFor(t, "opts")
	// New does not dial; an unreachable address is enough here.
	chain, err := rpc.New("http://127.0.0.1:1")
	if err != nil {
		t.Fatal(err)
	}
	tests := map[string]chainclient.Options{
		"no key":          {Outbox: box},
		"no outbox":       {Key: k},
		"tiny tx bytes":   {Key: k, Outbox: box, MaxTxBytes: 100},
		"backoff order":   {Key: k, Outbox: box, MinBackoff: time.Minute, MaxBackoff: time.Second},
		"bad gas price":   {Key: k, Outbox: box, GasPrice: -1},
		"negative batch":  {Key: k, Outbox: box, MaxBatchResults: -1},
		"negative delay":  {Key: k, Outbox: box, BatchDelay: -time.Second},
		"negative retain": {Key: k, Outbox: box, RetainBlocks: -1},
	}
	for name, o := range tests {
		t.Run(name, func(t *testing.T) {
			if o.Key != nil && o.Outbox != nil {
				o.Chain = chain
			}
			if _, err := chainclient.New(o); err == nil {
				t.Fatal("invalid options accepted")
			}
		})
	}
	if _, err := chainclient.New(chainclient.Options{Key: k, Outbox: box}); err == nil {
		t.Fatal("options without a chain accepted")
	}
}

// TestReceiptVerifiesOnChain signs receipts for committed results and checks
// them against the chain, as `aivmctl receipt verify --rpc` does.
func TestReceiptVerifiesOnChain(t *testing.T) {
	k := keyFor(t, "receipts")
	env := startChain(t, devnet.Config{Accounts: map[string]uint64{addrOf(t, k): testFunds}})
	r := startReporter(t, env, k, t.TempDir(), nil)
	recs := records("rcpt", 0, 7)
	if err := r.client.Enqueue(ctxT(t), recs...); err != nil {
		t.Fatal(err)
	}
	r.events.waitFinal(t, uidsOf(recs))
	withChain := func(rec *aivmv1.ResultRecord) *receipt.Receipt {
		rc, err := r.client.SignReceipt(rec)
		if err != nil {
			t.Fatal(err)
		}
		e, err := r.client.Get(rec.GetJobUid())
		if err != nil {
			t.Fatal(err)
		}
		rc.Chain = &receipt.Inclusion{ChainID: env.node.ChainID(), TxHash: e.TxHash, Height: e.Height, Root: e.Root, Proof: *e.Proof}
		return rc
	}
	for _, rec := range recs {
		if _, err := receipt.VerifyOnChain(ctxT(t), env.rpc, withChain(rec)); err != nil {
			t.Fatalf("job %s: %v", rec.GetJobUid(), err)
		}
	}
	tests := map[string]func() *receipt.Receipt{
		"not on chain": func() *receipt.Receipt {
			rc, _ := receipt.Sign(k, "", record("never-sent"))
			return rc
		},
		"other height": func() *receipt.Receipt {
			rc := withChain(recs[0])
			rc.Chain.Height++
			return rc
		},
		"other tx": func() *receipt.Receipt {
			rc := withChain(recs[0])
			rc.Chain.TxHash = withChain(recs[6]).Chain.TxHash
			if rc.Chain.TxHash == withChain(recs[0]).Chain.TxHash {
				rc.Chain.TxHash = "0000000000000000000000000000000000000000000000000000000000000000"
			}
			return rc
		},
		"signed by another provider": func() *receipt.Receipt {
			rc, _ := receipt.Sign(keyFor(t, "impostor"), "", recs[1])
			return rc
		},
		"other record": func() *receipt.Receipt {
			changed := proto.Clone(recs[2]).(*aivmv1.ResultRecord)
			changed.OutputTokens++
			rc, _ := receipt.Sign(k, "", changed)
			return rc
		},
	}
	for name, mk := range tests {
		t.Run(name, func(t *testing.T) {
			if _, err := receipt.VerifyOnChain(ctxT(t), env.rpc, mk()); err == nil {
				t.Fatal("receipt verified against the chain")
			}
		})
	}
}

func TestUnfundedAccountIsReported(t *testing.T) {
	k := keyFor(t, "unfunded")
	env := startChain(t, devnet.Config{Accounts: map[string]uint64{addrOf(t, keyFor(t, "someone")): testFunds}})
	r := startReporter(t, env, k, t.TempDir(), nil)
	if err := r.client.Enqueue(ctxT(t), record("poor")); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(waitLimit)
	for {
		err := r.client.ChainError()
		if err != nil {
			if !strings.Contains(err.Error(), "fund it first") || chainclient.IsUnreachable(err) {
				t.Fatalf("ChainError = %v, want an unfunded-account error", err)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no error for an unfunded account")
		}
		r.client.Kick()
		time.Sleep(10 * time.Millisecond)
	}
	if e, err := r.client.Get("poor"); err != nil || e.State != outbox.StatePending {
		t.Fatalf("entry = %+v, %v; want Pending", e, err)
	}
}

// TestCommittedResultsArePruned keeps committed results for RetainBlocks
// blocks only; the chain still holds them.
func TestCommittedResultsArePruned(t *testing.T) {
	k := keyFor(t, "prune")
	env := startChain(t, devnet.Config{Accounts: map[string]uint64{addrOf(t, k): testFunds}, BlockTime: 20 * time.Millisecond})
	r := startReporter(t, env, k, t.TempDir(), func(o *chainclient.Options) { o.RetainBlocks = 5 })
	recs := records("pruned", 0, 20)
	if err := r.client.Enqueue(ctxT(t), recs...); err != nil {
		t.Fatal(err)
	}
	r.events.waitFinal(t, uidsOf(recs))
	e, err := r.client.Get(recs[0].GetJobUid())
	if err != nil {
		t.Fatal(err)
	}
	if err := env.node.WaitForHeight(ctxT(t), e.Height+20); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(waitLimit)
	for {
		counts, err := r.box.Counts()
		if err != nil {
			t.Fatal(err)
		}
		if len(counts) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("outbox still holds %v", counts)
		}
		r.client.Kick()
		time.Sleep(10 * time.Millisecond)
	}
	for _, rec := range recs {
		var stored *aivmv1.StoredResult
		retry(t, func() (err error) { stored, err = env.rpc.Result(ctxT(t), rec.GetJobUid()); return err })
		if stored == nil {
			t.Fatalf("job %s is gone from the chain after pruning", rec.GetJobUid())
		}
	}
}

func TestParseGasPrice(t *testing.T) {
	for in, want := range map[string]struct {
		amount float64
		denom  string
	}{"0.025unes": {0.025, "unes"}, "1stake": {1, "stake"}, ".5uatom": {0.5, "uatom"}, "0ibc/ABC": {0, "ibc/ABC"}} {
		v, d, err := chainclient.ParseGasPrice(in)
		if err != nil || v != want.amount || d != want.denom {
			t.Errorf("ParseGasPrice(%q) = %v, %q, %v; want %v, %q", in, v, d, err, want.amount, want.denom)
		}
	}
	for _, bad := range []string{"", "0.025", "unes", "-1unes", "1.unes", "0.025 unes"} {
		if _, _, err := chainclient.ParseGasPrice(bad); err == nil {
			t.Errorf("ParseGasPrice(%q) succeeded", bad)
		}
	}
}

// TestLostOutboxRecoversOwnResults: after the outbox is lost, results
// enqueued again that this provider already put on chain are recorded as
// committed where they are, with their proofs, and nothing lands twice.
func TestLostOutboxRecoversOwnResults(t *testing.T) {
	k := keyFor(t, "lost-outbox")
	env := startChain(t, devnet.Config{Accounts: map[string]uint64{addrOf(t, k): testFunds}})
	withRaw := func(o *chainclient.Options) {
		c, err := chainclient.NewRPCChain(env.node.RPCURL())
		if err != nil {
			t.Fatal(err)
		}
		o.Chain = c
		o.BatchDelay = 100 * time.Millisecond
	}
	first := startReporter(t, env, k, t.TempDir(), withRaw)
	old := records("lost", 0, 10)
	if err := first.client.Enqueue(ctxT(t), old...); err != nil {
		t.Fatal(err)
	}
	first.events.waitFinal(t, uidsOf(old))
	before := map[string]outbox.Entry{}
	for _, rec := range old {
		e, err := first.client.Get(rec.GetJobUid())
		if err != nil {
			t.Fatal(err)
		}
		before[e.UID] = e
	}
	first.stop()

	second := startReporter(t, env, k, t.TempDir(), withRaw)
	all := append(append([]*aivmv1.ResultRecord{}, old...), records("lost", 10, 15)...)
	if err := second.client.Enqueue(ctxT(t), all...); err != nil {
		t.Fatal(err)
	}
	second.events.waitFinal(t, uidsOf(all))
	checkOnChain(t, env, second, all)
	for uid, b := range before {
		e, err := second.client.Get(uid)
		if err != nil {
			t.Fatal(err)
		}
		if e.TxHash != b.TxHash || e.Height != b.Height || e.Root != b.Root || e.Proof.LeafIndex != b.Proof.LeafIndex {
			t.Fatalf("recovered %s = tx %s height %d, first run had tx %s height %d", uid, e.TxHash, e.Height, b.TxHash, b.Height)
		}
	}
	checkExactlyOnce(t, env, uidsOf(all))
	// The second outbox signed every result again on purpose; the chain
	// refused that batch as holding results already on chain.
	checkResignedAfterRefusal(t, env, uidsOf(all), devnet.CodeDuplicateResult)
}

// TestRPCChainURLSecretsNeverInErrors: NewRPCChain names a URL it refuses
// without its password or query.
func TestRPCChainURLSecretsNeverInErrors(t *testing.T) {
	_, err := chainclient.NewRPCChain("http://alice:s3cr3tpass@127.0.0.1:1x/?apikey=k3y-s3cr3t")
	if err == nil {
		t.Fatal("bad URL accepted")
	}
	for _, s := range []string{"s3cr3tpass", "apikey", "k3y-s3cr3t"} {
		if strings.Contains(err.Error(), s) {
			t.Errorf("error %q reveals %q", err, s)
		}
	}
}

// heldBatchEnv starts a devnet whose node answers from its mempool rather
// than a cache (cache_size = 0) and whose proposer holds result batches out
// of blocks while hold is set, and a reporter that resends after 2 blocks.
// It enqueues recs and returns once their batch was resent twice and
// refused both times for its sequence (its own, in the mempool, holds it),
// or was signed into a second transaction.
func heldBatchEnv(t *testing.T, seed string, hold *atomic.Bool, recs []*aivmv1.ResultRecord) (*chainEnv, *reporter) {
	t.Helper()
	k := keyFor(t, seed)
	hold.Store(true)
	env := startChain(t, devnet.Config{
		Accounts:       map[string]uint64{addrOf(t, k): testFunds},
		NoMempoolCache: true,
		HoldTx:         func(raw []byte) bool { return hold.Load() && carriesResults(raw) },
	})
	r := startReporter(t, env, k, t.TempDir(), func(o *chainclient.Options) { o.ResendAfterBlocks = 2 })
	if err := r.client.Enqueue(ctxT(t), recs...); err != nil {
		t.Fatal(err)
	}
	eventually(t, "batch resent and refused twice while in the mempool", func() bool {
		txs := signedByUID(t, env)[recs[0].GetJobUid()]
		if len(txs) > 1 {
			return true
		}
		refused := 0
		for _, s := range txs {
			for _, c := range s.codes {
				if c == devnet.CodeWrongSequence {
					refused++
				}
			}
		}
		return refused >= 2
	})
	return env, r
}

// TestBatchInMempoolNeverSignedAgain: a batch still in a mempool can land,
// so a resend refused for its sequence while the chain's sequence has not
// passed the batch's must not sign its results again; they land once, by
// the first transaction.
func TestBatchInMempoolNeverSignedAgain(t *testing.T) {
	var hold atomic.Bool
	recs := records("held", 0, 5)
	env, r := heldBatchEnv(t, "held-batch", &hold, recs)
	checkSignedOnce(t, env, uidsOf(recs))
	e, err := r.client.Get(recs[0].GetJobUid())
	if err != nil {
		t.Fatal(err)
	}
	if e.State != outbox.StateBatched {
		t.Fatalf("held result is %s, want Batched", e.State)
	}
	first := e.TxHash

	hold.Store(false)
	r.events.waitFinal(t, uidsOf(recs))
	checkOnChain(t, env, r, recs)
	checkExactlyOnce(t, env, uidsOf(recs))
	checkSignedOnce(t, env, uidsOf(recs))
	for _, rec := range recs {
		e, _ := r.client.Get(rec.GetJobUid())
		if e.TxHash != first || e.Requeues != 0 {
			t.Errorf("job %s committed by tx %s after %d requeues, want %s and none", e.UID, e.TxHash, e.Requeues, first)
		}
	}
}

// TestDroppedBatchSignedAgainOnceSequencePasses: a batch kept waiting in
// flight that then leaves every mempool (the node restarts) while another
// transaction takes its sequence can never land; its results are signed
// again, once, and land.
func TestDroppedBatchSignedAgainOnceSequencePasses(t *testing.T) {
	var hold atomic.Bool
	recs := records("dropped", 0, 5)
	env, r := heldBatchEnv(t, "dropped-batch", &hold, recs)
	checkSignedOnce(t, env, uidsOf(recs))
	e, err := r.client.Get(recs[0].GetJobUid())
	if err != nil {
		t.Fatal(err)
	}
	first := e.TxHash

	// Out of the client's sight: the node restarts with an empty mempool
	// and another transaction of the same key takes the batch's sequence.
	env.chain.cut.Store(true)
	env.stop(t)
	env.start(t)
	registerOutOfBand(t, env, keyFor(t, "dropped-batch"))
	if e, _ := r.client.Get(recs[0].GetJobUid()); e.State != outbox.StateBatched || e.TxHash != first {
		t.Fatalf("result is %s in %s before the client saw the chain again, want Batched in %s", e.State, e.TxHash, first)
	}
	hold.Store(false)
	env.chain.cut.Store(false)

	r.events.waitFinal(t, uidsOf(recs))
	checkOnChain(t, env, r, recs)
	checkExactlyOnce(t, env, uidsOf(recs))
	// Signed twice on purpose: the first transaction was dropped and its
	// sequence used, so it could never land.
	signed := signedByUID(t, env)
	for _, rec := range recs {
		e, _ := r.client.Get(rec.GetJobUid())
		txs := signed[rec.GetJobUid()]
		if len(txs) != 2 || txs[0].hash != first || txs[1].hash != e.TxHash || e.TxHash == first || e.Requeues != 1 {
			t.Errorf("job %s: signed into %+v, committed by %s after %d requeues; want %s then the committing tx, 1 requeue",
				e.UID, txs, e.TxHash, e.Requeues, first)
		}
	}
}

// oneFeeBalance is what the account of heldBatchOnOneFee holds after its
// registration: with fees of about 25_000unes (GasBase 1_000_000 at the
// devnet's 0.025 gas price, the gas per byte and per result small beside
// it) it pays one fee, not two.
const oneFeeBalance = 40_000

// heldBatchOnOneFee starts a devnet without a mempool cache that holds
// result transactions out of blocks while hold is set, and a reporter for
// key keyName whose account pays one fee (oneFeeBalance); it enqueues five
// results named recPrefix and waits until their batch is accepted into the
// mempool. It returns that batch's hash and decoded transaction.
func heldBatchOnOneFee(t *testing.T, keyName, recPrefix string) (env *chainEnv, r *reporter, k *keys.Key, hold *atomic.Bool,
	recs []*aivmv1.ResultRecord, first string, d *tx.Decoded) {
	t.Helper()
	const gasBase, regFee = 1_000_000, 10_000
	k = keyFor(t, keyName)
	hold = &atomic.Bool{}
	hold.Store(true)
	env = startChain(t, devnet.Config{
		Accounts:       map[string]uint64{addrOf(t, k): regFee + oneFeeBalance},
		NoMempoolCache: true,
		HoldTx:         func(raw []byte) bool { return hold.Load() && carriesResults(raw) },
	})
	registerOutOfBand(t, env, k)
	r = startReporter(t, env, k, t.TempDir(), func(o *chainclient.Options) {
		o.ResendAfterBlocks = 2
		o.GasBase = gasBase
	})
	recs = records(recPrefix, 0, 5)
	if err := r.client.Enqueue(ctxT(t), recs...); err != nil {
		t.Fatal(err)
	}
	eventually(t, "batch accepted into the mempool", func() bool {
		txs := signedByUID(t, env)[recs[0].GetJobUid()]
		return len(txs) > 0 && txs[0].accepted()
	})
	first = signedByUID(t, env)[recs[0].GetJobUid()][0].hash
	env.offers.mu.Lock()
	d, err := tx.Decode(env.offers.txs[first].raw)
	env.offers.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	return env, r, k, hold, recs, first, d
}

// TestResendRefusedForFundsKeepsBatchInFlight: the account's balance
// covers one fee, so the resend of a batch held in the node's mempool (a
// node without a mempool cache checks it again) is refused for
// insufficient funds, the mempool's state having paid its fee already.
// That refusal does not prove the batch can never land, so its results
// are not signed again: they land once, by the first transaction. Results
// enqueued meanwhile are refused at their first broadcast (so in no
// mempool), signed again, and land once the account is funded.
func TestResendRefusedForFundsKeepsBatchInFlight(t *testing.T) {
	env, r, k, hold, recs, first, d := heldBatchOnOneFee(t, "funds-resend", "funds")
	if fee := d.Fee["unes"]; fee == nil || fee.Uint64() > oneFeeBalance || 2*fee.Uint64() <= oneFeeBalance {
		t.Fatalf("batch fee %v: a balance of %d must pay it once, not twice", fee, oneFeeBalance)
	}
	later := records("funds-later", 0, 5)
	if err := r.client.Enqueue(ctxT(t), later...); err != nil {
		t.Fatal(err)
	}
	eventually(t, "batch resent and refused twice for funds while in the mempool", func() bool {
		txs := signedByUID(t, env)[recs[0].GetJobUid()]
		if len(txs) > 1 {
			return true
		}
		refused := 0
		for _, c := range txs[0].codes {
			if c == devnet.CodeInsufficientFunds {
				refused++
			}
		}
		return refused >= 2
	})
	checkSignedOnce(t, env, uidsOf(recs))
	if e, err := r.client.Get(recs[0].GetJobUid()); err != nil || e.State != outbox.StateBatched || e.TxHash != first {
		t.Fatalf("held result is %s in %q after %d requeues (%v), want Batched in %s", e.State, e.TxHash, e.Requeues, err, first)
	}

	hold.Store(false)
	r.events.waitFinal(t, uidsOf(recs))
	for _, rec := range recs {
		e, _ := r.client.Get(rec.GetJobUid())
		if e.State != outbox.StateCommitted || e.TxHash != first || e.Requeues != 0 {
			t.Errorf("job %s is %s by tx %s after %d requeues, want Committed by %s and none", e.UID, e.State, e.TxHash, e.Requeues, first)
		}
	}
	if _, err := env.node.Fund(ctxT(t), addrOf(t, k), 1_000_000); err != nil {
		t.Fatal(err)
	}
	r.events.waitFinal(t, uidsOf(later))
	all := append(recs, later...)
	checkOnChain(t, env, r, all)
	checkExactlyOnce(t, env, uidsOf(all))
	checkSignedOnce(t, env, uidsOf(recs))
	// Refused at their first broadcast for funds, on purpose, and only
	// then signed again.
	checkResignedAfterRefusal(t, env, uidsOf(later), devnet.CodeInsufficientFunds)
}

// TestRefusedFirstBroadcastSignsAboveBatchInFlight: a batch A held in the
// node's mempool is in flight at the chain's next sequence; a later
// batch's first broadcast is refused for insufficient funds (A's fee is
// already spent in the mempool's state). That refusal used no sequence,
// but A still holds its own: no later transaction may be signed at A's
// sequence (on a node without A it would take A's place and force A's
// results to be signed again). Once the account is funded the later
// results are signed above A, and everything lands once.
func TestRefusedFirstBroadcastSignsAboveBatchInFlight(t *testing.T) {
	env, r, k, hold, recs, first, d := heldBatchOnOneFee(t, "funds-first", "first-held")
	heldSeq := d.Sequence

	later := records("first-refused", 0, 5)
	if err := r.client.Enqueue(ctxT(t), later...); err != nil {
		t.Fatal(err)
	}
	// Refused for funds at least twice: the client signed the later
	// results again after their first refusal at least once.
	eventually(t, "later results refused twice for funds", func() bool {
		refused := 0
		for _, s := range signedByUID(t, env)[later[0].GetJobUid()] {
			for _, c := range s.codes {
				if c == devnet.CodeInsufficientFunds {
					refused++
				}
			}
		}
		return refused >= 2
	})
	if _, err := env.node.Fund(ctxT(t), addrOf(t, k), 1_000_000); err != nil {
		t.Fatal(err)
	}
	eventually(t, "later results accepted into the mempool", func() bool {
		for _, s := range signedByUID(t, env)[later[0].GetJobUid()] {
			if s.accepted() {
				return true
			}
		}
		return false
	})
	if e, err := r.client.Get(recs[0].GetJobUid()); err != nil || e.State != outbox.StateBatched || e.TxHash != first {
		t.Fatalf("held result is %s in %q after %d requeues (%v), want Batched in %s", e.State, e.TxHash, e.Requeues, err, first)
	}
	hold.Store(false)
	all := append(recs, later...)
	r.events.waitFinal(t, uidsOf(all))

	// Every transaction of k's offered to the chain, by sequence: only A
	// ever had A's sequence.
	env.offers.mu.Lock()
	for _, hash := range env.offers.order {
		d, err := tx.Decode(env.offers.txs[hash].raw)
		if err != nil || string(d.PubKey) != string(k.PubKeyBytes()) {
			continue
		}
		if d.Sequence == heldSeq && hash != first {
			t.Errorf("tx %s was signed at sequence %d, held by batch %s in flight (offered with codes %v)",
				hash, heldSeq, first, env.offers.txs[hash].codes)
		}
	}
	env.offers.mu.Unlock()
	for _, rec := range recs {
		e, _ := r.client.Get(rec.GetJobUid())
		if e.State != outbox.StateCommitted || e.TxHash != first || e.Requeues != 0 {
			t.Errorf("job %s is %s by tx %s after %d requeues, want Committed by %s and none", e.UID, e.State, e.TxHash, e.Requeues, first)
		}
	}
	checkOnChain(t, env, r, all)
	checkExactlyOnce(t, env, uidsOf(all))
	checkSignedOnce(t, env, uidsOf(recs))
	// Refused at their first broadcast for funds, on purpose, and only
	// then signed again: never refused for their sequence.
	checkResignedAfterRefusal(t, env, uidsOf(later), devnet.CodeInsufficientFunds)
}

// TestResendRefusedForSignatureIsRejected: a resend refused for its
// signature (the client signs for another chain id) can never land on any
// node, so the batch settles as a refused first broadcast does: its
// results are rejected with the chain's code, not signed again. The first
// broadcast is lost on the way, so the chain first sees the resend.
func TestResendRefusedForSignatureIsRejected(t *testing.T) {
	k := keyFor(t, "signature-resend")
	env := startChain(t, devnet.Config{Accounts: map[string]uint64{addrOf(t, k): testFunds}})
	registerOutOfBand(t, env, k)
	env.chain.drop.Store(1)
	r := startReporter(t, env, k, t.TempDir(), func(o *chainclient.Options) { o.ChainID = env.node.ChainID() + "-other" })
	recs := records("signature", 0, 5)
	if err := r.client.Enqueue(ctxT(t), recs...); err != nil {
		t.Fatal(err)
	}
	r.events.waitFinal(t, uidsOf(recs))
	if n := env.chain.drop.Load(); n != 0 {
		t.Fatalf("%d broadcasts left to drop, want the first one dropped", n)
	}
	signed := signedByUID(t, env)
	for _, rec := range recs {
		e, _ := r.client.Get(rec.GetJobUid())
		if e.State != outbox.StateRejected || e.Codespace != devnet.CodespaceSDK || e.Code != devnet.CodeUnauthorized || e.Requeues != 0 {
			t.Errorf("job %s is %s with code %d (%s) after %d requeues, want Rejected with code %d (%s) and none",
				e.UID, e.State, e.Code, e.Codespace, e.Requeues, devnet.CodeUnauthorized, devnet.CodespaceSDK)
		}
		txs := signed[rec.GetJobUid()]
		if len(txs) != 1 || txs[0].hash != e.TxHash || len(txs[0].codes) != 1 || txs[0].codes[0] != devnet.CodeUnauthorized {
			t.Errorf("job %s was signed into %+v, want only %s, offered once and refused with code %d", e.UID, txs, e.TxHash, devnet.CodeUnauthorized)
		}
	}
}

// logLines is a logger that keeps every line.
type logLines struct {
	mu    sync.Mutex
	lines []string
}

func (l *logLines) logger() logr.Logger {
	return funcr.New(func(prefix, args string) {
		l.mu.Lock()
		l.lines = append(l.lines, prefix+" "+args)
		l.mu.Unlock()
	}, funcr.Options{})
}

func (l *logLines) containing(s string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, line := range l.lines {
		if strings.Contains(line, s) {
			out = append(out, line)
		}
	}
	return out
}

// TestRenewMarginClampedToValidity: a RenewBeforeBlocks at or above the
// validity the chain grants would renew (and pay) at every step; once a
// registration is committed the margin becomes half the validity, with one
// warning.
func TestRenewMarginClampedToValidity(t *testing.T) {
	const valid, margin = 30, 50
	k := keyFor(t, "clamp")
	env := startChain(t, devnet.Config{
		Accounts:            map[string]uint64{addrOf(t, k): testFunds},
		BlockTime:           20 * time.Millisecond,
		ProviderValidBlocks: valid,
	})
	var logs logLines
	r := startReporter(t, env, k, t.TempDir(), func(o *chainclient.Options) {
		o.RenewBeforeBlocks = margin
		o.Logger = logs.logger()
	})
	recs := records("clamp", 0, 5)
	if err := r.client.Enqueue(ctxT(t), recs...); err != nil {
		t.Fatal(err)
	}
	r.events.waitFinal(t, uidsOf(recs))
	regs := waitRegistrations(t, env, r, 2*(valid-valid/2)+2)
	if len(regs) < 3 {
		t.Fatalf("registrations at heights %v, want at least 3", regs)
	}
	for i := 1; i < len(regs); i++ {
		if regs[i] <= regs[i-1]+valid-valid/2 {
			t.Errorf("registration at height %d renews the one at %d, expiring at %d, more than %d blocks early (all: %v)",
				regs[i], regs[i-1], regs[i-1]+valid, valid/2, regs)
		}
	}
	warnings := logs.containing("RenewBeforeBlocks")
	if len(warnings) != 1 {
		t.Fatalf("%d RenewBeforeBlocks warnings, want 1: %q", len(warnings), warnings)
	}
	for _, want := range []string{`"renewBeforeBlocks"=50`, `"validityBlocks"=30`, `"effectiveRenewBeforeBlocks"=15`} {
		if !strings.Contains(warnings[0], want) {
			t.Errorf("warning %q lacks %s", warnings[0], want)
		}
	}
	checkOnChain(t, env, r, recs)
}
