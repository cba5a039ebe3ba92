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
	"bytes"
	"context"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/aivm-dev/aivm-operator/api/v1alpha1"
	"github.com/aivm-dev/aivm-operator/controllers/indexer"
	"github.com/aivm-dev/aivm-operator/internal/status"
)

// Defaults of the InferenceJob controller's settings.
const (
	// DefaultNodeFailureGrace is how long a node may stay NotReady (or its
	// GPU agent's heartbeat stale) before its jobs fail over.
	DefaultNodeFailureGrace = 40 * time.Second
	// DefaultImagePullGrace is how long a pod may fail to pull an image
	// (registries hiccup) before the attempt fails.
	DefaultImagePullGrace = 2 * time.Minute
	// DefaultJobBackoff is the first retry's delay; it doubles per failure.
	DefaultJobBackoff = 10 * time.Second
	// DefaultJobBackoffMax caps the retry delay.
	DefaultJobBackoffMax = 6 * time.Minute
	// DefaultJobMaxConcurrentReconciles is how many InferenceJobs are
	// reconciled at once. A reconcile is a few API round trips (pod
	// create, status write), so one worker caps the pod rate at what one
	// goroutine's round trips allow.
	DefaultJobMaxConcurrentReconciles = 16
	// DefaultResultURL is where job pods post results when the manager is
	// installed as the chart installs it.
	DefaultResultURL = "https://aivm-operator-result.aivm-system.svc:9443/v1/results"
)

// jobEventRule: condition transitions of the job controller's own
// conditions. On the way to a running pod a job gets one Normal event, the
// scheduler's Placed (it names the node and GPUs, and the pod's name is
// <job>-<attempt>): admission and the waits for a placement and for the
// pod are quiet. Warnings (not admitted, failures) and the later steps
// (running, backoff, suspension, the end) keep their events.
var jobEventRule = status.EventRule{
	Types:           []string{v1alpha1.ConditionAdmitted, v1alpha1.ConditionRunning, v1alpha1.ConditionSucceeded, v1alpha1.ConditionFailed},
	NormalWhenFalse: []string{v1alpha1.ConditionRunning},
	QuietReasons:    []string{v1alpha1.ReasonAdmitted, v1alpha1.ReasonWaitingForPlacement, v1alpha1.ReasonPodPending},
}

// CABundleSource gives the result endpoint's current CA bundle (PEM); the
// endpoint's certificate manager implements it.
type CABundleSource interface {
	CABundle() []byte
}

// InferenceJobReconciler drives an InferenceJob through admission, its
// pods, retries, faults and the end: see docs/job-lifecycle.md. The
// scheduler writes placements; this controller turns them into pods and
// pods into outcomes. Its pods run in the workload namespace
// (WithWorkloadNamespace). It writes only its own status fields
// (docs/job-lifecycle.md).
type InferenceJobReconciler struct {
	client    client.Client
	apiReader client.Reader
	recorder  events.EventRecorder
	clock     clock.PassiveClock
	ca        CABundleSource
	reporting bool
	// caWritten is the CA bundle last written per namespace.
	caWritten sync.Map
	// saCreated holds the namespaces whose runtime service account this
	// reconciler created or found, so a job costs no create call for it.
	saCreated sync.Map
	// nsLocks holds a *sync.Mutex per namespace (lockNamespace).
	nsLocks sync.Map
	// created holds the pods this process created, so one deleted before
	// its placement recorded it ends that placement PodDeleted instead of
	// being made again.
	created createdPods
	workers int
	pods    podConfig
	cfg     jobConfig
}

// InferenceJobOption configures an InferenceJobReconciler.
type InferenceJobOption func(*InferenceJobReconciler)

// WithJobClock sets the clock of backoffs, deadlines and grace periods.
func WithJobClock(c clock.PassiveClock) InferenceJobOption {
	return func(r *InferenceJobReconciler) { r.clock = c }
}

// WithRuntimeImage sets the image of the pods' runtime container.
func WithRuntimeImage(image string) InferenceJobOption {
	return func(r *InferenceJobReconciler) { r.pods.runtimeImage = image }
}

