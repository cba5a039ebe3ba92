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

package devnet

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"testing"

	dbm "github.com/cometbft/cometbft-db"
	abci "github.com/cometbft/cometbft/abci/types"
	"github.com/go-logr/logr"
	"google.golang.org/protobuf/proto"

	"github.com/aivm-dev/aivm-operator/chain-client/aivmv1"
	"github.com/aivm-dev/aivm-operator/chain-client/keys"
	"github.com/aivm-dev/aivm-operator/chain-client/tx"
)

const appChainID = "nesa"

func appKey(i int) *keys.Key {
	h := sha256.Sum256([]byte(fmt.Sprintf("app test key %d", i)))
	k, err := keys.FromHex(fmt.Sprintf("%x", h))
	if err != nil {
		panic(err)
	}
	return k
}

func appAddr(k *keys.Key) string {
	a, _ := k.Address("")
	return a
}

// newTestApp returns an app on db after genesis and block 1.
func newTestApp(t testing.TB, db dbm.DB) *application {
	t.Helper()
	a, err := newApp(db, appChainID, logr.Discard())
	if err != nil {
		t.Fatal(err)
	}
	g := GenesisState{
		Params:   Params{Prefix: "nesa", FeeDenom: "unes", MinGasPrice: "0.025", ProviderValidBlocks: 1_000_000, MaxTxBytes: 1 << 20},
		Accounts: []GenesisAccount{{Address: appAddr(appKey(0)), Balance: "1000000000"}, {Address: appAddr(appKey(1)), Balance: "1000000000"}},
	}
	st, _ := json.Marshal(g)
	ctx := context.Background()
	if _, err := a.InitChain(ctx, &abci.InitChainRequest{ChainId: appChainID, AppStateBytes: st, InitialHeight: 1}); err != nil {
		t.Fatal(err)
	}
	block(t, a, 1)
	return a
}

func block(t testing.TB, a *application, h int64, txs ...[]byte) *abci.FinalizeBlockResponse {
	t.Helper()
	ctx := context.Background()
	r, err := a.FinalizeBlock(ctx, &abci.FinalizeBlockRequest{Height: h, Txs: txs})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Commit(ctx, &abci.CommitRequest{}); err != nil {
		t.Fatal(err)
	}
	return r
}

