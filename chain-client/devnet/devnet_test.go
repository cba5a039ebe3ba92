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

package devnet_test

import (
	"context"
	"crypto/sha256"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	bankv1beta1 "cosmossdk.io/api/cosmos/bank/v1beta1"
	basev1beta1 "cosmossdk.io/api/cosmos/base/v1beta1"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/aivm-dev/aivm-operator/chain-client/aivmv1"
	"github.com/aivm-dev/aivm-operator/chain-client/devnet"
	"github.com/aivm-dev/aivm-operator/chain-client/keys"
	"github.com/aivm-dev/aivm-operator/chain-client/merkle"
	"github.com/aivm-dev/aivm-operator/chain-client/rpc"
	"github.com/aivm-dev/aivm-operator/chain-client/tx"
)

const (
	testBlockTime = 100 * time.Millisecond
	funds         = 1_000_000_000
	pollInterval  = 20 * time.Millisecond
)

// shared is the package's devnet, started in TestMain.
var shared struct {
	node *devnet.Node
	rpc  *rpc.Client
	keys []*keys.Key
}

// testKey returns the deterministic key number i.
func testKey(i int) *keys.Key {
	h := sha256.Sum256([]byte(fmt.Sprintf("devnet test key %d", i)))
	k, err := keys.FromHex(fmt.Sprintf("%x", h))
	if err != nil {
		panic(err)
	}
	return k
}

