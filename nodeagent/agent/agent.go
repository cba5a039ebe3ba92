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

// Package agent wires one node agent to the API server: the GPUNode
// publisher, the model cache manager, the models.aivm.dev CSI node plugin
// and the metrics endpoint, around an inventory source it is given. It does
// not use NVML itself (cmd/node-agent opens nodeagent/discovery and passes
// it in), so it builds without cgo, and one process can run many agents,
// each over its own (for example simulated) inventory.
package agent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	aivmv1alpha1 "github.com/aivm-dev/aivm-operator/api/v1alpha1"
	"github.com/aivm-dev/aivm-operator/artifact"
	"github.com/aivm-dev/aivm-operator/nodeagent"
	"github.com/aivm-dev/aivm-operator/nodeagent/csi"
)

// HealthWatcher is an inventory source that reports GPU faults as they
// happen; *discovery.Discoverer is one. Run watches while the agent runs.
type HealthWatcher interface {
	// WatchHealth handles health events until ctx is done.
	WatchHealth(ctx context.Context) error
	// HealthChanged receives when WatchHealth marked a GPU unhealthy.
	HealthChanged() <-chan struct{}
}

// CSIOptions configure the models.aivm.dev CSI node plugin.
type CSIOptions struct {
	// Endpoint is the Unix socket the plugin serves, at the path the
	// kubelet sees; "" serves no CSI driver.
	Endpoint string
	// StateDir records published model volumes, so their pins outlive a
	// restart.
	StateDir string
	// RegistrationDir is the kubelet's plugin registration directory; ""
	// leaves registration to a node-driver-registrar sidecar.
	RegistrationDir string
	// WorkloadNamespace is the operator's workload namespace, whose pods
	// (made only by the manager) may mount Models of any namespace.
	WorkloadNamespace string
}

// Options configure one node agent. cmd/node-agent fills them from its
// flags (and checks them there, naming the flags).
type Options struct {
	// NodeName is the Node (and GPUNode) the agent publishes; required.
	NodeName string
	// Source reads the node's GPUs; required. When it is a HealthWatcher,
	// Run watches GPU health while the agent runs.
	Source nodeagent.InventorySource
	// RestConfig reaches the API server; required.
	RestConfig *rest.Config
	// PollInterval and HeartbeatInterval: see nodeagent.AgentOptions and
	// nodeagent.PublisherOptions.
	PollInterval      time.Duration
	HeartbeatInterval time.Duration
	// ModelCacheDir is the node-local model cache; "" reports no models
	// and runs no cache manager and no CSI driver.
	ModelCacheDir string
	// Prefetch fetches the Models selected for the node ahead of jobs.
	Prefetch bool
	// ModelCacheMaxBytes is the size the cache is kept within; 0 is unbounded.
	ModelCacheMaxBytes int64
	// HFBaseURL is the endpoint hf:// sources resolve against.
	HFBaseURL string
	// PublicModelSources are URL prefixes under which every file is public:
	// a file fetched from under one without a credential is served to any
	// Model of its digest (artifact.WithPublicSources).
	PublicModelSources []string
	// PrefetchConcurrency is the most models fetched at once.
	PrefetchConcurrency int
	// ModelFileConcurrency is the most files of one model fetched at once.
	ModelFileConcurrency int
	// CacheSyncInterval is the time between two cache syncs.
	CacheSyncInterval time.Duration
	// MetricsAddr serves /metrics, /healthz and /readyz; "" or "0" serves none.
	MetricsAddr string
	// CSI configures the CSI node plugin.
	CSI CSIOptions
	// Log receives the agent's log lines.
	Log logr.Logger
}

// managesCache reports whether the agent runs a cache manager.
func (o Options) managesCache() bool {
	return o.ModelCacheDir != "" && (o.Prefetch || o.ModelCacheMaxBytes > 0)
}

