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

package nodeagent

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/utils/clock"

	aivmv1alpha1 "github.com/aivm-dev/aivm-operator/api/v1alpha1"
)

// Defaults of the agent's intervals.
const (
	// DefaultPollInterval is how often the agent reads NVML.
	DefaultPollInterval = 10 * time.Second
	// DefaultHeartbeatInterval is the longest time between two writes of
	// the GPUNode status.
	DefaultHeartbeatInterval = 30 * time.Second
)

// InventorySource reads the node's GPUs; *discovery.Discoverer is one.
type InventorySource interface {
	Poll() Inventory
}

// InventoryPublisher writes what the agent found; *Publisher is one.
type InventoryPublisher interface {
	Publish(ctx context.Context, st aivmv1alpha1.GPUNodeStatus, labels map[string]string) error
}

// CacheErrorSource reports the model cache failures the agent publishes in
// status.modelCacheErrors; *CacheManager is one.
type CacheErrorSource interface {
	ModelCacheErrors() []aivmv1alpha1.ModelCacheError
}

// AgentOptions configure an Agent.
type AgentOptions struct {
	// PollInterval is the time between two polls; DefaultPollInterval when zero.
	PollInterval time.Duration
	// ModelCacheDir is the node-local model cache; "" reports no models.
	ModelCacheDir string
	// CacheErrors, when set, supplies the failures to fetch models into the
	// cache; the publisher lists them until their digests are cached.
	CacheErrors CacheErrorSource
	// Wake, when set, makes Run poll and publish at once whenever it
	// receives (CacheManager.Changed), so a prefetched model or a failure
	// shows without waiting for the next tick.
	Wake <-chan struct{}
	// HealthChanged, when set, also makes Run poll and publish at once
	// whenever it receives: discovery.Discoverer.HealthChanged, while
	// discovery.Discoverer.WatchHealth runs, so a GPU fault is published as soon as
	// NVML reports it rather than at the next tick.
	HealthChanged <-chan struct{}
	// Clock tells the time and drives the poll ticker; nil means the real clock.
	Clock clock.WithTicker
	// Metrics receive each poll's results; nil records none.
	Metrics *Metrics
	// Log receives the agent's log lines.
	Log logr.Logger
}

// Agent polls the GPUs and the model cache and publishes what it finds.
type Agent struct {
	src   InventorySource
	pub   InventoryPublisher
	opts  AgentOptions
	last  map[string]Health // health by GPU key, to log changes
	cache []string          // last cache scan that succeeded
}

// NewAgent returns an agent reading src and writing through pub.
func NewAgent(src InventorySource, pub InventoryPublisher, opts AgentOptions) (*Agent, error) {
	if src == nil || pub == nil {
		return nil, errors.New("node agent needs an inventory source and a publisher")
	}
	if opts.PollInterval == 0 {
		opts.PollInterval = DefaultPollInterval
	}
	if opts.PollInterval < 0 {
		return nil, fmt.Errorf("poll interval must be positive, got %s", opts.PollInterval)
	}
	if opts.Clock == nil {
		opts.Clock = clock.RealClock{}
	}
	return &Agent{src: src, pub: pub, opts: opts, last: map[string]Health{}}, nil
}

// Sync polls once and publishes the result.
func (a *Agent) Sync(ctx context.Context) error {
	inv := a.src.Poll()
	a.opts.Metrics.observe(inv)
	a.logHealthChanges(inv)

	models, truncated, err := ScanModelCache(a.opts.ModelCacheDir)
	if err != nil {
		// Keep reporting what the last good scan found rather than
		// claiming the cache is empty.
		a.opts.Log.Error(err, "Model cache scan failed; keeping the previous list", "dir", a.opts.ModelCacheDir)
		models = a.cache
	} else {
		a.cache = models
	}
	if truncated {
		a.opts.Log.Info("Model cache holds more digests than a GPUNode lists", "listed", MaxCachedModels)
	}

	st := StatusFor(inv, models)
	if a.opts.CacheErrors != nil {
		st.ModelCacheErrors = a.opts.CacheErrors.ModelCacheErrors()
	}
	err = a.pub.Publish(ctx, st, LabelsFor(inv))
	a.opts.Metrics.published(a.opts.Clock.Now(), err)
	return err
}

// Run polls at once and then every poll interval, and whenever Wake or
// HealthChanged receives, until ctx is done. A failed poll is logged and
// retried at the next tick.
func (a *Agent) Run(ctx context.Context) error {
	t := a.opts.Clock.NewTicker(a.opts.PollInterval)
	defer t.Stop()
	for {
		if err := a.Sync(ctx); err != nil && ctx.Err() == nil {
			a.opts.Log.Error(err, "Publishing the GPU inventory failed; retrying at the next poll")
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C():
		case <-a.opts.Wake:
		case <-a.opts.HealthChanged:
		}
	}
}

func (a *Agent) logHealthChanges(inv Inventory) {
	for _, g := range inv.GPUs {
		key := g.UUID
		if key == "" {
			key = fmt.Sprintf("index-%d", g.Index)
		}
		if prev, ok := a.last[key]; !ok || prev != g.Health {
			a.opts.Log.Info("GPU health", "index", g.Index, "uuid", g.UUID, "product", g.Product,
				"health", g.Health, "reason", g.HealthReason)
		}
		a.last[key] = g.Health
	}
}
