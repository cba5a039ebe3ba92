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
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"strconv"
	"sync"

	authv1beta1 "cosmossdk.io/api/cosmos/auth/v1beta1"
	bankv1beta1 "cosmossdk.io/api/cosmos/bank/v1beta1"
	basev1beta1 "cosmossdk.io/api/cosmos/base/v1beta1"
	secp256k1pb "cosmossdk.io/api/cosmos/crypto/secp256k1"
	dbm "github.com/cometbft/cometbft-db"
	abci "github.com/cometbft/cometbft/abci/types"
	"github.com/go-logr/logr"
	"google.golang.org/protobuf/proto"

	"github.com/aivm-dev/aivm-operator/chain-client/aivmv1"
	"github.com/aivm-dev/aivm-operator/chain-client/keys"
	"github.com/aivm-dev/aivm-operator/chain-client/merkle"
	"github.com/aivm-dev/aivm-operator/chain-client/tx"
)

// Gas the devnet charges. A transaction needs a gas limit of at least
// GasBase + GasPerTxByte*len(tx) + GasPerSignature + the messages' gas
// (GasPerRegistration each, GasPerResult per result record, GasPerSend per
// bank send); see EstimateGas.
const (
	GasBase            = 10000
	GasPerTxByte       = 10
	GasPerSignature    = 1000
	GasPerRegistration = 20000
	GasPerResult       = 2000
	GasPerSend         = 10000
)

// Field bounds the module enforces.
const (
	maxMonikerLen   = 64
	maxEndpointLen  = 256
	maxVersionLen   = 64
	maxGPUs         = 64
	maxProductLen   = 128
	maxJobUIDLen    = 128
	maxDigestLen    = 128
	maxResultsPerTx = 20000
)

// State keys.
const (
	keyParams      = "m/params"
	keyNextAccount = "m/next-account"
	keyHeight      = "m/height"
	keyAppHash     = "m/app-hash"
	prefixAccount  = "a/"
	prefixBalance  = "b/"
	prefixProvider = "p/"
	prefixResult   = "r/"
)

// QueryPathBalance is the standard Cosmos bank balance query
// (cosmos.bank.v1beta1.QueryBalanceRequest/Response).
const QueryPathBalance = "/cosmos.bank.v1beta1.Query/Balance"

// appVersion is reported in Info.
const appVersion = 1

// EstimateGas returns the gas the devnet charges a transaction of txLen bytes
// carrying the given number of registrations and result records.
func EstimateGas(txLen, registrations, results int) uint64 {
	return uint64(GasBase + GasPerTxByte*txLen + GasPerSignature + GasPerRegistration*registrations + GasPerResult*results)
}

var deterministic = proto.MarshalOptions{Deterministic: true}

// application is the devnet's ABCI application.
type application struct {
	abci.BaseApplication

	log          logr.Logger
	db           dbm.DB
	chainIDValue string

	mu       sync.Mutex
	params   Params
	minGas   *big.Rat
	height   int64  // last committed height
	appHash  []byte // last committed app hash
	deliver  *overlay
	delivHt  int64
	delivHsh []byte
	check    *overlay

	commitMu   sync.Mutex
	commitCond *sync.Cond

	// onCheckTx and holdTx are Config.OnCheckTx and Config.HoldTx.
	onCheckTx func(tx []byte, code uint32)
	holdTx    func(tx []byte) bool
}

// newApp opens the application over db, resuming its committed state.
func newApp(db dbm.DB, chainID string, log logr.Logger) (*application, error) {
	a := &application{db: db, log: log, chainIDValue: chainID}
	a.commitCond = sync.NewCond(&a.commitMu)
	h, err := db.Get([]byte(keyHeight))
	if err != nil {
		return nil, fmt.Errorf("read height: %w", err)
	}
	a.height = int64(u64(h))
	if a.appHash, err = db.Get([]byte(keyAppHash)); err != nil {
		return nil, fmt.Errorf("read app hash: %w", err)
	}
	if p, err := db.Get([]byte(keyParams)); err != nil {
		return nil, fmt.Errorf("read params: %w", err)
	} else if p != nil {
		if err := a.setParams(p); err != nil {
			return nil, err
		}
	}
	a.check = newOverlay(dbReader{db})
	return a, nil
}

