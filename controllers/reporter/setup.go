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
	"sort"
	"time"

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

// BindFlags registers the configuration's flags on fs.
func (c *Config) BindFlags(fs *flag.FlagSet) {
	fs.BoolVar(&c.Enabled, "report-results", false, "Report succeeded jobs' signed results on chain.")
	fs.StringVar(&c.RPCURL, "chain-rpc-url", "http://127.0.0.1:26657", "CometBFT RPC URL of the chain.")
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
// key, opens the outbox, adds the chain client's loop to mgr (it runs on the
// elected leader only, so one signer queue per key) and registers the
// reporter. It returns the client (nil when disabled) for callers that sign
// receipts with the same key.
func Setup(mgr ctrl.Manager, cfg Config) (*chainclient.Client, error) {
	if !cfg.Enabled {
		return nil, nil
	}
	gasPrice, feeDenom, err := chainclient.ParseGasPrice(cfg.GasPrice)
	if err != nil {
		return nil, fmt.Errorf("chain reporter: %w", err)
	}
	key, err := keys.Load(cfg.KeyPath, cfg.HDPath)
	if err != nil {
		return nil, fmt.Errorf("chain reporter: provider key: %w", err)
	}
	chain, err := chainclient.NewRPCChain(cfg.RPCURL)
	if err != nil {
		return nil, fmt.Errorf("chain reporter: %w", err)
	}
	box, err := outbox.Open(cfg.OutboxDir, outbox.Options{Logger: mgr.GetLogger().WithName("outbox")})
	if err != nil {
		return nil, fmt.Errorf("chain reporter: %w", err)
	}
	var rec *Reconciler
	cc, err := chainclient.New(chainclient.Options{
		Key: key, Prefix: cfg.Prefix, ChainID: cfg.ChainID, Chain: chain, Outbox: box,
		MaxBatchResults: cfg.MaxBatchResults, BatchDelay: cfg.BatchDelay, MaxTxBytes: cfg.MaxTxBytes,
		GasPrice: gasPrice, FeeDenom: feeDenom, RetainBlocks: cfg.RetainBlocks,
		RegistrationFunc: RegistrationFromCluster(mgr.GetClient(), &aivmv1.MsgRegisterProvider{
			Moniker: cfg.Moniker, Endpoint: cfg.Endpoint, Version: cfg.Version,
		}),
		OnEvent: func(e chainclient.Event) { rec.OnChainEvent(e) },
		Logger:  mgr.GetLogger().WithName("chain-client"),
		Metrics: ctrlmetrics.Registry,
	})
	if err != nil {
		_ = box.Close()
		return nil, fmt.Errorf("chain reporter: %w", err)
	}
	rec = NewReconciler(mgr.GetClient(), mgr.GetEventRecorder("reporter"), cc)
	if err := mgr.Add(manager.RunnableFunc(func(ctx context.Context) error {
		defer func() { _ = box.Close() }()
		return cc.Run(ctx)
	})); err != nil {
		_ = box.Close()
		return nil, fmt.Errorf("chain reporter: %w", err)
	}
	if err := rec.SetupWithManager(mgr); err != nil {
		return nil, fmt.Errorf("chain reporter: %w", err)
	}
	return cc, nil
}

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
