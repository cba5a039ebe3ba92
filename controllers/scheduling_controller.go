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
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/aivm-dev/aivm-operator/api/v1alpha1"
	"github.com/aivm-dev/aivm-operator/controllers/indexer"
	"github.com/aivm-dev/aivm-operator/controllers/scheduler"
	"github.com/aivm-dev/aivm-operator/internal/status"
)

// Defaults of the scheduling controller.
const (
	// DefaultSchedulingWorkers is how many placements are recorded in
	// status at once; the API round trip, not the decision, is the cost.
	DefaultSchedulingWorkers = 16
	// schedulingRetryAfter is when a job whose placement could not be
	// recorded is queued again.
	schedulingRetryAfter = time.Second
)

// scheduledEvents: Scheduled=True is Normal, Scheduled=False (nothing fits) a Warning.
var scheduledEvents = status.EventRule{Types: []string{v1alpha1.ConditionScheduled}, Action: "Schedule"}

// SchedulingReconciler is the adapter between the API and the placement
// core (controllers/scheduler). Two reconcilers feed the core: one per
// InferenceJob (its request, or the reservations its status shows) and
// one per node (GPUNode and Node). A loop started with the manager takes
// decisions from the core and records each in the job's status with one
// optimistic-locked write: placements plus Scheduled=True, or
// Scheduled=False with the reason. A placement is in status before any pod
// exists; a write computed from a stale copy is refused and re-run on a
// fresh one, which finds the job placed and undoes the decision.
type SchedulingReconciler struct {
	client    client.Client
	apiReader client.Reader
	recorder  events.EventRecorder
	clock     clock.PassiveClock
	sched     *scheduler.Scheduler
	cache     cache.Cache
	workers   int
	wake      chan struct{}
}

// SchedulingOption configures a SchedulingReconciler.
type SchedulingOption func(*SchedulingReconciler)

// WithSchedulingClock sets the clock for placement and condition times.
func WithSchedulingClock(c clock.PassiveClock) SchedulingOption {
	return func(r *SchedulingReconciler) { r.clock = c }
}

// WithSchedulingWorkers sets how many decisions are recorded at once.
func WithSchedulingWorkers(n int) SchedulingOption {
	return func(r *SchedulingReconciler) { r.workers = n }
}

// NewSchedulingReconciler returns the scheduling controller around sched.
// c is usually the manager's client, apiReader its uncached reader (for
// re-reads after a conflict).
func NewSchedulingReconciler(c client.Client, apiReader client.Reader, recorder events.EventRecorder, sched *scheduler.Scheduler, opts ...SchedulingOption) *SchedulingReconciler {
	r := &SchedulingReconciler{
		client: c, apiReader: apiReader, recorder: recorder, clock: clock.RealClock{},
		sched: sched, workers: DefaultSchedulingWorkers, wake: make(chan struct{}, 1),
	}
	for _, o := range opts {
		o(r)
	}
	return r
}

// +kubebuilder:rbac:groups=aivm.dev,resources=inferencejobs,verbs=get;list;watch
// +kubebuilder:rbac:groups=aivm.dev,resources=inferencejobs/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=aivm.dev,resources=kernels;models;gpunodes,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=nodes,verbs=get;list;watch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// Reconcile feeds one InferenceJob to the scheduler. It writes nothing:
// the decision loop does. A job never admitted is queued as soon as its
// Kernel is Ready; the decision's write admits it (see admit).
func (r *SchedulingReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	job := &v1alpha1.InferenceJob{}
	if err := r.client.Get(ctx, req.NamespacedName, job); err != nil {
		if apierrors.IsNotFound(err) {
			r.sched.Release(scheduler.JobKey{Namespace: req.Namespace, Name: req.Name})
			r.poke()
			return ctrl.Result{}, nil
		}
		return ctrl.Result{}, fmt.Errorf("get inferencejob: %w", err)
	}
	return ctrl.Result{}, r.syncJob(ctx, job)
}

