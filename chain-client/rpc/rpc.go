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

// Package rpc talks to a CometBFT node over its JSON-RPC API with the
// cometbft library's own HTTP client: the standard Cosmos account query
// (/cosmos.auth.v1beta1.Query/Account over abci_query), the aivm.v1 provider
// and result queries, broadcast_tx_sync, and transaction lookup by hash.
// It never uses broadcast_tx_commit: inclusion is confirmed by hash.
package rpc

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	authv1beta1 "cosmossdk.io/api/cosmos/auth/v1beta1"
	bankv1beta1 "cosmossdk.io/api/cosmos/bank/v1beta1"
	rpcclient "github.com/cometbft/cometbft/rpc/client"
	cmthttp "github.com/cometbft/cometbft/rpc/client/http"
	cmttypes "github.com/cometbft/cometbft/types"
	"google.golang.org/protobuf/proto"
	"k8s.io/utils/clock"

	"github.com/aivm-dev/aivm-operator/chain-client/aivmv1"
	"github.com/aivm-dev/aivm-operator/chain-client/tx"
)

// Cosmos SDK codes (codespace "sdk") that this package produces itself from
// node errors that carry no ABCI code.
const (
	// CodespaceSDK is the Cosmos SDK codespace.
	CodespaceSDK = "sdk"
	// CodeTxInMempoolCache: the node already holds this exact transaction.
	CodeTxInMempoolCache uint32 = 19
	// CodeTxTooLarge: the node's mempool refused the transaction's size.
	CodeTxTooLarge uint32 = 21
	// CodeMempoolFull: the node's mempool is full.
	CodeMempoolFull uint32 = 20
	// CodeNotFound: the queried object does not exist.
	CodeNotFound uint32 = 38
)

// invalidTxPattern matches CometBFT's mempool.ErrInvalidTx text, which
// broadcast_tx_sync returns as an RPC error when CheckTx refuses a
// transaction.
var invalidTxPattern = regexp.MustCompile(`is invalid: code=(\d+), data=[0-9A-Fa-f]*, log='(?s:(.*))', codespace='([^']*)'$`)

// QueryPathBalance is the standard Cosmos bank balance query path.
const QueryPathBalance = "/cosmos.bank.v1beta1.Query/Balance"

// ErrAccountNotFound is returned (wrapped) by Account for an address the
// chain has no account for.
var ErrAccountNotFound = errors.New("account not found")

// QueryError is a non-zero ABCI query answer.
type QueryError struct {
	// Path is the query path.
	Path string
	// Code is the ABCI result code.
	Code uint32
	// Codespace qualifies Code.
	Codespace string
	// Log is the node's message.
	Log string
}

// Error describes the refusal.
func (e *QueryError) Error() string {
	return fmt.Sprintf("query %s: code %d (%s): %s", e.Path, e.Code, e.Codespace, e.Log)
}

// BroadcastResult is a node's CheckTx answer to broadcast_tx_sync.
type BroadcastResult struct {
	// Code is the ABCI code; 0 means accepted into the mempool.
	Code uint32
	// Codespace qualifies Code.
	Codespace string
	// Log is the node's message.
	Log string
	// Hash is the transaction hash (uppercase hex).
	Hash string
}

// TxResult is a transaction looked up by hash.
type TxResult struct {
	// Found is false while no block holds the transaction.
	Found bool
	// Height is the block that included it.
	Height int64
	// Code is the execution result; 0 means success.
	Code uint32
	// Codespace qualifies Code.
	Codespace string
	// Log is the chain's message.
	Log string
	// GasWanted and GasUsed are the transaction's gas figures.
	GasWanted, GasUsed int64
}

// Status is a node's view of the chain.
type Status struct {
	// ChainID is the node's network.
	ChainID string
	// Height is the latest committed height.
	Height int64
	// CatchingUp is true while the node syncs.
	CatchingUp bool
}

