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
	"encoding/json"
	"errors"
	"fmt"
	"io"
	stdlog "log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	dbm "github.com/cometbft/cometbft-db"
	cmtcfg "github.com/cometbft/cometbft/config"
	"github.com/cometbft/cometbft/node"
	"github.com/cometbft/cometbft/p2p"
	"github.com/cometbft/cometbft/privval"
	"github.com/cometbft/cometbft/proxy"
	cmttypes "github.com/cometbft/cometbft/types"
	"github.com/go-logr/logr"

	"github.com/aivm-dev/aivm-operator/chain-client/keys"
)

// Defaults for Config's zero fields.
const (
	DefaultChainID             = "nesa"
	DefaultFeeDenom            = "unes"
	DefaultMinGasPrice         = "0.025"
	DefaultBlockTime           = 200 * time.Millisecond
	DefaultProviderValidBlocks = 1000
	DefaultMaxTxBytes          = 1 << 20
)

// appDBName is the application database under <home>/data.
const appDBName = "aivm-app"

// Config configures a devnet node.
type Config struct {
	// Home is the node's directory (config/, data/); required. Restarting
	// on the same Home resumes the chain.
	Home string
	// ChainID is the chain id (default "nesa"). On a restart it must match
	// the genesis file, or be empty.
	ChainID string
	// Accounts are the genesis accounts: bech32 address -> balance in
	// FeeDenom. Used only when Home has no genesis yet.
	Accounts map[string]uint64
	// BlockTime is the pause after each block (CometBFT timeout_commit);
	// default 200ms.
	BlockTime time.Duration
	// ProviderValidBlocks is how many blocks a provider registration stays
	// valid (default 1000). Genesis only.
	ProviderValidBlocks int64
	// Prefix is the bech32 account prefix (default "nesa"). Genesis only.
	Prefix string
	// FeeDenom is the fee denomination (default "unes"). Genesis only.
	FeeDenom string
	// MinGasPrice is the minimum gas price in FeeDenom, a decimal (default
	// "0.025"; "0" for free transactions). Genesis only.
	MinGasPrice string
	// MaxTxBytes is the largest transaction accepted (default 1 MiB).
	// Genesis only.
	MaxTxBytes int64
	// FaucetBalance is the genesis balance of the faucet account whose key
	// the devnet keeps in <Home>/config/faucet.key (default
	// DefaultFaucetBalance); see Fund. Genesis only.
	FaucetBalance uint64
	// RPCListenAddr is the RPC listen address, e.g.
	// "tcp://127.0.0.1:26657"; empty or port 0 picks a free loopback port.
	RPCListenAddr string
	// P2PListenAddr is the p2p listen address; empty picks a free loopback
	// port. The devnet has no peers.
	P2PListenAddr string
	// Logger receives the node's logs (CometBFT info at V(2)); default
	// discards them.
	Logger logr.Logger

	// OnCheckTx, when set, is called with every transaction offered to the
	// mempool (not the mempool's rechecks after a block) and the code
	// CheckTx answered. It runs on CometBFT's goroutines and must not block.
	// Tests use it to see every transaction a client signed and sent,
	// including those that never reach a block.
	OnCheckTx func(tx []byte, code uint32)
	// HoldTx, when set, is asked about each mempool transaction when a block
	// is proposed; a transaction it holds stays in the mempool, out of the
	// block, as behind a congested or lagging proposer. For tests.
	HoldTx func(tx []byte) bool
	// NoMempoolCache turns off the mempool's cache of transactions seen
	// (CometBFT cache_size = 0): a transaction sent again while it is in
	// the mempool is checked again, and refused for its sequence, instead
	// of being answered "already in cache".
	NoMempoolCache bool
}

// Node is a running devnet.
type Node struct {
	cfg     Config
	node    *node.Node
	app     *application
	appDB   dbm.DB
	dbs     *dbTracker
	rpcAddr string
	rpcSrv  *http.Server
	// stopping quiets CometBFT's shutdown errors.
	stopping *atomic.Bool
	chainID  string

	fundMu   sync.Mutex
	stopOnce sync.Once
	stopErr  error
}

