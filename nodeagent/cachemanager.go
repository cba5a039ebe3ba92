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
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"

	aivmv1alpha1 "github.com/aivm-dev/aivm-operator/api/v1alpha1"
	"github.com/aivm-dev/aivm-operator/artifact"
	"github.com/aivm-dev/aivm-operator/internal/modeldigest"
	"github.com/aivm-dev/aivm-operator/internal/text"
)

// The node agent's permissions for prefetching Models (config/node-agent/rbac):
// it lists and watches Models. It reads the credentials Secrets of Models
// it prefetches by name, only in the namespaces an administrator grants it
// (the Helm chart's nodeAgent.modelCredentialNamespaces), never cluster-wide.
// +kubebuilder:rbac:groups=aivm.dev,resources=models,verbs=get;list;watch

// Defaults of a CacheManager.
const (
	// DefaultCacheSyncInterval is how often the cache manager looks for
	// Models to prefetch and collects garbage, besides when Models change.
	DefaultCacheSyncInterval = time.Minute
	// DefaultPrefetchConcurrency is how many Models one node fetches at once.
	DefaultPrefetchConcurrency = 2
	// MaxModelCacheErrors is how many failures a GPUNode lists; the API
	// bounds the list.
	MaxModelCacheErrors = 32
)

// Backoff between attempts to prefetch a Model whose last attempt failed.
const (
	prefetchRetryInitial = 30 * time.Second
	prefetchRetryMax     = 30 * time.Minute
	maxCacheErrorMessage = 1024
)

// CacheManagerOptions configure a CacheManager.
type CacheManagerOptions struct {
	// NodeName is the Node whose labels Models' prefetch selectors are
	// matched against; required when Prefetch is set.
	NodeName string
	// Models lists the Models of all namespaces; in the agent it is a cache
	// fed by a watch. Required.
	Models client.Reader
	// APIReader reads the Node and credentials Secrets straight from the
	// API server, so the agent caches neither. Required.
	APIReader client.Reader
	// Fetcher fetches into the node-local model cache. Required.
	Fetcher *artifact.Fetcher
	// Prefetch makes the manager fetch the Models whose
	// spec.prefetch.nodeSelector matches the Node's labels.
	Prefetch bool
	// MaxBytes, when positive, is the size garbage collection reduces the
	// cache to after prefetching and at every sync. Zero leaves the cache
	// unbounded.
	MaxBytes int64
	// Concurrency is how many fetches may run at once;
	// DefaultPrefetchConcurrency when zero.
	Concurrency int
	// Interval is the time between two syncs when nothing triggers one;
	// DefaultCacheSyncInterval when zero.
	Interval time.Duration
	// Clock times retries and drives the sync ticker; nil means the real clock.
	Clock clock.WithTicker
	// Metrics receive fetch and eviction counts; nil records none.
	Metrics *Metrics
	// Log receives the manager's log lines. Tokens are never logged.
	Log logr.Logger
}

// CacheManager keeps the node-local model cache: it prefetches the Models
// selected for its node, remembers why a fetch failed (reported in the
// GPUNode's status.modelCacheErrors) and evicts the least recently used
// blobs above a size limit. Blobs pinned by running jobs, Models with
// cachePolicy Pinned and Models selected for prefetching on this node are
// never evicted.
//
// Fetches run on their own goroutines, at most Concurrency at a time, so a
// long download never delays the agent's NVML poll or heartbeat. The
// manager is safe for concurrent use.
type CacheManager struct {
	opts    CacheManagerOptions
	cache   *artifact.Cache
	sem     chan struct{}
	trigger chan struct{}
	changed chan struct{}
	wg      sync.WaitGroup

	mu       sync.Mutex
	inFlight map[string]bool
	failures map[string]*prefetchFailure // by digest
}

// prefetchFailure is the last failed attempt to prefetch a digest.
type prefetchFailure struct {
	request string // identity of what was attempted; a new one is retried at once
	entry   aivmv1alpha1.ModelCacheError
	backoff time.Duration
	retryAt time.Time
}

