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

// Command node-agent runs on every GPU node (a DaemonSet): it reads the GPUs
// through NVML, watches their health, prefetches the Models selected for its
// node into the node-local model cache, keeps that cache within its size
// limit, and publishes the node's GPUNode and GPU labels.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/config"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	aivmv1alpha1 "github.com/aivm-dev/aivm-operator/api/v1alpha1"
	"github.com/aivm-dev/aivm-operator/artifact"
	"github.com/aivm-dev/aivm-operator/nodeagent"
	"github.com/aivm-dev/aivm-operator/nodeagent/simulate"
)

type options struct {
	nodeName          string
	pollInterval      time.Duration
	heartbeatInterval time.Duration
	modelCacheDir     string
	simulate          string
	simulateFaultDir  string
	metricsAddr       string
	ignoreXIDs        string
	criticalXIDs      string
	once              bool

	// restConfig, when set, replaces the kubeconfig lookup (tests).
	restConfig func() (*rest.Config, error)
	// sim, when set, backs the agent instead of NVML or a new --simulate
	// node (tests inject events into it).
	sim *simulate.Node

	prefetch             bool
	modelCacheMaxBytes   int64
	hfBaseURL            string
	prefetchConcurrency  int
	modelFileConcurrency int
	cacheSyncInterval    time.Duration

	csi csiOptions
}

func main() {
	var o options
	zapOpts := zap.Options{}
	o.bindFlags(flag.CommandLine, &zapOpts)
	flag.Parse()

	log := zap.New(zap.UseFlagOptions(&zapOpts))
	ctrl.SetLogger(log)
	if err := run(ctrl.SetupSignalHandler(), o, log, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "node-agent:", err)
		os.Exit(1)
	}
}

// bindFlags registers the agent's command-line flags on fs: o's, the
// kubeconfig's and the logger's.
func (o *options) bindFlags(fs *flag.FlagSet, zapOpts *zap.Options) {
	fs.StringVar(&o.nodeName, "node-name", os.Getenv("NODE_NAME"), "Name of the Node this agent runs on (default $NODE_NAME, set from the downward API).")
	fs.DurationVar(&o.pollInterval, "poll-interval", nodeagent.DefaultPollInterval, "Time between two NVML polls.")
	fs.DurationVar(&o.heartbeatInterval, "heartbeat-interval", nodeagent.DefaultHeartbeatInterval, "Longest time between two writes of the GPUNode status; at least the poll interval.")
	fs.StringVar(&o.modelCacheDir, "model-cache-dir", "/var/lib/aivm/models", "Node-local model cache (layout <dir>/sha256/<digest>) whose digests the GPUNode lists; empty to report none.")
	fs.StringVar(&o.simulate, "simulate", "", "Back the agent with a simulated GPU node instead of NVML: "+strings.Join(simulate.Profiles(), "|")+".")
	fs.StringVar(&o.simulateFaultDir, "simulate-fault-dir", "", "With --simulate: a directory whose files inject faults into the simulated GPUs (lines \"xid GPU CODE\", \"ecc GPU\", \"detach GPU\", \"reattach GPU\"; GPU is an index or UUID); each file is removed once applied.")
	fs.StringVar(&o.metricsAddr, "metrics-bind-address", ":8080", "Address serving /metrics, /healthz and /readyz; \"0\" disables it.")
	fs.StringVar(&o.ignoreXIDs, "ignore-xids", os.Getenv("DP_DISABLE_HEALTHCHECKS"), "Comma-separated XIDs that leave a GPU healthy, on top of the application XIDs 13,31,43,45,68,109; \"all\" ignores every XID (default $DP_DISABLE_HEALTHCHECKS, as for NVIDIA's device plugin).")
	fs.StringVar(&o.criticalXIDs, "critical-xids", os.Getenv("DP_ENABLE_HEALTHCHECKS"), "Comma-separated XIDs that make a GPU unhealthy even if ignored otherwise (default $DP_ENABLE_HEALTHCHECKS).")
	fs.BoolVar(&o.prefetch, "prefetch", true, "Fetch the Models whose spec.prefetch.nodeSelector matches this Node's labels into the model cache ahead of jobs.")
	fs.Int64Var(&o.modelCacheMaxBytes, "model-cache-max-bytes", 0, "Size the model cache is kept within by evicting least recently used models that no job uses and no Model pins or prefetches here; 0 leaves it unbounded.")
	fs.StringVar(&o.hfBaseURL, "hf-base-url", artifact.DefaultHFBaseURL, "Hugging Face compatible endpoint (or mirror) that hf:// model sources resolve against.")
	fs.IntVar(&o.prefetchConcurrency, "prefetch-concurrency", nodeagent.DefaultPrefetchConcurrency, "Most models fetched at once.")
	fs.IntVar(&o.modelFileConcurrency, "model-file-concurrency", artifact.DefaultFileConcurrency, "Most files of one model fetched at once (1 to 64).")
	fs.DurationVar(&o.cacheSyncInterval, "cache-sync-interval", nodeagent.DefaultCacheSyncInterval, "Time between two looks for models to prefetch and two cache garbage collections, besides those a Model change starts.")
	o.csi.bindFlags(fs)
	fs.BoolVar(&o.once, "once", false, "Poll once, print the inventory as JSON and exit, without contacting the API server.")
	config.RegisterFlags(fs)
	zapOpts.BindFlags(fs)
}

