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
	"encoding/json"
	"fmt"
	"maps"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"

	aivmv1alpha1 "github.com/aivm-dev/aivm-operator/api/v1alpha1"
	"github.com/aivm-dev/aivm-operator/internal/status"
)

// The node agent's permissions (config/node-agent/rbac).
// +kubebuilder:rbac:groups=aivm.dev,resources=gpunodes,verbs=get;create;patch
// +kubebuilder:rbac:groups=aivm.dev,resources=gpunodes/status,verbs=get;patch
// +kubebuilder:rbac:groups="",resources=nodes,verbs=get;patch

// Thresholds below which a telemetry change alone does not cause a write;
// the heartbeat write carries the current values anyway.
const (
	temperatureStepCelsius = 5
	utilizationStepPercent = 10
	memoryStepBytes        = 256 << 20
)

// PublisherOptions configure a Publisher.
type PublisherOptions struct {
	// NodeName is the Node (and GPUNode) name; required.
	NodeName string
	// HeartbeatInterval is the longest time between two status writes;
	// required, positive.
	HeartbeatInterval time.Duration
	// Clock tells the time; nil means the real clock.
	Clock clock.PassiveClock
	// Log receives the publisher's log lines.
	Log logr.Logger
}

// Publisher writes a node's GPUNode (named after the Node, owned by it) and
// the Node's GPU labels. It writes the status only when it changed (a
// telemetry change below a small threshold does not count) or when the
// heartbeat is due, and the labels only when they changed. It re-reads both
// objects once per heartbeat interval, so changes made by others are seen.
// It is not safe for concurrent use.
type Publisher struct {
	c         client.Client
	nodeName  string
	heartbeat time.Duration
	clock     clock.PassiveClock
	log       logr.Logger

	obj    *aivmv1alpha1.GPUNode // as the API server last returned it; nil: read it
	labels map[string]string     // the agent's labels on the Node as last seen
	readAt time.Time
}

// NewPublisher returns a publisher for the node named in opts.
func NewPublisher(c client.Client, opts PublisherOptions) (*Publisher, error) {
	if errs := validation.IsDNS1123Subdomain(opts.NodeName); len(errs) > 0 {
		return nil, fmt.Errorf("node name %q is not valid: %v", opts.NodeName, errs)
	}
	if opts.HeartbeatInterval <= 0 {
		return nil, fmt.Errorf("heartbeat interval must be positive, got %s", opts.HeartbeatInterval)
	}
	if opts.Clock == nil {
		opts.Clock = clock.RealClock{}
	}
	return &Publisher{
		c:         c,
		nodeName:  opts.NodeName,
		heartbeat: opts.HeartbeatInterval,
		clock:     opts.Clock,
		log:       opts.Log,
	}, nil
}

// Publish makes the GPUNode status hold st (the agent's fields; conditions
// are kept, heartbeatTime and the Ready condition set) and the Node carry
// labels (GPULabels not in labels are removed).
//
// status.modelCacheErrors is merged: each error in st replaces the listed
// errors of its digest (an identical entry stays where it is), errors of
// digests in st.cachedModels are removed (the digest was fetched fine), the
// others are kept, and the oldest are dropped beyond MaxModelCacheErrors.
// An AccessNotProven refusal is a Model's, not its bytes': it is listed per
// Model, kept although its digest is cached, and only while st reports it.
func (p *Publisher) Publish(ctx context.Context, st aivmv1alpha1.GPUNodeStatus, labels map[string]string) error {
	now := p.clock.Now()
	if p.obj == nil || now.Sub(p.readAt) >= p.heartbeat {
		if err := p.refresh(ctx, now); err != nil {
			return err
		}
	}
	// Another writer (the manager marking a missed heartbeat) may have
	// changed the GPUNode since it was read: publishStatus then writes on
	// top of a fresh copy.
	if err := p.publishStatus(ctx, st, now); err != nil {
		return err
	}
	return p.publishLabels(ctx, labels)
}

