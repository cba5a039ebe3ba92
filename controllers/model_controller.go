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

package controllers

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/aivm-dev/aivm-operator/api/v1alpha1"
	"github.com/aivm-dev/aivm-operator/artifact"
	"github.com/aivm-dev/aivm-operator/controllers/indexer"
	"github.com/aivm-dev/aivm-operator/internal/modeldigest"
	"github.com/aivm-dev/aivm-operator/internal/status"
	"github.com/aivm-dev/aivm-operator/internal/text"
)

// Model source checking.
const (
	// DefaultSourceRecheckInterval is how long a successful source check
	// is trusted before the source is checked again.
	DefaultSourceRecheckInterval = 10 * time.Minute
	// DefaultSourceRetryInterval is how soon a failed source check (or
	// missing credentials) is retried.
	DefaultSourceRetryInterval = time.Minute
	// DefaultSourceCheckTimeout bounds one source check.
	DefaultSourceCheckTimeout = 30 * time.Second
	// DefaultModelMaxConcurrentReconciles is how many Models are
	// reconciled at once, so a source that does not answer holds up
	// only its own Model's check.
	DefaultModelMaxConcurrentReconciles = 4
	// maxConditionMessage bounds condition messages.
	maxConditionMessage = 1024
	// maxListedNodes is how many node names a message lists.
	maxListedNodes = 5
	// maxConcurrentFileChecks bounds the source checks of one file set's
	// files that run at once.
	maxConcurrentFileChecks = 8
)

// SourceChecker checks that a model source is reachable without
// downloading it. *artifact.Checker implements it.
type SourceChecker interface {
	Check(ctx context.Context, req artifact.Request) (artifact.CheckResult, error)
}

// ModelReconciler keeps a Model's status current: it validates the spec,
// checks that the source of every file answers (a HEAD request; file:// sources are
// checked by the nodes that fetch them), and folds in what node agents
// report in GPUNode status: which nodes hold the verified bytes
// (cachedModels) and which fetched bytes that did not match
// (modelCacheErrors with reason DigestMismatch).
//
// Only GPUNodes that are not Ready=False count as holding the bytes: a
// node whose agent stopped sending heartbeats (HeartbeatMissed) cannot
// serve them. A GPUNode with no Ready condition yet counts.
//
// Conditions: Verified is True once a live node holds the verified bytes,
// False with DigestMismatch when a node reported other bytes, Unknown
// otherwise. Ready is True when the source answered or a live node holds
// the bytes, and False with InvalidSource, DigestMismatch, SizeMismatch,
// CredentialsNotFound or SourceUnreachable otherwise.
type ModelReconciler struct {
	client    client.Client
	apiReader client.Reader
	recorder  events.EventRecorder
	checker   SourceChecker
	clock     clock.PassiveClock
	recheck   time.Duration
	retry     time.Duration
	timeout   time.Duration
	workers   int

	mu     sync.Mutex
	checks map[types.NamespacedName]sourceCheck
}

// sourceCheck is a remembered source check, so node heartbeats do not turn
// into HEAD requests.
type sourceCheck struct {
	input   sourceInput
	at      time.Time
	result  artifact.CheckResult
	credErr error // the credentials Secret or key is missing
	err     error // the check failed
}

// sourceInput is what a source check depends on. A remembered check is
// reused only for the same input, so a Model deleted and recreated under
// the same name (a new UID, and generation 1 again) is checked anew.
type sourceInput struct {
	uid     types.UID
	sources string // artifact.ModelSourceKey
}

func sourceInputOf(model *v1alpha1.Model) sourceInput {
	return sourceInput{uid: model.UID, sources: artifact.ModelSourceKey(model)}
}

func (c sourceCheck) failed() bool { return c.err != nil || c.credErr != nil }

// ModelReconcilerOption configures a ModelReconciler.
type ModelReconcilerOption func(*ModelReconciler)

// WithModelClock sets the clock for condition times and source rechecks.
func WithModelClock(c clock.PassiveClock) ModelReconcilerOption {
	return func(r *ModelReconciler) { r.clock = c }
}

// WithSourceRecheck sets how long a successful source check is trusted and
// how soon a failed one is retried.
func WithSourceRecheck(recheck, retry time.Duration) ModelReconcilerOption {
	return func(r *ModelReconciler) { r.recheck, r.retry = recheck, retry }
}

// WithSourceCheckTimeout bounds one source check (DefaultSourceCheckTimeout
// by default).
func WithSourceCheckTimeout(d time.Duration) ModelReconcilerOption {
	return func(r *ModelReconciler) { r.timeout = d }
}

