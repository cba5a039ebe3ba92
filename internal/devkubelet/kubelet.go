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

// Package devkubelet is a process runner that stands in for the kubelet of
// one simulated node in the local dev environment: it registers the Node and
// keeps it Ready (Lease and status heartbeats), and runs the containers of
// the pods bound to it as local processes. Volumes are prepared as a kubelet
// would (emptyDir, ConfigMap, Secret, projected service account tokens from
// the TokenRequest API, CSI inline volumes published through a CSI node
// plugin's socket), container paths map to those local directories, and pod
// phase, container states, exit codes and termination messages are written
// back to the pod status.
//
// It runs no container engine: a container's image is looked up in an image
// table that maps it to a local command (see Config.Images).
package devkubelet

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/go-logr/logr"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	toolscache "k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
)

// DefaultHeartbeatInterval is how often the Lease is renewed and the Node's
// Ready condition refreshed, as the kubelet's default node status update.
const DefaultHeartbeatInterval = 10 * time.Second

// leaseSeconds is the Lease duration the kubelet uses.
const leaseSeconds = 40

// Config configures one simulated node's kubelet.
type Config struct {
	// NodeName names the Node; required.
	NodeName string
	// Client talks to the API server; required.
	Client kubernetes.Interface
	// Dir holds the pods' volumes, logs and termination messages; required.
	Dir string
	// Images maps container images to local commands; an image that is not
	// in the table fails its pod with ErrImageNeverPull semantics
	// (reason ErrImageNeverPull).
	Images Images
	// CSIDrivers maps a CSI driver name to its node plugin's socket (a path
	// or unix:///path).
	CSIDrivers map[string]string
	// Labels are set on the Node at registration (and kept).
	Labels map[string]string
	// Capacity is the Node's capacity and allocatable (cpu, memory and
	// pods default to the machine's).
	Capacity corev1.ResourceList
	// HeartbeatInterval defaults to DefaultHeartbeatInterval.
	HeartbeatInterval time.Duration
	// GracePeriod bounds how long a deleted pod's processes get between
	// SIGTERM and SIGKILL when the pod does not say (default 30s).
	GracePeriod time.Duration
	// Log receives what the kubelet does.
	Log logr.Logger
}

// Kubelet runs one node's pods as local processes.
type Kubelet struct {
	cfg Config

	// capMu guards cfg.Capacity (SetCapacity).
	capMu   sync.Mutex
	mu      sync.Mutex
	workers map[types.UID]*podWorker
	// finished holds the pods whose processes ended, so late events never
	// start them again.
	finished map[types.UID]bool
	// paused stops heartbeats (to simulate a node that stopped reporting).
	paused bool
	wg     sync.WaitGroup
}

// New checks cfg and returns a kubelet; Run starts it.
func New(cfg Config) (*Kubelet, error) {
	switch {
	case cfg.NodeName == "":
		return nil, errors.New("devkubelet: NodeName is required")
	case cfg.Client == nil:
		return nil, errors.New("devkubelet: Client is required")
	case cfg.Dir == "":
		return nil, errors.New("devkubelet: Dir is required")
	}
	if cfg.HeartbeatInterval <= 0 {
		cfg.HeartbeatInterval = DefaultHeartbeatInterval
	}
	if cfg.GracePeriod <= 0 {
		cfg.GracePeriod = 30 * time.Second
	}
	if err := os.MkdirAll(cfg.Dir, 0o750); err != nil {
		return nil, fmt.Errorf("devkubelet: state directory %s is not writable: %w", cfg.Dir, err)
	}
	return &Kubelet{cfg: cfg, workers: map[types.UID]*podWorker{}, finished: map[types.UID]bool{}}, nil
}