// refresh reads the Node and the GPUNode, creating the GPUNode or fixing its
// owner reference as needed.
func (p *Publisher) refresh(ctx context.Context, now time.Time) error {
	node := &corev1.Node{}
	if err := p.c.Get(ctx, client.ObjectKey{Name: p.nodeName}, node); err != nil {
		p.obj = nil
		return fmt.Errorf("get node %s: %w", p.nodeName, err)
	}
	p.labels = map[string]string{}
	for _, k := range GPULabels {
		if v, ok := node.Labels[k]; ok {
			p.labels[k] = v
		}
	}
	owner := metav1.OwnerReference{
		APIVersion: "v1",
		Kind:       "Node",
		Name:       node.Name,
		UID:        node.UID,
	}

	gn := &aivmv1alpha1.GPUNode{}
	err := p.c.Get(ctx, client.ObjectKey{Name: p.nodeName}, gn)
	if apierrors.IsNotFound(err) {
		gn = &aivmv1alpha1.GPUNode{ObjectMeta: metav1.ObjectMeta{
			Name:            p.nodeName,
			OwnerReferences: []metav1.OwnerReference{owner},
		}}
		err = p.c.Create(ctx, gn)
		if err == nil {
			p.log.Info("Created GPUNode", "gpuNode", p.nodeName)
		}
		if apierrors.IsAlreadyExists(err) {
			err = p.c.Get(ctx, client.ObjectKey{Name: p.nodeName}, gn)
		}
	}
	if err != nil {
		p.obj = nil
		return fmt.Errorf("get or create gpunode %s: %w", p.nodeName, err)
	}
	if !ownedBy(gn, node.UID) {
		// The Node was recreated under the same name, or someone dropped
		// the reference: point it at the current Node.
		orig := gn.DeepCopy()
		refs := []metav1.OwnerReference{owner}
		for _, r := range gn.OwnerReferences {
			if !(r.APIVersion == "v1" && r.Kind == "Node") {
				refs = append(refs, r)
			}
		}
		gn.OwnerReferences = refs
		// The list is replaced whole: refuse to overwrite a concurrent
		// change (the next poll reads the GPUNode again).
		if err := p.c.Patch(ctx, gn, client.MergeFromWithOptions(orig, client.MergeFromWithOptimisticLock{})); err != nil {
			p.obj = nil
			return fmt.Errorf("set owner of gpunode %s: %w", p.nodeName, err)
		}
	}
	p.obj = gn
	p.readAt = now
	return nil
}

func ownedBy(obj metav1.Object, uid types.UID) bool {
	for _, r := range obj.GetOwnerReferences() {
		if r.Kind == "Node" && r.UID == uid {
			return true
		}
	}
	return false
}

// publishStatus writes st over the last GPUNode read, through the shared
// status writer: the patch carries the resourceVersion it was computed from
// (a merge patch from an outdated copy would leave out fields that copy and
// the new status share, such as a Ready condition the manager has since
// changed), and a Conflict is retried on a fresh copy.
func (p *Publisher) publishStatus(ctx context.Context, st aivmv1alpha1.GPUNodeStatus, now time.Time) error {
	obj := p.obj.DeepCopy()
	_, err := status.Update(ctx, p.c, p.c, obj, func(gn *aivmv1alpha1.GPUNode) error {
		if next, write := p.nextStatus(gn, st, now); write {
			gn.Status = *next
		}
		return nil
	})
	if err != nil {
		p.obj = nil // read it again next time
		return fmt.Errorf("gpunode %s: %w", p.nodeName, err)
	}
	p.obj = obj
	return nil
}

// nextStatus is the status to write over gn's: st with the merged cache
// errors, gn's conditions plus Ready, and a new heartbeat time. write is
// false when the heartbeat is not due and nothing changed significantly.
func (p *Publisher) nextStatus(gn *aivmv1alpha1.GPUNode, st aivmv1alpha1.GPUNodeStatus, now time.Time) (next *aivmv1alpha1.GPUNodeStatus, write bool) {
	cur := gn.Status
	next = st.DeepCopy()
	next.ModelCacheErrors = mergeCacheErrors(cur.ModelCacheErrors, st.ModelCacheErrors, st.CachedModels)
	next.Conditions = append([]metav1.Condition(nil), cur.Conditions...)
	meta.SetStatusCondition(&next.Conditions, metav1.Condition{
		Type:               aivmv1alpha1.ConditionReady,
		Status:             metav1.ConditionTrue,
		Reason:             aivmv1alpha1.ReasonHeartbeat,
		Message:            "The node agent reports the GPU inventory",
		ObservedGeneration: gn.Generation,
		LastTransitionTime: metav1.NewTime(now),
	})
	next.HeartbeatTime = cur.HeartbeatTime

	heartbeatDue := cur.HeartbeatTime == nil || now.Sub(cur.HeartbeatTime.Time) >= p.heartbeat
	if !heartbeatDue && !significantChange(&cur, next) {
		return nil, false
	}
	next.HeartbeatTime = &metav1.Time{Time: now}
	return next, true
}

