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

package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"

	"github.com/aivm-dev/aivm-operator/chain-client/devnet"
	"github.com/aivm-dev/aivm-operator/chain-client/keys"
)

func init() {
	register("devnet", "Run the local single-validator devnet chain (start, fund)", runDevnet)
}

var devnetSubcommands = map[string]subcommand{
	"start": {"Start the devnet and run it until interrupted", devnetStart},
	"fund":  {"Send coins from the devnet's faucet to an address or key", devnetFund},
}

func runDevnet(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	return dispatch(ctx, "devnet", devnetSubcommands, args, stdin, stdout, stderr)
}

// accountFlags collects repeated --account addr=amount flags.
type accountFlags map[string]uint64

func (a accountFlags) String() string {
	parts := make([]string, 0, len(a))
	for k, v := range a {
		parts = append(parts, k+"="+strconv.FormatUint(v, 10))
	}
	return strings.Join(parts, ",")
}

func (a accountFlags) Set(s string) error {
	addr, amt, ok := strings.Cut(s, "=")
	if !ok || addr == "" {
		return fmt.Errorf("want ADDRESS=AMOUNT, got %q", s)
	}
	amt = strings.TrimSuffix(amt, devnet.DefaultFeeDenom)
	n, err := strconv.ParseUint(amt, 10, 64)
	if err != nil {
		return fmt.Errorf("amount %q: %w", amt, err)
	}
	if _, dup := a[addr]; dup {
		return fmt.Errorf("account %s given twice", addr)
	}
	a[addr] = n
	return nil
}

func devnetStart(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	fs := newFlagSet("devnet start", stderr, "devnet start [flags]")
	home := fs.String("home", defaultDevnetHome(), "Node home directory; restarting on the same home resumes the chain.")
	chainID := fs.String("chain-id", "", "Chain id (default \"nesa\" for a new home; must match an existing one).")
	accounts := accountFlags{}
	fs.Var(accounts, "account", "Genesis account ADDRESS=AMOUNT or KEYNAME=AMOUNT (a key in --keys-home), in unes; repeatable; used when the home is new.")
	keysHome := fs.String("keys-home", defaultKeysHome(), "Directory of the keys that --account may name.")
	rpcAddr := fs.String("rpc-laddr", "tcp://127.0.0.1:26657", "CometBFT RPC listen address; a port of 0 picks a free one.")
	p2pAddr := fs.String("p2p-laddr", "", "P2P listen address (default: a free loopback port).")
	blockTime := fs.Duration("block-time", time.Second, "Pause after each block (timeout_commit).")
	validBlocks := fs.Int64("provider-valid-blocks", devnet.DefaultProviderValidBlocks, "Blocks a provider registration stays valid (new home only).")
	minGas := fs.String("min-gas-price", devnet.DefaultMinGasPrice, "Minimum gas price in unes (new home only).")
	prefix := fs.String("prefix", "", "Bech32 account prefix (default nesa; new home only).")
	verbosity := fs.Int("v", 0, "Log verbosity: 0 start/stop, 1 app events, 2 CometBFT info, 4 debug.")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		fs.Usage()
		return errUsage
	}
	resolved, err := resolveAccounts(accounts, *keysHome, *prefix)
	if err != nil {
		return err
	}
	log := newLogger(stderr, *verbosity)
	n, err := devnet.Start(ctx, devnet.Config{
		Home: *home, ChainID: *chainID, Accounts: resolved, BlockTime: *blockTime,
		ProviderValidBlocks: *validBlocks, MinGasPrice: *minGas, Prefix: *prefix,
		RPCListenAddr: *rpcAddr, P2PListenAddr: *p2pAddr, Logger: log,
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "devnet %s running: rpc=%s home=%s height=%d\n", n.ChainID(), n.RPCURL(), n.Home(), n.Height())
	<-ctx.Done()
	fmt.Fprintf(stdout, "stopping devnet at height %d\n", n.Height())
	return n.Stop()
}

func devnetFund(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	fs := newFlagSet("devnet fund", stderr, "devnet fund <address|keyname> <amount> [flags]")
	home := fs.String("home", defaultDevnetHome(), "Home of the running devnet (holds the faucet key).")
	rpcURL := fs.String("rpc", "http://127.0.0.1:26657", "RPC URL of the running devnet.")
	keysHome := fs.String("keys-home", defaultKeysHome(), "Directory of the keys a key name refers to.")
	prefix := fs.String("prefix", "", "Bech32 account prefix for key names (default nesa).")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 2 {
		fs.Usage()
		return errUsage
	}
	amounts := accountFlags{}
	if err := amounts.Set(pos[0] + "=" + pos[1]); err != nil {
		return err
	}
	resolved, err := resolveAccounts(amounts, *keysHome, *prefix)
	if err != nil {
		return err
	}
	for addr, amt := range resolved {
		hash, err := devnet.Fund(ctx, *home, *rpcURL, addr, amt)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "sent %d%s to %s in tx %s\n", amt, devnet.DefaultFeeDenom, addr, hash)
	}
	return nil
}

// resolveAccounts turns key names into addresses; bech32 addresses pass
// through.
func resolveAccounts(accounts accountFlags, keysHome, prefix string) (map[string]uint64, error) {
	out := make(map[string]uint64, len(accounts))
	for ref, amt := range accounts {
		addr := ref
		if _, _, err := keys.DecodeAddress(ref); err != nil {
			if validKeyName(ref) != nil {
				return nil, fmt.Errorf("--account %s: neither a bech32 address nor a key name", ref)
			}
			k, err := keys.Load(filepath.Join(keysHome, ref+keyFileExt), "")
			if err != nil {
				return nil, fmt.Errorf("--account %s: %w", ref, err)
			}
			if addr, err = k.Address(prefix); err != nil {
				return nil, err
			}
		}
		if _, dup := out[addr]; dup {
			return nil, fmt.Errorf("--account %s: address %s given twice", ref, addr)
		}
		out[addr] = amt
	}
	return out, nil
}

func defaultDevnetHome() string {
	h, err := os.UserHomeDir()
	if err != nil {
		return ".aivm/devnet"
	}
	return h + "/.aivm/devnet"
}

// newLogger logs to w, one line per entry; writes are serialised because
// CometBFT logs from many goroutines.
func newLogger(w io.Writer, verbosity int) logr.Logger {
	var mu sync.Mutex
	return funcr.New(func(prefix, args string) {
		mu.Lock()
		defer mu.Unlock()
		if prefix != "" {
			fmt.Fprintf(w, "%s %s: %s\n", time.Now().UTC().Format(time.RFC3339), prefix, args)
			return
		}
		fmt.Fprintf(w, "%s %s\n", time.Now().UTC().Format(time.RFC3339), args)
	}, funcr.Options{Verbosity: verbosity})
}
