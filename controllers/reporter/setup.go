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

package reporter

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"sort"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	aivmv1alpha1 "github.com/aivm-dev/aivm-operator/api/v1alpha1"
	chainclient "github.com/aivm-dev/aivm-operator/chain-client"
	"github.com/aivm-dev/aivm-operator/chain-client/aivmv1"
	"github.com/aivm-dev/aivm-operator/chain-client/keys"
	"github.com/aivm-dev/aivm-operator/chain-client/outbox"
)

// Config is the manager's chain-reporting configuration, bound to flags
// with BindFlags. The defaults fit the local devnet.
type Config struct {
	// Enabled turns chain reporting on.
	Enabled bool
	// RPCURL is the chain's CometBFT RPC endpoint.
	RPCURL string
	// ChainID is the chain id transactions are signed for.
	ChainID string
	// Prefix is the bech32 account prefix.
	Prefix string
	// KeyPath is the provider key: a file (hex private key or mnemonic) or a
	// mounted Secret directory (see keys.Load).
	KeyPath string
	// HDPath is the derivation path for a mnemonic.
	HDPath string
	// Key is the provider key when the caller loaded it already (the
	// manager loads it once, for the result endpoint's signer too); when
	// nil, Setup loads KeyPath.
	Key *keys.Key
	// OutboxDir holds the durable outbox; put it on a persistent volume.
	OutboxDir string
	// RetainBlocks prunes committed results from the outbox after that many
	// blocks (0 keeps them).
	RetainBlocks int64
	// GasPrice is the price of a unit of gas with its denomination, e.g.
	// "0.025unes".
	GasPrice string
	// MaxBatchResults, BatchDelay and MaxTxBytes shape result batches.
	MaxBatchResults int
	BatchDelay      time.Duration
	MaxTxBytes      int
	// Moniker, Endpoint and Version describe the provider in its
	// registration; the GPU inventory comes from the cluster's GPUNodes.
	Moniker  string
	Endpoint string
	Version  string
}

// RPCURLEnv is the environment variable that, when set, is the default of
// --chain-rpc-url (the Helm chart fills it from chain.rpcURLSecret).
const RPCURLEnv = "AIVM_CHAIN_RPC_URL"

// BindFlags registers the configuration's flags on fs.
func (c *Config) BindFlags(fs *flag.FlagSet) {
	fs.BoolVar(&c.Enabled, "report-results", false, "Report succeeded jobs' signed results on chain.")
	rpcURL := "http://127.0.0.1:26657"
	if v := os.Getenv(RPCURLEnv); v != "" {
		rpcURL = v
	}
	fs.StringVar(&c.RPCURL, "chain-rpc-url", rpcURL, "CometBFT RPC URL of the chain (default $"+RPCURLEnv+" when set, so a URL with credentials can come from a Secret).")
	fs.StringVar(&c.ChainID, "chain-id", chainclient.DefaultChainID, "Chain id transactions are signed for.")
	fs.StringVar(&c.Prefix, "chain-address-prefix", keys.DefaultPrefix, "Bech32 prefix of account addresses.")
	fs.StringVar(&c.KeyPath, "chain-key-dir", "/var/run/aivm/provider-key", "Provider key: a mounted Secret directory (key private-key or mnemonic), or a file holding a hex private key or a mnemonic.")
	fs.StringVar(&c.HDPath, "chain-hd-path", keys.DefaultHDPath, "BIP44 path for a mnemonic key.")
	fs.StringVar(&c.OutboxDir, "chain-outbox-dir", "/var/lib/aivm/outbox", "Directory of the durable result outbox (a persistent volume).")
	fs.Int64Var(&c.RetainBlocks, "chain-outbox-retain-blocks", 0, "Blocks a committed result stays in the outbox before it is pruned; keep it well above how long the manager may be down (0 keeps results forever).")
	fs.StringVar(&c.GasPrice, "chain-gas-price", "0.025unes", "Gas price with its denomination.")
	fs.IntVar(&c.MaxBatchResults, "chain-batch-size", chainclient.DefaultMaxBatchResults, "Most results in one transaction.")
	fs.DurationVar(&c.BatchDelay, "chain-batch-interval", chainclient.DefaultBatchDelay, "How long results may wait for a batch to fill.")
	fs.IntVar(&c.MaxTxBytes, "chain-max-tx-bytes", chainclient.DefaultMaxTxBytes, "Largest transaction sent (the chain's limit).")
	fs.StringVar(&c.Moniker, "provider-moniker", "aivm-operator", "Provider name in the chain registration.")
	fs.StringVar(&c.Endpoint, "provider-endpoint", "", "Provider endpoint URL in the chain registration.")
	fs.StringVar(&c.Version, "provider-version", "dev", "Provider version in the chain registration.")
}

