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

// Package reporter is the manager's chain reporter: it takes the signed
// results of succeeded InferenceJobs whose spec.report is on, puts them in the
// chain client's durable outbox, and once the result is committed writes
// status.chain and Reported=True. A rejection or an unreachable chain shows as
// Reported=False with the reason; the job stays Succeeded.
package reporter

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/source"

	aivmv1alpha1 "github.com/aivm-dev/aivm-operator/api/v1alpha1"
	chainclient "github.com/aivm-dev/aivm-operator/chain-client"
	"github.com/aivm-dev/aivm-operator/chain-client/aivmv1"
	"github.com/aivm-dev/aivm-operator/chain-client/merkle"
	"github.com/aivm-dev/aivm-operator/chain-client/outbox"
	"github.com/aivm-dev/aivm-operator/chain-client/receipt"
)

// Reasons the reporter sets, re-exported from the API for callers of this package.
const (
	ReasonInvalidReceipt      = aivmv1alpha1.ReasonInvalidReceipt
	ReasonKernelDigestUnknown = aivmv1alpha1.ReasonKernelDigestUnknown
)

// Event reasons.
const (
	eventReported      = "Reported"
	eventChainRejected = "ChainRejected"
)

// DefaultPendingRecheck is how often a job whose result waits in the outbox
// is looked at again even without a commit notification (which triggers a
// reconcile at once), so a chain outage or its end shows in the job.
const DefaultPendingRecheck = 30 * time.Second

// notStartedRetry is when a job is looked at again when the chain client
// has not started yet (the leader is opening its outbox).
const notStartedRetry = time.Second

// conflictRetry is when a job whose status patch lost a race is looked at
// again.
const conflictRetry = 100 * time.Millisecond

// ResultReporter is what the reporter needs from the chain client
// (*chainclient.Client satisfies it).
type ResultReporter interface {
	// Enqueue stores records durably; enqueueing a known job UID is a no-op.
	Enqueue(ctx context.Context, records ...*aivmv1.ResultRecord) error
	// Get returns the outbox state of a job's result.
	Get(uid string) (outbox.Entry, error)
	// ChainError is the error that stopped the latest round of reporting,
	// nil when healthy.
	ChainError() error
	// Address is the provider account the results are reported under.
	Address() string
}

// Reconciler reports succeeded InferenceJobs' results on chain.
type Reconciler struct {
	client   client.Client
	recorder events.EventRecorder
	chain    ResultReporter

	pendingRecheck time.Duration

	// uids maps job UIDs to names, so a commit notification finds its job.
	uids   sync.Map
	notify chan event.GenericEvent
}

// Option configures a Reconciler.
type Option func(*Reconciler)

// WithPendingRecheck sets how often a job whose result is still in the
// outbox is reconciled again (default DefaultPendingRecheck).
func WithPendingRecheck(d time.Duration) Option {
	return func(r *Reconciler) { r.pendingRecheck = d }
}

// NewReconciler returns a reporter that writes through c, records events
// with recorder and reports through chain. Wire chain's commit
// notifications to OnChainEvent (chainclient.Options.OnEvent).
func NewReconciler(c client.Client, recorder events.EventRecorder, chain ResultReporter, opts ...Option) *Reconciler {
	r := &Reconciler{
		client:         c,
		recorder:       recorder,
		chain:          chain,
		pendingRecheck: DefaultPendingRecheck,
		notify:         make(chan event.GenericEvent, 1024),
	}
	for _, o := range opts {
		o(r)
	}
	return r
}

// OnChainEvent triggers a reconcile of the job a chain event is about. It
// never blocks: when the queue is full the job is picked up by its periodic
// recheck instead.
func (r *Reconciler) OnChainEvent(e chainclient.Event) {
	v, ok := r.uids.Load(e.UID)
	if !ok {
		return
	}
	nn := v.(types.NamespacedName)
	job := &aivmv1alpha1.InferenceJob{}
	job.Namespace, job.Name = nn.Namespace, nn.Name
	select {
	case r.notify <- event.GenericEvent{Object: job}:
	default:
	}
}

// SetupWithManager registers the reconciler with mgr.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		Named("reporter").
		For(&aivmv1alpha1.InferenceJob{}).
		WatchesRawSource(source.Channel(r.notify, &handler.EnqueueRequestForObject{})).
		Complete(r)
}