// WithModelMaxConcurrentReconciles sets how many Models are reconciled at
// once (DefaultModelMaxConcurrentReconciles by default); values below 1
// keep the default.
func WithModelMaxConcurrentReconciles(n int) ModelReconcilerOption {
	return func(r *ModelReconciler) {
		if n >= 1 {
			r.workers = n
		}
	}
}

// NewModelReconciler returns a ModelReconciler. apiReader reads the
// credentials Secrets directly from the API server (mgr.GetAPIReader()), so
// the manager does not cache Secrets.
func NewModelReconciler(c client.Client, apiReader client.Reader, recorder events.EventRecorder, checker SourceChecker, opts ...ModelReconcilerOption) *ModelReconciler {
	r := &ModelReconciler{
		client:    c,
		apiReader: apiReader,
		recorder:  recorder,
		checker:   checker,
		clock:     clock.RealClock{},
		recheck:   DefaultSourceRecheckInterval,
		retry:     DefaultSourceRetryInterval,
		timeout:   DefaultSourceCheckTimeout,
		workers:   DefaultModelMaxConcurrentReconciles,
		checks:    map[types.NamespacedName]sourceCheck{},
	}
	for _, o := range opts {
		o(r)
	}
	return r
}

// +kubebuilder:rbac:groups=aivm.dev,resources=models,verbs=get;list;watch
// +kubebuilder:rbac:groups=aivm.dev,resources=models/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=aivm.dev,resources=gpunodes,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get

