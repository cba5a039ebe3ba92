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
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	aivmv1alpha1 "github.com/aivm-dev/aivm-operator/api/v1alpha1"
	"github.com/aivm-dev/aivm-operator/internal/status"
)

// DefaultHeartbeatStaleAfter is how old a GPUNode's heartbeat may grow before
// the GPUNode is marked Ready=False: three of the node agent's default 30 s
// heartbeats, plus slack for a slow API server.
const DefaultHeartbeatStaleAfter = 100 * time.Second

// GPUNodeGCReconciler removes GPUNodes whose Node is gone (what the
// Kubernetes garbage collector does through the owner reference, for
// clusters and test environments that run none, or when the reference was
// lost) and marks a GPUNode Ready=False when its node agent stops sending
// heartbeats.
type GPUNodeGCReconciler struct {
	client     client.Client
	apiReader  client.Reader
	recorder   events.EventRecorder
	clock      clock.PassiveClock
	staleAfter time.Duration
}

// GPUNodeGCOption configures a GPUNodeGCReconciler.
type GPUNodeGCOption func(*GPUNodeGCReconciler)

// WithGCClock sets the clock the reconciler ages heartbeats with.
func WithGCClock(c clock.PassiveClock) GPUNodeGCOption {
	return func(r *GPUNodeGCReconciler) { r.clock = c }
}

// WithHeartbeatStaleAfter sets how old a heartbeat may grow before the
// GPUNode is marked Ready=False; zero or less disables the check.
func WithHeartbeatStaleAfter(d time.Duration) GPUNodeGCOption {
	return func(r *GPUNodeGCReconciler) { r.staleAfter = d }
}

// NewGPUNodeGCReconciler returns a reconciler that reads through c (usually
// the manager's cache), confirms a Node is gone with apiReader (an uncached
// reader, so a cache that has not seen a new Node yet deletes nothing),
// writes through c and records events with recorder.
func NewGPUNodeGCReconciler(c client.Client, apiReader client.Reader, recorder events.EventRecorder, opts ...GPUNodeGCOption) *GPUNodeGCReconciler {
	r := &GPUNodeGCReconciler{
		client:     c,
		apiReader:  apiReader,
		recorder:   recorder,
		clock:      clock.RealClock{},
		staleAfter: DefaultHeartbeatStaleAfter,
	}
	for _, o := range opts {
		o(r)
	}
	return r
}

// +kubebuilder:rbac:groups=aivm.dev,resources=gpunodes,verbs=get;list;watch;delete
// +kubebuilder:rbac:groups=aivm.dev,resources=gpunodes/status,verbs=get;patch
// +kubebuilder:rbac:groups="",resources=nodes,verbs=get;list;watch

// Reconcile deletes the GPUNode if its Node is gone, and otherwise checks
// its heartbeat.
func (r *GPUNodeGCReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	gn := &aivmv1alpha1.GPUNode{}
	if err := r.client.Get(ctx, req.NamespacedName, gn); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !gn.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, nil
	}
	gone, err := r.nodeGone(ctx, gn)
	if err != nil {
		return ctrl.Result{}, err
	}
	if gone {
		return ctrl.Result{}, r.reconcileDelete(ctx, gn)
	}
	return r.reconcileHeartbeat(ctx, gn)
}

// nodeGone reports whether the GPUNode's Node no longer exists: no Node of
// that name, or one whose UID is not the one the GPUNode's owner reference
// names (the Node was deleted and a new one took its name).
func (r *GPUNodeGCReconciler) nodeGone(ctx context.Context, gn *aivmv1alpha1.GPUNode) (bool, error) {
	node := &corev1.Node{}
	err := r.client.Get(ctx, client.ObjectKey{Name: gn.Name}, node)
	if err == nil && ownerMatches(gn, node) {
		return false, nil
	}
	if err != nil && !apierrors.IsNotFound(err) {
		return false, fmt.Errorf("get node %s: %w", gn.Name, err)
	}
	// The cache says gone or replaced; ask the API server before deleting.
	err = r.apiReader.Get(ctx, client.ObjectKey{Name: gn.Name}, node)
	if apierrors.IsNotFound(err) {
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("get node %s: %w", gn.Name, err)
	}
	return !ownerMatches(gn, node), nil
}

// ownerMatches reports whether gn has no Node owner reference or one that
// names node's UID.
func ownerMatches(gn *aivmv1alpha1.GPUNode, node *corev1.Node) bool {
	named := false
	for _, ref := range gn.OwnerReferences {
		if ref.APIVersion == "v1" && ref.Kind == "Node" {
			if ref.UID == node.UID {
				return true
			}
			named = true
		}
	}
	return !named
}