// WithGPUBinding sets how pods get their GPUs (default device-plugin).
func WithGPUBinding(b GPUBinding) InferenceJobOption {
	return func(r *InferenceJobReconciler) { r.pods.binding = b }
}

// WithResultURL sets AIVM_RESULT_URL, the result endpoint's URL.
func WithResultURL(u string) InferenceJobOption {
	return func(r *InferenceJobReconciler) { r.pods.resultURL = u }
}

// WithCABundle sets the source of the result CA written to aivm-result-ca.
func WithCABundle(s CABundleSource) InferenceJobOption {
	return func(r *InferenceJobReconciler) { r.ca = s }
}

// WithReporting says whether the manager reports results on chain; a
// finished job that reports is kept past its TTL until Reported is True.
func WithReporting(enabled bool) InferenceJobOption {
	return func(r *InferenceJobReconciler) { r.reporting = enabled }
}

// WithJobMaxConcurrentReconciles sets how many jobs are reconciled at once
// (DefaultJobMaxConcurrentReconciles by default); values below 1 keep the default.
func WithJobMaxConcurrentReconciles(n int) InferenceJobOption {
	return func(r *InferenceJobReconciler) {
		if n >= 1 {
			r.workers = n
		}
	}
}

// WithNodeFailureGrace sets how long a node fault lasts before jobs move.
func WithNodeFailureGrace(d time.Duration) InferenceJobOption {
	return func(r *InferenceJobReconciler) { r.cfg.nodeGrace = d }
}

// WithImagePullGrace sets how long image pull errors are tolerated.
func WithImagePullGrace(d time.Duration) InferenceJobOption {
	return func(r *InferenceJobReconciler) { r.cfg.imagePullGrace = d }
}

// WithJobBackoff sets the first retry delay and its cap.
func WithJobBackoff(base, maxDelay time.Duration) InferenceJobOption {
	return func(r *InferenceJobReconciler) { r.cfg.backoffBase, r.cfg.backoffMax = base, maxDelay }
}

// NewInferenceJobReconciler returns a reconciler that reads through c (the
// manager's cache), confirms absences with apiReader, and records events
// with recorder.
func NewInferenceJobReconciler(c client.Client, apiReader client.Reader, recorder events.EventRecorder, opts ...InferenceJobOption) *InferenceJobReconciler {
	r := &InferenceJobReconciler{
		client: c, apiReader: apiReader, recorder: recorder, clock: clock.RealClock{},
		pods:    podConfig{namespace: DefaultWorkloadNamespace, binding: GPUBindingDevicePlugin, resultURL: DefaultResultURL},
		workers: DefaultJobMaxConcurrentReconciles,
		cfg: jobConfig{
			nodeGrace: DefaultNodeFailureGrace, imagePullGrace: DefaultImagePullGrace,
			backoffBase: DefaultJobBackoff, backoffMax: DefaultJobBackoffMax,
		},
	}
	for _, o := range opts {
		o(r)
	}
	return r
}