// NewCacheManager returns a cache manager; it does nothing until Sync or Run.
func NewCacheManager(opts CacheManagerOptions) (*CacheManager, error) {
	switch {
	case opts.Models == nil || opts.APIReader == nil:
		return nil, errors.New("cache manager needs a Model reader and an API reader")
	case opts.Fetcher == nil:
		return nil, errors.New("cache manager needs a fetcher")
	case opts.Prefetch && opts.NodeName == "":
		return nil, errors.New("prefetching needs the node name")
	case opts.MaxBytes < 0:
		return nil, fmt.Errorf("model cache size limit %d is negative", opts.MaxBytes)
	case opts.Concurrency < 0:
		return nil, fmt.Errorf("prefetch concurrency %d is negative", opts.Concurrency)
	case opts.Interval < 0:
		return nil, fmt.Errorf("cache sync interval %s is negative", opts.Interval)
	}
	if opts.Concurrency == 0 {
		opts.Concurrency = DefaultPrefetchConcurrency
	}
	if opts.Interval == 0 {
		opts.Interval = DefaultCacheSyncInterval
	}
	if opts.Clock == nil {
		opts.Clock = clock.RealClock{}
	}
	return &CacheManager{
		opts:     opts,
		cache:    opts.Fetcher.Cache(),
		sem:      make(chan struct{}, opts.Concurrency),
		trigger:  make(chan struct{}, 1),
		changed:  make(chan struct{}, 1),
		inFlight: map[string]bool{},
		failures: map[string]*prefetchFailure{},
	}, nil
}

// Trigger asks Run for a sync as soon as possible, for example when a Model
// changed. It never blocks.
func (m *CacheManager) Trigger() { notify(m.trigger) }

// Changed receives when the cache contents or the failures changed, so the
// agent publishes them without waiting for its next poll
// (AgentOptions.Wake).
func (m *CacheManager) Changed() <-chan struct{} { return m.changed }

// Wait waits for the fetches in progress to end.
func (m *CacheManager) Wait() { m.wg.Wait() }

