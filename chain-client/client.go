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

// Package chainclient reports signed inference results to the chain exactly
// once.
//
// A Client owns one provider key and one signer queue for it. Results are
// enqueued into a durable outbox (package outbox) keyed by job UID; a single
// loop folds pending results into batches, signs each, stores the signed
// bytes in the outbox and only then broadcasts them, and confirms inclusion
// by hash. A batch's results are signed again only once its transaction can
// no longer land. docs/chain-client.md has the outbox's states, the rules
// for resending, re-signing and the account sequence, and the tests that
// prove each.
//
// At start the provider registers itself (MsgRegisterProvider) and renews
// the registration before it expires. Commits and rejections are reported
// through Options.OnEvent and are always readable with Client.Get.
package chainclient

import (
	"context"
	"errors"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/utils/clock"

	"github.com/aivm-dev/aivm-operator/chain-client/aivmv1"
	"github.com/aivm-dev/aivm-operator/chain-client/keys"
	"github.com/aivm-dev/aivm-operator/chain-client/merkle"
	"github.com/aivm-dev/aivm-operator/chain-client/outbox"
	"github.com/aivm-dev/aivm-operator/chain-client/receipt"
)

// Defaults of Options.
const (
	DefaultChainID           = "nesa"
	DefaultMaxBatchResults   = 1000
	DefaultBatchDelay        = 200 * time.Millisecond
	DefaultMaxTxBytes        = 1 << 20
	DefaultPollInterval      = 250 * time.Millisecond
	DefaultMaxInFlight       = 16
	DefaultResendAfterBlocks = 3
	DefaultRenewBeforeBlocks = 50
	DefaultMinBackoff        = 500 * time.Millisecond
	DefaultMaxBackoff        = 30 * time.Second
	DefaultGasPrice          = 0.025
	DefaultFeeDenom          = "unes"
	DefaultGasBase           = 50_000
	DefaultGasPerByte        = 10
	DefaultGasPerResult      = 2_000
)

// txOverhead bounds what a TxRaw adds around its messages: the Any wrapper,
// the body, the signer info with its public key, the fee and the signature.
const txOverhead = 512

// Options configure a Client. Key, Outbox and Chain are required.
type Options struct {
	// Key is the provider's account key; it signs every transaction.
	Key *keys.Key
	// Prefix is the bech32 account prefix (default keys.DefaultPrefix).
	Prefix string
	// ChainID is the chain the transactions are for (default "nesa").
	ChainID string
	// Chain reaches the chain's RPC endpoint.
	Chain Chain
	// Outbox is the durable result queue; the client does not close it.
	Outbox *outbox.Outbox

	// MaxBatchResults caps the results in one transaction.
	MaxBatchResults int
	// BatchDelay is how long pending results may wait for more to fill a
	// batch.
	BatchDelay time.Duration
	// MaxTxBytes caps the size of one signed transaction.
	MaxTxBytes int
	// MaxInFlight caps the transactions broadcast but not yet committed.
	MaxInFlight int
	// PollInterval is how often in-flight transactions are looked up.
	PollInterval time.Duration
	// ResendAfterBlocks is how many blocks a transaction may stay unknown
	// before its same bytes are broadcast again.
	ResendAfterBlocks int64
	// MinBackoff and MaxBackoff bound the wait after a failed chain call.
	MinBackoff, MaxBackoff time.Duration

	// GasPrice is the fee per unit of gas, in FeeDenom.
	GasPrice float64
	// FeeDenom is the fee denomination (default "unes").
	FeeDenom string
	// GasBase, GasPerByte and GasPerResult give a transaction's gas limit:
	// GasBase + GasPerByte * transaction size + GasPerResult * results.
	GasBase, GasPerByte, GasPerResult uint64

	// Registration, when set, is registered at start (its Provider field is
	// filled in) and renewed RenewBeforeBlocks before it expires.
	Registration *aivmv1.MsgRegisterProvider
	// RetainBlocks, when positive, prunes committed results from the outbox
	// once their block is that many blocks old (the chain keeps them); 0
	// keeps them forever. Keep it well above how long a caller may take to
	// pick up a commit.
	RetainBlocks int64

	// RegistrationFunc, when set, is called for each registration and
	// renewal instead of using Registration, so the GPU inventory sent is
	// current. Its Provider field is filled in.
	RegistrationFunc func(ctx context.Context) (*aivmv1.MsgRegisterProvider, error)
	// RenewBeforeBlocks is the renewal margin. One at or above the validity
	// the chain grants a registration (which would renew at every step) is
	// taken as half that validity, with a warning.
	RenewBeforeBlocks int64

	// OnEvent, when set, is called from the client's loop for every result
	// that is committed or rejected. It must not block for long.
	OnEvent func(Event)
	// Metrics, when set, receives the client's Prometheus series
	// (aivm_chain_*); typically controller-runtime's metrics.Registry.
	Metrics prometheus.Registerer
	// Clock drives timers (default the real clock).
	Clock clock.WithTicker
	// Logger receives the client's log lines.
	Logger logr.Logger
}