// Start initialises Home on first use (keys, genesis with the configured
// accounts) and starts the node. It returns once the first block is
// committed, so accounts are queryable. Stop the node with Stop.
func Start(ctx context.Context, cfg Config) (*Node, error) {
	if cfg.Home == "" {
		return nil, errors.New("devnet: Home is required")
	}
	setDefaults(&cfg)
	if cfg.BlockTime < 0 {
		return nil, fmt.Errorf("devnet: negative block time %s", cfg.BlockTime)
	}
	home, err := filepath.Abs(cfg.Home)
	if err != nil {
		return nil, fmt.Errorf("devnet: %w", err)
	}
	cfg.Home = home

	ccfg := cmtcfg.DefaultConfig()
	ccfg.SetRoot(home)
	if err := os.MkdirAll(filepath.Join(home, "config"), 0o700); err != nil {
		return nil, fmt.Errorf("devnet: %w", err)
	}
	if err := os.MkdirAll(filepath.Join(home, "data"), 0o700); err != nil {
		return nil, fmt.Errorf("devnet: %w", err)
	}
	ccfg.Moniker = "aivm-devnet"
	// CometBFT serves RPC on an internal loopback port; clients reach it
	// through the devnet's own server on the public address, which Stop
	// closes with every open connection (CometBFT's server would keep
	// serving kept-alive connections from a stopped node).
	if ccfg.RPC.ListenAddress, err = listenAddr(""); err != nil {
		return nil, fmt.Errorf("devnet: rpc address: %w", err)
	}
	if ccfg.P2P.ListenAddress, err = listenAddr(cfg.P2PListenAddr); err != nil {
		return nil, fmt.Errorf("devnet: p2p address: %w", err)
	}
	ccfg.P2P.PexReactor = false
	ccfg.P2P.AllowDuplicateIP = true
	ccfg.P2P.AddrBookStrict = false
	ccfg.Consensus.TimeoutCommit = cfg.BlockTime
	ccfg.Consensus.TimeoutPropose = time.Second
	ccfg.Consensus.TimeoutPrevote = 200 * time.Millisecond
	ccfg.Consensus.TimeoutPrecommit = 200 * time.Millisecond
	ccfg.Consensus.PeerGossipSleepDuration = 10 * time.Millisecond
	ccfg.Mempool.MaxTxBytes = int(cfg.MaxTxBytes) * 2
	if cfg.NoMempoolCache {
		ccfg.Mempool.CacheSize = 0
	}
	if ccfg.Mempool.MaxTxsBytes < int64(ccfg.Mempool.MaxTxBytes)*4 {
		ccfg.Mempool.MaxTxsBytes = int64(ccfg.Mempool.MaxTxBytes) * 4
	}
	ccfg.RPC.MaxBodyBytes = int64(ccfg.Mempool.MaxTxBytes)*2 + 1<<20
	ccfg.Instrumentation.Prometheus = false
	ccfg.TxIndex.Indexer = "kv"
	ccfg.DBBackend = string(dbm.GoLevelDBBackend)
	if err := ccfg.ValidateBasic(); err != nil {
		return nil, fmt.Errorf("devnet: config: %w", err)
	}
	cmtcfg.WriteConfigFile(filepath.Join(home, "config", "config.toml"), ccfg)

	pv, err := privval.LoadOrGenFilePV(ccfg.PrivValidatorKeyFile(), ccfg.PrivValidatorStateFile(), nil)
	if err != nil {
		return nil, fmt.Errorf("devnet: validator key: %w", err)
	}
	nodeKey, err := p2p.LoadOrGenNodeKey(ccfg.NodeKeyFile())
	if err != nil {
		return nil, fmt.Errorf("devnet: node key: %w", err)
	}
	chainID, err := ensureGenesis(ccfg.GenesisFile(), cfg, pv)
	if err != nil {
		return nil, fmt.Errorf("devnet: %w", err)
	}

	// Bind the public RPC address first: a taken port fails before anything
	// starts, and a port picked free stays ours.
	rpcLn, err := listenRPC(cfg.RPCListenAddr)
	if err != nil {
		return nil, fmt.Errorf("devnet: %w", err)
	}
	appDB, err := dbm.NewDB(appDBName, dbm.GoLevelDBBackend, ccfg.DBDir())
	if err != nil {
		_ = rpcLn.Close()
		return nil, fmt.Errorf("devnet: open app db: %w", err)
	}
	var (
		app      *application
		cn       *node.Node
		dbs      *dbTracker
		stopping = new(atomic.Bool)
	)
	for attempt := 1; ; attempt++ {
		app, cn, dbs, err = startNode(ctx, ccfg, cfg, appDB, pv, nodeKey, chainID, stopping)
		if err == nil {
			break
		}
		// A port picked free can be taken before CometBFT binds it; pick
		// new ones and try again.
		if attempt < maxStartAttempts && isAddrInUse(err) {
			cfg.Logger.Info("Devnet port taken, retrying with new ports", "err", err.Error())
			if ccfg.RPC.ListenAddress, err = listenAddr(""); err != nil {
				break
			}
			if autoPort(cfg.P2PListenAddr) {
				if ccfg.P2P.ListenAddress, err = listenAddr(cfg.P2PListenAddr); err != nil {
					break
				}
			}
			continue
		}
		break
	}
	if err != nil {
		_ = rpcLn.Close()
		_ = appDB.Close()
		return nil, fmt.Errorf("devnet: %w", err)
	}
	n := &Node{cfg: cfg, node: cn, app: app, appDB: appDB, dbs: dbs, chainID: chainID, stopping: stopping}
	if err := n.serveRPC(rpcLn, ccfg.RPC.ListenAddress, ccfg.RPC.MaxBodyBytes); err != nil {
		_ = rpcLn.Close()
		_ = n.Stop()
		return nil, fmt.Errorf("devnet: %w", err)
	}
	if err := app.waitForHeight(ctx, app.Height()+1); err != nil {
		_ = n.Stop()
		return nil, fmt.Errorf("devnet: %w", err)
	}
	cfg.Logger.Info("Devnet started", "chainID", chainID, "rpc", n.RPCURL(), "height", app.Height(), "home", home)
	return n, nil
}