// +kubebuilder:rbac:groups=aivm.dev,resources=inferencejobs,verbs=get;list;watch;delete
// +kubebuilder:rbac:groups=aivm.dev,resources=inferencejobs/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=aivm.dev,resources=kernels,verbs=get;list;watch
// +kubebuilder:rbac:groups=aivm.dev,resources=inferencejobs/finalizers,verbs=update
// +kubebuilder:rbac:groups=aivm.dev,resources=gpunodes,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=nodes,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=pods,verbs=get;list;watch;create;delete
// +kubebuilder:rbac:groups="",resources=configmaps,verbs=get;create;update;delete
// +kubebuilder:rbac:groups="",resources=serviceaccounts,verbs=get;list;watch;create
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// Reconcile moves one job one step: observe, create missing pods, write
// status once, then delete the pods whose placement ended.
func (r *InferenceJobReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	job := &v1alpha1.InferenceJob{}
	if err := r.client.Get(ctx, req.NamespacedName, job); err != nil {
		if !apierrors.IsNotFound(err) {
			return ctrl.Result{}, err
		}
		// The job is gone: its pods in the workload namespace go too. The
		// cache may only lag the job's creation (a pod event can arrive
		// first): the API server confirms the absence before anything is
		// deleted, and a job it has reaches this reconciler again when the
		// cache catches up.
		if err := r.apiReader.Get(ctx, req.NamespacedName, &v1alpha1.InferenceJob{}); !apierrors.IsNotFound(err) {
			return ctrl.Result{}, err
		}
		r.created.forgetJob(req.NamespacedName)
		return ctrl.Result{}, r.deleteOrphans(ctx, req.NamespacedName, "")
	}
	if !job.DeletionTimestamp.IsZero() {
		r.created.forgetJob(req.NamespacedName)
		return ctrl.Result{}, r.deleteOrphans(ctx, req.NamespacedName, "")
	}
	if finished(job) {
		return r.reconcileFinished(ctx, job)
	}
	return r.reconcileNormal(ctx, job)
}

func (r *InferenceJobReconciler) reconcileNormal(ctx context.Context, job *v1alpha1.InferenceJob) (ctrl.Result, error) {
	obs, err := r.observe(ctx, job)
	if err != nil {
		return ctrl.Result{}, err
	}
	// A dry run on a copy says which pods the placements need; they are
	// created before the status write records their UIDs (the placement,
	// written by the scheduler, is the recorded intent).
	preview := job.DeepCopy()
	plan := decide(preview, obs, r.cfg)
	if len(plan.createPods) > 0 {
		if err := r.createPods(ctx, preview, obs, plan.createPods); err != nil {
			return ctrl.Result{}, err
		}
	} else if len(obs.pods) > 0 {
		if err := r.ensureResultCA(ctx, r.pods.namespace); err != nil {
			return ctrl.Result{}, err
		}
	}
	before := job.DeepCopy()
	var d decision
	if _, err := status.Update(ctx, r.client, r.apiReader, job, func(j *v1alpha1.InferenceJob) error {
		d = decide(j, obs, r.cfg)
		return nil
	}); err != nil {
		return ctrl.Result{}, err
	}
	r.recordEvents(before, job)
	if err := r.deleteEndedPods(ctx, job, obs.pods); err != nil {
		return ctrl.Result{}, err
	}
	if finished(job) {
		return r.reconcileFinished(ctx, job)
	}
	return r.requeue(d.requeueAt), nil
}

// reconcileFinished removes what a finished job no longer needs: its pods
// at once, and the job with its ConfigMaps once ttlSecondsAfterFinished
// passed (after the result is on chain when the job reports).
func (r *InferenceJobReconciler) reconcileFinished(ctx context.Context, job *v1alpha1.InferenceJob) (ctrl.Result, error) {
	pods, err := r.listPods(ctx, job)
	if err != nil {
		return ctrl.Result{}, err
	}
	if err := r.deleteEndedPods(ctx, job, pods); err != nil {
		return ctrl.Result{}, err
	}
	ttl := job.Spec.TTLSecondsAfterFinished
	if ttl == nil || job.Status.CompletionTime == nil {
		return ctrl.Result{}, nil
	}
	if r.reporting && ptr.Deref(job.Spec.Report, true) &&
		meta.IsStatusConditionTrue(job.Status.Conditions, v1alpha1.ConditionSucceeded) &&
		!meta.IsStatusConditionTrue(job.Status.Conditions, v1alpha1.ConditionReported) {
		return ctrl.Result{}, nil // the reporter's status write wakes the job again
	}
	at := job.Status.CompletionTime.Add(time.Duration(*ttl) * time.Second)
	if now := r.clock.Now(); now.Before(at) {
		return ctrl.Result{RequeueAfter: at.Sub(now)}, nil
	}
	// Owner references would remove the ConfigMaps with a garbage collector;
	// deleting them here keeps clusters (and test servers) without one clean.
	// The input ConfigMap is only there for jobs whose pods were made
	// before inline input travelled in the pod.
	for _, name := range []string{InputConfigMapName(job.Name), ResultConfigMapName(job.Name)} {
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: job.Namespace, Name: name}}
		if err := r.client.Delete(ctx, cm); client.IgnoreNotFound(err) != nil {
			return ctrl.Result{}, fmt.Errorf("delete configmap %s: %w", name, err)
		}
	}
	if err := r.client.Delete(ctx, job, client.Preconditions{UID: &job.UID},
		client.PropagationPolicy(metav1.DeletePropagationBackground)); client.IgnoreNotFound(err) != nil {
		return ctrl.Result{}, fmt.Errorf("delete finished job %s: %w", klog.KObj(job), err)
	}
	ctrl.LoggerFrom(ctx).Info("Deleted finished job after its TTL", "job", klog.KObj(job), "ttlSeconds", *ttl)
	return ctrl.Result{}, nil
}