// EventType names what happened to a result.
type EventType string

// Event types.
const (
	// EventCommitted: the result is in a block.
	EventCommitted EventType = "Committed"
	// EventRejected: the chain rejected the result's transaction for good.
	EventRejected EventType = "Rejected"
)

// Event reports a result's final state.
type Event struct {
	// Type is what happened.
	Type EventType
	// UID is the job UID.
	UID string
	// TxHash is the transaction that carried the result.
	TxHash string
	// Height is the committing block (EventCommitted).
	Height int64
	// Root is the batch's Merkle root (EventCommitted).
	Root merkle.Hash
	// Proof is the result's inclusion proof under Root (EventCommitted).
	Proof *merkle.Proof
	// Code, Codespace and Log are the chain's rejection (EventRejected).
	Code      uint32
	Codespace string
	Log       string
}

// Client is the provider's chain reporter for one key.
type Client struct {
	opts    Options
	address string
	log     logr.Logger
	metrics *metrics

	mu       sync.Mutex
	chainErr error
	running  bool
	kick     chan struct{}

	// batchStored, when set (by tests, before Run), is called with a
	// batch's hash once it is stored in the outbox, before its first
	// broadcast.
	batchStored func(txHash string)
}

// Validate reports what New would refuse in opts, other than a missing
// Outbox, so a caller can check its settings before it opens the outbox.
func (o Options) Validate() error {
	return o.complete()
}

// complete fills in o's defaults and checks it (all but the Outbox).
func (o *Options) complete() error {
	if o.Key == nil {
		return errors.New("chainclient: a key is required")
	}
	if o.Chain == nil {
		return errors.New("chainclient: a chain is required")
	}
	if o.Prefix == "" {
		o.Prefix = keys.DefaultPrefix
	}
	if o.ChainID == "" {
		o.ChainID = DefaultChainID
	}
	setDefault(&o.MaxBatchResults, DefaultMaxBatchResults)
	setDefault(&o.BatchDelay, DefaultBatchDelay)
	setDefault(&o.MaxTxBytes, DefaultMaxTxBytes)
	setDefault(&o.MaxInFlight, DefaultMaxInFlight)
	setDefault(&o.PollInterval, DefaultPollInterval)
	setDefault(&o.ResendAfterBlocks, DefaultResendAfterBlocks)
	setDefault(&o.MinBackoff, DefaultMinBackoff)
	setDefault(&o.MaxBackoff, DefaultMaxBackoff)
	setDefault(&o.GasPrice, DefaultGasPrice)
	setDefault(&o.FeeDenom, DefaultFeeDenom)
	setDefault(&o.GasBase, DefaultGasBase)
	setDefault(&o.GasPerByte, DefaultGasPerByte)
	setDefault(&o.GasPerResult, DefaultGasPerResult)
	setDefault(&o.RenewBeforeBlocks, DefaultRenewBeforeBlocks)
	if o.Clock == nil {
		o.Clock = clock.RealClock{}
	}
	switch {
	case o.MaxBatchResults < 0, o.MaxInFlight < 0, o.MaxTxBytes < 0:
		return errors.New("chainclient: MaxBatchResults, MaxInFlight and MaxTxBytes must not be negative")
	case o.BatchDelay < 0, o.PollInterval < 0, o.MinBackoff < 0, o.MaxBackoff < 0:
		return errors.New("chainclient: BatchDelay, PollInterval and backoffs must not be negative")
	case o.ResendAfterBlocks < 0, o.RenewBeforeBlocks < 0, o.RetainBlocks < 0:
		return errors.New("chainclient: ResendAfterBlocks, RenewBeforeBlocks and RetainBlocks must not be negative")
	}
	if o.MaxTxBytes < 4*txOverhead {
		return fmt.Errorf("chainclient: MaxTxBytes %d is too small (at least %d)", o.MaxTxBytes, 4*txOverhead)
	}
	if o.MinBackoff > o.MaxBackoff {
		return fmt.Errorf("chainclient: MinBackoff %s exceeds MaxBackoff %s", o.MinBackoff, o.MaxBackoff)
	}
	if o.GasPrice < 0 || math.IsNaN(o.GasPrice) || math.IsInf(o.GasPrice, 0) {
		return fmt.Errorf("chainclient: invalid gas price %v", o.GasPrice)
	}
	return nil
}