// syncJob records the job's reservations and queues or dequeues it.
func (r *SchedulingReconciler) syncJob(ctx context.Context, job *v1alpha1.InferenceJob) error {
	key := jobKey(job)
	if !job.DeletionTimestamp.IsZero() || jobFinished(job) {
		r.sched.Release(key)
		r.poke()
		return nil
	}
	kernel, model, err := r.kernelAndModel(ctx, job)
	if err != nil {
		return err
	}
	r.sched.Observe(key, schedAttempt(job), memoryPerGPU(kernel, model), activePlacements(job))
	if needsPlacement(job, kernel) && kernel != nil && model != nil {
		r.sched.Enqueue(requestFor(job, kernel, model))
	} else {
		// Not placeable now; the job controller says why (Admitted=False).
		r.sched.Dequeue(key)
	}
	r.poke()
	return nil
}

// kernelAndModel reads the job's Kernel and its Model; nil when missing.
func (r *SchedulingReconciler) kernelAndModel(ctx context.Context, job *v1alpha1.InferenceJob) (*v1alpha1.Kernel, *v1alpha1.Model, error) {
	kernel := &v1alpha1.Kernel{}
	if err := r.client.Get(ctx, types.NamespacedName{Namespace: job.Namespace, Name: job.Spec.KernelRef.Name}, kernel); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, nil, nil
		}
		return nil, nil, fmt.Errorf("get kernel: %w", err)
	}
	model := &v1alpha1.Model{}
	if err := r.client.Get(ctx, types.NamespacedName{Namespace: job.Namespace, Name: kernel.Spec.ModelRef.Name}, model); err != nil {
		if apierrors.IsNotFound(err) {
			return kernel, nil, nil
		}
		return nil, nil, fmt.Errorf("get model: %w", err)
	}
	return kernel, model, nil
}

// poke wakes the decision loop.
func (r *SchedulingReconciler) poke() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// nodeReconciler feeds a node's GPUNode and Node to the scheduler.
type nodeReconciler struct{ r *SchedulingReconciler }

func (n nodeReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	r := n.r
	gn := &v1alpha1.GPUNode{}
	switch err := r.client.Get(ctx, req.NamespacedName, gn); {
	case apierrors.IsNotFound(err):
		r.sched.DeleteGPUNode(req.Name)
	case err != nil:
		return ctrl.Result{}, fmt.Errorf("get gpunode: %w", err)
	default:
		r.sched.UpsertGPUNode(toSchedulerGPUNode(gn))
	}
	node := &corev1.Node{}
	switch err := r.client.Get(ctx, req.NamespacedName, node); {
	case apierrors.IsNotFound(err):
		r.sched.DeleteNode(req.Name)
	case err != nil:
		return ctrl.Result{}, fmt.Errorf("get node: %w", err)
	default:
		r.sched.UpsertNode(toSchedulerNode(node))
	}
	r.poke()
	return ctrl.Result{}, nil
}

// SetupWithManager registers the job and node reconcilers and the
// decision loop. The InferenceJob kernelRef index (controllers/indexer)
// must be set up on mgr.
func (r *SchedulingReconciler) SetupWithManager(mgr ctrl.Manager) error {
	r.cache = mgr.GetCache()
	useSchedulerMetrics(r.sched)
	if err := ctrl.NewControllerManagedBy(mgr).
		Named("scheduling").
		For(&v1alpha1.InferenceJob{}).
		Watches(&v1alpha1.Kernel{}, handler.EnqueueRequestsFromMapFunc(r.jobsForKernel)).
		Watches(&v1alpha1.Model{}, handler.EnqueueRequestsFromMapFunc(r.jobsForModel)).
		Complete(r); err != nil {
		return fmt.Errorf("scheduling controller: %w", err)
	}
	byName := handler.EnqueueRequestsFromMapFunc(func(_ context.Context, o client.Object) []reconcile.Request {
		return []reconcile.Request{{NamespacedName: types.NamespacedName{Name: o.GetName()}}}
	})
	if err := ctrl.NewControllerManagedBy(mgr).
		Named("scheduling-nodes").
		For(&v1alpha1.GPUNode{}).
		Watches(&corev1.Node{}, byName).
		Complete(nodeReconciler{r}); err != nil {
		return fmt.Errorf("scheduling node controller: %w", err)
	}
	return mgr.Add(r)
}

