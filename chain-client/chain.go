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
	"regexp"
	"strconv"

	"github.com/aivm-dev/aivm-operator/chain-client/aivmv1"
	"github.com/aivm-dev/aivm-operator/chain-client/rpc"
)

// Cosmos SDK error codes (codespace "sdk") the client tells apart.
const (
	CodeOK                = 0
	CodeTxDecode          = 2
	CodeUnauthorized      = 4
	CodeInsufficientFunds = 5
	CodeInsufficientFee   = 13
	CodeInvalidRequest    = 18
	CodeTxInMempoolCache  = 19
	CodeMempoolFull       = 20
	CodeTxTooLarge        = 21
	CodeWrongSequence     = 32
	CodeNotFound          = 38
)

// CodespaceSDK is the codespace of the standard Cosmos SDK errors.
const CodespaceSDK = "sdk"

// ErrAccountNotFound is returned (wrapped) by Chain.Account when the chain
// has no account for the address: it has never been funded.
var ErrAccountNotFound = rpc.ErrAccountNotFound

// Chain is what the client needs from a CometBFT RPC endpoint;
// *rpc.Client satisfies it.
type Chain interface {
	// Account returns the account number and next sequence of address, or an
	// error wrapping ErrAccountNotFound.
	Account(ctx context.Context, address string) (accountNumber, sequence uint64, err error)
	// BroadcastSync submits signed transaction bytes and returns the CheckTx
	// outcome (never waiting for a block).
	BroadcastSync(ctx context.Context, txBytes []byte) (rpc.BroadcastResult, error)
	// Tx looks a transaction up by its hash.
	Tx(ctx context.Context, hash string) (rpc.TxResult, error)
	// Provider returns the provider registered under address, or nil when
	// there is none.
	Provider(ctx context.Context, address string) (*aivmv1.Provider, error)
	// Height returns the latest committed block height.
	Height(ctx context.Context) (int64, error)
	// Result returns the stored result of a job, or nil when the chain has
	// none.
	Result(ctx context.Context, jobUID string) (*aivmv1.StoredResult, error)
}

// TxFetcher is implemented by chains that return a committed transaction's
// bytes (RPCChain does). With it, a result found already on chain from this
// provider (say, after the outbox was lost) is recorded as committed, with
// its proof rebuilt from that transaction, instead of rejected.
type TxFetcher interface {
	TxBytes(ctx context.Context, hash string) ([]byte, error)
}

// RPCChain is the rpc package's client (with its raw transaction lookups);
// it satisfies Chain and TxFetcher.
type RPCChain struct {
	*rpc.Client
}

// NewRPCChain returns a Chain for the CometBFT RPC endpoint at rpcURL.
// Errors name the URL only as rpc.RedactURL gives it.
func NewRPCChain(rpcURL string) (*RPCChain, error) {
	c, err := rpc.New(rpcURL)
	if err != nil {
		return nil, err
	}
	return &RPCChain{Client: c}, nil
}

// expectedSeqPattern finds the expected sequence in a Cosmos "account
// sequence mismatch, expected N, got M" log.
var expectedSeqPattern = regexp.MustCompile(`expected (\d+), got (\d+)`)

// expectedSequence parses the sequence a chain expects from a sequence
// mismatch log.
func expectedSequence(log string) (uint64, bool) {
	m := expectedSeqPattern.FindStringSubmatch(log)
	if m == nil {
		return 0, false
	}
	n, err := strconv.ParseUint(m[1], 10, 64)
	return n, err == nil
}

// outcome classifies a chain answer.
type outcome int

const (
	// outcomeAccepted: in the mempool (or already there).
	outcomeAccepted outcome = iota
	// outcomeWrongSequence: the signed sequence is not the one the chain
	// expects; the transaction is not in this node's mempool.
	outcomeWrongSequence
	// outcomeNotRegistered: the provider's registration is missing or has
	// expired; register and send again.
	outcomeNotRegistered
	// outcomeRetryLater: a condition an operator can fix (funds, fees);
	// the results wait and are sent again after a backoff.
	outcomeRetryLater
	// outcomeDuplicate: some of the batch's job UIDs are already on chain;
	// those are rejected, the others signed again.
	outcomeDuplicate
	// outcomeRejected: the transaction can never succeed; its results are
	// rejected for good.
	outcomeRejected
)

// Codes of the aivm module (codespace "aivm") that ask for a registration.
const (
	// CodeProviderNotRegistered: results from an unknown provider.
	CodeProviderNotRegistered = 3
	// CodeProviderExpired: results from a provider whose registration expired.
	CodeProviderExpired = 4
	// CodeDuplicateResult: a job UID already on chain (or twice in a batch).
	CodeDuplicateResult = 5
)

func classify(code uint32, codespace string) outcome {
	switch {
	case code == CodeOK:
		return outcomeAccepted
	case codespace == CodespaceSDK || codespace == "":
		switch code {
		case CodeTxInMempoolCache:
			return outcomeAccepted
		case CodeWrongSequence:
			return outcomeWrongSequence
		case CodeInsufficientFunds, CodeInsufficientFee, CodeMempoolFull:
			return outcomeRetryLater
		}
	case codespace == aivmv1.Codespace && (code == CodeProviderNotRegistered || code == CodeProviderExpired):
		return outcomeNotRegistered
	case codespace == aivmv1.Codespace && code == CodeDuplicateResult:
		return outcomeDuplicate
	}
	return outcomeRejected
}