func (a *application) setParams(b []byte) error {
	var p Params
	if err := json.Unmarshal(b, &p); err != nil {
		return fmt.Errorf("parse params: %w", err)
	}
	if err := p.validate(); err != nil {
		return err
	}
	a.params = p
	a.minGas, _ = p.minGasPrice()
	return nil
}

// Height returns the last committed height.
func (a *application) Height() int64 {
	a.commitMu.Lock()
	defer a.commitMu.Unlock()
	return a.height
}

// waitForHeight blocks until the committed height reaches h or ctx ends.
func (a *application) waitForHeight(ctx context.Context, h int64) error {
	stop := context.AfterFunc(ctx, func() {
		a.commitMu.Lock()
		a.commitCond.Broadcast()
		a.commitMu.Unlock()
	})
	defer stop()
	a.commitMu.Lock()
	defer a.commitMu.Unlock()
	for a.height < h {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("wait for height %d (at %d): %w", h, a.height, err)
		}
		a.commitCond.Wait()
	}
	return nil
}

// Info reports the last committed height and app hash, so CometBFT replays
// any blocks the application has not committed.
func (a *application) Info(context.Context, *abci.InfoRequest) (*abci.InfoResponse, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return &abci.InfoResponse{
		Data:             "aivm-devnet",
		Version:          "1",
		AppVersion:       appVersion,
		LastBlockHeight:  a.height,
		LastBlockAppHash: a.appHash,
	}, nil
}

// InitChain creates the genesis accounts and parameters.
func (a *application) InitChain(_ context.Context, req *abci.InitChainRequest) (*abci.InitChainResponse, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if req.ChainId != a.chainIDValue {
		return nil, fmt.Errorf("genesis chain id %q, app configured for %q", req.ChainId, a.chainIDValue)
	}
	g, err := parseGenesisState(req.AppStateBytes)
	if err != nil {
		return nil, err
	}
	accs, bals, err := g.validate()
	if err != nil {
		return nil, err
	}
	pb, err := json.Marshal(g.Params)
	if err != nil {
		return nil, err
	}
	if err := a.setParams(pb); err != nil {
		return nil, err
	}
	st := newOverlay(dbReader{a.db})
	st.set(keyParams, pb)
	for i, acc := range accs {
		_, raw, _ := keys.DecodeAddress(acc.Address)
		b, err := deterministic.Marshal(&authv1beta1.BaseAccount{Address: acc.Address, AccountNumber: uint64(i)})
		if err != nil {
			return nil, err
		}
		st.set(prefixAccount+string(raw), b)
		st.set(prefixBalance+string(raw), u64b(bals[i]))
	}
	st.set(keyNextAccount, u64b(uint64(len(accs))))
	initial := req.InitialHeight
	if initial == 0 {
		initial = 1
	}
	hash := st.chainHash(nil, initial-1)
	a.deliver, a.delivHt, a.delivHsh = st, initial-1, hash
	a.log.V(1).Info("Genesis", "chainID", req.ChainId, "accounts", len(accs))
	return &abci.InitChainResponse{AppHash: hash}, nil
}

// CheckTx runs the ante checks and the message checks against the
// mempool's state; success there advances the sender's sequence for the
// next CheckTx.
func (a *application) CheckTx(_ context.Context, req *abci.CheckTxRequest) (*abci.CheckTxResponse, error) {
	a.mu.Lock()
	r := a.runTx(a.check, req.Tx, a.height+1, true)
	a.mu.Unlock()
	if a.onCheckTx != nil && req.Type != abci.CHECK_TX_TYPE_RECHECK {
		a.onCheckTx(req.Tx, r.code)
	}
	return &abci.CheckTxResponse{Code: r.code, Codespace: r.codespace, Log: r.log, GasWanted: r.gasWanted, GasUsed: r.gasUsed}, nil
}

// PrepareProposal proposes the mempool's transactions, less those
// Config.HoldTx holds, up to the block's size.
func (a *application) PrepareProposal(ctx context.Context, req *abci.PrepareProposalRequest) (*abci.PrepareProposalResponse, error) {
	if a.holdTx == nil {
		return a.BaseApplication.PrepareProposal(ctx, req)
	}
	kept := make([][]byte, 0, len(req.Txs))
	for _, t := range req.Txs {
		if !a.holdTx(t) {
			kept = append(kept, t)
		}
	}
	return a.BaseApplication.PrepareProposal(ctx, &abci.PrepareProposalRequest{MaxTxBytes: req.MaxTxBytes, Txs: kept})
}