// Client is a CometBFT RPC client. It is safe for concurrent use.
type Client struct {
	c     *cmthttp.HTTP
	clock clock.WithTicker
}

// Option configures a Client.
type Option func(*Client)

// WithClock sets the clock WaitForTx polls with.
func WithClock(c clock.WithTicker) Option { return func(cl *Client) { cl.clock = c } }

// New returns a client for the node at rpcURL (e.g. "http://127.0.0.1:26657").
// The URL may carry credentials (user:password@); errors name it only as
// RedactURL gives it.
func New(rpcURL string, opts ...Option) (*Client, error) {
	if err := checkURL(rpcURL); err != nil {
		return nil, err
	}
	c, err := cmthttp.New(rpcURL)
	if err != nil {
		// The library's errors quote the URL as given: leave them out.
		return nil, fmt.Errorf("rpc client for %s: invalid URL", RedactURL(rpcURL))
	}
	cl := &Client{c: c, clock: clock.RealClock{}}
	for _, o := range opts {
		o(cl)
	}
	return cl, nil
}

// checkURL returns an error, naming the URL only as RedactURL gives it,
// when rpcURL does not parse as a URL.
func checkURL(rpcURL string) error {
	if _, err := url.Parse(rpcURL); err != nil {
		// url.Error repeats the whole URL; keep only what is wrong with it.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("rpc URL %s is invalid: %w", RedactURL(rpcURL), err)
	}
	return nil
}

// redactedURL stands for a URL that cannot be shown.
const redactedURL = "<unparsable URL>"

// RedactURL returns rpcURL fit for logs and errors: the password (or a
// user name that stands alone, often a token) replaced by "xxxxx", the
// query string and fragment dropped.
func RedactURL(rpcURL string) string {
	u, err := url.Parse(rpcURL)
	if err != nil {
		return redactedURL
	}
	u.RawQuery, u.ForceQuery, u.Fragment, u.RawFragment = "", false, "", ""
	if u.User != nil {
		if _, hasPassword := u.User.Password(); !hasPassword {
			u.User = url.User("xxxxx")
		}
	}
	return u.Redacted()
}

// query runs an ABCI query at the latest height and decodes its value into
// resp.
func (c *Client) query(ctx context.Context, path string, req, resp proto.Message) error {
	data, err := proto.MarshalOptions{Deterministic: true}.Marshal(req)
	if err != nil {
		return fmt.Errorf("query %s: %w", path, err)
	}
	res, err := c.c.ABCIQueryWithOptions(ctx, path, data, rpcclient.ABCIQueryOptions{})
	if err != nil {
		return fmt.Errorf("query %s: %w", path, err)
	}
	if res.Response.Code != 0 {
		return &QueryError{Path: path, Code: res.Response.Code, Codespace: res.Response.Codespace, Log: res.Response.Log}
	}
	if err := proto.Unmarshal(res.Response.Value, resp); err != nil {
		return fmt.Errorf("query %s: decode response: %w", path, err)
	}
	return nil
}

func isNotFound(err error) bool {
	var qe *QueryError
	return errors.As(err, &qe) && qe.Code == CodeNotFound
}

// Account returns the account number and next sequence of address through
// the standard /cosmos.auth.v1beta1.Query/Account query. An address with no
// account gives an error wrapping ErrAccountNotFound.
func (c *Client) Account(ctx context.Context, address string) (accountNumber, sequence uint64, err error) {
	var resp authv1beta1.QueryAccountResponse
	if err := c.query(ctx, aivmv1.QueryPathAccount, &authv1beta1.QueryAccountRequest{Address: address}, &resp); err != nil {
		if isNotFound(err) {
			return 0, 0, fmt.Errorf("%w: %s", ErrAccountNotFound, address)
		}
		return 0, 0, err
	}
	if resp.Account == nil || resp.Account.TypeUrl != "/cosmos.auth.v1beta1.BaseAccount" {
		return 0, 0, fmt.Errorf("query account %s: unexpected account type %q", address, resp.Account.GetTypeUrl())
	}
	var acc authv1beta1.BaseAccount
	if err := proto.Unmarshal(resp.Account.Value, &acc); err != nil {
		return 0, 0, fmt.Errorf("query account %s: decode: %w", address, err)
	}
	return acc.AccountNumber, acc.Sequence, nil
}