func (r *GPUNodeGCReconciler) reconcileDelete(ctx context.Context, gn *aivmv1alpha1.GPUNode) error {
	log := ctrl.LoggerFrom(ctx)
	// Preconditions: delete exactly the version judged orphaned, not one
	// the node agent rewrote for a new Node in the meantime.
	err := r.client.Delete(ctx, gn, client.Preconditions{UID: &gn.UID, ResourceVersion: &gn.ResourceVersion})
	if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
		return nil // gone already, or changed: the change brings a new reconcile
	}
	if err != nil {
		return fmt.Errorf("delete gpunode %s: %w", gn.Name, err)
	}
	log.Info("Deleted GPUNode whose Node is gone", "gpuNode", klog.KObj(gn))
	return nil
}

func (r *GPUNodeGCReconciler) reconcileHeartbeat(ctx context.Context, gn *aivmv1alpha1.GPUNode) (ctrl.Result, error) {
	hb := gn.Status.HeartbeatTime
	if r.staleAfter <= 0 || hb == nil {
		return ctrl.Result{}, nil
	}
	age := r.clock.Since(hb.Time)
	if age < r.staleAfter {
		return ctrl.Result{RequeueAfter: r.staleAfter - age}, nil
	}
	before := gn.Status.DeepCopy().Conditions
	now := r.clock.Now()
	// Optimistic lock: if the agent just wrote a fresh heartbeat, the patch
	// is refused and the fresh copy needs no change, so the agent's write wins.
	changed, err := status.Update(ctx, r.client, r.apiReader, gn, func(g *aivmv1alpha1.GPUNode) error {
		markHeartbeatMissed(g, now, r.staleAfter)
		return nil
	})
	if apierrors.IsNotFound(err) {
		return ctrl.Result{}, nil
	}
	if err != nil {
		return ctrl.Result{}, fmt.Errorf("mark gpunode %s not ready: %w", gn.Name, err)
	}
	if changed {
		status.RecordTransitions(r.recorder, gn, before, gn.Status.Conditions, heartbeatEvents)
	}
	return ctrl.Result{}, nil
}

// heartbeatEvents: marking a GPUNode Ready=False (HeartbeatMissed) gives a
// Warning; the node agent sets Ready=True, without an event.
var heartbeatEvents = status.EventRule{Types: []string{aivmv1alpha1.ConditionReady}, Action: "CheckHeartbeat"}

// markHeartbeatMissed sets Ready=False with HeartbeatMissed on g when its
// heartbeat is at least staleAfter old at now and it is not marked yet.
func markHeartbeatMissed(g *aivmv1alpha1.GPUNode, now time.Time, staleAfter time.Duration) {
	hb := g.Status.HeartbeatTime
	if hb == nil || now.Sub(hb.Time) < staleAfter {
		return
	}
	if c := meta.FindStatusCondition(g.Status.Conditions, aivmv1alpha1.ConditionReady); c != nil &&
		c.Status == metav1.ConditionFalse && c.Reason == aivmv1alpha1.ReasonHeartbeatMissed {
		return
	}
	meta.SetStatusCondition(&g.Status.Conditions, metav1.Condition{
		Type:               aivmv1alpha1.ConditionReady,
		Status:             metav1.ConditionFalse,
		Reason:             aivmv1alpha1.ReasonHeartbeatMissed,
		Message:            fmt.Sprintf("No heartbeat from the node agent since %s", hb.UTC().Format(time.RFC3339)),
		ObservedGeneration: g.Generation,
		LastTransitionTime: metav1.NewTime(now),
	})
}

// SetupWithManager registers the reconciler with mgr: it watches GPUNodes
// and the creation and deletion of Nodes (which reconcile the GPUNode of the
// same name; Node status updates are ignored).
func (r *GPUNodeGCReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		Named("gpunode-gc").
		For(&aivmv1alpha1.GPUNode{}).
		Watches(&corev1.Node{}, handler.EnqueueRequestsFromMapFunc(
			func(_ context.Context, o client.Object) []reconcile.Request {
				return []reconcile.Request{{NamespacedName: types.NamespacedName{Name: o.GetName()}}}
			}),
			builder.WithPredicates(predicate.Funcs{
				UpdateFunc: func(event.UpdateEvent) bool { return false },
			})).
		Complete(r)
}