// Setup does nothing when reporting is disabled; otherwise it loads the
// key (so a bad key stops the manager at start on every replica) and
// registers the reporter and the chain client's loop. The loop runs on the
// elected leader only, so there is one signer queue per key; it opens the
// outbox when it starts, so a standby replica neither holds nor waits for
// the outbox's lock. It returns what the reporter reports through (nil
// when disabled).
func Setup(mgr ctrl.Manager, cfg Config) (ResultReporter, error) {
	if !cfg.Enabled {
		return nil, nil
	}
	gasPrice, feeDenom, err := chainclient.ParseGasPrice(cfg.GasPrice)
	if err != nil {
		return nil, fmt.Errorf("chain reporter: %w", err)
	}
	key := cfg.Key
	if key == nil {
		if key, err = keys.Load(cfg.KeyPath, cfg.HDPath); err != nil {
			return nil, fmt.Errorf("chain reporter: provider key: %w", err)
		}
	}
	address, err := key.Address(cfg.Prefix)
	if err != nil {
		return nil, fmt.Errorf("chain reporter: %w", err)
	}
	chain, err := chainclient.NewRPCChain(cfg.RPCURL)
	if err != nil {
		return nil, fmt.Errorf("chain reporter: %w", err)
	}
	lc := &leaderChain{address: address}
	var rec *Reconciler
	opts := chainclient.Options{
		Key: key, Prefix: cfg.Prefix, ChainID: cfg.ChainID, Chain: chain,
		MaxBatchResults: cfg.MaxBatchResults, BatchDelay: cfg.BatchDelay, MaxTxBytes: cfg.MaxTxBytes,
		GasPrice: gasPrice, FeeDenom: feeDenom, RetainBlocks: cfg.RetainBlocks,
		RegistrationFunc: RegistrationFromCluster(mgr.GetClient(), &aivmv1.MsgRegisterProvider{
			Moniker: cfg.Moniker, Endpoint: cfg.Endpoint, Version: cfg.Version,
		}),
		OnEvent: func(e chainclient.Event) { rec.OnChainEvent(e) },
		Logger:  mgr.GetLogger().WithName("chain-client"),
		Metrics: ctrlmetrics.Registry,
	}
	// Check the settings now, on every replica, rather than when this
	// replica first leads.
	if err := opts.Validate(); err != nil {
		return nil, fmt.Errorf("chain reporter: %w", err)
	}
	rec = NewReconciler(mgr.GetClient(), mgr.GetEventRecorder("reporter"), lc)
	// A RunnableFunc needs leader election: it starts once this replica leads.
	if err := mgr.Add(manager.RunnableFunc(func(ctx context.Context) error {
		return lc.run(ctx, cfg.OutboxDir, opts, mgr.GetLogger().WithName("outbox"))
	})); err != nil {
		return nil, fmt.Errorf("chain reporter: %w", err)
	}
	if err := rec.SetupWithManager(mgr); err != nil {
		return nil, fmt.Errorf("chain reporter: %w", err)
	}
	return lc, nil
}

// ErrChainClientNotStarted is returned by the reporter's chain while the
// chain client is not running on this replica: before it leads, or while
// the outbox opens.
var ErrChainClientNotStarted = errors.New("the chain client has not started on this replica yet")

// leaderChain is the ResultReporter of a manager: the chain client of the
// elected leader, built when the leader starts reporting.
type leaderChain struct {
	address string
	cur     atomic.Pointer[chainclient.Client]
}