// +kubebuilder:rbac:groups=aivm.dev,resources=inferencejobs,verbs=get;list;watch
// +kubebuilder:rbac:groups=aivm.dev,resources=inferencejobs/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=aivm.dev,resources=kernels,verbs=get;list;watch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// Reconcile sends a succeeded job's result to the outbox and mirrors the
// outbox state into the job's status.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	job := &aivmv1alpha1.InferenceJob{}
	if err := r.client.Get(ctx, req.NamespacedName, job); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !meta.IsStatusConditionTrue(job.Status.Conditions, aivmv1alpha1.ConditionSucceeded) {
		return ctrl.Result{}, nil
	}
	if c := meta.FindStatusCondition(job.Status.Conditions, aivmv1alpha1.ConditionReported); c != nil &&
		c.Status == metav1.ConditionTrue && job.Status.Chain != nil {
		return ctrl.Result{}, nil
	}
	desired := job.DeepCopy()
	result, err := r.reconcileNormal(ctx, desired)
	if err != nil {
		return ctrl.Result{}, err
	}
	if equality.Semantic.DeepEqual(job.Status, desired.Status) {
		return result, nil
	}
	if err := r.client.Status().Patch(ctx, desired, client.MergeFromWithOptions(job, client.MergeFromWithOptimisticLock{})); err != nil {
		if apierrors.IsConflict(err) {
			return ctrl.Result{RequeueAfter: conflictRetry}, nil
		}
		return ctrl.Result{}, fmt.Errorf("patch status of %s: %w", klog.KObj(job), err)
	}
	r.recordTransition(job, desired)
	return result, nil
}

// reconcileNormal computes the Reported condition and status.chain on job.
func (r *Reconciler) reconcileNormal(ctx context.Context, job *aivmv1alpha1.InferenceJob) (ctrl.Result, error) {
	if job.Spec.Report != nil && !*job.Spec.Report {
		setReported(job, metav1.ConditionFalse, aivmv1alpha1.ReasonReportDisabled, "spec.report is false")
		return ctrl.Result{}, nil
	}
	if job.Status.Result == nil || job.Status.Result.Receipt == nil {
		setReported(job, metav1.ConditionFalse, aivmv1alpha1.ReasonReportPending, "Waiting for the result's receipt")
		return ctrl.Result{}, nil
	}
	uid := string(job.UID)
	entry, err := r.chain.Get(uid)
	if errors.Is(err, ErrChainClientNotStarted) {
		return ctrl.Result{RequeueAfter: notStartedRetry}, nil
	}
	if err != nil && !isNotFound(err) {
		return ctrl.Result{}, fmt.Errorf("read outbox entry of %s: %w", klog.KObj(job), err)
	}
	r.uids.Store(uid, types.NamespacedName{Namespace: job.Namespace, Name: job.Name})
	if err != nil {
		rec, reason, msg, err := r.record(ctx, job)
		if err != nil {
			return ctrl.Result{}, err
		}
		if rec == nil {
			setReported(job, metav1.ConditionFalse, reason, msg)
			return ctrl.Result{}, nil
		}
		if err := r.chain.Enqueue(ctx, rec); err != nil {
			return ctrl.Result{}, fmt.Errorf("enqueue result of %s: %w", klog.KObj(job), err)
		}
		if entry, err = r.chain.Get(uid); err != nil {
			return ctrl.Result{}, fmt.Errorf("read outbox entry of %s: %w", klog.KObj(job), err)
		}
	}
	switch entry.State {
	case outbox.StateCommitted:
		r.uids.Delete(uid)
		job.Status.Chain = chainStatus(entry)
		setReported(job, metav1.ConditionTrue, aivmv1alpha1.ReasonCommitted,
			fmt.Sprintf("Committed in transaction %s at height %d", entry.TxHash, entry.Height))
		return ctrl.Result{}, nil
	case outbox.StateRejected:
		r.uids.Delete(uid)
		setReported(job, metav1.ConditionFalse, aivmv1alpha1.ReasonChainRejected,
			fmt.Sprintf("Transaction %s rejected with code %d (%s): %s", entry.TxHash, entry.Code, entry.Codespace, entry.Log))
		return ctrl.Result{}, nil
	}
	if cerr := r.chain.ChainError(); chainclient.IsUnreachable(cerr) {
		setReported(job, metav1.ConditionFalse, aivmv1alpha1.ReasonChainUnreachable, cerr.Error())
	} else if cerr != nil {
		setReported(job, metav1.ConditionFalse, aivmv1alpha1.ReasonReportPending,
			fmt.Sprintf("Result is %s in the outbox; reporting is stalled: %v", entry.State, cerr))
	} else {
		setReported(job, metav1.ConditionFalse, aivmv1alpha1.ReasonReportPending,
			fmt.Sprintf("Result is %s in the outbox", entry.State))
	}
	return ctrl.Result{RequeueAfter: r.pendingRecheck}, nil
}