// Reconcile computes a Model's status and patches it when it changed.
func (r *ModelReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	model := &v1alpha1.Model{}
	if err := r.client.Get(ctx, req.NamespacedName, model); err != nil {
		if apierrors.IsNotFound(err) {
			r.forget(req.NamespacedName)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !model.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, nil // nothing outside the object to clean up
	}
	obs, err := r.observe(ctx, model)
	if err != nil {
		return ctrl.Result{}, err
	}
	before := model.DeepCopy()
	changed, err := status.Update(ctx, r.client, r.apiReader, model, func(m *v1alpha1.Model) error {
		// obs describes this generation's spec; after a conflict the
		// fresh copy may hold a newer one, whose own reconcile follows.
		if m.Generation != before.Generation {
			return errSpecChanged
		}
		r.setStatus(m, obs)
		return nil
	})
	if errors.Is(err, errSpecChanged) {
		return ctrl.Result{}, nil
	}
	if err != nil {
		return ctrl.Result{}, err
	}
	if changed {
		r.recordEvents(before, model)
	}
	return ctrl.Result{RequeueAfter: obs.nextCheck}, nil
}

// errSpecChanged stops a status write computed for a spec that has since
// changed.
var errSpecChanged = errors.New("the model's spec changed while its status was computed")

// modelObservation is everything a Model's status is computed from.
type modelObservation struct {
	specErr     error
	digest      string // modelDigest
	files       []artifact.FileRequest
	cachedNodes []string // live nodes holding the verified bytes
	downNodes   []string // nodes holding them whose GPUNode is Ready=False
	mismatches  []nodeCacheError
	// refusals are nodes that did not serve their cached bytes to this
	// Model: its source and credentials did not prove access.
	refusals  []nodeCacheError
	check     sourceCheck
	nextCheck time.Duration
}

type nodeCacheError struct {
	node string
	// self is true when the node reported the failure for this Model;
	// only then does its message (which may name the Model's source) show.
	self bool
	v1alpha1.ModelCacheError
}

func (r *ModelReconciler) observe(ctx context.Context, model *v1alpha1.Model) (modelObservation, error) {
	var obs modelObservation
	digest, err := modeldigest.Of(&model.Spec)
	if err != nil {
		obs.specErr = err
		return obs, nil
	}
	obs.digest = digest
	if obs.files, err = artifact.ModelFileRequests(model, artifact.Token{}); err != nil {
		obs.specErr = err
		return obs, nil
	}
	if len(model.Spec.Files) == 0 {
		if _, err := artifact.ResolveSource(model.Spec.URI, ""); err != nil {
			obs.specErr = err
			return obs, nil
		}
	}
	var holding v1alpha1.GPUNodeList
	if err := r.client.List(ctx, &holding, client.MatchingFields{indexer.GPUNodeCachedModel: digest}); err != nil {
		return obs, fmt.Errorf("list nodes holding the model: %w", err)
	}
	for _, n := range holding.Items {
		if gpuNodeDown(&n) {
			obs.downNodes = append(obs.downNodes, n.Name)
			continue
		}
		obs.cachedNodes = append(obs.cachedNodes, n.Name)
	}
	slices.Sort(obs.cachedNodes)
	slices.Sort(obs.downNodes)
	var failing v1alpha1.GPUNodeList
	if err := r.client.List(ctx, &failing, client.MatchingFields{indexer.GPUNodeCacheError: digest}); err != nil {
		return obs, fmt.Errorf("list nodes reporting cache errors: %w", err)
	}
	self := client.ObjectKeyFromObject(model).String()
	for _, n := range failing.Items {
		for _, e := range n.Status.ModelCacheErrors {
			switch {
			case e.Digest != digest:
			case e.Reason == v1alpha1.ReasonDigestMismatch:
				obs.mismatches = append(obs.mismatches, nodeCacheError{node: n.Name, self: e.Model == self, ModelCacheError: e})
			case e.Reason == v1alpha1.ReasonAccessNotProven && e.Model == self:
				// Another Model's refusal is its own: not a word of it here.
				obs.refusals = append(obs.refusals, nodeCacheError{node: n.Name, self: true, ModelCacheError: e})
			}
		}
	}
	byNode := func(a, b nodeCacheError) int { return strings.Compare(a.node, b.node) }
	slices.SortFunc(obs.mismatches, byNode)
	slices.SortFunc(obs.refusals, byNode)

	check, err := r.sourceCheck(ctx, model, obs.files)
	if err != nil {
		return obs, err
	}
	obs.check = check
	interval := r.recheck
	if check.failed() {
		interval = r.retry
	}
	obs.nextCheck = max(check.at.Add(interval).Sub(r.clock.Now()), time.Second)
	return obs, nil
}

// sourceCheck returns the remembered check of the model's source, or
// checks it when none is remembered for this object and source or it is due.
func (r *ModelReconciler) sourceCheck(ctx context.Context, model *v1alpha1.Model, files []artifact.FileRequest) (sourceCheck, error) {
	key := client.ObjectKeyFromObject(model)
	input := sourceInputOf(model)
	now := r.clock.Now()
	r.mu.Lock()
	prev, ok := r.checks[key]
	r.mu.Unlock()
	if ok && prev.input == input {
		interval := r.recheck
		if prev.failed() {
			interval = r.retry
		}
		if now.Before(prev.at.Add(interval)) {
			return prev, nil
		}
	}

	c := sourceCheck{input: input, at: now}
	token, credErr, err := r.token(ctx, model)
	switch {
	case err != nil:
		return c, err
	case credErr != nil:
		c.credErr = credErr
	default:
		cctx, cancel := context.WithTimeout(ctx, r.timeout)
		c.result, c.err = r.checkFiles(cctx, model, files, token)
		cancel()
		ctrl.LoggerFrom(ctx).V(1).Info("Checked model source", "url", c.result.URL, "size", c.result.Size, "failed", c.err != nil)
	}
	r.mu.Lock()
	r.checks[key] = c
	r.mu.Unlock()
	return c, nil
}

// checkFiles checks the source of every file of a Model, at most
// maxConcurrentFileChecks at once. The result's Size is the total size when
// every file's size is known, else -1; NodeLocal is true when every file is
// node-local. For a file set, the error is the first failing file's (in
// path order) as an *artifact.FileError naming it.
func (r *ModelReconciler) checkFiles(ctx context.Context, model *v1alpha1.Model, files []artifact.FileRequest, token artifact.Token) (artifact.CheckResult, error) {
	if len(model.Spec.Files) == 0 {
		req := files[0].Request
		req.Token = token
		return r.checker.Check(ctx, req)
	}
	results := make([]artifact.CheckResult, len(files))
	errs := make([]error, len(files))
	sem := make(chan struct{}, maxConcurrentFileChecks)
	var wg sync.WaitGroup
	for i := range files {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			req := files[i].Request
			req.Token = token
			results[i], errs[i] = r.checker.Check(ctx, req)
		}()
	}
	wg.Wait()
	out := artifact.CheckResult{NodeLocal: true, Size: 0}
	var first *artifact.FileError
	for i, f := range files {
		res := results[i]
		if errs[i] != nil {
			if first == nil || f.Path < first.Path {
				first = &artifact.FileError{Path: f.Path, Err: errs[i]}
			}
			out.Size = -1
			continue
		}
		out.NodeLocal = out.NodeLocal && res.NodeLocal
		size := res.Size
		if sb := model.Spec.Files[i].SizeBytes; sb != nil {
			size = *sb
		}
		if size < 0 || out.Size < 0 {
			out.Size = -1
		} else {
			out.Size += size
		}
	}
	if first != nil {
		return out, first
	}
	return out, nil
}