// maxStartAttempts bounds retries when a free port was taken meanwhile.
const maxStartAttempts = 3

// startNode creates and starts the CometBFT node over a fresh application on appDB.
// On failure everything it opened is closed again (appDB excepted).
func startNode(ctx context.Context, ccfg *cmtcfg.Config, cfg Config, appDB dbm.DB, pv *privval.FilePV, nodeKey *p2p.NodeKey, chainID string, stopping *atomic.Bool) (*application, *node.Node, *dbTracker, error) {
	app, err := newApp(appDB, chainID, cfg.Logger.WithName("app"))
	if err != nil {
		return nil, nil, nil, err
	}
	app.onCheckTx, app.holdTx = cfg.OnCheckTx, cfg.HoldTx
	dbs := &dbTracker{}
	cn, err := node.NewNode(ctx, ccfg, pv, nodeKey, proxy.NewLocalClientCreator(app),
		node.DefaultGenesisDocProviderFunc(ccfg), dbs.provide,
		node.DefaultMetricsProvider(ccfg.Instrumentation), cmtLogger{l: cfg.Logger.WithName("cometbft"), stopping: stopping})
	if err != nil {
		dbs.closeAll()
		return nil, nil, nil, fmt.Errorf("create node: %w", err)
	}
	if err := cn.Start(); err != nil {
		// Start failed half way: stop what did start, then close the
		// databases.
		cn.OnStop()
		dbs.closeAll()
		return nil, nil, nil, fmt.Errorf("start node: %w", err)
	}
	return app, cn, dbs, nil
}

func isAddrInUse(err error) bool {
	return errors.Is(err, syscall.EADDRINUSE) || strings.Contains(err.Error(), "address already in use")
}

// autoPort reports whether Start picks the port of addr.
func autoPort(addr string) bool { return addr == "" || strings.HasSuffix(addr, ":0") }

func setDefaults(c *Config) {
	if c.BlockTime == 0 {
		c.BlockTime = DefaultBlockTime
	}
	if c.ProviderValidBlocks == 0 {
		c.ProviderValidBlocks = DefaultProviderValidBlocks
	}
	if c.Prefix == "" {
		c.Prefix = keys.DefaultPrefix
	}
	if c.FeeDenom == "" {
		c.FeeDenom = DefaultFeeDenom
	}
	if c.MinGasPrice == "" {
		c.MinGasPrice = DefaultMinGasPrice
	}
	if c.MaxTxBytes == 0 {
		c.MaxTxBytes = DefaultMaxTxBytes
	}
	if c.FaucetBalance == 0 {
		c.FaucetBalance = DefaultFaucetBalance
	}
	if c.Logger.GetSink() == nil {
		c.Logger = logr.Discard()
	}
}