// errNoNVML is the one line printed when NVML is missing.
var errNoNVML = errors.New("NVML (libnvidia-ml.so.1) was not found: run the agent on a GPU node with the NVIDIA driver, " +
	"in a container started by the NVIDIA container toolkit (runtimeClassName: nvidia), or pass --simulate=<" +
	strings.Join(simulate.Profiles(), "|") + "> to back it with a simulated GPU node")

// run runs the agent until ctx is done; with --once it writes the inventory
// to stdout and returns.
func run(ctx context.Context, o options, log logr.Logger, stdout io.Writer) error {
	if err := o.validate(); err != nil {
		return err
	}
	xids, err := nodeagent.NewXIDFilter(o.ignoreXIDs, o.criticalXIDs)
	if err != nil {
		return err
	}
	lib := nvml.New()
	switch {
	case o.sim != nil:
		lib = o.sim
	case o.simulate != "":
		sim, err := simulate.New(o.simulate, simulate.WithSeed(o.nodeName))
		if err != nil {
			return err
		}
		lib = sim
		if o.simulateFaultDir != "" {
			go sim.WatchFaultDir(ctx, o.simulateFaultDir, func(err error) { log.Error(err, "Simulated fault not applied") })
		}
	}
	disc, err := nodeagent.Open(lib, nodeagent.Options{Log: log.WithName("nvml"), XIDs: &xids})
	if errors.Is(err, nodeagent.ErrNVMLNotFound) {
		return errNoNVML
	}
	if err != nil {
		return err
	}
	defer func() {
		if err := disc.Close(); err != nil {
			log.Error(err, "Closing NVML failed")
		}
	}()

	// With --once no health watcher runs: the poll handles the queued events.
	if o.once {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(disc.Poll())
	}

	if o.nodeName == "" {
		return errors.New("--node-name (or $NODE_NAME) is required: set it from the downward API (spec.nodeName)")
	}
	getConfig := o.restConfig
	if getConfig == nil {
		getConfig = config.GetConfig
	}
	cfg, err := getConfig()
	if err != nil {
		return fmt.Errorf("load kubeconfig: %w", err)
	}
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return err
	}
	if err := aivmv1alpha1.AddToScheme(scheme); err != nil {
		return err
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return fmt.Errorf("create api client: %w", err)
	}
	pub, err := nodeagent.NewPublisher(c, nodeagent.PublisherOptions{
		NodeName:          o.nodeName,
		HeartbeatInterval: o.heartbeatInterval,
		Log:               log.WithName("publisher"),
	})
	if err != nil {
		return err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	metrics, err := nodeagent.NewMetrics(reg)
	if err != nil {
		return fmt.Errorf("register metrics: %w", err)
	}
	agentOpts := nodeagent.AgentOptions{
		PollInterval:  o.pollInterval,
		ModelCacheDir: o.modelCacheDir,
		HealthChanged: disc.HealthChanged(),
		Metrics:       metrics,
		Log:           log.WithName("agent"),
	}
	if o.managesCache() {
		cmCtx, cancel := context.WithCancel(ctx)
		cm, cmDone, err := startCacheManager(cmCtx, o, cfg, scheme, c, metrics, log.WithName("model-cache"))
		if err != nil {
			cancel()
			return err
		}
		// Stop it (waiting for its fetches to end) on any return.
		defer func() { cancel(); <-cmDone }()
		agentOpts.CacheErrors, agentOpts.Wake = cm, cm.Changed()
	}
	csiCtx, stopCSI := context.WithCancel(ctx)
	csiDone, err := startCSI(csiCtx, o, c, log.WithName("csi"))
	if err != nil {
		stopCSI()
		return err
	}
	defer func() {
		stopCSI()
		if csiDone != nil {
			<-csiDone
		}
	}()
	agent, err := nodeagent.NewAgent(disc, pub, agentOpts)
	if err != nil {
		return err
	}
	if o.metricsAddr != "0" && o.metricsAddr != "" {
		addr, stop, err := serveMetrics(o.metricsAddr, reg, log)
		if err != nil {
			return err
		}
		defer stop()
		log.Info("Serving metrics and health checks", "address", addr.String())
	}
	// The health watcher handles GPU faults as NVML reports them and wakes
	// the agent to publish them. It is stopped (and waited for) on any
	// return, before the deferred Close shuts NVML down.
	watchCtx, stopWatch := context.WithCancel(ctx)
	watchDone := make(chan struct{})
	go func() {
		defer close(watchDone)
		if err := disc.WatchHealth(watchCtx); err != nil {
			log.Error(err, "Watching GPU health events failed; faults show at the next poll")
		}
	}()
	defer func() { stopWatch(); <-watchDone }()
	log.Info("Node agent started", "node", o.nodeName, "pollInterval", o.pollInterval,
		"heartbeatInterval", o.heartbeatInterval, "modelCacheDir", o.modelCacheDir, "simulate", o.simulate,
		"prefetch", o.prefetch && o.modelCacheDir != "", "modelCacheMaxBytes", o.modelCacheMaxBytes)
	return agent.Run(ctx)
}