// requeue turns a wake-up time into a RequeueAfter (never a busy loop).
func (r *InferenceJobReconciler) requeue(at time.Time) ctrl.Result {
	if at.IsZero() {
		return ctrl.Result{}
	}
	return ctrl.Result{RequeueAfter: max(at.Sub(r.clock.Now()), time.Second)}
}

// observe reads the kernel, the job's pods and the nodes of its open placements.
func (r *InferenceJobReconciler) observe(ctx context.Context, job *v1alpha1.InferenceJob) (*observed, error) {
	obs := &observed{now: r.clock.Now(), nodes: map[string]nodeState{}, deleted: map[string]bool{}}
	kernel := &v1alpha1.Kernel{}
	if err := r.client.Get(ctx, types.NamespacedName{Namespace: job.Namespace, Name: job.Spec.KernelRef.Name}, kernel); err != nil {
		if !apierrors.IsNotFound(err) {
			return nil, fmt.Errorf("get kernel: %w", err)
		}
		kernel = nil
	}
	obs.kernel = kernel
	pods, err := r.listPods(ctx, job)
	if err != nil {
		return nil, err
	}
	obs.pods = pods
	for _, p := range job.Status.Placements {
		if p.Attempt != job.Status.Attempts || p.Outcome != "" {
			continue
		}
		// A pod recorded in status, or created by this process and not
		// recorded yet, that is missing from the cache may only be new to
		// it: ask the API server before calling it deleted.
		name, madeHere := p.Pod, false
		if name == "" {
			name = placementPodName(job, &p)
			madeHere = r.created.has(job, name)
		}
		if pods[name] == nil && (p.PodUID != "" || madeHere) {
			pod := &corev1.Pod{}
			err := r.apiReader.Get(ctx, types.NamespacedName{Namespace: r.pods.namespace, Name: name}, pod)
			switch {
			case err == nil:
				pods[name] = pod
			case !apierrors.IsNotFound(err):
				return nil, fmt.Errorf("get pod %s: %w", name, err)
			case madeHere:
				obs.deleted[name] = true
			}
		}
		if _, ok := obs.nodes[p.Node]; ok || p.Node == "" {
			continue
		}
		ns, err := r.nodeState(ctx, p.Node)
		if err != nil {
			return nil, err
		}
		obs.nodes[p.Node] = ns
	}
	obs.foreign = r.verifyPods(job, kernel, pods)
	return obs, nil
}

// nodeState reads a node and its GPUNode; a node missing from the cache is
// confirmed missing on the API server.
func (r *InferenceJobReconciler) nodeState(ctx context.Context, name string) (nodeState, error) {
	var ns nodeState
	node := &corev1.Node{}
	err := r.client.Get(ctx, types.NamespacedName{Name: name}, node)
	if apierrors.IsNotFound(err) {
		err = r.apiReader.Get(ctx, types.NamespacedName{Name: name}, node)
	}
	switch {
	case err == nil:
		ns.node = node
	case !apierrors.IsNotFound(err):
		return ns, fmt.Errorf("get node %s: %w", name, err)
	}
	gn := &v1alpha1.GPUNode{}
	err = r.client.Get(ctx, types.NamespacedName{Name: name}, gn)
	switch {
	case err == nil:
		ns.gpuNode = gn
	case !apierrors.IsNotFound(err):
		return ns, fmt.Errorf("get gpunode %s: %w", name, err)
	}
	return ns, nil
}