func addr(k *keys.Key) string {
	a, err := k.Address("")
	if err != nil {
		panic(err)
	}
	return a
}

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	home, err := os.MkdirTemp("", "aivm-devnet-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(home)
	accounts := map[string]uint64{}
	for i := 0; i < 16; i++ {
		k := testKey(i)
		shared.keys = append(shared.keys, k)
		accounts[addr(k)] = funds
	}
	// Key 15 is poor.
	accounts[addr(shared.keys[15])] = 10
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	n, err := devnet.Start(ctx, devnet.Config{Home: home, Accounts: accounts, BlockTime: testBlockTime})
	if err != nil {
		fmt.Fprintln(os.Stderr, "start devnet:", err)
		return 1
	}
	defer n.Stop()
	shared.node = n
	if shared.rpc, err = rpc.New(n.RPCURL()); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func registration(k *keys.Key) *aivmv1.MsgRegisterProvider {
	return &aivmv1.MsgRegisterProvider{
		Provider: addr(k), Moniker: "node-a", Endpoint: "https://node-a:8443", Version: "v0.1.0",
		Gpus:           []*aivmv1.GPU{{Product: "NVIDIA H100 80GB HBM3", MemoryBytes: 80 << 30}},
		TotalVramBytes: 80 << 30,
	}
}

// signer builds transactions for one key, tracking its sequence.
type signer struct {
	key     *keys.Key
	chainID string
	accNum  uint64
	seq     uint64
}

func newSigner(t *testing.T, c *rpc.Client, chainID string, k *keys.Key) *signer {
	t.Helper()
	num, seq, err := c.Account(ctxT(t), addr(k))
	if err != nil {
		t.Fatal(err)
	}
	return &signer{key: k, chainID: chainID, accNum: num, seq: seq}
}

func (s *signer) input(msgs ...proto.Message) tx.SignInput {
	return tx.SignInput{
		Key: s.key, ChainID: s.chainID, AccountNumber: s.accNum, Sequence: s.seq, Msgs: msgs,
		FeeAmount: 50_000, FeeDenom: "unes", GasLimit: 2_000_000,
	}
}

func (s *signer) sign(t *testing.T, msgs ...proto.Message) ([]byte, string) {
	t.Helper()
	b, h, err := tx.BuildAndSign(s.input(msgs...))
	if err != nil {
		t.Fatal(err)
	}
	return b, h
}

// deliver broadcasts txBytes, expects CheckTx to accept it, waits for the
// block and returns the execution result.
func deliver(t *testing.T, c *rpc.Client, txBytes []byte) rpc.TxResult {
	t.Helper()
	br, err := c.BroadcastSync(ctxT(t), txBytes)
	if err != nil {
		t.Fatal(err)
	}
	if br.Code != 0 {
		t.Fatalf("CheckTx refused: code %d (%s): %s", br.Code, br.Codespace, br.Log)
	}
	if br.Hash != tx.Hash(txBytes) {
		t.Fatalf("node hash %s, ours %s", br.Hash, tx.Hash(txBytes))
	}
	r, err := c.WaitForTx(ctxT(t), br.Hash, pollInterval)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func record(job string) *aivmv1.ResultRecord {
	d := func(s string) string { return fmt.Sprintf("sha256:%x", sha256.Sum256([]byte(s+job))) }
	return &aivmv1.ResultRecord{
		JobUid: job, KernelDigest: d("k"), ModelDigest: d("m"), InputDigest: d("i"), OutputDigest: d("o"),
		InputTokens: 12, OutputTokens: 34, DurationMs: 560,
	}
}

func batch(t *testing.T, k *keys.Key, jobs ...string) *aivmv1.MsgSubmitResults {
	t.Helper()
	m := &aivmv1.MsgSubmitResults{Provider: addr(k)}
	var leaves []merkle.Hash
	for _, j := range jobs {
		r := record(j)
		m.Results = append(m.Results, r)
		b, err := proto.MarshalOptions{Deterministic: true}.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		leaves = append(leaves, merkle.LeafHash(b))
	}
	root, err := merkle.Root(leaves)
	if err != nil {
		t.Fatal(err)
	}
	m.MerkleRoot = root[:]
	return m
}

func TestRegistrationCommittedAndQueryable(t *testing.T) {
	c := shared.rpc
	k := shared.keys[0]
	num, seq, err := c.Account(ctxT(t), addr(k))
	if err != nil {
		t.Fatal(err)
	}
	if seq != 0 {
		t.Fatalf("fresh account sequence %d", seq)
	}
	s := &signer{key: k, chainID: shared.node.ChainID(), accNum: num}
	reg := registration(k)
	b, _ := s.sign(t, reg)
	r := deliver(t, c, b)
	if r.Code != 0 {
		t.Fatalf("register: code %d: %s", r.Code, r.Log)
	}
	p, err := c.Provider(ctxT(t), addr(k))
	if err != nil {
		t.Fatal(err)
	}
	if p == nil {
		t.Fatal("provider not found after commit")
	}
	if d := cmp.Diff(reg, p.Registration, protocmp.Transform()); d != "" {
		t.Errorf("stored registration (-want +got):\n%s", d)
	}
	if p.RegisteredHeight != r.Height || p.ExpiresHeight != r.Height+devnet.DefaultProviderValidBlocks {
		t.Errorf("heights registered %d expires %d, tx height %d", p.RegisteredHeight, p.ExpiresHeight, r.Height)
	}
	if _, seq, _ = c.Account(ctxT(t), addr(k)); seq != 1 {
		t.Errorf("sequence after one tx = %d, want 1", seq)
	}
	if none, err := c.Provider(ctxT(t), addr(shared.keys[14])); err != nil || none != nil {
		t.Errorf("unregistered provider: %v, %v", none, err)
	}
}

func TestResultsCommittedAndQueryable(t *testing.T) {
	c := shared.rpc
	k := shared.keys[1]
	s := newSigner(t, c, shared.node.ChainID(), k)
	b, _ := s.sign(t, registration(k))
	if r := deliver(t, c, b); r.Code != 0 {
		t.Fatalf("register: %d %s", r.Code, r.Log)
	}
	s.seq++

	m := batch(t, k, "job-r1", "job-r2", "job-r3")
	b, hash := s.sign(t, m)
	r := deliver(t, c, b)
	if r.Code != 0 {
		t.Fatalf("submit: %d %s", r.Code, r.Log)
	}
	s.seq++
	for i, rec := range m.Results {
		got, err := c.Result(ctxT(t), rec.JobUid)
		if err != nil {
			t.Fatal(err)
		}
		want := &aivmv1.StoredResult{Result: rec, Provider: addr(k), MerkleRoot: m.MerkleRoot, Height: r.Height, TxHash: hash, Index: uint32(i)}
		if d := cmp.Diff(want, got, protocmp.Transform()); d != "" {
			t.Errorf("result %d (-want +got):\n%s", i, d)
		}
	}
	if none, err := c.Result(ctxT(t), "job-never"); err != nil || none != nil {
		t.Errorf("unknown job: %v, %v", none, err)
	}

	// A job already on chain is refused (at CheckTx), so it is never stored
	// twice; the sequence is not consumed.
	b, _ = s.sign(t, batch(t, k, "job-r4", "job-r2"))
	br, err := c.BroadcastSync(ctxT(t), b)
	if err != nil {
		t.Fatal(err)
	}
	if br.Code != devnet.CodeDuplicateResult || br.Codespace != "aivm" {
		t.Errorf("duplicate job: code %d (%s) %s", br.Code, br.Codespace, br.Log)
	}
	// A wrong Merkle root is refused.
	bad := batch(t, k, "job-r5")
	bad.MerkleRoot[0] ^= 1
	b, _ = s.sign(t, bad)
	if br, _ = c.BroadcastSync(ctxT(t), b); br.Code != devnet.CodeRootMismatch || br.Codespace != "aivm" {
		t.Errorf("root mismatch: code %d (%s) %s", br.Code, br.Codespace, br.Log)
	}
	if got, _ := c.Result(ctxT(t), "job-r4"); got != nil {
		t.Error("job-r4 of a refused batch was stored")
	}
	// Duplicate job inside one batch.
	b, _ = s.sign(t, batch(t, k, "job-r6", "job-r6"))
	if br, _ = c.BroadcastSync(ctxT(t), b); br.Code != devnet.CodeDuplicateResult {
		t.Errorf("in-batch duplicate: code %d %s", br.Code, br.Log)
	}
}

func TestResultsFromUnregisteredProvider(t *testing.T) {
	c := shared.rpc
	k := shared.keys[2]
	s := newSigner(t, c, shared.node.ChainID(), k)
	b, _ := s.sign(t, batch(t, k, "job-u1"))
	br, err := c.BroadcastSync(ctxT(t), b)
	if err != nil {
		t.Fatal(err)
	}
	if br.Code != devnet.CodeProviderNotRegistered || br.Codespace != "aivm" {
		t.Errorf("code %d (%s) %s", br.Code, br.Codespace, br.Log)
	}
}

// TestAnteRejections checks each transaction-level refusal and its Cosmos
// code and log.
func TestAnteRejections(t *testing.T) {
	c := shared.rpc
	k := shared.keys[3]
	other := shared.keys[4]
	chainID := shared.node.ChainID()
	s := newSigner(t, c, chainID, k)
	reg := registration(k)

	type tc struct {
		name     string
		tx       func() []byte
		code     uint32
		logParts []string
	}
	build := func(mod func(*tx.SignInput)) func() []byte {
		return func() []byte {
			in := s.input(reg)
			mod(&in)
			b, _, err := tx.BuildAndSign(in)
			if err != nil {
				t.Fatal(err)
			}
			return b
		}
	}
	cases := []tc{
		{"wrong chain-id", build(func(in *tx.SignInput) { in.ChainID = "nesa-testnet-3" }), devnet.CodeUnauthorized,
			[]string{"signature verification failed", fmt.Sprintf("account number (%d)", s.accNum), "chain-id (" + chainID + ")"}},
		{"wrong account number", build(func(in *tx.SignInput) { in.AccountNumber = s.accNum + 100 }), devnet.CodeUnauthorized,
			[]string{"signature verification failed"}},
		{"bad signature", func() []byte {
			b := build(func(*tx.SignInput) {})()
			// Flip a bit in the last byte: the 64-byte signature ends the TxRaw.
			b[len(b)-1] ^= 0x01
			return b
		}, devnet.CodeUnauthorized, []string{"signature verification failed"}},
		{"future sequence", build(func(in *tx.SignInput) { in.Sequence = s.seq + 5 }), devnet.CodeWrongSequence,
			[]string{fmt.Sprintf("account sequence mismatch, expected %d, got %d", s.seq, s.seq+5)}},
		{"insufficient fee", build(func(in *tx.SignInput) { in.FeeAmount = 10 }), devnet.CodeInsufficientFee,
			[]string{"insufficient fees", "required: 50000unes"}},
		{"out of gas", build(func(in *tx.SignInput) { in.GasLimit = 1000; in.FeeAmount = 25 }), devnet.CodeOutOfGas, []string{"out of gas"}},
		{"signer is not the provider", build(func(in *tx.SignInput) { in.Key = other }), devnet.CodeInvalidPubKey, []string{"pubKey does not match signer address"}},
		{"garbage", func() []byte { return []byte("not a transaction") }, devnet.CodeTxDecode, []string{"tx parse error"}},
		{"unknown account", func() []byte {
			stranger := testKey(99)
			in := s.input(registration(stranger))
			in.Key = stranger
			b, _, _ := tx.BuildAndSign(in)
			return b
		}, devnet.CodeUnknownAddress, []string{"does not exist"}},
		{"insufficient funds", func() []byte {
			poor := shared.keys[15]
			in := s.input(registration(poor))
			in.Key, in.AccountNumber, in.Sequence = poor, accNum(t, c, poor), 0
			b, _, _ := tx.BuildAndSign(in)
			return b
		}, devnet.CodeInsufficientFunds, []string{"insufficient funds"}},
		{"timeout height passed", build(func(in *tx.SignInput) { in.TimeoutHeight = 1 }), devnet.CodeTxTimeoutHeight, []string{"timeout height"}},
		{"too large", func() []byte {
			jobs := make([]string, 4000)
			for i := range jobs {
				jobs[i] = fmt.Sprintf("job-large-%d", i)
			}
			in := s.input(batch(t, k, jobs...))
			in.GasLimit = 100_000_000
			in.FeeAmount = 2_500_000
			b, _, err := tx.BuildAndSign(in)
			if err != nil {
				t.Fatal(err)
			}
			if len(b) <= devnet.DefaultMaxTxBytes {
				t.Fatalf("test tx is only %d bytes", len(b))
			}
			return b
		}, devnet.CodeTxTooLarge, []string{"tx too large"}},
		{"bad registration", build(func(in *tx.SignInput) {
			r := proto.Clone(reg).(*aivmv1.MsgRegisterProvider)
			r.TotalVramBytes++
			in.Msgs = []proto.Message{r}
		}), devnet.CodeInvalidRegistration, []string{"total_vram_bytes"}},
	}
	for _, c2 := range cases {
		t.Run(c2.name, func(t *testing.T) {
			br, err := c.BroadcastSync(ctxT(t), c2.tx())
			if err != nil {
				t.Fatal(err)
			}
			if br.Code != c2.code {
				t.Fatalf("code %d (%s) %q, want %d", br.Code, br.Codespace, br.Log, c2.code)
			}
			for _, p := range c2.logParts {
				if !strings.Contains(br.Log, p) {
					t.Errorf("log %q lacks %q", br.Log, p)
				}
			}
		})
	}
	// None of them moved the account.
	if _, seq, _ := c.Account(ctxT(t), addr(k)); seq != s.seq {
		t.Errorf("sequence moved to %d by refused transactions", seq)
	}
}

func accNum(t *testing.T, c *rpc.Client, k *keys.Key) uint64 {
	n, _, err := c.Account(ctxT(t), addr(k))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestSequences: back-to-back transactions in one block are accepted in
// sequence order; a used sequence and a replay are refused.
func TestSequences(t *testing.T) {
	c := shared.rpc
	k := shared.keys[5]
	s := newSigner(t, c, shared.node.ChainID(), k)
	var last string
	var txs [][]byte
	for i := 0; i < 3; i++ {
		reg := registration(k)
		reg.Version = fmt.Sprintf("v0.%d", i)
		b, h := s.sign(t, reg)
		txs = append(txs, b)
		br, err := c.BroadcastSync(ctxT(t), b)
		if err != nil || br.Code != 0 {
			t.Fatalf("tx %d: %v code %d %s", i, err, br.Code, br.Log)
		}
		s.seq++
		last = h
	}
	r, err := c.WaitForTx(ctxT(t), last, pollInterval)
	if err != nil || r.Code != 0 {
		t.Fatalf("last tx: %v %+v", err, r)
	}
	if _, seq, _ := c.Account(ctxT(t), addr(k)); seq != 3 {
		t.Fatalf("sequence %d after 3 txs", seq)
	}
	// A fresh tx reusing sequence 1 (different bytes, same sequence).
	s.seq = 1
	reg := registration(k)
	reg.Moniker = "reuse"
	b, _ := s.sign(t, reg)
	br, err := c.BroadcastSync(ctxT(t), b)
	if err != nil {
		t.Fatal(err)
	}
	if br.Code != devnet.CodeWrongSequence || !strings.Contains(br.Log, "expected 3, got 1") {
		t.Errorf("reused sequence: code %d %q", br.Code, br.Log)
	}
	// Replaying committed bytes: refused (still in the node's cache, or by
	// sequence), never executed twice.
	br, err = c.BroadcastSync(ctxT(t), txs[0])
	if err != nil {
		t.Fatal(err)
	}
	if br.Code != rpc.CodeTxInMempoolCache && br.Code != devnet.CodeWrongSequence {
		t.Errorf("replay: code %d %q", br.Code, br.Log)
	}
	if err := shared.node.WaitForHeight(ctxT(t), r.Height+2); err != nil {
		t.Fatal(err)
	}
	if _, seq, _ := c.Account(ctxT(t), addr(k)); seq != 3 {
		t.Errorf("sequence %d after replays, want 3", seq)
	}
	p, _ := c.Provider(ctxT(t), addr(k))
	if p.GetRegistration().GetVersion() != "v0.2" {
		t.Errorf("registration %v", p.GetRegistration())
	}
}

func TestAccountNotFound(t *testing.T) {
	_, _, err := shared.rpc.Account(ctxT(t), addr(testKey(1234)))
	if !errorsIs(err, rpc.ErrAccountNotFound) {
		t.Errorf("err = %v", err)
	}
	if _, _, err := shared.rpc.Account(ctxT(t), "cosmos1jhg0e7s6gn44tfc5k37kr04sznyhedtc9rzys5"); err == nil || errorsIs(err, rpc.ErrAccountNotFound) {
		t.Errorf("foreign-prefix address: err = %v", err)
	}
}

// TestRestartKeepsState stops a chain and starts it again on the same home:
// height, accounts, sequences and providers survive, and new transactions
// continue from there.
func TestRestartKeepsState(t *testing.T) {
	home := t.TempDir()
	k := testKey(200)
	cfg := devnet.Config{Home: home, ChainID: "aivm-restart", Accounts: map[string]uint64{addr(k): funds}, BlockTime: testBlockTime}
	n, err := devnet.Start(ctxT(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := rpc.New(n.RPCURL())
	s := newSigner(t, c, "aivm-restart", k)
	b, _ := s.sign(t, registration(k))
	r := deliver(t, c, b)
	if r.Code != 0 {
		t.Fatalf("register: %d %s", r.Code, r.Log)
	}
	s.seq++
	if err := n.WaitForHeight(ctxT(t), r.Height+1); err != nil {
		t.Fatal(err)
	}
	before := n.Height()
	p1, _ := c.Provider(ctxT(t), addr(k))
	if err := n.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := n.Stop(); err != nil {
		t.Fatalf("second Stop: %v", err)
	}

	// Accounts in the config are ignored on restart; the chain id must match.
	if _, err := devnet.Start(ctxT(t), devnet.Config{Home: home, ChainID: "other-chain"}); err == nil {
		t.Fatal("restart with another chain id succeeded")
	}
	// Same RPC address, so the clients of the first run reach the second.
	n2, err := devnet.Start(ctxT(t), devnet.Config{Home: home, BlockTime: testBlockTime, RPCListenAddr: n.RPCListenAddr()})
	if err != nil {
		t.Fatal(err)
	}
	defer n2.Stop()
	if n2.RPCURL() != n.RPCURL() {
		t.Fatalf("RPC moved from %s to %s", n.RPCURL(), n2.RPCURL())
	}
	if n2.Height() <= before {
		t.Errorf("height after restart %d, before %d", n2.Height(), before)
	}
	if n2.ChainID() != "aivm-restart" {
		t.Errorf("chain id %q", n2.ChainID())
	}
	c2 := c
	st, err := c2.Status(ctxT(t))
	if err != nil || st.ChainID != "aivm-restart" || st.Height < before {
		t.Errorf("status %+v %v", st, err)
	}
	p2, err := c2.Provider(ctxT(t), addr(k))
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(p1, p2, protocmp.Transform()); d != "" {
		t.Errorf("provider after restart (-before +after):\n%s", d)
	}
	if _, seq, _ := c2.Account(ctxT(t), addr(k)); seq != 1 {
		t.Errorf("sequence after restart %d", seq)
	}
	// The old tx is still found by hash; a new one continues the sequence.
	if old, err := c2.Tx(ctxT(t), r2hash(t, b)); err != nil || !old.Found || old.Height != r.Height {
		t.Errorf("old tx after restart: %+v %v", old, err)
	}
	b, _ = s.sign(t, batch(t, k, "job-after-restart"))
	if r := deliver(t, c2, b); r.Code != 0 {
		t.Fatalf("submit after restart: %d %s", r.Code, r.Log)
	}
}

func r2hash(_ *testing.T, b []byte) string { return tx.Hash(b) }

// TestProviderExpiry: results after the registration expired are refused
// until the provider registers again.
func TestProviderExpiry(t *testing.T) {
	k := testKey(300)
	n, err := devnet.Start(ctxT(t), devnet.Config{Home: t.TempDir(), Accounts: map[string]uint64{addr(k): funds}, BlockTime: testBlockTime, ProviderValidBlocks: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Stop()
	c, _ := rpc.New(n.RPCURL())
	s := newSigner(t, c, n.ChainID(), k)
	b, _ := s.sign(t, registration(k))
	r := deliver(t, c, b)
	if r.Code != 0 {
		t.Fatal(r.Log)
	}
	s.seq++
	p, _ := c.Provider(ctxT(t), addr(k))
	if p.ExpiresHeight != r.Height+3 {
		t.Fatalf("expires %d, registered at %d", p.ExpiresHeight, r.Height)
	}
	if err := n.WaitForHeight(ctxT(t), p.ExpiresHeight); err != nil {
		t.Fatal(err)
	}
	b, _ = s.sign(t, batch(t, k, "job-late"))
	br, err := c.BroadcastSync(ctxT(t), b)
	if err != nil {
		t.Fatal(err)
	}
	if br.Code != devnet.CodeProviderExpired || br.Codespace != "aivm" {
		t.Errorf("expired provider: code %d (%s) %s", br.Code, br.Codespace, br.Log)
	}
	// Renew, then the same batch (re-signed: the refused one used no
	// sequence) lands.
	b, _ = s.sign(t, registration(k))
	if r := deliver(t, c, b); r.Code != 0 {
		t.Fatal(r.Log)
	}
	s.seq++
	b, _ = s.sign(t, batch(t, k, "job-late"))
	if r := deliver(t, c, b); r.Code != 0 {
		t.Fatalf("after renewal: %d %s", r.Code, r.Log)
	}
}

func TestStartRejectsBadConfig(t *testing.T) {
	cases := map[string]devnet.Config{
		"no home":        {},
		"bad account":    {Home: t.TempDir(), Accounts: map[string]uint64{"nesa1notanaddress": 5}},
		"foreign prefix": {Home: t.TempDir(), Accounts: map[string]uint64{"cosmos1jhg0e7s6gn44tfc5k37kr04sznyhedtc9rzys5": 5}},
		"bad gas price":  {Home: t.TempDir(), MinGasPrice: "cheap"},
	}
	for name, cfg := range cases {
		if n, err := devnet.Start(ctxT(t), cfg); err == nil {
			n.Stop()
			t.Errorf("%s: started", name)
		}
	}
}

// TestStartFailureReleasesHome: a start that fails on a taken RPC port
// leaves nothing locked, so the same home starts afterwards.
func TestStartFailureReleasesHome(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	home := t.TempDir()
	_, err = devnet.Start(ctxT(t), devnet.Config{Home: home, BlockTime: testBlockTime, RPCListenAddr: "tcp://" + l.Addr().String()})
	if err == nil {
		t.Fatal("started on a taken port")
	}
	if !strings.Contains(err.Error(), "address already in use") {
		t.Errorf("err = %v", err)
	}
	n, err := devnet.Start(ctxT(t), devnet.Config{Home: home, BlockTime: testBlockTime})
	if err != nil {
		t.Fatalf("start after a failed start: %v", err)
	}
	if err := n.Stop(); err != nil {
		t.Fatal(err)
	}
}

// BenchmarkDevnetResultsCommitted measures results committed per second on
// the devnet (100ms blocks) when batches of 500 results are broadcast back
// to back with increasing sequences, and how many blocks each batch waits
// from broadcast to commit.
func BenchmarkDevnetResultsCommitted(b *testing.B) {
	const perTx = 500
	c := shared.rpc
	k := shared.keys[6]
	ctx := context.Background()
	num, seq, err := c.Account(ctx, addr(k))
	if err != nil {
		b.Fatal(err)
	}
	s := &signer{key: k, chainID: shared.node.ChainID(), accNum: num, seq: seq}
	if p, _ := c.Provider(ctx, addr(k)); p == nil {
		txb, _, err := tx.BuildAndSign(s.input(registration(k)))
		if err != nil {
			b.Fatal(err)
		}
		if br, err := c.BroadcastSync(ctx, txb); err != nil || br.Code != 0 {
			b.Fatalf("register: %v %+v", err, br)
		}
		if _, err := c.WaitForTx(ctx, tx.Hash(txb), pollInterval); err != nil {
			b.Fatal(err)
		}
		s.seq++
	}
	b.StopTimer()
	txs := make([][]byte, b.N)
	for i := range txs {
		jobs := make([]string, perTx)
		for j := range jobs {
			jobs[j] = fmt.Sprintf("bench-%d-%d-%d", seq, i, j)
		}
		m := &aivmv1.MsgSubmitResults{Provider: addr(k)}
		var leaves []merkle.Hash
		for _, j := range jobs {
			r := record(j)
			m.Results = append(m.Results, r)
			rb, _ := proto.MarshalOptions{Deterministic: true}.Marshal(r)
			leaves = append(leaves, merkle.LeafHash(rb))
		}
		root, _ := merkle.Root(leaves)
		m.MerkleRoot = root[:]
		in := s.input(m)
		in.GasLimit = 5_000_000
		in.FeeAmount = 125_000
		if txs[i], _, err = tx.BuildAndSign(in); err != nil {
			b.Fatal(err)
		}
		s.seq++
	}
	b.StartTimer()
	start := time.Now()
	sentAt := make([]int64, b.N)
	for i, t := range txs {
		sentAt[i] = shared.node.Height()
		br, err := c.BroadcastSync(ctx, t)
		if err != nil || br.Code != 0 {
			b.Fatalf("tx %d: %v %+v", i, err, br)
		}
	}
	var maxBlocks int64
	for i, t := range txs {
		r, err := c.WaitForTx(ctx, tx.Hash(t), pollInterval)
		if err != nil || r.Code != 0 {
			b.Fatalf("tx %d: %v %+v", i, err, r)
		}
		maxBlocks = max(maxBlocks, r.Height-sentAt[i])
	}
	elapsed := time.Since(start)
	b.ReportMetric(float64(b.N*perTx)/elapsed.Seconds(), "results/s")
	b.ReportMetric(float64(maxBlocks), "max-blocks-to-commit")
}

// TestFundAndSend: the faucet creates and funds an account after genesis;
// the new account can transact; a standard bank send moves coins and
// refuses an overdraft.
func TestFundAndSend(t *testing.T) {
	c := shared.rpc
	newcomer := testKey(500)
	if _, _, err := c.Account(ctxT(t), addr(newcomer)); !errorsIs(err, rpc.ErrAccountNotFound) {
		t.Fatalf("newcomer exists before funding: %v", err)
	}
	if _, err := shared.node.Fund(ctxT(t), addr(newcomer), 3_000_000); err != nil {
		t.Fatal(err)
	}
	num, seq, err := c.Account(ctxT(t), addr(newcomer))
	if err != nil || seq != 0 || num < 16 {
		t.Fatalf("funded account: number %d sequence %d: %v", num, seq, err)
	}
	if bal, err := c.Balance(ctxT(t), addr(newcomer), "unes"); err != nil || bal != 3_000_000 {
		t.Fatalf("balance %d: %v", bal, err)
	}
	if bal, err := c.Balance(ctxT(t), addr(newcomer), "uatom"); err != nil || bal != 0 {
		t.Errorf("other denom balance %d: %v", bal, err)
	}
	// The new account registers as a provider.
	s := &signer{key: newcomer, chainID: shared.node.ChainID(), accNum: num}
	b, _ := s.sign(t, registration(newcomer))
	if r := deliver(t, c, b); r.Code != 0 {
		t.Fatalf("register from a funded account: %d %s", r.Code, r.Log)
	}
	s.seq++
	if bal, _ := c.Balance(ctxT(t), addr(newcomer), "unes"); bal != 3_000_000-50_000 {
		t.Errorf("balance after a 50000unes fee: %d", bal)
	}
	// Bank send to another fresh address.
	other := addr(testKey(501))
	send := &bankv1beta1.MsgSend{FromAddress: addr(newcomer), ToAddress: other, Amount: []*basev1beta1.Coin{{Denom: "unes", Amount: "1000"}}}
	b, _ = s.sign(t, send)
	if r := deliver(t, c, b); r.Code != 0 {
		t.Fatalf("send: %d %s", r.Code, r.Log)
	}
	s.seq++
	if bal, _ := c.Balance(ctxT(t), other, "unes"); bal != 1000 {
		t.Errorf("recipient balance %d", bal)
	}
	send.Amount[0].Amount = "99999999999"
	b, _ = s.sign(t, send)
	br, err := c.BroadcastSync(ctxT(t), b)
	if err != nil || br.Code != devnet.CodeInsufficientFunds {
		t.Errorf("overdraft: %+v %v", br, err)
	}
	if _, err := shared.node.Fund(ctxT(t), "cosmos1jhg0e7s6gn44tfc5k37kr04sznyhedtc9rzys5", 5); err == nil {
		t.Error("funded an address of another chain")
	}
}

// TestHoldTxWithoutMempoolCache: a held transaction stays in the mempool
// and out of blocks; without the mempool cache, sending it again is checked
// again and refused for its sequence; OnCheckTx sees both offers; released,
// it lands.
func TestHoldTxWithoutMempoolCache(t *testing.T) {
	k := testKey(100)
	var hold atomic.Bool
	hold.Store(true)
	var mu sync.Mutex
	var codes []uint32
	n, err := devnet.Start(ctxT(t), devnet.Config{
		Home: t.TempDir(), Accounts: map[string]uint64{addr(k): funds}, BlockTime: testBlockTime,
		NoMempoolCache: true,
		HoldTx:         func([]byte) bool { return hold.Load() },
		OnCheckTx: func(_ []byte, code uint32) {
			mu.Lock()
			codes = append(codes, code)
			mu.Unlock()
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Stop()
	c, err := rpc.New(n.RPCURL())
	if err != nil {
		t.Fatal(err)
	}
	s := newSigner(t, c, n.ChainID(), k)
	raw, hash := s.sign(t, registration(k))
	if br, err := c.BroadcastSync(ctxT(t), raw); err != nil || br.Code != 0 {
		t.Fatalf("first offer: %+v, %v", br, err)
	}
	if err := n.WaitForHeight(ctxT(t), n.Height()+3); err != nil {
		t.Fatal(err)
	}
	if r, err := c.Tx(ctxT(t), hash); err != nil || r.Found {
		t.Fatalf("held tx: %+v, %v; want not in a block", r, err)
	}
	br, err := c.BroadcastSync(ctxT(t), raw)
	if err != nil || br.Code != devnet.CodeWrongSequence || !strings.Contains(br.Log, "expected 1, got 0") {
		t.Fatalf("second offer: %+v, %v; want wrong sequence, expected 1", br, err)
	}
	hold.Store(false)
	if r, err := c.WaitForTx(ctxT(t), hash, pollInterval); err != nil || r.Code != 0 {
		t.Fatalf("released tx: %+v, %v", r, err)
	}
	mu.Lock()
	defer mu.Unlock()
	if diff := cmp.Diff([]uint32{0, devnet.CodeWrongSequence}, codes); diff != "" {
		t.Errorf("OnCheckTx codes (-want +got):\n%s", diff)
	}
}