func signedRegister(t testing.TB, k *keys.Key, seq uint64, moniker string) []byte {
	t.Helper()
	b, _, err := tx.BuildAndSign(tx.SignInput{
		Key: k, ChainID: appChainID, AccountNumber: accountNumberOf(k), Sequence: seq,
		Msgs:      []proto.Message{&aivmv1.MsgRegisterProvider{Provider: appAddr(k), Moniker: moniker}},
		FeeAmount: 50000, FeeDenom: "unes", GasLimit: 2_000_000,
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// accountNumberOf follows genesis numbering: accounts sorted by address.
func accountNumberOf(k *keys.Key) uint64 {
	if appAddr(k) < appAddr(appKey(1-keyIndex(k))) {
		return 0
	}
	return 1
}

func keyIndex(k *keys.Key) int {
	if bytes.Equal(k.PubKeyBytes(), appKey(0).PubKeyBytes()) {
		return 0
	}
	return 1
}

// TestDeterministicAppHash: two applications fed the same blocks agree on
// every app hash; a different block gives a different hash.
func TestDeterministicAppHash(t *testing.T) {
	a1 := newTestApp(t, dbm.NewMemDB())
	a2 := newTestApp(t, dbm.NewMemDB())
	if !bytes.Equal(a1.appHash, a2.appHash) {
		t.Fatal("genesis app hashes differ")
	}
	k := appKey(0)
	for h := int64(2); h < 6; h++ {
		txb := signedRegister(t, k, uint64(h-2), fmt.Sprintf("m%d", h))
		r1 := block(t, a1, h, txb)
		r2 := block(t, a2, h, txb)
		if r1.TxResults[0].Code != 0 {
			t.Fatalf("height %d: %s", h, r1.TxResults[0].Log)
		}
		if !bytes.Equal(r1.AppHash, r2.AppHash) {
			t.Fatalf("height %d: app hashes differ", h)
		}
	}
	r1 := block(t, a1, 6)
	r2 := block(t, a2, 6, signedRegister(t, k, 4, "x"))
	if bytes.Equal(r1.AppHash, r2.AppHash) {
		t.Error("different blocks gave the same app hash")
	}
}

// TestCrashBeforeCommitReplays: a block finalized but not committed leaves
// the stored state at the previous height, and finalizing it again after a
// restart gives the same app hash.
func TestCrashBeforeCommitReplays(t *testing.T) {
	db := dbm.NewMemDB()
	a := newTestApp(t, db)
	txb := signedRegister(t, appKey(1), 0, "crash")
	r, err := a.FinalizeBlock(context.Background(), &abci.FinalizeBlockRequest{Height: 2, Txs: [][]byte{txb}})
	if err != nil {
		t.Fatal(err)
	}
	// "Crash": drop a, reopen on the same database.
	a2, err := newApp(db, appChainID, logr.Discard())
	if err != nil {
		t.Fatal(err)
	}
	info, _ := a2.Info(context.Background(), &abci.InfoRequest{})
	if info.LastBlockHeight != 1 {
		t.Fatalf("height after crash %d, want 1", info.LastBlockHeight)
	}
	if p, _ := getProvider(dbReader{db}, appAddr(appKey(1))); p != nil {
		t.Fatal("uncommitted block's state is visible")
	}
	r2 := block(t, a2, 2, txb)
	if !bytes.Equal(r.AppHash, r2.AppHash) || r2.TxResults[0].Code != 0 {
		t.Fatalf("replayed block differs: code %d", r2.TxResults[0].Code)
	}
	if p, _ := getProvider(dbReader{db}, appAddr(appKey(1))); p == nil || p.RegisteredHeight != 2 {
		t.Fatalf("provider after replay: %v", p)
	}
	// The same bytes again in the next block: a replay, refused by sequence.
	r3 := block(t, a2, 3, txb)
	if r3.TxResults[0].Code != CodeWrongSequence {
		t.Errorf("replayed tx: code %d %s", r3.TxResults[0].Code, r3.TxResults[0].Log)
	}
}

// TestFailedMessageKeepsAnteEffects: in a block, a transaction whose message
// fails still pays its fee and uses its sequence; in CheckTx it is refused
// without effect.
func TestFailedMessageKeepsAnteEffects(t *testing.T) {
	a := newTestApp(t, dbm.NewMemDB())
	k := appKey(0)
	_, raw, _ := keys.DecodeAddress(appAddr(k))
	bad := signedRegister(t, k, 0, "") // empty moniker: message fails
	ct, _ := a.CheckTx(context.Background(), &abci.CheckTxRequest{Tx: bad})
	if ct.Code != CodeInvalidRegistration || ct.Codespace != CodespaceAIVM {
		t.Fatalf("CheckTx: code %d (%s)", ct.Code, ct.Codespace)
	}
	ok := signedRegister(t, k, 0, "fine")
	if ct, _ := a.CheckTx(context.Background(), &abci.CheckTxRequest{Tx: ok}); ct.Code != 0 {
		t.Fatalf("CheckTx after a refused tx: %d %s", ct.Code, ct.Log)
	}
	r := block(t, a, 2, bad)
	if r.TxResults[0].Code != CodeInvalidRegistration {
		t.Fatalf("deliver: %d", r.TxResults[0].Code)
	}
	acc, _ := getAccount(dbReader{a.db}, raw)
	if acc.Sequence != 1 {
		t.Errorf("sequence %d after failed message, want 1", acc.Sequence)
	}
	if bal := u64(mustGet(dbReader{a.db}, prefixBalance+string(raw))); bal != 1000000000-50000 {
		t.Errorf("balance %d", bal)
	}
	if p, _ := getProvider(dbReader{a.db}, appAddr(k)); p != nil {
		t.Error("failed registration stored")
	}
}

func TestUnknownQueryPath(t *testing.T) {
	a := newTestApp(t, dbm.NewMemDB())
	r, _ := a.Query(context.Background(), &abci.QueryRequest{Path: "/nope"})
	if r.Code != CodeUnknownRequest {
		t.Errorf("code %d", r.Code)
	}
	r, _ = a.Query(context.Background(), &abci.QueryRequest{Path: aivmv1.QueryPathAccount, Data: []byte{0xff}})
	if r.Code == 0 {
		t.Error("garbage query data accepted")
	}
}

// FuzzCheckTx feeds arbitrary bytes to the ABCI transaction path: it must
// never panic, never accept what does not verify, and never touch
// committed state.
func FuzzCheckTx(f *testing.F) {
	db := dbm.NewMemDB()
	a := newTestApp(f, db)
	before := a.appHash
	good := signedRegister(f, appKey(0), 0, "seed")
	f.Add(good)
	f.Add(good[:len(good)-10])
	f.Add([]byte{})
	f.Add([]byte("\x0a\x02\x0a\x00"))
	f.Add(signedRegister(f, appKey(1), 5, "future"))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := a.CheckTx(context.Background(), &abci.CheckTxRequest{Tx: b})
		if err != nil {
			t.Fatal(err)
		}
		if r.Code == 0 {
			d, err := tx.Decode(b)
			if err != nil {
				t.Fatalf("accepted undecodable tx: %v", err)
			}
			if err := tx.VerifyDirect(d, appChainID, accountNumberOf(appKey(0))); err != nil {
				if err2 := tx.VerifyDirect(d, appChainID, 1-accountNumberOf(appKey(0))); err2 != nil {
					t.Fatalf("accepted unverifiable tx")
				}
			}
		}
		if h, _ := db.Get([]byte(keyHeight)); u64(h) != 1 || !bytes.Equal(a.appHash, before) {
			t.Fatal("CheckTx changed committed state")
		}
	})
}

func BenchmarkFinalizeBlockResults(b *testing.B) {
	a := newTestApp(b, dbm.NewMemDB())
	k := appKey(0)
	// Register, then blocks of one 200-result batch each.
	block(b, a, 2, signedRegister(b, k, 0, "bench"))
	h := int64(3)
	seq := uint64(1)
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		b.StopTimer()
		m := &aivmv1.MsgSubmitResults{Provider: appAddr(k)}
		for j := 0; j < 200; j++ {
			m.Results = append(m.Results, &aivmv1.ResultRecord{JobUid: fmt.Sprintf("job-%d-%d", i, j), OutputDigest: "sha256:00"})
		}
		m.MerkleRoot, _ = merkleRoot(m.Results)
		// Gas and fee as a client sizes them (the tx is at most 64 KiB), so
		// the genesis balance pays for far more blocks than a run takes.
		gas := EstimateGas(64<<10, 0, len(m.Results))
		txb, _, err := tx.BuildAndSign(tx.SignInput{Key: k, ChainID: appChainID, AccountNumber: accountNumberOf(k), Sequence: seq,
			Msgs: []proto.Message{m}, FeeAmount: gas * 25 / 1000, FeeDenom: "unes", GasLimit: gas})
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		r := block(b, a, h, txb)
		if r.TxResults[0].Code != 0 {
			b.Fatal(r.TxResults[0].Log)
		}
		h++
		seq++
	}
	b.ReportMetric(float64(b.N*200)/b.Elapsed().Seconds(), "results/s")
}