// listPods returns the job's pods in the workload namespace by name.
func (r *InferenceJobReconciler) listPods(ctx context.Context, job *v1alpha1.InferenceJob) (map[string]*corev1.Pod, error) {
	var list corev1.PodList
	if err := r.client.List(ctx, &list, client.InNamespace(r.pods.namespace),
		client.MatchingFields{indexer.PodJob: string(job.UID)}, client.MatchingLabels{LabelJobUID: string(job.UID)}); err != nil {
		return nil, fmt.Errorf("list pods of %s: %w", klog.KObj(job), err)
	}
	pods := make(map[string]*corev1.Pod, len(list.Items))
	for i := range list.Items {
		pods[list.Items[i].Name] = &list.Items[i]
	}
	return pods, nil
}

// createPods creates the pods of the given placements, with what they
// mount, and adds them to obs.pods. A pod that already exists (a crash
// after its creation, a stale cache) is adopted, never duplicated.
func (r *InferenceJobReconciler) createPods(ctx context.Context, job *v1alpha1.InferenceJob, obs *observed, idx []int) error {
	if err := r.ensureNamespaceObjects(ctx); err != nil {
		return err
	}
	input, err := readJobInput(ctx, r.apiReader, job)
	if err != nil {
		r.failedCreate(job, err)
		return err
	}
	for _, i := range idx {
		want, err := buildPod(job, obs.kernel, job.Status.Placements[i], r.pods)
		if err != nil {
			return err
		}
		pod := want.DeepCopy()
		err = r.client.Create(ctx, pod)
		if apierrors.IsAlreadyExists(err) {
			if err := r.apiReader.Get(ctx, client.ObjectKeyFromObject(pod), pod); err != nil {
				return fmt.Errorf("get existing pod %s: %w", pod.Name, err)
			}
			// Adopted only if it is the pod this job would get: a crash
			// after its creation, a stale cache. Anything else fails the
			// placement (decide), and the next attempt has another name.
			if why := notOwned(pod, want); why != "" {
				if obs.foreign == nil {
					obs.foreign = map[string]string{}
				}
				obs.foreign[pod.Name] = why
				continue
			}
		} else if err != nil {
			// The service account may be gone: check it again on the next try.
			r.saCreated.Delete(r.pods.namespace)
			r.failedCreate(job, err)
			return fmt.Errorf("create pod %s: %w", pod.Name, err)
		}
		if input != nil {
			if err := r.ensureInputCopy(ctx, pod, input); err != nil {
				return err
			}
		}
		obs.pods[pod.Name] = pod
		r.created.add(job, pod.Name)
	}
	return nil
}

// failedCreate emits the Warning event of a pod that could not be made
// (as the Job controller's FailedCreate): a quota, an admission webhook or
// an input that cannot be read shows in kubectl describe.
func (r *InferenceJobReconciler) failedCreate(job *v1alpha1.InferenceJob, err error) {
	if r.recorder == nil {
		return
	}
	r.recorder.Eventf(job, nil, corev1.EventTypeWarning, v1alpha1.ReasonFailedCreate, "CreatePod", "%s", truncateMessage(err.Error()))
}

// ensureNamespaceObjects creates the runtime service account and keeps
// the result CA ConfigMap current: objects of the workload namespace,
// written once for all jobs. A job's inline input travels in its pod.
func (r *InferenceJobReconciler) ensureNamespaceObjects(ctx context.Context) error {
	if err := r.ensureServiceAccount(ctx, r.pods.namespace); err != nil {
		return err
	}
	return r.ensureResultCA(ctx, r.pods.namespace)
}