// Register creates or refreshes the Node and its Lease once, so callers can
// start what needs the Node (a node agent) before Run.
func (k *Kubelet) Register(ctx context.Context) error {
	if err := k.registerNode(ctx); err != nil {
		return err
	}
	// The Lease's namespace may not exist yet on a new API server: the
	// next heartbeat tries again.
	if err := k.heartbeat(ctx); err != nil {
		k.cfg.Log.Info("First heartbeat failed; retrying", "node", k.cfg.NodeName, "err", err.Error())
	}
	return nil
}

// SetHeartbeats turns the Node's heartbeats off (false) or back on, as when
// a node's kubelet stops reporting.
func (k *Kubelet) SetHeartbeats(on bool) {
	k.mu.Lock()
	k.paused = !on
	k.mu.Unlock()
}

// Run registers the Node, keeps it Ready and runs the pods bound to it
// until ctx ends; then it stops every process it started (and unpublishes
// their volumes) before returning.
func (k *Kubelet) Run(ctx context.Context) error {
	if err := k.Register(ctx); err != nil {
		return err
	}
	lw := toolscache.NewFilteredListWatchFromClient(k.cfg.Client.CoreV1().RESTClient(), "pods", metav1.NamespaceAll,
		func(o *metav1.ListOptions) {
			o.FieldSelector = fields.OneTermEqualSelector("spec.nodeName", k.cfg.NodeName).String()
		})
	inf := toolscache.NewSharedIndexInformer(lw, &corev1.Pod{}, 0, toolscache.Indexers{})
	handle := func(obj any) {
		if pod, ok := obj.(*corev1.Pod); ok {
			k.sync(ctx, pod)
		}
	}
	if _, err := inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc:    handle,
		UpdateFunc: func(_, n any) { handle(n) },
		DeleteFunc: func(obj any) {
			if d, ok := obj.(toolscache.DeletedFinalStateUnknown); ok {
				obj = d.Obj
			}
			if pod, ok := obj.(*corev1.Pod); ok {
				k.forget(pod.UID)
			}
		},
	}); err != nil {
		return fmt.Errorf("devkubelet: watch pods: %w", err)
	}
	go inf.Run(ctx.Done())

	t := time.NewTicker(k.cfg.HeartbeatInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			k.stopAll()
			return nil
		case <-t.C:
			if err := k.heartbeat(ctx); err != nil && ctx.Err() == nil {
				k.cfg.Log.Error(err, "Heartbeat failed", "node", k.cfg.NodeName)
			}
		}
	}
}

// sync starts a worker for a new pod and tells an existing one about
// deletion.
func (k *Kubelet) sync(ctx context.Context, pod *corev1.Pod) {
	k.mu.Lock()
	w, ok := k.workers[pod.UID]
	if !ok {
		if k.finished[pod.UID] || pod.DeletionTimestamp != nil || pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
			k.mu.Unlock()
			if pod.DeletionTimestamp != nil {
				if err := os.RemoveAll(k.podDir(pod.UID)); err != nil {
					k.cfg.Log.Error(err, "Removing the pod directory failed")
				}
				k.confirmDeletion(ctx, pod)
			}
			return
		}
		if reason, msg := k.admit(pod); reason != "" {
			k.finished[pod.UID] = true
			k.mu.Unlock()
			k.reject(ctx, pod, reason, msg)
			return
		}
		w = newPodWorker(k, pod)
		k.workers[pod.UID] = w
		k.wg.Add(1)
		go func() {
			defer k.wg.Done()
			w.run(ctx)
		}()
	}
	k.mu.Unlock()
	if pod.DeletionTimestamp != nil {
		w.delete(pod)
	}
}

// forget stops a pod whose object is gone.
func (k *Kubelet) forget(uid types.UID) {
	k.mu.Lock()
	w := k.workers[uid]
	delete(k.finished, uid)
	k.mu.Unlock()
	if w != nil {
		w.delete(nil)
		return
	}
	// A pod that ended is deleted at once (no grace period): its
	// directory goes with it.
	if err := os.RemoveAll(k.podDir(uid)); err != nil {
		k.cfg.Log.Error(err, "Removing the pod directory failed")
	}
}