// listenAddr returns addr, or a free loopback port when addr is empty or
// ends in ":0".
func listenAddr(addr string) (string, error) {
	if addr != "" && !strings.HasSuffix(addr, ":0") {
		if !strings.Contains(addr, "://") {
			addr = "tcp://" + addr
		}
		return addr, nil
	}
	host := "127.0.0.1"
	if addr != "" {
		h := strings.TrimSuffix(strings.TrimPrefix(addr, "tcp://"), ":0")
		if h != "" {
			host = h
		}
	}
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return "", err
	}
	defer func() { _ = l.Close() }()
	return "tcp://" + l.Addr().String(), nil
}

// ensureGenesis writes the genesis file on first start and returns the
// chain id.
func ensureGenesis(path string, cfg Config, pv *privval.FilePV) (string, error) {
	if _, err := os.Stat(path); err == nil {
		doc, err := cmttypes.GenesisDocFromFile(path)
		if err != nil {
			return "", fmt.Errorf("read genesis: %w", err)
		}
		if cfg.ChainID != "" && cfg.ChainID != doc.ChainID {
			return "", fmt.Errorf("home holds chain %q, not %q", doc.ChainID, cfg.ChainID)
		}
		return doc.ChainID, nil
	}
	chainID := cfg.ChainID
	if chainID == "" {
		chainID = DefaultChainID
	}
	state := GenesisState{Params: Params{
		Prefix:              cfg.Prefix,
		FeeDenom:            cfg.FeeDenom,
		MinGasPrice:         cfg.MinGasPrice,
		ProviderValidBlocks: cfg.ProviderValidBlocks,
		MaxTxBytes:          cfg.MaxTxBytes,
	}}
	for addr, bal := range cfg.Accounts {
		state.Accounts = append(state.Accounts, GenesisAccount{Address: addr, Balance: strconv.FormatUint(bal, 10)})
	}
	// Check the configured accounts before writing anything.
	if _, _, err := state.validate(); err != nil {
		return "", err
	}
	faucet, err := ensureFaucetKey(cfg.Home)
	if err != nil {
		return "", err
	}
	faucetAddr, err := faucet.Address(cfg.Prefix)
	if err != nil {
		return "", err
	}
	if _, dup := cfg.Accounts[faucetAddr]; !dup {
		state.Accounts = append(state.Accounts, GenesisAccount{Address: faucetAddr, Balance: strconv.FormatUint(cfg.FaucetBalance, 10)})
	}
	sort.Slice(state.Accounts, func(i, j int) bool { return state.Accounts[i].Address < state.Accounts[j].Address })
	if _, _, err := state.validate(); err != nil {
		return "", err
	}
	appState, err := json.Marshal(state)
	if err != nil {
		return "", err
	}
	pub, err := pv.GetPubKey()
	if err != nil {
		return "", err
	}
	params := cmttypes.DefaultConsensusParams()
	params.Block.MaxGas = -1
	doc := &cmttypes.GenesisDoc{
		GenesisTime:     time.Now().UTC(),
		ChainID:         chainID,
		InitialHeight:   1,
		ConsensusParams: params,
		Validators:      []cmttypes.GenesisValidator{{Address: pub.Address(), PubKey: pub, Power: 10, Name: "devnet"}},
		AppState:        appState,
	}
	if err := doc.ValidateAndComplete(); err != nil {
		return "", fmt.Errorf("genesis: %w", err)
	}
	tmp := path + ".tmp"
	if err := doc.SaveAs(tmp); err != nil {
		return "", fmt.Errorf("write genesis: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return "", fmt.Errorf("write genesis: %w", err)
	}
	return chainID, nil
}

// listenRPC listens on the public RPC address ("tcp://host:port"; empty or
// port 0 for a free loopback port).
func listenRPC(public string) (net.Listener, error) {
	hostport := strings.TrimPrefix(public, "tcp://")
	if hostport == "" {
		hostport = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", hostport)
	if err != nil {
		return nil, fmt.Errorf("rpc listen on %s: %w", hostport, err)
	}
	return ln, nil
}

// serveRPC serves ln by proxying to CometBFT's RPC at internal, accepting
// request bodies of up to maxBody bytes.
func (n *Node) serveRPC(ln net.Listener, internal string, maxBody int64) error {
	target, err := url.Parse("http://" + strings.TrimPrefix(internal, "tcp://"))
	if err != nil {
		return fmt.Errorf("rpc: %w", err)
	}
	proxy := httputil.NewSingleHostReverseProxy(target)
	proxy.ErrorLog = stdlog.New(io.Discard, "", 0)
	n.rpcSrv = &http.Server{Handler: bufferBody(proxy, maxBody), ReadHeaderTimeout: 10 * time.Second}
	n.rpcAddr = "tcp://" + ln.Addr().String()
	go func() { _ = n.rpcSrv.Serve(ln) }()
	return nil
}

// bufferBody reads each request's body whole, refusing one over maxBody
// bytes with 413, before next (the reverse proxy) sees the request. Given
// the client connection's body, the proxy's transport reads it from its own
// goroutine while the response is already being copied back, and net/http's
// server does not support reading a request body once the response has
// started: a response could end early (200 OK, then unexpected EOF). A
// body in memory is nobody's but the transport's, and can be sent again.
func bufferBody(next http.Handler, maxBody int64) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body == nil || r.Body == http.NoBody {
			next.ServeHTTP(w, r)
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
		if err != nil {
			if errors.As(err, new(*http.MaxBytesError)) {
				http.Error(w, fmt.Sprintf("request body exceeds %d bytes", maxBody), http.StatusRequestEntityTooLarge)
				return
			}
			http.Error(w, "read request body: "+err.Error(), http.StatusBadRequest)
			return
		}
		r2 := r.Clone(r.Context())
		r2.ContentLength = int64(len(body))
		r2.TransferEncoding = nil
		r2.Body = io.NopCloser(bytes.NewReader(body))
		r2.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
		next.ServeHTTP(w, r2)
	})
}