// run opens the outbox, runs the chain client until ctx ends and closes
// the outbox again.
func (l *leaderChain) run(ctx context.Context, dir string, opts chainclient.Options, log logr.Logger) error {
	box, err := outbox.Open(dir, outbox.Options{Logger: log})
	if err != nil {
		return fmt.Errorf("chain reporter: %w", err)
	}
	defer func() { _ = box.Close() }()
	opts.Outbox = box
	cc, err := chainclient.New(opts)
	if err != nil {
		return fmt.Errorf("chain reporter: %w", err)
	}
	l.cur.Store(cc)
	defer l.cur.Store(nil)
	return cc.Run(ctx)
}

func (l *leaderChain) client() (*chainclient.Client, error) {
	if c := l.cur.Load(); c != nil {
		return c, nil
	}
	return nil, ErrChainClientNotStarted
}

func (l *leaderChain) Enqueue(ctx context.Context, records ...*aivmv1.ResultRecord) error {
	c, err := l.client()
	if err != nil {
		return err
	}
	return c.Enqueue(ctx, records...)
}

func (l *leaderChain) Get(uid string) (outbox.Entry, error) {
	c, err := l.client()
	if err != nil {
		return outbox.Entry{}, err
	}
	return c.Get(uid)
}

func (l *leaderChain) ChainError() error {
	c, err := l.client()
	if err != nil {
		return err
	}
	return c.ChainError()
}

func (l *leaderChain) Address() string { return l.address }

// +kubebuilder:rbac:groups=aivm.dev,resources=gpunodes,verbs=get;list;watch

// MaxRegisteredGPUs is the most GPUs one registration lists (the chain's
// limit); a larger cluster registers its largest GPUs.
const MaxRegisteredGPUs = 64

// maxProductLen bounds a GPU product name in a registration.
const maxProductLen = 128

// RegistrationFromCluster returns a registration builder for
// chainclient.Options.RegistrationFunc: base's moniker, endpoint and
// version with the GPU inventory of the GPUNodes (product and total memory
// per GPU, healthy or not; at most MaxRegisteredGPUs, largest memory first)
// and their total VRAM.
func RegistrationFromCluster(c client.Reader, base *aivmv1.MsgRegisterProvider) func(context.Context) (*aivmv1.MsgRegisterProvider, error) {
	return func(ctx context.Context) (*aivmv1.MsgRegisterProvider, error) {
		if base == nil {
			return nil, errors.New("no base registration")
		}
		var nodes aivmv1alpha1.GPUNodeList
		if err := c.List(ctx, &nodes); err != nil {
			return nil, fmt.Errorf("list GPUNodes: %w", err)
		}
		var gpus []*aivmv1.GPU
		for _, n := range nodes.Items {
			for _, g := range n.Status.GPUs {
				product := g.Product
				if product == "" {
					product = "unknown"
				}
				if len(product) > maxProductLen {
					product = product[:maxProductLen]
				}
				gpus = append(gpus, &aivmv1.GPU{Product: product, MemoryBytes: uint64(max(g.MemoryTotal.Value(), 0))})
			}
		}
		sort.SliceStable(gpus, func(i, j int) bool {
			if gpus[i].MemoryBytes != gpus[j].MemoryBytes {
				return gpus[i].MemoryBytes > gpus[j].MemoryBytes
			}
			return gpus[i].Product < gpus[j].Product
		})
		if len(gpus) > MaxRegisteredGPUs {
			gpus = gpus[:MaxRegisteredGPUs]
		}
		msg := &aivmv1.MsgRegisterProvider{Moniker: base.GetMoniker(), Endpoint: base.GetEndpoint(), Version: base.GetVersion(), Gpus: gpus}
		for _, g := range gpus {
			msg.TotalVramBytes += g.MemoryBytes
		}
		return msg, nil
	}
}

// LoadProviderKey loads the provider key once for the whole manager: when
// reporting is on (a missing key is an error), or when a key is mounted at
// KeyPath with reporting off (results are then signed but not reported).
// It returns nil when reporting is off and nothing is at KeyPath.
func LoadProviderKey(cfg Config) (*keys.Key, error) {
	if !cfg.Enabled {
		if _, err := os.Stat(cfg.KeyPath); errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
	}
	key, err := keys.Load(cfg.KeyPath, cfg.HDPath)
	if err != nil {
		return nil, fmt.Errorf("provider key: %w", err)
	}
	return key, nil
}