// token reads the bearer token the Model's credentials Secret holds.
// credErr reports a missing Secret or key; err a failure worth a retry.
func (r *ModelReconciler) token(ctx context.Context, model *v1alpha1.Model) (token artifact.Token, credErr, err error) {
	ref := model.Spec.CredentialsSecretRef
	if ref == nil {
		return artifact.Token{}, nil, nil
	}
	secret := &corev1.Secret{}
	if err := r.apiReader.Get(ctx, types.NamespacedName{Namespace: model.Namespace, Name: ref.Name}, secret); err != nil {
		if apierrors.IsNotFound(err) {
			return artifact.Token{}, fmt.Errorf("secret %s/%s not found", model.Namespace, ref.Name), nil
		}
		return artifact.Token{}, nil, fmt.Errorf("get credentials secret: %w", err)
	}
	t, terr := artifact.TokenFromSecret(secret, ref.Key)
	return t, terr, nil
}

func (r *ModelReconciler) forget(key types.NamespacedName) {
	r.mu.Lock()
	delete(r.checks, key)
	r.mu.Unlock()
}

// SetupWithManager registers the watches: Models, and GPUNodes whose
// cached models, cache errors or readiness change. It lists with the
// field indexes of controllers/indexer (indexer.Setup).
func (r *ModelReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		For(&v1alpha1.Model{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Watches(&v1alpha1.GPUNode{}, handler.EnqueueRequestsFromMapFunc(r.modelsForGPUNode),
			builder.WithPredicates(modelCacheChanged())).
		WithOptions(controller.Options{MaxConcurrentReconciles: r.workers}).
		Named("model").
		Complete(r)
}

// modelsForGPUNode maps a GPUNode to the Models whose digests it holds or
// failed to fetch. For updates it is called with the old and new object,
// so Models a node stopped holding are reconciled too.
func (r *ModelReconciler) modelsForGPUNode(ctx context.Context, o client.Object) []reconcile.Request {
	node, ok := o.(*v1alpha1.GPUNode)
	if !ok {
		return nil
	}
	digests := slices.Clone(node.Status.CachedModels)
	for _, e := range node.Status.ModelCacheErrors {
		digests = append(digests, e.Digest)
	}
	slices.Sort(digests)
	digests = slices.Compact(digests)
	var reqs []reconcile.Request
	for _, d := range digests {
		var models v1alpha1.ModelList
		if err := r.client.List(ctx, &models, client.MatchingFields{indexer.ModelDigest: d}); err != nil {
			ctrl.LoggerFrom(ctx).Error(err, "Could not list models for node", "gpuNode", klog.KObj(node))
			continue
		}
		for _, m := range models.Items {
			reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&m)})
		}
	}
	return reqs
}

// gpuNodeDown reports whether a GPUNode is Ready=False (for instance its
// agent stopped sending heartbeats), so the bytes it lists cannot be
// served. A GPUNode without a Ready condition is not down.
func gpuNodeDown(n *v1alpha1.GPUNode) bool {
	return meta.IsStatusConditionFalse(n.Status.Conditions, v1alpha1.ConditionReady)
}

// modelCacheChanged passes GPUNode events that can change a Model's
// status: creation, deletion, updates of the cache lists, and the node
// going down or coming back (not heartbeats or GPU metrics).
func modelCacheChanged() predicate.Predicate {
	return predicate.Funcs{
		UpdateFunc: func(e event.UpdateEvent) bool {
			o, ok1 := e.ObjectOld.(*v1alpha1.GPUNode)
			n, ok2 := e.ObjectNew.(*v1alpha1.GPUNode)
			if !ok1 || !ok2 {
				return true
			}
			return !equality.Semantic.DeepEqual(o.Status.CachedModels, n.Status.CachedModels) ||
				!equality.Semantic.DeepEqual(o.Status.ModelCacheErrors, n.Status.ModelCacheErrors) ||
				gpuNodeDown(o) != gpuNodeDown(n)
		},
	}
}

// truncateMessage bounds a condition or placement message, cutting at a rune
// boundary.
func truncateMessage(s string) string { return text.Shorten(s, maxConditionMessage) }