// Balance returns the balance of address in denom through the standard
// /cosmos.bank.v1beta1.Query/Balance query (0 for an unknown account).
func (c *Client) Balance(ctx context.Context, address, denom string) (uint64, error) {
	var resp bankv1beta1.QueryBalanceResponse
	if err := c.query(ctx, QueryPathBalance, &bankv1beta1.QueryBalanceRequest{Address: address, Denom: denom}, &resp); err != nil {
		return 0, err
	}
	if resp.Balance == nil {
		return 0, nil
	}
	n, err := strconv.ParseUint(resp.Balance.Amount, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("query balance of %s: amount %q: %w", address, resp.Balance.Amount, err)
	}
	return n, nil
}

// Provider returns the provider registered under address, or nil when there
// is none.
func (c *Client) Provider(ctx context.Context, address string) (*aivmv1.Provider, error) {
	var resp aivmv1.QueryProviderResponse
	if err := c.query(ctx, aivmv1.QueryPathProvider, &aivmv1.QueryProviderRequest{Address: address}, &resp); err != nil {
		if isNotFound(err) {
			return nil, nil
		}
		return nil, err
	}
	return resp.Provider, nil
}

// Result returns the stored result of a job, or nil when the chain has none.
func (c *Client) Result(ctx context.Context, jobUID string) (*aivmv1.StoredResult, error) {
	var resp aivmv1.QueryResultResponse
	if err := c.query(ctx, aivmv1.QueryPathResult, &aivmv1.QueryResultRequest{JobUid: jobUID}, &resp); err != nil {
		if isNotFound(err) {
			return nil, nil
		}
		return nil, err
	}
	return resp.Result, nil
}

// BroadcastSync submits a signed transaction with broadcast_tx_sync and
// returns the CheckTx outcome. Node-side refusals that carry no ABCI code
// get the Cosmos code a Cosmos client would report: a transaction already
// in the node's cache is code 19 (it counts as accepted), an oversized one
// code 21, a full mempool code 20. A transport failure is an error.
func (c *Client) BroadcastSync(ctx context.Context, txBytes []byte) (BroadcastResult, error) {
	hash := fmt.Sprintf("%X", cmttypes.Tx(txBytes).Hash())
	res, err := c.c.BroadcastTxSync(ctx, txBytes)
	if err != nil {
		msg := err.Error()
		if m := invalidTxPattern.FindStringSubmatch(msg); m != nil {
			// CometBFT v1 reports a CheckTx refusal as an RPC error.
			code, _ := strconv.ParseUint(m[1], 10, 32)
			return BroadcastResult{Code: uint32(code), Codespace: m[3], Log: m[2], Hash: hash}, nil
		}
		switch {
		case strings.Contains(msg, "tx already exists in cache"):
			return BroadcastResult{Code: CodeTxInMempoolCache, Codespace: CodespaceSDK, Log: "tx already in mempool", Hash: hash}, nil
		case strings.Contains(msg, "tx too large"):
			return BroadcastResult{Code: CodeTxTooLarge, Codespace: CodespaceSDK, Log: msg, Hash: hash}, nil
		case strings.Contains(msg, "mempool is full"):
			return BroadcastResult{Code: CodeMempoolFull, Codespace: CodespaceSDK, Log: msg, Hash: hash}, nil
		}
		return BroadcastResult{}, fmt.Errorf("broadcast tx %s: %w", hash, err)
	}
	return BroadcastResult{Code: res.Code, Codespace: res.Codespace, Log: res.Log, Hash: strings.ToUpper(res.Hash.String())}, nil
}