// RPCURL returns the CometBFT RPC endpoint, e.g. "http://127.0.0.1:26657".
func (n *Node) RPCURL() string {
	return "http://" + strings.TrimPrefix(n.rpcAddr, "tcp://")
}

// RPCListenAddr returns the RPC listen address in CometBFT form
// ("tcp://127.0.0.1:PORT"); pass it as Config.RPCListenAddr to restart the
// node where its clients expect it.
func (n *Node) RPCListenAddr() string { return n.rpcAddr }

// ChainID returns the chain id.
func (n *Node) ChainID() string { return n.chainID }

// Home returns the node's home directory.
func (n *Node) Home() string { return n.cfg.Home }

// Height returns the last committed height.
func (n *Node) Height() int64 { return n.app.Height() }

// WaitForHeight blocks until height h is committed or ctx ends.
func (n *Node) WaitForHeight(ctx context.Context, h int64) error {
	return n.app.waitForHeight(ctx, h)
}

// Stop stops the node and closes its databases. It is safe to call more
// than once; a new Start on the same Home resumes the chain.
func (n *Node) Stop() error {
	n.stopOnce.Do(func() {
		n.stopping.Store(true)
		if n.rpcSrv != nil {
			_ = n.rpcSrv.Close()
		}
		if err := n.node.Stop(); err != nil {
			n.stopErr = fmt.Errorf("devnet: stop node: %w", err)
		}
		n.node.Wait()
		// CometBFT leaves its indexer databases open; close every database
		// it opened (closing goleveldb twice is harmless) so the home can be
		// opened again in this process.
		n.dbs.closeAll()
		if err := n.appDB.Close(); err != nil && n.stopErr == nil {
			n.stopErr = fmt.Errorf("devnet: close app db: %w", err)
		}
	})
	return n.stopErr
}

// dbTracker opens CometBFT's databases and remembers them, so Stop can
// release every file lock.
type dbTracker struct {
	mu  sync.Mutex
	dbs []dbm.DB
}

func (t *dbTracker) provide(ctx *cmtcfg.DBContext) (dbm.DB, error) {
	db, err := cmtcfg.DefaultDBProvider(ctx)
	if err != nil {
		return nil, err
	}
	t.mu.Lock()
	t.dbs = append(t.dbs, db)
	t.mu.Unlock()
	return db, nil
}

func (t *dbTracker) closeAll() {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, db := range t.dbs {
		_ = db.Close()
	}
	t.dbs = nil
}