func (r *SchedulingReconciler) jobsForKernel(ctx context.Context, o client.Object) []reconcile.Request {
	var jobs v1alpha1.InferenceJobList
	if err := r.client.List(ctx, &jobs, client.InNamespace(o.GetNamespace()), client.MatchingFields{indexer.JobKernelRef: o.GetName()}); err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "Could not list inference jobs for kernel", "kernel", klog.KObj(o))
		return nil
	}
	reqs := make([]reconcile.Request, 0, len(jobs.Items))
	for i := range jobs.Items {
		reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&jobs.Items[i])})
	}
	return reqs
}

func (r *SchedulingReconciler) jobsForModel(ctx context.Context, o client.Object) []reconcile.Request {
	var kernels v1alpha1.KernelList
	if err := r.client.List(ctx, &kernels, client.InNamespace(o.GetNamespace())); err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "Could not list kernels for model", "model", klog.KObj(o))
		return nil
	}
	var reqs []reconcile.Request
	for i := range kernels.Items {
		if kernels.Items[i].Spec.ModelRef.Name == o.GetName() {
			reqs = append(reqs, r.jobsForKernel(ctx, &kernels.Items[i])...)
		}
	}
	return reqs
}

// NeedLeaderElection reports true: only the leader decides placements.
func (r *SchedulingReconciler) NeedLeaderElection() bool { return true }

// Start rebuilds the scheduler's state from the cache (every GPUNode, Node
// and InferenceJob, so reservations in status are held before the first
// decision), then decides until ctx ends.
func (r *SchedulingReconciler) Start(ctx context.Context) error {
	log := ctrl.LoggerFrom(ctx).WithName("scheduler")
	ctx = ctrl.LoggerInto(ctx, log)
	if !r.cache.WaitForCacheSync(ctx) {
		return nil // ctx ended
	}
	if err := r.rebuild(ctx); err != nil {
		return err
	}
	work := make(chan scheduler.Decision, r.workers)
	done := make(chan struct{})
	for i := 0; i < r.workers; i++ {
		go func() {
			defer func() { done <- struct{}{} }()
			for d := range work {
				r.record(ctx, d)
			}
		}()
	}
	defer func() {
		close(work)
		for i := 0; i < r.workers; i++ {
			<-done
		}
	}()
	for {
		d, ok := r.sched.Next()
		if !ok {
			select {
			case <-ctx.Done():
				return nil
			case <-r.wake:
			}
			continue
		}
		select {
		case work <- d:
		case <-ctx.Done():
			return nil
		}
	}
}

// rebuild feeds every object in the cache to the scheduler.
func (r *SchedulingReconciler) rebuild(ctx context.Context) error {
	var gns v1alpha1.GPUNodeList
	if err := r.client.List(ctx, &gns); err != nil {
		return fmt.Errorf("list gpunodes: %w", err)
	}
	for i := range gns.Items {
		r.sched.UpsertGPUNode(toSchedulerGPUNode(&gns.Items[i]))
	}
	var nodes corev1.NodeList
	if err := r.client.List(ctx, &nodes); err != nil {
		return fmt.Errorf("list nodes: %w", err)
	}
	for i := range nodes.Items {
		r.sched.UpsertNode(toSchedulerNode(&nodes.Items[i]))
	}
	var jobs v1alpha1.InferenceJobList
	if err := r.client.List(ctx, &jobs); err != nil {
		return fmt.Errorf("list inferencejobs: %w", err)
	}
	for i := range jobs.Items {
		if err := r.syncJob(ctx, &jobs.Items[i]); err != nil {
			return err
		}
	}
	ctrl.LoggerFrom(ctx).Info("Scheduler state rebuilt", "gpuNodes", len(gns.Items), "nodes", len(nodes.Items), "jobs", len(jobs.Items))
	return nil
}