// record rebuilds the signed result record and checks it against the job's
// receipt. When the record cannot be sent it returns nil with the reason and
// message to show; an error is for a retry.
func (r *Reconciler) record(ctx context.Context, job *aivmv1alpha1.InferenceJob) (*aivmv1.ResultRecord, string, string, error) {
	res := job.Status.Result
	var err error
	kernelDigest, modelDigest := res.KernelDigest, res.ModelDigest
	if kernelDigest == "" || modelDigest == "" {
		// Results accepted before the digests were recorded in the result:
		// the Kernel's current digests (a changed Kernel fails the leaf check
		// below, so nothing wrong is sent).
		kernel := &aivmv1alpha1.Kernel{}
		if err := r.client.Get(ctx, client.ObjectKey{Namespace: job.Namespace, Name: job.Spec.KernelRef.Name}, kernel); err != nil {
			if apierrors.IsNotFound(err) {
				return nil, ReasonKernelDigestUnknown, fmt.Sprintf("Result has no kernel digest and Kernel %q is not found", job.Spec.KernelRef.Name), nil
			}
			return nil, "", "", fmt.Errorf("get kernel of %s: %w", klog.KObj(job), err)
		}
		if kernel.Status.KernelDigest == "" || kernel.Status.ModelDigest == "" {
			return nil, ReasonKernelDigestUnknown, fmt.Sprintf("Result has no kernel digest and Kernel %q has none yet", kernel.Name), nil
		}
		kernelDigest, modelDigest = kernel.Status.KernelDigest, kernel.Status.ModelDigest
	}
	if res.InputTokens < 0 || res.OutputTokens < 0 || res.DurationMillis < 0 {
		return nil, ReasonInvalidReceipt, "Result has negative token counts or duration", nil
	}
	rec := &aivmv1.ResultRecord{
		JobUid:       string(job.UID),
		InputTokens:  uint64(res.InputTokens),
		OutputTokens: uint64(res.OutputTokens),
		DurationMs:   uint64(res.DurationMillis),
	}
	// The Kernel's status and older results carry "sha256:"-prefixed
	// digests; the record holds the canonical form only.
	for _, d := range []struct {
		dst *string
		src string
	}{{&rec.KernelDigest, kernelDigest}, {&rec.ModelDigest, modelDigest}, {&rec.InputDigest, res.InputDigest}, {&rec.OutputDigest, res.OutputDigest}} {
		if *d.dst, err = receipt.CanonicalDigest(d.src); err != nil {
			return nil, ReasonInvalidReceipt, err.Error(), nil
		}
	}
	leaf, err := receipt.LeafHash(rec)
	if err != nil {
		return nil, ReasonInvalidReceipt, err.Error(), nil
	}
	want, err := merkle.ParseHash(res.Receipt.LeafHash)
	if err != nil {
		return nil, ReasonInvalidReceipt, fmt.Sprintf("receipt leafHash: %v", err), nil
	}
	if leaf != want {
		return nil, ReasonInvalidReceipt, fmt.Sprintf("receipt leafHash %s does not match the result's record (leaf %s)", want, leaf), nil
	}
	sig, err := base64.StdEncoding.DecodeString(res.Receipt.Signature)
	if err != nil {
		return nil, ReasonInvalidReceipt, fmt.Sprintf("receipt signature is not base64: %v", err), nil
	}
	if err := receipt.VerifyBySigner(res.Receipt.SignerAddress, leaf, sig); err != nil {
		return nil, ReasonInvalidReceipt, err.Error(), nil
	}
	if res.Receipt.SignerAddress != r.chain.Address() {
		return nil, ReasonInvalidReceipt, fmt.Sprintf("receipt signed by %s, but results are reported as %s", res.Receipt.SignerAddress, r.chain.Address()), nil
	}
	return rec, "", "", nil
}

func isNotFound(err error) bool {
	return err != nil && errors.Is(err, outbox.ErrNotFound)
}

func chainStatus(e outbox.Entry) *aivmv1alpha1.ChainStatus {
	cs := &aivmv1alpha1.ChainStatus{TxHash: e.TxHash, Height: e.Height, BatchRoot: e.Root.String()}
	if e.Proof != nil {
		cs.LeafIndex = int32(e.Proof.LeafIndex)
		cs.BatchSize = int32(e.Proof.TreeSize)
		for _, h := range e.Proof.Path {
			cs.Proof = append(cs.Proof, h.String())
		}
	}
	return cs
}

func setReported(job *aivmv1alpha1.InferenceJob, status metav1.ConditionStatus, reason, msg string) {
	meta.SetStatusCondition(&job.Status.Conditions, metav1.Condition{
		Type:               aivmv1alpha1.ConditionReported,
		Status:             status,
		Reason:             reason,
		Message:            msg,
		ObservedGeneration: job.Generation,
	})
}

// recordTransition emits an event when the Reported condition changed its
// status or reason, after the status was saved.
func (r *Reconciler) recordTransition(before, after *aivmv1alpha1.InferenceJob) {
	if r.recorder == nil {
		return
	}
	old := meta.FindStatusCondition(before.Status.Conditions, aivmv1alpha1.ConditionReported)
	cur := meta.FindStatusCondition(after.Status.Conditions, aivmv1alpha1.ConditionReported)
	if cur == nil || (old != nil && old.Status == cur.Status && old.Reason == cur.Reason) {
		return
	}
	switch {
	case cur.Status == metav1.ConditionTrue:
		r.recorder.Eventf(after, nil, corev1.EventTypeNormal, eventReported, "Report", "%s", cur.Message)
	case cur.Reason == aivmv1alpha1.ReasonChainRejected:
		r.recorder.Eventf(after, nil, corev1.EventTypeWarning, eventChainRejected, "Report", "%s", cur.Message)
	case cur.Reason == ReasonInvalidReceipt:
		r.recorder.Eventf(after, nil, corev1.EventTypeWarning, ReasonInvalidReceipt, "Report", "%s", cur.Message)
	}
}