func notify(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// Run syncs at once, then every interval and whenever triggered, until ctx
// is done; then it waits for the fetches in progress, which ctx cancels.
func (m *CacheManager) Run(ctx context.Context) error {
	t := m.opts.Clock.NewTicker(m.opts.Interval)
	defer t.Stop()
	defer m.wg.Wait()
	for {
		if err := m.Sync(ctx); err != nil && ctx.Err() == nil {
			m.opts.Log.Error(err, "Model cache sync failed; retrying at the next interval")
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C():
		case <-m.trigger:
		}
	}
}

// Sync starts fetches of the selected Models that are neither cached, nor
// being fetched, nor waiting to retry a failure, as far as the concurrency
// allows, and then collects garbage when a size limit is set. It does not
// wait for the fetches; each one triggers another sync when it ends.
func (m *CacheManager) Sync(ctx context.Context) error {
	var list aivmv1alpha1.ModelList
	if err := m.opts.Models.List(ctx, &list); err != nil {
		return fmt.Errorf("list models: %w", err)
	}
	models := list.Items
	slices.SortFunc(models, func(a, b aivmv1alpha1.Model) int {
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
	})

	keep := map[string]bool{}
	for i := range models {
		if models[i].Spec.CachePolicy == aivmv1alpha1.CachePolicyPinned {
			if d := modelDigest(&models[i]); d != "" {
				keep[d] = true
				// A Pinned Model's blobs stay too, snapshot or not.
				for _, f := range models[i].Spec.Files {
					keep[f.SHA256] = true
				}
			}
		}
	}
	var wanted []*aivmv1alpha1.Model
	if m.opts.Prefetch {
		var err error
		if wanted, err = m.selected(ctx, models); err != nil {
			return err
		}
	}
	for _, w := range wanted {
		keep[modelDigest(w)] = true
		for _, f := range w.Spec.Files {
			keep[f.SHA256] = true
		}
	}
	m.forgetUnwanted(wanted)
	m.startFetches(ctx, wanted)

	if m.opts.MaxBytes > 0 {
		return m.collect(ctx, keep)
	}
	return nil
}

// modelDigest returns a Model's modelDigest, or "" for a spec that admission
// would refuse.
func modelDigest(mod *aivmv1alpha1.Model) string {
	d, err := modeldigest.Of(&mod.Spec)
	if err != nil {
		return ""
	}
	return d
}

// selected returns the Models whose prefetch selector matches the Node's
// labels, one per modelDigest (the first by namespace and name).
func (m *CacheManager) selected(ctx context.Context, models []aivmv1alpha1.Model) ([]*aivmv1alpha1.Model, error) {
	node := &corev1.Node{}
	if err := m.opts.APIReader.Get(ctx, client.ObjectKey{Name: m.opts.NodeName}, node); err != nil {
		return nil, fmt.Errorf("get node %s: %w", m.opts.NodeName, err)
	}
	seen := map[string]bool{}
	var out []*aivmv1alpha1.Model
	for i := range models {
		mod := &models[i]
		d := modelDigest(mod)
		if mod.Spec.Prefetch == nil || !mod.DeletionTimestamp.IsZero() || d == "" || seen[d] {
			continue
		}
		ok, err := artifact.PrefetchSelects(mod, node.Labels)
		if err != nil {
			m.opts.Log.Info("Skipping a Model whose prefetch selector is invalid", "model", klogKey(mod), "err", err.Error())
			continue
		}
		if ok {
			seen[d] = true
			out = append(out, mod)
		}
	}
	return out, nil
}

// forgetUnwanted drops the remembered failures of digests no longer
// selected. The GPUNode keeps listing them until the digest is cached.
func (m *CacheManager) forgetUnwanted(wanted []*aivmv1alpha1.Model) {
	want := map[string]bool{}
	for _, w := range wanted {
		want[modelDigest(w)] = true
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for d := range m.failures {
		if !want[d] {
			delete(m.failures, d)
		}
	}
}

func (m *CacheManager) startFetches(ctx context.Context, wanted []*aivmv1alpha1.Model) {
	now := m.opts.Clock.Now()
	full := false
	for _, mod := range wanted {
		digest := modelDigest(mod)
		has, err := m.cache.HasSnapshot(digest)
		if err != nil {
			m.opts.Log.Error(err, "Cannot tell whether a model is cached", "model", klogKey(mod))
			continue
		}
		m.mu.Lock()
		if has {
			if _, failed := m.failures[digest]; failed {
				delete(m.failures, digest)
				notify(m.changed)
			}
			m.mu.Unlock()
			continue
		}
		f := m.failures[digest]
		waiting := f != nil && f.request == requestIdentity(mod) && now.Before(f.retryAt)
		if m.inFlight[digest] || waiting || full {
			m.mu.Unlock()
			continue
		}
		select {
		case m.sem <- struct{}{}:
		default:
			// All slots are busy; a finishing fetch triggers the next
			// sync. Cached Models below still get their failures cleared.
			full = true
			m.mu.Unlock()
			continue
		}
		m.inFlight[digest] = true
		m.wg.Add(1)
		m.mu.Unlock()
		go m.fetch(ctx, mod.DeepCopy())
	}
}

// fetch fetches one Model and records the outcome.
func (m *CacheManager) fetch(ctx context.Context, mod *aivmv1alpha1.Model) {
	defer m.wg.Done()
	digest := modelDigest(mod)
	log := m.opts.Log.WithValues("model", klogKey(mod), "digest", digest)
	log.Info("Prefetching model", "files", max(len(mod.Spec.Files), 1))
	dir, err := m.fetchModel(ctx, mod, digest)

	result := ""
	m.mu.Lock()
	delete(m.inFlight, digest)
	<-m.sem
	switch {
	case err == nil:
		delete(m.failures, digest)
		result = fetchResultOK
		log.Info("Prefetched model", "snapshot", dir)
	case ctx.Err() != nil:
		// Stopped, not failed: nothing to report.
	default:
		f := m.recordFailure(mod, err)
		result = f.entry.Reason
		log.Info("Prefetching model failed", "reason", f.entry.Reason, "err", err.Error(), "retryIn", f.backoff)
	}
	m.mu.Unlock()
	if result != "" {
		m.opts.Metrics.fetched(result)
	}
	notify(m.changed)
	m.Trigger()
}

// fetchModel fetches a Model's files and materializes its snapshot.
func (m *CacheManager) fetchModel(ctx context.Context, mod *aivmv1alpha1.Model, digest string) (string, error) {
	var token artifact.Token
	if ref := mod.Spec.CredentialsSecretRef; ref != nil {
		secret := &corev1.Secret{}
		key := client.ObjectKey{Namespace: mod.Namespace, Name: ref.Name}
		if err := m.opts.APIReader.Get(ctx, key, secret); err != nil {
			if apierrors.IsForbidden(err) {
				return "", &credentialsError{fmt.Errorf("the node agent may not read credentials secret %s: "+
					"grant it the namespace (Helm value nodeAgent.modelCredentialNamespaces)", key)}
			}
			return "", &credentialsError{fmt.Errorf("get credentials secret %s: %w", key, err)}
		}
		t, err := artifact.TokenFromSecret(secret, ref.Key)
		if err != nil {
			return "", &credentialsError{err}
		}
		token = t
	}
	// Pin while fetching so a garbage collection cannot evict the blob
	// between its arrival and the next sync's keep list.
	pin, err := m.cache.Pin(digest)
	if err != nil {
		return "", err
	}
	defer func() { _ = pin.Release() }()
	spec, err := artifact.ModelSnapshotSpec(mod, token)
	if err != nil {
		return "", err
	}
	return m.opts.Fetcher.EnsureSnapshot(ctx, spec)
}

// credentialsError is a missing or unreadable credentials Secret.
type credentialsError struct{ err error }

func (e *credentialsError) Error() string { return e.err.Error() }
func (e *credentialsError) Unwrap() error { return e.err }

// recordFailure remembers a failed fetch and returns the record; m.mu is held.
func (m *CacheManager) recordFailure(mod *aivmv1alpha1.Model, err error) *prefetchFailure {
	digest := modelDigest(mod)
	reason := artifact.ErrorReason(err)
	file := ""
	var fe *artifact.FileError
	if errors.As(err, &fe) && len(mod.Spec.Files) > 0 {
		file = fe.Path
	}
	var ce *credentialsError
	if errors.As(err, &ce) {
		reason = aivmv1alpha1.ReasonCredentialsNotFound
	}
	now := m.opts.Clock.Now()
	req := requestIdentity(mod)
	backoff := prefetchRetryInitial
	if prev := m.failures[digest]; prev != nil && prev.request == req {
		backoff = min(2*prev.backoff, prefetchRetryMax)
	}
	msg := fmt.Sprintf("model %s: %s", klogKey(mod), err.Error())
	f := &prefetchFailure{
		request: req,
		entry: aivmv1alpha1.ModelCacheError{
			Digest:  digest,
			File:    text.Truncate(file, 1024),
			Model:   text.Truncate(klogKey(mod), 317),
			Reason:  reason,
			Message: text.Truncate(msg, maxCacheErrorMessage),
			// The API keeps seconds; so does the entry, so that the
			// publisher sees it unchanged after a round trip.
			Time: &metav1.Time{Time: now.Truncate(time.Second)},
		},
		backoff: backoff,
		retryAt: now.Add(backoff),
	}
	m.failures[digest] = f
	return f
}

// requestIdentity names what fetching a Model asks for; a Model edited to
// ask for something else is retried without waiting for the backoff.
func requestIdentity(mod *aivmv1alpha1.Model) string { return artifact.ModelSourceKey(mod) }

// ModelCacheErrors returns the failures of the Models this node is asked to
// prefetch, oldest first, at most MaxModelCacheErrors.
func (m *CacheManager) ModelCacheErrors() []aivmv1alpha1.ModelCacheError {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]aivmv1alpha1.ModelCacheError, 0, len(m.failures))
	for _, f := range m.failures {
		out = append(out, *f.entry.DeepCopy())
	}
	return newestLast(out)
}

// collect evicts least recently used blobs above the size limit.
func (m *CacheManager) collect(ctx context.Context, keep map[string]bool) error {
	res, err := m.cache.GC(ctx, artifact.GCOptions{
		MaxBytes: m.opts.MaxBytes,
		Keep: func(digest string) bool {
			m.mu.Lock()
			defer m.mu.Unlock()
			return keep[digest] || m.inFlight[digest]
		},
	})
	m.opts.Metrics.evicted(len(res.Evicted))
	if len(res.Evicted) > 0 {
		notify(m.changed)
	}
	if err != nil {
		return fmt.Errorf("model cache garbage collection: %w", err)
	}
	if res.BytesAfter > m.opts.MaxBytes {
		m.opts.Log.V(1).Info("Model cache stays above its limit: the rest is in use, pinned or prefetched",
			"bytes", res.BytesAfter, "limit", m.opts.MaxBytes, "inUse", len(res.SkippedInUse), "kept", len(res.Kept))
	}
	return nil
}

func klogKey(o metav1.Object) string {
	return types.NamespacedName{Namespace: o.GetNamespace(), Name: o.GetName()}.String()
}