// significantChange reports whether next differs from cur by more than
// telemetry noise.
func significantChange(cur, next *aivmv1alpha1.GPUNodeStatus) bool {
	damped := next.DeepCopy()
	if len(cur.GPUs) == len(damped.GPUs) {
		for i := range damped.GPUs {
			c, n := &cur.GPUs[i], &damped.GPUs[i]
			if c.Index != n.Index || c.UUID != n.UUID {
				continue
			}
			if near(c.TemperatureCelsius, n.TemperatureCelsius, temperatureStepCelsius) {
				n.TemperatureCelsius = c.TemperatureCelsius
			}
			if near(c.UtilizationPercent, n.UtilizationPercent, utilizationStepPercent) {
				n.UtilizationPercent = c.UtilizationPercent
			}
			if near(c.MemoryUtilizationPercent, n.MemoryUtilizationPercent, utilizationStepPercent) {
				n.MemoryUtilizationPercent = c.MemoryUtilizationPercent
			}
			if nearBytes(c.MemoryUsed.Value(), n.MemoryUsed.Value()) && nearBytes(c.MemoryFree.Value(), n.MemoryFree.Value()) {
				n.MemoryUsed, n.MemoryFree = c.MemoryUsed, c.MemoryFree
			}
		}
	}
	return !equality.Semantic.DeepEqual(*cur, *damped)
}

func near(a, b *int32, step int32) bool {
	if a == nil || b == nil {
		return a == b
	}
	d := *a - *b
	return d > -step && d < step
}

func nearBytes(a, b int64) bool {
	d := a - b
	return d > -memoryStepBytes && d < memoryStepBytes
}

func (p *Publisher) publishLabels(ctx context.Context, want map[string]string) error {
	if maps.Equal(want, p.labels) {
		return nil
	}
	set := map[string]any{}
	for _, k := range GPULabels {
		v, ok := want[k]
		switch {
		case ok && p.labels[k] != v:
			set[k] = v
		case !ok:
			if _, had := p.labels[k]; had {
				set[k] = nil // remove
			}
		}
	}
	for k := range want {
		if !isGPULabel(k) {
			return fmt.Errorf("label %s is not one the node agent owns", k)
		}
	}
	data, err := json.Marshal(map[string]any{"metadata": map[string]any{"labels": set}})
	if err != nil {
		return fmt.Errorf("encode node label patch: %w", err)
	}
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: p.nodeName}}
	if err := p.c.Patch(ctx, node, client.RawPatch(types.MergePatchType, data)); err != nil {
		p.obj = nil // read the Node again next time
		return fmt.Errorf("label node %s: %w", p.nodeName, err)
	}
	p.log.Info("Labeled node", "node", p.nodeName, "labels", want)
	p.labels = maps.Clone(want)
	return nil
}

func isGPULabel(k string) bool {
	for _, l := range GPULabels {
		if l == k {
			return true
		}
	}
	return false
}

// mergeCacheErrors folds the agent's reported failures into the listed ones
// (see Publish).
func mergeCacheErrors(listed, reported []aivmv1alpha1.ModelCacheError, cached []string) []aivmv1alpha1.ModelCacheError {
	fine := map[string]bool{}
	for _, d := range cached {
		fine[d] = true
	}
	// stale says whether the cached bytes answer e: a content failure of a
	// digest the cache now holds is over, but an AccessNotProven refusal
	// is about the Model, and its digest is cached by definition.
	stale := func(e aivmv1alpha1.ModelCacheError) bool {
		return fine[e.Digest] && e.Reason != aivmv1alpha1.ReasonAccessNotProven
	}
	byKey := map[string]*aivmv1alpha1.ModelCacheError{}
	for i := range reported {
		byKey[cacheErrorKey(reported[i])] = &reported[i]
	}
	var out []aivmv1alpha1.ModelCacheError
	present := map[string]bool{}
	for _, e := range listed {
		k := cacheErrorKey(e)
		if stale(e) {
			continue
		}
		if e.Reason == aivmv1alpha1.ReasonAccessNotProven && byKey[k] == nil {
			// The driver reports a Model's refusal while it stands (its
			// pods retry the publish), so one no longer reported is over:
			// the Model proved access, or its pods are gone.
			continue
		}
		if r, ok := byKey[k]; ok && !sameCacheError(e, *r) {
			continue // replaced below
		}
		out = append(out, e)
		present[k] = present[k] || byKey[k] != nil
	}
	for _, r := range reported {
		k := cacheErrorKey(r)
		if stale(r) || present[k] {
			continue
		}
		out = append(out, r)
		present[k] = true
	}
	if len(out) > MaxModelCacheErrors {
		out = out[len(out)-MaxModelCacheErrors:]
	}
	return out
}

func sameCacheError(a, b aivmv1alpha1.ModelCacheError) bool {
	if a.Digest != b.Digest || a.Reason != b.Reason || a.Message != b.Message || (a.Time == nil) != (b.Time == nil) {
		return false
	}
	return a.Time == nil || a.Time.Equal(b.Time)
}
