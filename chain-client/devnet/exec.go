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
	"fmt"
	"math/big"

	authv1beta1 "cosmossdk.io/api/cosmos/auth/v1beta1"
	bankv1beta1 "cosmossdk.io/api/cosmos/bank/v1beta1"
	secp256k1pb "cosmossdk.io/api/cosmos/crypto/secp256k1"
	abci "github.com/cometbft/cometbft/abci/types"
	"google.golang.org/protobuf/proto"

	"github.com/aivm-dev/aivm-operator/chain-client/aivmv1"
	"github.com/aivm-dev/aivm-operator/chain-client/keys"
	"github.com/aivm-dev/aivm-operator/chain-client/tx"
)

// txResult is the outcome of running one transaction.
type txResult struct {
	code      uint32
	codespace string
	log       string
	gasWanted int64
	gasUsed   int64
	events    []abci.Event
}

func failed(e *abciError, wanted, used int64) txResult {
	return txResult{code: e.code, codespace: e.codespace, log: e.msg, gasWanted: wanted, gasUsed: used}
}

// runTx runs the ante checks and then the messages on st. In a block, ante
// effects (fee, public key, sequence) are kept when a message fails, as on a
// Cosmos chain; message effects only when all messages succeed. checkTx selects the
// mempool rules (minimum gas price).
func (a *application) runTx(st *overlay, txBytes []byte, height int64, checkTx bool) (res txResult) {
	defer func() {
		// A panic on hostile input must never take the chain down.
		if r := recover(); r != nil {
			res = failed(sdkErr(CodeTxDecode, "tx parse error: panic: %v", r), 0, 0)
		}
	}()
	if int64(len(txBytes)) > a.params.MaxTxBytes {
		return failed(sdkErr(CodeTxTooLarge, "tx too large: %d bytes, max %d", len(txBytes), a.params.MaxTxBytes), 0, 0)
	}
	d, err := tx.Decode(txBytes)
	if err != nil {
		return failed(fromTxErr(err), 0, 0)
	}
	wanted := int64(d.GasLimit)
	if wanted < 0 {
		return failed(sdkErr(CodeInvalidRequest, "invalid gas limit %d", d.GasLimit), 0, 0)
	}
	msgs, err := d.Msgs()
	if err != nil {
		return failed(fromTxErr(err), wanted, 0)
	}
	if len(d.Body.Memo) > tx.MaxMemoLength {
		return failed(sdkErr(CodeMemoTooLarge, "maximum number of characters is %d but received %d characters: memo too large", tx.MaxMemoLength, len(d.Body.Memo)), wanted, 0)
	}
	if d.Body.TimeoutHeight != 0 && uint64(height) > d.Body.TimeoutHeight {
		return failed(sdkErr(CodeTxTimeoutHeight, "block height: %d, timeout height: %d: tx timeout height", height, d.Body.TimeoutHeight), wanted, 0)
	}

	// The single signer of every message.
	var signer string
	registrations, results, sends := 0, 0, 0
	for i, m := range msgs {
		var s string
		switch msg := m.(type) {
		case *aivmv1.MsgRegisterProvider:
			s = msg.Provider
			registrations++
		case *aivmv1.MsgSubmitResults:
			s = msg.Provider
			results += len(msg.Results)
		case *bankv1beta1.MsgSend:
			s = msg.FromAddress
			sends++
		default:
			return failed(sdkErr(CodeUnknownRequest, "unrecognized message type %s at index %d", m.ProtoReflect().Descriptor().FullName(), i), wanted, 0)
		}
		if err := keys.ValidateAddress(a.params.Prefix, s); err != nil {
			return failed(sdkErr(CodeInvalidAddress, "message %d: invalid signer address: %v", i, err), wanted, 0)
		}
		if signer == "" {
			signer = s
		} else if s != signer {
			return failed(sdkErr(CodeUnauthorized, "wrong number of signers; expected 1, messages name %s and %s", signer, s), wanted, 0)
		}
	}

	used := int64(EstimateGas(len(txBytes), registrations, results) + uint64(GasPerSend*sends))
	if used > wanted {
		return failed(sdkErr(CodeOutOfGas, "out of gas; gasWanted: %d, gasUsed: %d", wanted, used), wanted, used)
	}

	feeDenom := a.params.FeeDenom
	fee := d.Fee[feeDenom]
	if fee == nil {
		fee = new(big.Int)
	}
	for denom := range d.Fee {
		if denom != feeDenom {
			return failed(sdkErr(CodeInsufficientFunds, "fee denom %s: 0%s is smaller than %s%s: insufficient funds", denom, denom, d.Fee[denom], denom), wanted, used)
		}
	}
	if checkTx {
		// required = ceil(gas limit * min gas price)
		req := new(big.Rat).Mul(new(big.Rat).SetInt64(wanted), a.minGas)
		required := new(big.Int).Quo(req.Num(), req.Denom())
		if new(big.Rat).SetInt(required).Cmp(req) < 0 {
			required.Add(required, big.NewInt(1))
		}
		if fee.Cmp(required) < 0 {
			return failed(sdkErr(CodeInsufficientFee, "insufficient fees; got: %s%s required: %s%s", fee, feeDenom, required, feeDenom), wanted, used)
		}
	}

	_, raw, _ := keys.DecodeAddress(signer)
	acc, err := getAccount(st, raw)
	if err != nil {
		return failed(sdkErr(CodeInvalidRequest, "read account: %v", err), wanted, used)
	}
	if acc == nil {
		return failed(sdkErr(CodeUnknownAddress, "account %s does not exist: unknown address", signer), wanted, used)
	}
	if !bytes.Equal(keys.AccAddressFromPubKey(d.PubKey), raw) {
		return failed(sdkErr(CodeInvalidPubKey, "pubKey does not match signer address %s with signer index: 0: invalid pubkey", signer), wanted, used)
	}
	if pk := pubKeyOf(acc); pk != nil && !bytes.Equal(pk, d.PubKey) {
		return failed(sdkErr(CodeInvalidPubKey, "pubKey does not match the account's key: invalid pubkey"), wanted, used)
	}
	bal := u64(mustGet(st, prefixBalance+string(raw)))
	if !fee.IsUint64() || fee.Uint64() > bal {
		return failed(sdkErr(CodeInsufficientFunds, "spendable balance %d%s is smaller than %s%s: insufficient funds", bal, feeDenom, fee, feeDenom), wanted, used)
	}
	if d.Sequence != acc.Sequence {
		return failed(sdkErr(CodeWrongSequence, "account sequence mismatch, expected %d, got %d: incorrect account sequence", acc.Sequence, d.Sequence), wanted, used)
	}
	if err := tx.VerifyDirect(d, a.chainID(), acc.AccountNumber); err != nil {
		return failed(fromTxErr(err), wanted, used)
	}

	// Ante effects: fee, public key, sequence.
	ante := st.child()
	if acc.PubKey == nil {
		pkAny, err := tx.AnyOf(&secp256k1pb.PubKey{Key: d.PubKey})
		if err != nil {
			return failed(sdkErr(CodeInvalidPubKey, "%v", err), wanted, used)
		}
		acc.PubKey = pkAny
	}
	acc.Sequence++
	if err := setProto(ante, prefixAccount+string(raw), acc); err != nil {
		return failed(sdkErr(CodeInvalidRequest, "%v", err), wanted, used)
	}
	ante.set(prefixBalance+string(raw), u64b(bal-fee.Uint64()))

	// Messages, all or nothing. A failed message keeps the ante effects in
	// a block (the fee is paid, the sequence used) but not in CheckTx,
	// where the transaction is simply refused.
	msgState := ante.child()
	events := []abci.Event{{Type: "tx", Attributes: []abci.EventAttribute{
		{Key: "acc_seq", Value: fmt.Sprintf("%s/%d", signer, acc.Sequence-1), Index: true},
	}}}
	for i, m := range msgs {
		var ev abci.Event
		var merr *abciError
		switch msg := m.(type) {
		case *aivmv1.MsgRegisterProvider:
			ev, merr = a.registerProvider(msgState, msg, height)
		case *aivmv1.MsgSubmitResults:
			ev, merr = a.submitResults(msgState, msg, height, d.Hash)
		case *bankv1beta1.MsgSend:
			ev, merr = a.send(msgState, msg)
		}
		if merr != nil {
			merr.msg = fmt.Sprintf("failed to execute message; message index: %d: %s", i, merr.msg)
			if !checkTx {
				ante.commitTo(st)
			}
			return failed(merr, wanted, used)
		}
		events = append(events, abci.Event{Type: "message", Attributes: []abci.EventAttribute{
			{Key: "action", Value: "/" + string(m.ProtoReflect().Descriptor().FullName()), Index: true},
			{Key: "sender", Value: signer, Index: true},
			{Key: "module", Value: moduleOf(m), Index: true},
		}}, ev)
	}
	msgState.commitTo(ante)
	ante.commitTo(st)
	return txResult{gasWanted: wanted, gasUsed: used, events: events}
}