// FinalizeBlock executes the block's transactions on a fresh pending state.
func (a *application) FinalizeBlock(_ context.Context, req *abci.FinalizeBlockRequest) (*abci.FinalizeBlockResponse, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	base := reader(dbReader{a.db})
	prevHash := a.appHash
	if a.deliver != nil && a.delivHt == req.Height-1 {
		// Genesis writes are still pending (first block after InitChain).
		base, prevHash = a.deliver, a.delivHsh
	}
	st := newOverlay(base)
	res := make([]*abci.ExecTxResult, len(req.Txs))
	for i, t := range req.Txs {
		r := a.runTx(st, t, req.Height, false)
		res[i] = &abci.ExecTxResult{Code: r.code, Codespace: r.codespace, Log: r.log, GasWanted: r.gasWanted, GasUsed: r.gasUsed, Events: r.events}
	}
	if parent, ok := base.(*overlay); ok {
		st.commitTo(parent)
		st = parent
	}
	hash := st.chainHash(prevHash, req.Height)
	a.deliver, a.delivHt, a.delivHsh = st, req.Height, hash
	return &abci.FinalizeBlockResponse{TxResults: res, AppHash: hash}, nil
}

// Commit writes the pending block state, height and app hash in one batch.
func (a *application) Commit(context.Context, *abci.CommitRequest) (*abci.CommitResponse, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.deliver == nil {
		return nil, errors.New("commit without a finalized block")
	}
	b := a.db.NewBatch()
	defer func() { _ = b.Close() }()
	for k, v := range a.deliver.writes {
		if err := b.Set([]byte(k), v); err != nil {
			return nil, fmt.Errorf("commit: %w", err)
		}
	}
	if err := b.Set([]byte(keyHeight), u64b(uint64(a.delivHt))); err != nil {
		return nil, fmt.Errorf("commit: %w", err)
	}
	if err := b.Set([]byte(keyAppHash), a.delivHsh); err != nil {
		return nil, fmt.Errorf("commit: %w", err)
	}
	if err := b.WriteSync(); err != nil {
		return nil, fmt.Errorf("commit: %w", err)
	}
	a.appHash = a.delivHsh
	a.deliver = nil
	// The mempool rechecks its transactions against the new state.
	a.check = newOverlay(dbReader{a.db})
	a.commitMu.Lock()
	a.height = a.delivHt
	a.commitCond.Broadcast()
	a.commitMu.Unlock()
	return &abci.CommitResponse{}, nil
}

// Query answers the account, provider and result queries from committed
// state.
func (a *application) Query(_ context.Context, req *abci.QueryRequest) (*abci.QueryResponse, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	st := dbReader{a.db}
	resp, qerr := a.query(st, req)
	if qerr != nil {
		return &abci.QueryResponse{Code: qerr.code, Codespace: qerr.codespace, Log: qerr.msg, Height: a.height}, nil
	}
	b, err := deterministic.Marshal(resp)
	if err != nil {
		return nil, err
	}
	return &abci.QueryResponse{Value: b, Height: a.height}, nil
}

