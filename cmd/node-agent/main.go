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
// limit, and publishes the node's GPUNode and GPU labels. It parses and
// checks its flags, opens NVML (nodeagent/discovery) and runs the agent
// (nodeagent/agent).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/go-logr/logr"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client/config"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/aivm-dev/aivm-operator/artifact"
	"github.com/aivm-dev/aivm-operator/nodeagent"
	"github.com/aivm-dev/aivm-operator/nodeagent/agent"
	"github.com/aivm-dev/aivm-operator/nodeagent/discovery"
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
	publicModelSources   string
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
	fs.StringVar(&o.publicModelSources, "public-model-sources", "", "Comma-separated URL prefixes (https://mirror.example.com/open-models/) under which every file is public: a file fetched from under one without a credential is served to any Model of its digest. Never list a host with gated or private files, such as https://huggingface.co (docs/csi-driver.md).")
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
	xids, err := discovery.NewXIDFilter(o.ignoreXIDs, o.criticalXIDs)
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
	disc, err := discovery.Open(lib, discovery.Options{Log: log.WithName("nvml"), XIDs: &xids})
	if errors.Is(err, discovery.ErrNVMLNotFound) {
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
	if o.simulate != "" {
		log.Info("Backing the agent with a simulated GPU node", "profile", o.simulate)
	}
	return agent.Run(ctx, agent.Options{
		NodeName:             o.nodeName,
		Source:               disc,
		RestConfig:           cfg,
		PollInterval:         o.pollInterval,
		HeartbeatInterval:    o.heartbeatInterval,
		ModelCacheDir:        o.modelCacheDir,
		Prefetch:             o.prefetch,
		ModelCacheMaxBytes:   o.modelCacheMaxBytes,
		HFBaseURL:            o.hfBaseURL,
		PublicModelSources:   splitList(o.publicModelSources),
		PrefetchConcurrency:  o.prefetchConcurrency,
		ModelFileConcurrency: o.modelFileConcurrency,
		CacheSyncInterval:    o.cacheSyncInterval,
		MetricsAddr:          o.metricsAddr,
		CSI: agent.CSIOptions{
			Endpoint:          o.csi.endpoint,
			StateDir:          o.csi.stateDir,
			RegistrationDir:   o.csi.registrationDir,
			WorkloadNamespace: o.csi.workloadNamespace,
		},
		Log: log,
	})
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

// splitList splits a comma-separated flag value, dropping empty items.
func splitList(v string) []string {
	var out []string
	for _, item := range strings.Split(v, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}