func mustGet(st reader, key string) []byte {
	b, _ := st.get(key)
	return b
}

func (a *application) chainID() string { return a.chainIDValue }

func (a *application) registerProvider(st *overlay, m *aivmv1.MsgRegisterProvider, height int64) (abci.Event, *abciError) {
	switch {
	case m.Moniker == "" || len(m.Moniker) > maxMonikerLen:
		return abci.Event{}, aivmErr(CodeInvalidRegistration, "moniker must be 1 to %d bytes", maxMonikerLen)
	case len(m.Endpoint) > maxEndpointLen:
		return abci.Event{}, aivmErr(CodeInvalidRegistration, "endpoint longer than %d bytes", maxEndpointLen)
	case len(m.Version) > maxVersionLen:
		return abci.Event{}, aivmErr(CodeInvalidRegistration, "version longer than %d bytes", maxVersionLen)
	case len(m.Gpus) > maxGPUs:
		return abci.Event{}, aivmErr(CodeInvalidRegistration, "%d GPUs, limit %d", len(m.Gpus), maxGPUs)
	}
	var total uint64
	for i, g := range m.Gpus {
		if g.GetProduct() == "" || len(g.GetProduct()) > maxProductLen {
			return abci.Event{}, aivmErr(CodeInvalidRegistration, "gpu %d: product must be 1 to %d bytes", i, maxProductLen)
		}
		if total+g.MemoryBytes < total {
			return abci.Event{}, aivmErr(CodeInvalidRegistration, "gpu memory overflows")
		}
		total += g.MemoryBytes
	}
	if total != m.TotalVramBytes {
		return abci.Event{}, aivmErr(CodeInvalidRegistration, "total_vram_bytes %d differs from the GPUs' sum %d", m.TotalVramBytes, total)
	}
	p := &aivmv1.Provider{
		Registration:     proto.Clone(m).(*aivmv1.MsgRegisterProvider),
		RegisteredHeight: height,
		ExpiresHeight:    height + a.params.ProviderValidBlocks,
	}
	if err := setProto(st, prefixProvider+m.Provider, p); err != nil {
		return abci.Event{}, aivmErr(CodeInvalidRegistration, "%v", err)
	}
	return abci.Event{Type: "aivm.register_provider", Attributes: []abci.EventAttribute{
		{Key: "provider", Value: m.Provider, Index: true},
		{Key: "expires_height", Value: fmt.Sprint(p.ExpiresHeight), Index: false},
	}}, nil
}