// Run runs the agent until ctx is done, and returns once everything it
// started has stopped.
func Run(ctx context.Context, o Options) error {
	log := o.Log
	switch {
	case o.NodeName == "":
		return errors.New("node agent: a node name is required")
	case o.Source == nil:
		return errors.New("node agent: an inventory source is required")
	case o.RestConfig == nil:
		return errors.New("node agent: a REST config is required")
	}
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return err
	}
	if err := aivmv1alpha1.AddToScheme(scheme); err != nil {
		return err
	}
	c, err := client.New(o.RestConfig, client.Options{Scheme: scheme})
	if err != nil {
		return fmt.Errorf("create api client: %w", err)
	}
	pub, err := nodeagent.NewPublisher(c, nodeagent.PublisherOptions{
		NodeName:          o.NodeName,
		HeartbeatInterval: o.HeartbeatInterval,
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
	watcher, _ := o.Source.(HealthWatcher)
	agentOpts := nodeagent.AgentOptions{
		PollInterval:  o.PollInterval,
		ModelCacheDir: o.ModelCacheDir,
		Metrics:       metrics,
		Log:           log.WithName("agent"),
	}
	if watcher != nil {
		agentOpts.HealthChanged = watcher.HealthChanged()
	}
	if o.managesCache() {
		cmCtx, cancel := context.WithCancel(ctx)
		cm, cmDone, err := startCacheManager(cmCtx, o, scheme, c, metrics, log.WithName("model-cache"))
		if err != nil {
			cancel()
			return err
		}
		// Stop it (waiting for its fetches to end) on any return.
		defer func() { cancel(); <-cmDone }()
		agentOpts.CacheErrors, agentOpts.Wake = cm, cm.Changed()
	}
	// Models the CSI driver refuses for their content are listed beside
	// failed prefetches, and wake the agent to publish them.
	refused := nodeagent.NewPublishFailures(nil)
	agentOpts.CacheErrors = nodeagent.MergeCacheErrors(agentOpts.CacheErrors, refused)
	agentOpts.Wake = fanIn(ctx, agentOpts.Wake, refused.Changed())
	csiCtx, stopCSI := context.WithCancel(ctx)
	csiDone, err := startCSI(csiCtx, o, c, refused, log.WithName("csi"))
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
	agent, err := nodeagent.NewAgent(o.Source, pub, agentOpts)
	if err != nil {
		return err
	}
	if o.MetricsAddr != "0" && o.MetricsAddr != "" {
		addr, stop, err := serveMetrics(o.MetricsAddr, reg, log)
		if err != nil {
			return err
		}
		defer stop()
		log.Info("Serving metrics and health checks", "address", addr.String())
	}
	// The health watcher handles GPU faults as they are reported and wakes
	// the agent to publish them. It is stopped (and waited for) on any
	// return, before the caller closes the source.
	if watcher != nil {
		watchCtx, stopWatch := context.WithCancel(ctx)
		watchDone := make(chan struct{})
		go func() {
			defer close(watchDone)
			if err := watcher.WatchHealth(watchCtx); err != nil {
				log.Error(err, "Watching GPU health events failed; faults show at the next poll")
			}
		}()
		defer func() { stopWatch(); <-watchDone }()
	}
	log.Info("Node agent started", "node", o.NodeName, "pollInterval", o.PollInterval,
		"heartbeatInterval", o.HeartbeatInterval, "modelCacheDir", o.ModelCacheDir,
		"prefetch", o.Prefetch && o.ModelCacheDir != "", "modelCacheMaxBytes", o.ModelCacheMaxBytes)
	return agent.Run(ctx)
}

// newFetcher returns the fetcher of the node's model cache.
func newFetcher(o Options, store *artifact.Cache, log logr.Logger) (*artifact.Fetcher, error) {
	fetcher, err := artifact.NewFetcher(store, artifact.WithHFBaseURL(o.HFBaseURL),
		artifact.WithFileConcurrency(o.ModelFileConcurrency), artifact.WithPublicSources(o.PublicModelSources...),
		artifact.WithLogger(log.WithName("fetch")))
	if err != nil {
		return nil, fmt.Errorf("model fetcher (--hf-base-url, --model-file-concurrency, --public-model-sources): %w", err)
	}
	return fetcher, nil
}

// startCacheManager builds the cache manager: Models come from a watch-fed
// cache (a Model change triggers a sync), the Node and Secrets are read
// directly. It returns once the Model cache has synced; the manager runs
// until ctx is done and done is closed after it returned.
func startCacheManager(ctx context.Context, o Options, scheme *runtime.Scheme, direct client.Reader,
	metrics *nodeagent.Metrics, log logr.Logger) (mgr *nodeagent.CacheManager, done <-chan struct{}, err error) {
	store, err := openWritableCache(o.ModelCacheDir, log.WithName("cache"))
	if err != nil {
		return nil, nil, err
	}
	fetcher, err := newFetcher(o, store, log)
	if err != nil {
		return nil, nil, err
	}
	models, err := cache.New(o.RestConfig, cache.Options{Scheme: scheme})
	if err != nil {
		return nil, nil, fmt.Errorf("create model cache client: %w", err)
	}
	mgr, err = nodeagent.NewCacheManager(nodeagent.CacheManagerOptions{
		NodeName:    o.NodeName,
		Models:      models,
		APIReader:   direct,
		Fetcher:     fetcher,
		Prefetch:    o.Prefetch,
		MaxBytes:    o.ModelCacheMaxBytes,
		Concurrency: o.PrefetchConcurrency,
		Interval:    o.CacheSyncInterval,
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

// startCSI serves the CSI node plugin until ctx is done; done is closed
// after it stopped. Models and their credentials Secrets are read through
// reader, straight from the API server. It returns nil done when the
// driver is off.
func startCSI(ctx context.Context, o Options, reader client.Reader, failures csi.FailureRecorder, log logr.Logger) (done <-chan struct{}, err error) {
	if o.CSI.Endpoint == "" {
		return nil, nil
	}
	store, err := openWritableCache(o.ModelCacheDir, log.WithName("cache"))
	if err != nil {
		return nil, err
	}
	fetcher, err := newFetcher(o, store, log)
	if err != nil {
		return nil, err
	}
	snapshots := csi.NewCacheSnapshots(ctx, fetcher, reader)
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		err := csi.Serve(ctx, csi.Options{
			DriverOptions: csi.DriverOptions{
				NodeID: o.NodeName, StateDir: o.CSI.StateDir, Snapshots: snapshots, Failures: failures,
				WorkloadNamespace: o.CSI.WorkloadNamespace, Log: log,
			},
			Endpoint:        o.CSI.Endpoint,
			RegistrationDir: o.CSI.RegistrationDir,
		})
		if err != nil {
			log.Error(err, "CSI driver stopped; pods on this node cannot mount models")
		}
	}()
	return finished, nil
}

// fanIn returns a channel that receives a value whenever a or b (either
// may be nil) does, until ctx ends.
func fanIn(ctx context.Context, a, b <-chan struct{}) <-chan struct{} {
	if a == nil {
		return b
	}
	out := make(chan struct{}, 1)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-a:
			case <-b:
			}
			select {
			case out <- struct{}{}:
			default:
			}
		}
	}()
	return out
}