// ensureServiceAccount creates the namespace's runtime service account
// once: after the first job of a namespace its pods cost no call for it.
// Should someone delete it, the pods that name it are refused at creation
// and the next reconcile creates it again.
func (r *InferenceJobReconciler) ensureServiceAccount(ctx context.Context, ns string) error {
	if _, ok := r.saCreated.Load(ns); ok {
		return nil
	}
	unlock := r.lockNamespace(ns)
	defer unlock()
	if _, ok := r.saCreated.Load(ns); ok {
		return nil // another worker made it meanwhile
	}
	sa := &corev1.ServiceAccount{
		ObjectMeta:                   metav1.ObjectMeta{Namespace: ns, Name: RuntimeServiceAccount, Labels: map[string]string{labelManaged: managedByAIVM}},
		AutomountServiceAccountToken: ptr.To(false),
	}
	if err := r.client.Create(ctx, sa); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create service account %s: %w", RuntimeServiceAccount, err)
	}
	r.saCreated.Store(ns, true)
	return nil
}

// ensureResultCA makes the namespace's aivm-result-ca ConfigMap hold the
// endpoint's current CA bundle. What was last written per namespace is
// remembered, so an unchanged bundle costs no API call; a rotated one
// reaches running pods (the kubelet refreshes ConfigMap volumes) on the next
// reconcile of any active job in the namespace.
func (r *InferenceJobReconciler) ensureResultCA(ctx context.Context, ns string) error {
	var bundle []byte
	if r.ca != nil {
		bundle = r.ca.CABundle()
	}
	written := func() bool {
		last, ok := r.caWritten.Load(ns)
		return ok && bytes.Equal(last.([]byte), bundle)
	}
	if written() {
		return nil
	}
	unlock := r.lockNamespace(ns)
	defer unlock()
	if written() {
		return nil // another worker wrote it meanwhile
	}
	ca := &corev1.ConfigMap{}
	err := r.apiReader.Get(ctx, types.NamespacedName{Namespace: ns, Name: ResultCAConfigMap}, ca)
	switch {
	case apierrors.IsNotFound(err):
		ca = &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: ResultCAConfigMap, Labels: map[string]string{labelManaged: managedByAIVM}},
			Data:       map[string]string{caKey: string(bundle)},
		}
		if err := r.client.Create(ctx, ca); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create configmap %s: %w", ResultCAConfigMap, err)
		}
	case err != nil:
		return fmt.Errorf("get configmap %s: %w", ResultCAConfigMap, err)
	case ca.Data[caKey] != string(bundle):
		ca.Data = map[string]string{caKey: string(bundle)}
		if err := r.client.Update(ctx, ca); err != nil {
			return fmt.Errorf("update configmap %s: %w", ResultCAConfigMap, err)
		}
	}
	r.caWritten.Store(ns, bundle)
	return nil
}

// lockNamespace serializes the writes of a namespace's shared objects (the
// runtime service account, the result CA ConfigMap): the first jobs of a
// new namespace arrive on many workers at once, and one of them writing
// each object is enough. It returns the unlock.
func (r *InferenceJobReconciler) lockNamespace(ns string) (unlock func()) {
	mu, _ := r.nsLocks.LoadOrStore(ns, &sync.Mutex{})
	m := mu.(*sync.Mutex)
	m.Lock()
	return m.Unlock
}

// deleteEndedPods deletes the job's pods that no open placement of the
// current attempt owns: their termination details are in status already.
func (r *InferenceJobReconciler) deleteEndedPods(ctx context.Context, job *v1alpha1.InferenceJob, pods map[string]*corev1.Pod) error {
	keep := map[string]bool{}
	if !finished(job) {
		for _, p := range job.Status.Placements {
			if p.Attempt == job.Status.Attempts && p.Outcome == "" {
				keep[placementPodName(job, &p)] = true
			}
		}
	}
	recorded := map[string]bool{}
	for _, p := range job.Status.Placements {
		if p.PodUID != "" {
			recorded[p.PodUID] = true
		}
	}
	for name, pod := range pods {
		if keep[name] || pod.DeletionTimestamp != nil || pod.Labels[LabelJobUID] != string(job.UID) {
			continue
		}
		// Only pods this controller made: recorded in a placement, or
		// created by this process. A pod that merely carries the job's
		// labels is not the manager's to delete while the job lives.
		if !recorded[string(pod.UID)] && !r.created.has(job, name) {
			continue
		}
		if err := r.client.Delete(ctx, pod, client.Preconditions{UID: &pod.UID}); client.IgnoreNotFound(err) != nil && !apierrors.IsConflict(err) {
			return fmt.Errorf("delete pod %s: %w", name, err)
		}
	}
	return nil
}