func (a *application) submitResults(st *overlay, m *aivmv1.MsgSubmitResults, height int64, txHash string) (abci.Event, *abciError) {
	p, err := getProvider(st, m.Provider)
	if err != nil {
		return abci.Event{}, aivmErr(CodeProviderNotRegistered, "read provider: %v", err)
	}
	if p == nil {
		return abci.Event{}, aivmErr(CodeProviderNotRegistered, "provider %s is not registered", m.Provider)
	}
	if height >= p.ExpiresHeight {
		return abci.Event{}, aivmErr(CodeProviderExpired, "provider %s registration expired at height %d (now %d)", m.Provider, p.ExpiresHeight, height)
	}
	if len(m.Results) == 0 || len(m.Results) > maxResultsPerTx {
		return abci.Event{}, aivmErr(CodeInvalidResult, "a batch holds 1 to %d results, got %d", maxResultsPerTx, len(m.Results))
	}
	seen := make(map[string]struct{}, len(m.Results))
	for i, r := range m.Results {
		if r == nil || r.JobUid == "" || len(r.JobUid) > maxJobUIDLen {
			return abci.Event{}, aivmErr(CodeInvalidResult, "result %d: job_uid must be 1 to %d bytes", i, maxJobUIDLen)
		}
		for _, dg := range []string{r.KernelDigest, r.ModelDigest, r.InputDigest, r.OutputDigest} {
			if len(dg) > maxDigestLen {
				return abci.Event{}, aivmErr(CodeInvalidResult, "result %d: digest longer than %d bytes", i, maxDigestLen)
			}
		}
		if _, dup := seen[r.JobUid]; dup {
			return abci.Event{}, aivmErr(CodeDuplicateResult, "job %s appears twice in the batch", r.JobUid)
		}
		seen[r.JobUid] = struct{}{}
		if b := mustGet(st, prefixResult+r.JobUid); b != nil {
			return abci.Event{}, aivmErr(CodeDuplicateResult, "result for job %s is already on chain", r.JobUid)
		}
	}
	root, err := merkleRoot(m.Results)
	if err != nil {
		return abci.Event{}, aivmErr(CodeInvalidResult, "%v", err)
	}
	if !bytes.Equal(root, m.MerkleRoot) {
		return abci.Event{}, aivmErr(CodeRootMismatch, "merkle root %s differs from the records' root %s", hexRoot(m.MerkleRoot), hexRoot(root))
	}
	for i, r := range m.Results {
		sr := &aivmv1.StoredResult{Result: r, Provider: m.Provider, MerkleRoot: root, Height: height, TxHash: txHash, Index: uint32(i)}
		if err := setProto(st, prefixResult+r.JobUid, sr); err != nil {
			return abci.Event{}, aivmErr(CodeInvalidResult, "%v", err)
		}
	}
	return abci.Event{Type: "aivm.submit_results", Attributes: []abci.EventAttribute{
		{Key: "provider", Value: m.Provider, Index: true},
		{Key: "merkle_root", Value: hexRoot(root), Index: true},
		{Key: "count", Value: fmt.Sprint(len(m.Results)), Index: false},
	}}, nil
}

