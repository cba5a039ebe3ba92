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
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/testr"

	chainclient "github.com/aivm-dev/aivm-operator/chain-client"
	"github.com/aivm-dev/aivm-operator/chain-client/aivmv1"
	"github.com/aivm-dev/aivm-operator/chain-client/devnet"
	"github.com/aivm-dev/aivm-operator/chain-client/keys"
	"github.com/aivm-dev/aivm-operator/chain-client/outbox"
	"github.com/aivm-dev/aivm-operator/chain-client/rpc"
	"github.com/aivm-dev/aivm-operator/chain-client/tx"
)

const (
	testBlockTime = 100 * time.Millisecond
	testFunds     = 1_000_000_000_000
	// waitLimit bounds every wait for the chain in these tests.
	waitLimit = 60 * time.Second
)

func hexOf(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// record returns a valid result record for uid.
func record(uid string) *aivmv1.ResultRecord {
	return &aivmv1.ResultRecord{
		JobUid:       uid,
		KernelDigest: hexOf("kernel"),
		ModelDigest:  hexOf("model"),
		InputDigest:  hexOf("in " + uid),
		OutputDigest: hexOf("out " + uid),
		InputTokens:  uint64(len(uid)),
		OutputTokens: 42,
		DurationMs:   7,
	}
}

func records(prefix string, from, to int) []*aivmv1.ResultRecord {
	out := make([]*aivmv1.ResultRecord, 0, to-from)
	for i := from; i < to; i++ {
		out = append(out, record(fmt.Sprintf("%s-%05d", prefix, i)))
	}
	return out
}

func keyFor(t testing.TB, seed string) *keys.Key {
	t.Helper()
	h := sha256.Sum256([]byte(seed))
	k, err := keys.FromHex(hex.EncodeToString(h[:]))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func addrOf(t testing.TB, k *keys.Key) string {
	t.Helper()
	a, err := k.Address("")
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func registration() *aivmv1.MsgRegisterProvider {
	return &aivmv1.MsgRegisterProvider{
		Moniker:        "test-provider",
		Endpoint:       "https://provider.example:8443",
		Version:        "v0.1.0",
		Gpus:           []*aivmv1.GPU{{Product: "NVIDIA A100-SXM4-40GB", MemoryBytes: 40 << 30}},
		TotalVramBytes: 40 << 30,
	}
}

// chainEnv is a devnet and an RPC client for it.
type chainEnv struct {
	cfg  devnet.Config
	node *devnet.Node
	rpc  *rpc.Client
	// chain is what clients use: the RPC client of the current node. A
	// devnet stopped in process leaves its keep-alive HTTP connections
	// answering from closed databases, which a real node's restart never
	// does (its connections close), so after a restart the clients move to
	// a fresh RPC client.
	chain *liveChain
	// offers holds every transaction the devnet's mempool was offered.
	offers *offers
}

// offers records the transactions offered to a devnet's mempool (through
// devnet.Config.OnCheckTx), so tests see every transaction a client signed
// and sent, not only those in blocks.
type offers struct {
	mu    sync.Mutex
	order []string          // hashes, first offer first
	txs   map[string]*offer // by hash
}

// offer is one distinct signed transaction and the codes CheckTx answered
// each time it was offered.
type offer struct {
	raw   []byte
	codes []uint32
}

func (o *offers) record(raw []byte, code uint32) {
	h := sha256.Sum256(raw)
	hash := strings.ToUpper(hex.EncodeToString(h[:]))
	o.mu.Lock()
	defer o.mu.Unlock()
	of := o.txs[hash]
	if of == nil {
		of = &offer{raw: append([]byte(nil), raw...)}
		o.txs[hash] = of
		o.order = append(o.order, hash)
	}
	of.codes = append(of.codes, code)
}

// liveChain forwards to the RPC client of the devnet's current run. While
// cut is set, every call fails as if the client's network to the node were
// down, while the node itself runs on. While drop is above zero, each
// broadcast counts it down and fails without reaching the node, as one
// lost on the way.
type liveChain struct {
	cur  atomic.Pointer[rpc.Client]
	cut  atomic.Bool
	drop atomic.Int32
}

var (
	errCut     = errors.New("network to the node cut by the test")
	errDropped = errors.New("broadcast lost on the way to the node by the test")
)

func (l *liveChain) client() (*rpc.Client, error) {
	if l.cut.Load() {
		return nil, errCut
	}
	return l.cur.Load(), nil
}

func (l *liveChain) Account(ctx context.Context, a string) (uint64, uint64, error) {
	c, err := l.client()
	if err != nil {
		return 0, 0, err
	}
	return c.Account(ctx, a)
}
func (l *liveChain) BroadcastSync(ctx context.Context, b []byte) (rpc.BroadcastResult, error) {
	c, err := l.client()
	if err != nil {
		return rpc.BroadcastResult{}, err
	}
	for n := l.drop.Load(); n > 0; n = l.drop.Load() {
		if l.drop.CompareAndSwap(n, n-1) {
			return rpc.BroadcastResult{}, errDropped
		}
	}
	return c.BroadcastSync(ctx, b)
}
func (l *liveChain) Tx(ctx context.Context, h string) (rpc.TxResult, error) {
	c, err := l.client()
	if err != nil {
		return rpc.TxResult{}, err
	}
	return c.Tx(ctx, h)
}
func (l *liveChain) Provider(ctx context.Context, a string) (*aivmv1.Provider, error) {
	c, err := l.client()
	if err != nil {
		return nil, err
	}
	return c.Provider(ctx, a)
}
func (l *liveChain) Height(ctx context.Context) (int64, error) {
	c, err := l.client()
	if err != nil {
		return 0, err
	}
	return c.Height(ctx)
}
func (l *liveChain) Result(ctx context.Context, uid string) (*aivmv1.StoredResult, error) {
	c, err := l.client()
	if err != nil {
		return nil, err
	}
	return c.Result(ctx, uid)
}

func startChain(t testing.TB, cfg devnet.Config) *chainEnv {
	t.Helper()
	if cfg.Home == "" {
		cfg.Home = t.TempDir()
	}
	if cfg.BlockTime == 0 {
		cfg.BlockTime = testBlockTime
	}
	e := &chainEnv{cfg: cfg, chain: &liveChain{}, offers: &offers{txs: map[string]*offer{}}}
	if e.cfg.OnCheckTx == nil {
		e.cfg.OnCheckTx = e.offers.record
	}
	e.start(t)
	t.Cleanup(func() { e.node.Stop() })
	return e
}

func (e *chainEnv) start(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	n, err := devnet.Start(ctx, e.cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.node = n
	// Restart on the same port so clients keep their URL.
	e.cfg.RPCListenAddr = "tcp://" + strings.TrimPrefix(n.RPCURL(), "http://")
	if e.rpc, err = rpc.New(n.RPCURL()); err != nil {
		t.Fatal(err)
	}
	e.chain.cur.Store(e.rpc)
}

func (e *chainEnv) stop(t testing.TB) {
	t.Helper()
	if err := e.node.Stop(); err != nil {
		t.Fatal(err)
	}
}

// events collects a client's events.
type events struct {
	mu    sync.Mutex
	byUID map[string][]chainclient.Event
	ch    chan chainclient.Event
}

func newEvents() *events {
	return &events{byUID: map[string][]chainclient.Event{}, ch: make(chan chainclient.Event, 1<<16)}
}

func (ev *events) record(e chainclient.Event) {
	ev.mu.Lock()
	ev.byUID[e.UID] = append(ev.byUID[e.UID], e)
	ev.mu.Unlock()
	select {
	case ev.ch <- e:
	default:
	}
}

// waitFinal waits until every uid has a final event, or fails the test.
func (ev *events) waitFinal(t testing.TB, uids []string) {
	t.Helper()
	deadline := time.NewTimer(waitLimit)
	defer deadline.Stop()
	for {
		ev.mu.Lock()
		missing := 0
		for _, u := range uids {
			if len(ev.byUID[u]) == 0 {
				missing++
			}
		}
		ev.mu.Unlock()
		if missing == 0 {
			return
		}
		select {
		case <-ev.ch:
		case <-deadline.C:
			t.Fatalf("%d of %d results have no final event after %s", missing, len(uids), waitLimit)
		}
	}
}

func uidsOf(rs []*aivmv1.ResultRecord) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.GetJobUid()
	}
	return out
}

// reporter is a running Client over its own outbox.
type reporter struct {
	client *chainclient.Client
	box    *outbox.Outbox
	events *events
	cancel context.CancelFunc
	done   chan error
}

func startReporter(t testing.TB, env *chainEnv, k *keys.Key, dir string, tune func(*chainclient.Options)) *reporter {
	t.Helper()
	box, err := outbox.Open(dir, outbox.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ev := newEvents()
	opts := chainclient.Options{
		Key:               k,
		ChainID:           env.node.ChainID(),
		Chain:             env.chain,
		Outbox:            box,
		MaxBatchResults:   100,
		BatchDelay:        20 * time.Millisecond,
		PollInterval:      50 * time.Millisecond,
		MinBackoff:        50 * time.Millisecond,
		MaxBackoff:        500 * time.Millisecond,
		Registration:      registration(),
		RenewBeforeBlocks: 10,
		OnEvent:           ev.record,
		Logger:            testLogger(t),
	}
	if tune != nil {
		tune(&opts)
	}
	c, err := chainclient.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &reporter{client: c, box: box, events: ev, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- c.Run(ctx) }()
	t.Cleanup(r.stop)
	return r
}

func (r *reporter) stop() {
	if r.cancel == nil {
		return
	}
	r.cancel()
	<-r.done
	r.box.Close()
	r.cancel = nil
}

func testLogger(t testing.TB) logr.Logger {
	if tt, ok := t.(*testing.T); ok && testing.Verbose() {
		return testr.New(tt)
	}
	return logr.Discard()
}

// carriesResults reports whether raw is a transaction with a
// MsgSubmitResults.
func carriesResults(raw []byte) bool {
	d, err := tx.Decode(raw)
	if err != nil {
		return false
	}
	msgs, err := d.Msgs()
	if err != nil {
		return false
	}
	for _, m := range msgs {
		if _, ok := m.(*aivmv1.MsgSubmitResults); ok {
			return true
		}
	}
	return false
}

// eventually polls cond until it holds, or fails the test after waitLimit.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, waitLimit)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