// record writes a decision into the job's status. If the job no longer
// needs this placement (placed already, finished, a new attempt, gone),
// the decision is undone in the scheduler instead.
func (r *SchedulingReconciler) record(ctx context.Context, d scheduler.Decision) {
	log := ctrl.LoggerFrom(ctx).WithValues("inferenceJob", klog.KRef(d.Request.Key.Namespace, d.Request.Key.Name), "attempt", d.Request.Attempt)
	job := &v1alpha1.InferenceJob{}
	if err := r.client.Get(ctx, types.NamespacedName{Namespace: d.Request.Key.Namespace, Name: d.Request.Key.Name}, job); err != nil {
		r.sched.Forget(d.Request.Key, d.Request.Attempt)
		if !apierrors.IsNotFound(err) {
			log.Error(err, "Could not read the job to record its placement")
			r.retryLater(ctx, d.Request.Key)
		}
		return
	}
	kernel := &v1alpha1.Kernel{}
	if err := r.client.Get(ctx, types.NamespacedName{Namespace: job.Namespace, Name: job.Spec.KernelRef.Name}, kernel); err != nil {
		if !apierrors.IsNotFound(err) {
			r.sched.Forget(d.Request.Key, d.Request.Attempt)
			log.Error(err, "Could not read the job's kernel to record its placement")
			r.retryLater(ctx, d.Request.Key)
			return
		}
		kernel = nil
	}
	before := job.Status.DeepCopy().Conditions
	stale := false
	now := metav1.NewTime(r.clock.Now())
	_, err := status.Update(ctx, r.client, r.apiReader, job, func(j *v1alpha1.InferenceJob) error {
		stale = !needsPlacement(j, kernel) || schedAttempt(j) != d.Request.Attempt
		if stale {
			return nil
		}
		if j.Status.Attempts == 0 {
			// The first decision carries the job's admission: one write
			// where there were two, and no wait for the first to come back.
			admit(j, kernel.Name, now)
		}
		if d.Placed() {
			setPlaced(j, d, now)
			// And what the job controller writes while the pods are made,
			// so their creation needs no status write (see awaitPods).
			awaitPods(j, d.Request.Attempt, now)
		} else {
			setUnplaced(j, d, now)
		}
		return nil
	})
	switch {
	case err != nil:
		r.sched.Forget(d.Request.Key, d.Request.Attempt)
		log.Error(err, "Could not record the scheduling decision")
		r.retryLater(ctx, d.Request.Key)
		return
	case stale:
		r.sched.Forget(d.Request.Key, d.Request.Attempt)
		return
	}
	if d.Placed() {
		timeToPlacement.Observe(now.Sub(job.CreationTimestamp.Time).Seconds())
		for _, p := range d.Placements {
			placementsByNode.WithLabelValues(p.Node).Inc()
		}
		log.V(1).Info("Placed", "placements", d.Placements)
	} else {
		unplaceable.WithLabelValues(d.Reason).Inc()
	}
	status.RecordTransitions(r.recorder, job, before, job.Status.Conditions, scheduledEvents)
}

// retryLater feeds the job to the scheduler again after a pause, so an
// API error does not become a busy loop.
func (r *SchedulingReconciler) retryLater(ctx context.Context, key scheduler.JobKey) {
	time.AfterFunc(schedulingRetryAfter, func() {
		if ctx.Err() != nil {
			return
		}
		job := &v1alpha1.InferenceJob{}
		if err := r.client.Get(ctx, types.NamespacedName{Namespace: key.Namespace, Name: key.Name}, job); err != nil {
			return
		}
		if err := r.syncJob(ctx, job); err != nil {
			ctrl.LoggerFrom(ctx).Error(err, "Could not queue the job again", "inferenceJob", klog.KRef(key.Namespace, key.Name))
		}
	})
}