// New validates opts, fills in defaults and returns a Client. Call Run to
// start reporting.
func New(opts Options) (*Client, error) {
	if opts.Outbox == nil {
		return nil, errors.New("chainclient: an outbox is required")
	}
	if err := opts.complete(); err != nil {
		return nil, err
	}
	addr, err := opts.Key.Address(opts.Prefix)
	if err != nil {
		return nil, fmt.Errorf("chainclient: provider address: %w", err)
	}
	outbox := opts.Outbox
	m, err := newMetrics(opts.Metrics, func() float64 {
		n, err := outbox.CountPending()
		if err != nil {
			return math.NaN()
		}
		return float64(n)
	})
	if err != nil {
		return nil, fmt.Errorf("chainclient: register metrics: %w", err)
	}
	return &Client{
		opts:    opts,
		address: addr,
		log:     opts.Logger.WithValues("provider", addr),
		metrics: m,
		kick:    make(chan struct{}, 1),
	}, nil
}

// gasPricePattern is a decimal amount followed by a Cosmos denomination.
var gasPricePattern = regexp.MustCompile(`^([0-9]+(?:\.[0-9]+)?|\.[0-9]+)([a-zA-Z][a-zA-Z0-9/:._-]{1,127})$`)

// ParseGasPrice splits a Cosmos gas price such as "0.025unes" into its
// amount and denomination.
func ParseGasPrice(s string) (float64, string, error) {
	m := gasPricePattern.FindStringSubmatch(s)
	if m == nil {
		return 0, "", fmt.Errorf("gas price %q is not an amount followed by a denomination (e.g. 0.025unes)", s)
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		return 0, "", fmt.Errorf("gas price %q: %w", s, err)
	}
	return v, m[2], nil
}

func setDefault[T comparable](v *T, def T) {
	var zero T
	if *v == zero {
		*v = def
	}
}

// Address returns the provider's bech32 account address.
func (c *Client) Address() string { return c.address }

// Enqueue stores a result durably for reporting; it returns once the result
// is on disk. The record is validated (receipt.ValidateRecord). Enqueueing a
// job UID that the outbox already holds does nothing, so callers may retry
// freely.
func (c *Client) Enqueue(ctx context.Context, records ...*aivmv1.ResultRecord) error {
	items := make([]outbox.Item, 0, len(records))
	for _, r := range records {
		canon, err := receipt.Canonical(r)
		if err != nil {
			return fmt.Errorf("chainclient: %w", err)
		}
		items = append(items, outbox.Item{UID: r.GetJobUid(), Leaf: merkle.LeafHash(canon), Record: canon})
	}
	return c.opts.Outbox.Enqueue(ctx, items...)
}

// SignReceipt signs a result record with the provider key, so callers that
// build receipts (the job controller) never hold the key themselves.
func (c *Client) SignReceipt(r *aivmv1.ResultRecord) (*receipt.Receipt, error) {
	return receipt.Sign(c.opts.Key, c.opts.Prefix, r)
}

// Get returns the outbox state of a job's result (outbox.ErrNotFound when it
// was never enqueued).
func (c *Client) Get(uid string) (outbox.Entry, error) {
	return c.opts.Outbox.Get(uid)
}

// ChainError returns the error that stopped the latest round of reporting
// (an unreachable chain, see IsUnreachable; an unfunded account; a refused
// registration), or nil once a round succeeded again.
func (c *Client) ChainError() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.chainErr
}

func (c *Client) setChainErr(err error) {
	c.mu.Lock()
	c.chainErr = err
	c.mu.Unlock()
}

// Kick asks the loop to look at the chain and the outbox now.
func (c *Client) Kick() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// Run reports results until ctx is cancelled. It returns nil on
// cancellation; everything not yet committed stays in the outbox for the
// next Run. Only one Run may be active per Client.
func (c *Client) Run(ctx context.Context) error {
	c.mu.Lock()
	if c.running {
		c.mu.Unlock()
		return errors.New("chainclient: already running")
	}
	c.running = true
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.running = false
		c.mu.Unlock()
	}()
	l := newLoop(c)
	return l.run(ctx)
}