func (a *application) query(st reader, req *abci.QueryRequest) (proto.Message, *abciError) {
	switch req.Path {
	case aivmv1.QueryPathAccount:
		var q authv1beta1.QueryAccountRequest
		if err := proto.Unmarshal(req.Data, &q); err != nil {
			return nil, sdkErr(CodeTxDecode, "decode account query: %v", err)
		}
		raw, aerr := a.addressBytes(q.Address)
		if aerr != nil {
			return nil, aerr
		}
		acc, err := getAccount(st, raw)
		if err != nil {
			return nil, sdkErr(CodeInvalidRequest, "read account: %v", err)
		}
		if acc == nil {
			return nil, sdkErr(CodeNotFound, "account %s not found", q.Address)
		}
		anyAcc, err := tx.AnyOf(acc)
		if err != nil {
			return nil, sdkErr(CodeInvalidRequest, "%v", err)
		}
		return &authv1beta1.QueryAccountResponse{Account: anyAcc}, nil
	case QueryPathBalance:
		var q bankv1beta1.QueryBalanceRequest
		if err := proto.Unmarshal(req.Data, &q); err != nil {
			return nil, sdkErr(CodeTxDecode, "decode balance query: %v", err)
		}
		raw, aerr := a.addressBytes(q.Address)
		if aerr != nil {
			return nil, aerr
		}
		if q.Denom == "" {
			return nil, sdkErr(CodeInvalidCoins, "empty denom")
		}
		var bal uint64
		if q.Denom == a.params.FeeDenom {
			b, err := st.get(prefixBalance + string(raw))
			if err != nil {
				return nil, sdkErr(CodeInvalidRequest, "read balance: %v", err)
			}
			bal = u64(b)
		}
		return &bankv1beta1.QueryBalanceResponse{Balance: &basev1beta1.Coin{Denom: q.Denom, Amount: strconv.FormatUint(bal, 10)}}, nil
	case aivmv1.QueryPathProvider:
		var q aivmv1.QueryProviderRequest
		if err := proto.Unmarshal(req.Data, &q); err != nil {
			return nil, sdkErr(CodeTxDecode, "decode provider query: %v", err)
		}
		p, err := getProvider(st, q.Address)
		if err != nil {
			return nil, sdkErr(CodeInvalidRequest, "read provider: %v", err)
		}
		if p == nil {
			return nil, sdkErr(CodeNotFound, "provider %s not found", q.Address)
		}
		return &aivmv1.QueryProviderResponse{Provider: p}, nil
	case aivmv1.QueryPathResult:
		var q aivmv1.QueryResultRequest
		if err := proto.Unmarshal(req.Data, &q); err != nil {
			return nil, sdkErr(CodeTxDecode, "decode result query: %v", err)
		}
		r, err := getResult(st, q.JobUid)
		if err != nil {
			return nil, sdkErr(CodeInvalidRequest, "read result: %v", err)
		}
		if r == nil {
			return nil, sdkErr(CodeNotFound, "result for job %q not found", q.JobUid)
		}
		return &aivmv1.QueryResultResponse{Result: r}, nil
	default:
		return nil, sdkErr(CodeUnknownRequest, "unknown query path %q", req.Path)
	}
}

func (a *application) addressBytes(addr string) ([]byte, *abciError) {
	if err := keys.ValidateAddress(a.params.Prefix, addr); err != nil {
		return nil, sdkErr(CodeInvalidAddress, "invalid address: %v", err)
	}
	_, raw, _ := keys.DecodeAddress(addr)
	return raw, nil
}

func getAccount(st reader, raw []byte) (*authv1beta1.BaseAccount, error) {
	b, err := st.get(prefixAccount + string(raw))
	if err != nil || b == nil {
		return nil, err
	}
	var acc authv1beta1.BaseAccount
	if err := proto.Unmarshal(b, &acc); err != nil {
		return nil, err
	}
	return &acc, nil
}

func getProvider(st reader, addr string) (*aivmv1.Provider, error) {
	b, err := st.get(prefixProvider + addr)
	if err != nil || b == nil {
		return nil, err
	}
	var p aivmv1.Provider
	if err := proto.Unmarshal(b, &p); err != nil {
		return nil, err
	}
	return &p, nil
}

func getResult(st reader, jobUID string) (*aivmv1.StoredResult, error) {
	b, err := st.get(prefixResult + jobUID)
	if err != nil || b == nil {
		return nil, err
	}
	var r aivmv1.StoredResult
	if err := proto.Unmarshal(b, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

func setProto(st *overlay, key string, m proto.Message) error {
	b, err := deterministic.Marshal(m)
	if err != nil {
		return err
	}
	st.set(key, b)
	return nil
}

// pubKeyOf returns the 33-byte key in an account's PubKey Any, or nil.
func pubKeyOf(acc *authv1beta1.BaseAccount) []byte {
	if acc.PubKey == nil {
		return nil
	}
	var pk secp256k1pb.PubKey
	if err := proto.Unmarshal(acc.PubKey.Value, &pk); err != nil {
		return nil
	}
	return pk.Key
}

func hexRoot(b []byte) string { return hex.EncodeToString(b) }

// merkleRoot recomputes the root over records' leaf hashes.
func merkleRoot(records []*aivmv1.ResultRecord) ([]byte, error) {
	leaves := make([]merkle.Hash, len(records))
	for i, r := range records {
		b, err := deterministic.Marshal(r)
		if err != nil {
			return nil, err
		}
		leaves[i] = merkle.LeafHash(b)
	}
	root, err := merkle.Root(leaves)
	if err != nil {
		return nil, err
	}
	return root[:], nil
}