// Tx looks a transaction up by its hash (hex). Found is false while no
// block holds it.
func (c *Client) Tx(ctx context.Context, hash string) (TxResult, error) {
	h, err := hex.DecodeString(hash)
	if err != nil || len(h) != 32 {
		return TxResult{}, fmt.Errorf("tx hash %q is not 32 bytes of hex", hash)
	}
	res, err := c.c.Tx(ctx, h, false)
	if err != nil {
		if strings.Contains(err.Error(), ") not found") {
			return TxResult{}, nil
		}
		return TxResult{}, fmt.Errorf("look up tx %s: %w", hash, err)
	}
	r := res.TxResult
	return TxResult{Found: true, Height: res.Height, Code: r.Code, Codespace: r.Codespace, Log: r.Log, GasWanted: r.GasWanted, GasUsed: r.GasUsed}, nil
}

// Status returns the node's chain id and latest height.
func (c *Client) Status(ctx context.Context) (Status, error) {
	st, err := c.c.Status(ctx)
	if err != nil {
		return Status{}, fmt.Errorf("status: %w", err)
	}
	return Status{ChainID: st.NodeInfo.Network, Height: st.SyncInfo.LatestBlockHeight, CatchingUp: st.SyncInfo.CatchingUp}, nil
}

// ChainID returns the chain id the node serves.
func (c *Client) ChainID(ctx context.Context) (string, error) {
	st, err := c.Status(ctx)
	if err != nil {
		return "", err
	}
	return st.ChainID, nil
}

// TxBytes returns the bytes of the committed transaction hash (hex).
func (c *Client) TxBytes(ctx context.Context, hash string) ([]byte, error) {
	h, err := hex.DecodeString(hash)
	if err != nil || len(h) != 32 {
		return nil, fmt.Errorf("tx hash %q is not 32 bytes of hex", hash)
	}
	res, err := c.c.Tx(ctx, h, false)
	if err != nil {
		return nil, fmt.Errorf("fetch tx %s: %w", hash, err)
	}
	return res.Tx, nil
}

// SubmittedResults returns the result batches (MsgSubmitResults) the
// committed transaction hash carries, in message order.
func (c *Client) SubmittedResults(ctx context.Context, hash string) ([]*aivmv1.MsgSubmitResults, error) {
	raw, err := c.TxBytes(ctx, hash)
	if err != nil {
		return nil, err
	}
	decoded, err := tx.Decode(raw)
	if err != nil {
		return nil, fmt.Errorf("decode tx %s: %w", hash, err)
	}
	msgs, err := decoded.Msgs()
	if err != nil {
		return nil, fmt.Errorf("decode tx %s: %w", hash, err)
	}
	var out []*aivmv1.MsgSubmitResults
	for _, m := range msgs {
		if sub, ok := m.(*aivmv1.MsgSubmitResults); ok {
			out = append(out, sub)
		}
	}
	return out, nil
}

// Height returns the latest committed height.
func (c *Client) Height(ctx context.Context) (int64, error) {
	st, err := c.Status(ctx)
	if err != nil {
		return 0, err
	}
	return st.Height, nil
}

// WaitForTx polls Tx every interval until the transaction is in a block or
// ctx ends.
func (c *Client) WaitForTx(ctx context.Context, hash string, interval time.Duration) (TxResult, error) {
	t := c.clock.NewTicker(interval)
	defer t.Stop()
	for {
		r, err := c.Tx(ctx, hash)
		if err != nil {
			return TxResult{}, err
		}
		if r.Found {
			return r, nil
		}
		select {
		case <-ctx.Done():
			return TxResult{}, fmt.Errorf("wait for tx %s: %w", hash, ctx.Err())
		case <-t.C():
		}
	}
}