// validate checks the intervals; the node name is checked once NVML is
// known to work, so a machine without GPUs hears about NVML first.
func (o options) validate() error {
	if o.pollInterval < time.Second {
		return fmt.Errorf("--poll-interval %s is below the 1s minimum", o.pollInterval)
	}
	if o.heartbeatInterval < o.pollInterval {
		return fmt.Errorf("--heartbeat-interval %s is shorter than --poll-interval %s", o.heartbeatInterval, o.pollInterval)
	}
	if o.modelCacheMaxBytes < 0 {
		return fmt.Errorf("--model-cache-max-bytes %d is negative", o.modelCacheMaxBytes)
	}
	if o.modelCacheMaxBytes > 0 && o.modelCacheDir == "" {
		return errors.New("--model-cache-max-bytes needs --model-cache-dir")
	}
	if o.prefetchConcurrency < 1 {
		return fmt.Errorf("--prefetch-concurrency %d is below 1", o.prefetchConcurrency)
	}
	if o.modelFileConcurrency < 1 || o.modelFileConcurrency > maxModelFileConcurrency {
		return fmt.Errorf("--model-file-concurrency %d is outside 1 to %d", o.modelFileConcurrency, maxModelFileConcurrency)
	}
	if o.cacheSyncInterval < time.Second {
		return fmt.Errorf("--cache-sync-interval %s is below the 1s minimum", o.cacheSyncInterval)
	}
	return o.csi.validate(o.modelCacheDir)
}

// maxModelFileConcurrency bounds --model-file-concurrency.
const maxModelFileConcurrency = 64

// newFetcher returns the fetcher of the node's model cache, configured by
// the flags.
func newFetcher(o options, store *artifact.Cache, log logr.Logger) (*artifact.Fetcher, error) {
	fetcher, err := artifact.NewFetcher(store, artifact.WithHFBaseURL(o.hfBaseURL),
		artifact.WithFileConcurrency(o.modelFileConcurrency), artifact.WithLogger(log.WithName("fetch")))
	if err != nil {
		return nil, fmt.Errorf("model fetcher (--hf-base-url, --model-file-concurrency): %w", err)
	}
	return fetcher, nil
}

// managesCache reports whether the agent runs a cache manager.
func (o options) managesCache() bool {
	return o.modelCacheDir != "" && (o.prefetch || o.modelCacheMaxBytes > 0)
}