// done drops a finished worker.
func (k *Kubelet) done(uid types.UID) {
	k.mu.Lock()
	delete(k.workers, uid)
	k.finished[uid] = true
	k.mu.Unlock()
}

// stopAll stops every pod's processes and waits for the workers.
func (k *Kubelet) stopAll() {
	k.mu.Lock()
	ws := make([]*podWorker, 0, len(k.workers))
	for _, w := range k.workers {
		ws = append(ws, w)
	}
	k.mu.Unlock()
	for _, w := range ws {
		w.delete(nil)
	}
	k.wg.Wait()
}

// confirmDeletion removes a terminating pod's object once its processes
// are gone, as the kubelet does with a zero grace period delete.
func (k *Kubelet) confirmDeletion(ctx context.Context, pod *corev1.Pod) {
	err := k.cfg.Client.CoreV1().Pods(pod.Namespace).Delete(ctx, pod.Name, metav1.DeleteOptions{
		GracePeriodSeconds: ptr.To[int64](0),
		Preconditions:      &metav1.Preconditions{UID: &pod.UID},
	})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) && ctx.Err() == nil {
		k.cfg.Log.Error(err, "Confirming pod deletion failed", "pod", pod.Namespace+"/"+pod.Name)
	}
}

// registerNode creates the Node, or updates its labels and capacity. An
// update that conflicts with another writer of the Node (the node agent's
// labels, the node lifecycle controller's taints) is made again on a fresh
// copy.
func (k *Kubelet) registerNode(ctx context.Context) error {
	return retry.RetryOnConflict(retry.DefaultBackoff, func() error { return k.registerNodeOnce(ctx) })
}

func (k *Kubelet) registerNodeOnce(ctx context.Context) error {
	nodes := k.cfg.Client.CoreV1().Nodes()
	node, err := nodes.Get(ctx, k.cfg.NodeName, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		node = &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: k.cfg.NodeName}}
		k.applyNodeMeta(node)
		if _, err = nodes.Create(ctx, node, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("devkubelet: register node %s: %w", k.cfg.NodeName, err)
		}
	case err != nil:
		return fmt.Errorf("devkubelet: get node %s: %w", k.cfg.NodeName, err)
	default:
		k.applyNodeMeta(node)
		if _, err = nodes.Update(ctx, node, metav1.UpdateOptions{}); err != nil {
			// Wrapped, a Conflict is still one for RetryOnConflict.
			return fmt.Errorf("devkubelet: update node %s: %w", k.cfg.NodeName, err)
		}
	}
	return nil
}

func (k *Kubelet) applyNodeMeta(node *corev1.Node) {
	if node.Labels == nil {
		node.Labels = map[string]string{}
	}
	node.Labels[corev1.LabelHostname] = k.cfg.NodeName
	node.Labels[corev1.LabelOSStable] = "linux"
	for key, v := range k.cfg.Labels {
		node.Labels[key] = v
	}
}

// heartbeat renews the Lease and refreshes the Node's status, unless
// heartbeats are paused.
func (k *Kubelet) heartbeat(ctx context.Context) error {
	k.mu.Lock()
	paused := k.paused
	k.mu.Unlock()
	if paused {
		return nil
	}
	if err := k.renewLease(ctx); err != nil {
		return err
	}
	return k.updateNodeStatus(ctx)
}