// recordEvents emits condition transitions and one event per placement
// that ended, after the status was saved.
func (r *InferenceJobReconciler) recordEvents(before, after *v1alpha1.InferenceJob) {
	status.RecordTransitions(r.recorder, after, before.Status.Conditions, after.Status.Conditions, jobEventRule)
	observeJobMetrics(before, after)
	if r.recorder == nil {
		return
	}
	ended := map[string]bool{}
	for _, p := range before.Status.Placements {
		if p.Outcome != "" {
			ended[fmt.Sprintf("%d/%d", p.Attempt, p.Member)] = true
		}
	}
	for _, p := range after.Status.Placements {
		if p.Outcome != v1alpha1.PlacementFailed || ended[fmt.Sprintf("%d/%d", p.Attempt, p.Member)] {
			continue
		}
		r.recorder.Eventf(after, nil, corev1.EventTypeWarning, p.Reason, "RunPod",
			"attempt %d member %d on node %s: %s", p.Attempt, p.Member, p.Node, p.Message)
	}
}

// SetupWithManager registers the watches: jobs, their pods, the Kernels
// they wait on and the nodes they run on. Register the indexes first
// (indexer.Setup).
func (r *InferenceJobReconciler) SetupWithManager(mgr ctrl.Manager) error {
	registerJobMetrics(mgr.GetCache())
	return ctrl.NewControllerManagedBy(mgr).
		For(&v1alpha1.InferenceJob{}).
		Watches(&corev1.Pod{}, handler.EnqueueRequestsFromMapFunc(r.jobOfPod)).
		Watches(&corev1.ConfigMap{}, handler.EnqueueRequestsFromMapFunc(r.jobsAfterSharedChange), builder.WithPredicates(sharedObjectChanged)).
		Watches(&corev1.ServiceAccount{}, handler.EnqueueRequestsFromMapFunc(r.jobsAfterSharedChange), builder.WithPredicates(sharedObjectChanged)).
		Watches(&v1alpha1.Kernel{}, handler.EnqueueRequestsFromMapFunc(r.jobsForKernel)).
		Watches(&corev1.Node{}, handler.EnqueueRequestsFromMapFunc(r.jobsOnNode)).
		Watches(&v1alpha1.GPUNode{}, handler.EnqueueRequestsFromMapFunc(r.jobsOnNode)).
		Named("inferencejob").
		WithOptions(controller.Options{MaxConcurrentReconciles: r.workers}).
		Complete(r)
}

func (r *InferenceJobReconciler) jobsForKernel(ctx context.Context, o client.Object) []reconcile.Request {
	return r.jobRequests(ctx, client.InNamespace(o.GetNamespace()), client.MatchingFields{indexer.JobKernelRef: o.GetName()})
}

func (r *InferenceJobReconciler) jobsOnNode(ctx context.Context, o client.Object) []reconcile.Request {
	return r.jobRequests(ctx, client.MatchingFields{indexer.JobActiveNode: o.GetName()})
}

func (r *InferenceJobReconciler) jobRequests(ctx context.Context, opts ...client.ListOption) []reconcile.Request {
	var jobs v1alpha1.InferenceJobList
	if err := r.client.List(ctx, &jobs, opts...); err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "Could not list jobs to wake")
		return nil
	}
	reqs := make([]reconcile.Request, 0, len(jobs.Items))
	for i := range jobs.Items {
		reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&jobs.Items[i])})
	}
	return reqs
}