// startCacheManager builds the cache manager: Models come from a watch-fed
// cache (a Model change triggers a sync), the Node and Secrets are read
// directly. It returns once the Model cache has synced; the manager runs
// until ctx is done and done is closed after it returned.
func startCacheManager(ctx context.Context, o options, cfg *rest.Config, scheme *runtime.Scheme, direct client.Reader,
	metrics *nodeagent.Metrics, log logr.Logger) (mgr *nodeagent.CacheManager, done <-chan struct{}, err error) {
	store, err := openWritableCache(o.modelCacheDir, log.WithName("cache"))
	if err != nil {
		return nil, nil, err
	}
	fetcher, err := newFetcher(o, store, log)
	if err != nil {
		return nil, nil, err
	}
	models, err := cache.New(cfg, cache.Options{Scheme: scheme})
	if err != nil {
		return nil, nil, fmt.Errorf("create model cache client: %w", err)
	}
	mgr, err = nodeagent.NewCacheManager(nodeagent.CacheManagerOptions{
		NodeName:    o.nodeName,
		Models:      models,
		APIReader:   direct,
		Fetcher:     fetcher,
		Prefetch:    o.prefetch,
		MaxBytes:    o.modelCacheMaxBytes,
		Concurrency: o.prefetchConcurrency,
		Interval:    o.cacheSyncInterval,
		Metrics:     metrics,
		Log:         log,
	})
	if err != nil {
		return nil, nil, err
	}
	inf, err := models.GetInformer(ctx, &aivmv1alpha1.Model{})
	if err != nil {
		return nil, nil, fmt.Errorf("watch models: %w", err)
	}
	// Spec changes and deletions matter; status updates (the Model
	// controller writes them as nodes report) do not.
	trigger := func() { mgr.Trigger() }
	if _, err := inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc: func(any) { trigger() },
		UpdateFunc: func(oldObj, newObj any) {
			o, ok1 := oldObj.(*aivmv1alpha1.Model)
			n, ok2 := newObj.(*aivmv1alpha1.Model)
			if !ok1 || !ok2 || o.Generation != n.Generation || !o.DeletionTimestamp.Equal(n.DeletionTimestamp) {
				trigger()
			}
		},
		DeleteFunc: func(any) { trigger() },
	}); err != nil {
		return nil, nil, fmt.Errorf("watch models: %w", err)
	}
	cacheDone := make(chan error, 1)
	go func() { cacheDone <- models.Start(ctx) }()
	if !models.WaitForCacheSync(ctx) {
		if err := <-cacheDone; err != nil {
			return nil, nil, fmt.Errorf("watch models: %w", err)
		}
		return nil, nil, fmt.Errorf("watch models: %w", ctx.Err())
	}
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		_ = mgr.Run(ctx)
		if err := <-cacheDone; err != nil {
			log.Error(err, "Model watch stopped")
		}
	}()
	return mgr, finished, nil
}

// openWritableCache opens the model cache and checks that the agent can
// write to it, so a read-only mount fails at start with a line saying what
// to change, not at the first fetch.
func openWritableCache(dir string, log logr.Logger) (*artifact.Cache, error) {
	hint := "mount the model cache read-write, or pass --prefetch=false and --model-cache-max-bytes=0"
	store, err := artifact.OpenCache(dir, artifact.WithCacheLogger(log))
	if err != nil {
		return nil, fmt.Errorf("open model cache %s (%s): %w", dir, hint, err)
	}
	f, err := os.CreateTemp(filepath.Join(store.Dir(), "tmp"), ".write-check-*")
	if err != nil {
		return nil, fmt.Errorf("model cache %s is not writable (%s): %w", dir, hint, err)
	}
	name := f.Name()
	_ = f.Close()
	if err := os.Remove(name); err != nil {
		return nil, fmt.Errorf("model cache %s: remove write check: %w", dir, err)
	}
	return store, nil
}

// serveMetrics serves the registry's metrics and health endpoints on addr
// and returns the address it listens on and a function that stops the
// server.
func serveMetrics(addr string, reg *prometheus.Registry, log logr.Logger) (net.Addr, func(), error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, nil, fmt.Errorf("listen on %s for metrics: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	ok := func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) }
	mux.HandleFunc("/healthz", ok)
	mux.HandleFunc("/readyz", ok)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error(err, "Metrics server stopped")
		}
	}()
	return ln.Addr(), func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}, nil
}