func (k *Kubelet) renewLease(ctx context.Context) error {
	leases := k.cfg.Client.CoordinationV1().Leases(corev1.NamespaceNodeLease)
	now := metav1.NewMicroTime(time.Now())
	lease, err := leases.Get(ctx, k.cfg.NodeName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		node, gerr := k.cfg.Client.CoreV1().Nodes().Get(ctx, k.cfg.NodeName, metav1.GetOptions{})
		if gerr != nil {
			return fmt.Errorf("devkubelet: get node for its lease: %w", gerr)
		}
		lease = &coordinationv1.Lease{
			ObjectMeta: metav1.ObjectMeta{Name: k.cfg.NodeName, Namespace: corev1.NamespaceNodeLease,
				OwnerReferences: []metav1.OwnerReference{{APIVersion: "v1", Kind: "Node", Name: node.Name, UID: node.UID}}},
			Spec: coordinationv1.LeaseSpec{HolderIdentity: ptr.To(k.cfg.NodeName), LeaseDurationSeconds: ptr.To[int32](leaseSeconds), RenewTime: &now},
		}
		if _, err := leases.Create(ctx, lease, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("devkubelet: create lease: %w", err)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("devkubelet: get lease: %w", err)
	}
	lease.Spec.RenewTime = &now
	if _, err := leases.Update(ctx, lease, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("devkubelet: renew lease: %w", err)
	}
	return nil
}

func (k *Kubelet) updateNodeStatus(ctx context.Context) error {
	nodes := k.cfg.Client.CoreV1().Nodes()
	node, err := nodes.Get(ctx, k.cfg.NodeName, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("devkubelet: get node: %w", err)
	}
	now := metav1.Now()
	ready := corev1.NodeCondition{
		Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady",
		Message: "dev process runner is posting ready status", LastHeartbeatTime: now, LastTransitionTime: now,
	}
	found := false
	for i, c := range node.Status.Conditions {
		if c.Type == corev1.NodeReady {
			if c.Status == corev1.ConditionTrue {
				ready.LastTransitionTime = c.LastTransitionTime
			}
			node.Status.Conditions[i] = ready
			found = true
		}
	}
	if !found {
		node.Status.Conditions = append(node.Status.Conditions, ready)
	}
	node.Status.Capacity = k.capacity()
	node.Status.Allocatable = k.capacity()
	node.Status.Addresses = []corev1.NodeAddress{
		{Type: corev1.NodeInternalIP, Address: "127.0.0.1"},
		{Type: corev1.NodeHostName, Address: k.cfg.NodeName},
	}
	node.Status.NodeInfo.KubeletVersion = "dev"
	node.Status.NodeInfo.OperatingSystem = "linux"
	node.Status.NodeInfo.Architecture = goarch
	node, err = nodes.UpdateStatus(ctx, node, metav1.UpdateOptions{})
	if err != nil {
		return fmt.Errorf("devkubelet: update node status: %w", err)
	}
	return k.clearConditionTaints(ctx, node)
}

// conditionTaints are the taints the API server's TaintNodesByCondition
// admission puts on a new Node and kube-controller-manager's node lifecycle
// controller lifts once the Node reports Ready.
var conditionTaints = []string{corev1.TaintNodeNotReady, corev1.TaintNodeUnreachable}

// clearConditionTaints does the node lifecycle controller's part for a
// Ready node, so a process runner also works against an API server without
// kube-controller-manager (its own tests run it so); the dev environment
// runs kube-controller-manager, whose controller lifts them too.
func (k *Kubelet) clearConditionTaints(ctx context.Context, node *corev1.Node) error {
	kept := slices.DeleteFunc(slices.Clone(node.Spec.Taints), func(t corev1.Taint) bool {
		return slices.Contains(conditionTaints, t.Key)
	})
	if len(kept) == len(node.Spec.Taints) {
		return nil
	}
	node.Spec.Taints = kept
	if _, err := k.cfg.Client.CoreV1().Nodes().Update(ctx, node, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("devkubelet: lift the not-ready taint of node %s: %w", k.cfg.NodeName, err)
	}
	return nil
}

// podDir is where a pod's volumes, logs and termination messages live.
func (k *Kubelet) podDir(uid types.UID) string {
	return filepath.Join(k.cfg.Dir, "pods", string(uid))
}