func moduleOf(m proto.Message) string {
	if _, ok := m.(*bankv1beta1.MsgSend); ok {
		return "bank"
	}
	return "aivm"
}

// send moves fee-denom coins, creating the recipient's account (next
// account number) when it has none, as a Cosmos chain does.
func (a *application) send(st *overlay, m *bankv1beta1.MsgSend) (abci.Event, *abciError) {
	if err := keys.ValidateAddress(a.params.Prefix, m.ToAddress); err != nil {
		return abci.Event{}, sdkErr(CodeInvalidAddress, "invalid to address: %v", err)
	}
	if len(m.Amount) != 1 || m.Amount[0].GetDenom() != a.params.FeeDenom {
		return abci.Event{}, sdkErr(CodeInvalidCoins, "send exactly one coin of %s", a.params.FeeDenom)
	}
	amt, ok := new(big.Int).SetString(m.Amount[0].Amount, 10)
	if !ok || amt.Sign() <= 0 || !amt.IsUint64() {
		return abci.Event{}, sdkErr(CodeInvalidCoins, "invalid amount %q", m.Amount[0].Amount)
	}
	_, from, _ := keys.DecodeAddress(m.FromAddress)
	_, to, _ := keys.DecodeAddress(m.ToAddress)
	fromBal := u64(mustGet(st, prefixBalance+string(from)))
	if fromBal < amt.Uint64() {
		return abci.Event{}, sdkErr(CodeInsufficientFunds, "spendable balance %d%s is smaller than %s%s: insufficient funds", fromBal, a.params.FeeDenom, amt, a.params.FeeDenom)
	}
	st.set(prefixBalance+string(from), u64b(fromBal-amt.Uint64()))
	toAcc, err := getAccount(st, to)
	if err != nil {
		return abci.Event{}, sdkErr(CodeInvalidRequest, "read account: %v", err)
	}
	if toAcc == nil {
		next := u64(mustGet(st, keyNextAccount))
		if err := setProto(st, prefixAccount+string(to), &authv1beta1.BaseAccount{Address: m.ToAddress, AccountNumber: next}); err != nil {
			return abci.Event{}, sdkErr(CodeInvalidRequest, "%v", err)
		}
		st.set(keyNextAccount, u64b(next+1))
	}
	toBal := u64(mustGet(st, prefixBalance+string(to)))
	if toBal+amt.Uint64() < toBal {
		return abci.Event{}, sdkErr(CodeInvalidCoins, "balance overflow")
	}
	st.set(prefixBalance+string(to), u64b(toBal+amt.Uint64()))
	return abci.Event{Type: "transfer", Attributes: []abci.EventAttribute{
		{Key: "recipient", Value: m.ToAddress, Index: true},
		{Key: "sender", Value: m.FromAddress, Index: true},
		{Key: "amount", Value: amt.String() + a.params.FeeDenom, Index: false},
	}}, nil
}
