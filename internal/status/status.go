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

// Package status is the one way this project writes an object's status:
// a merge patch that carries the resourceVersion it was computed from, sent
// only when something changed, retried on a fresh copy after a Conflict; and
// the one rule for turning a condition transition into an event.
package status

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/events"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Mutate changes obj's status in place. It must compute the status from obj
// alone (and what it reads itself), because after a Conflict it runs again
// on a fresh copy.
type Mutate[T client.Object] func(obj T) error

// Update applies mutate to obj and, if the status changed, patches it with
// the optimistic lock (the merge patch carries obj's resourceVersion, so a
// patch computed from a stale informer copy is refused rather than leaving
// out fields the stale copy happened to share). On Conflict it reads a fresh
// copy through reader (use the manager's API reader: the cache may lag the
// write that caused the conflict), applies mutate again and retries, with
// client-go's default backoff. obj holds the stored object on return.
// changed reports whether a patch was sent and accepted.
func Update[T client.Object](ctx context.Context, c client.Client, reader client.Reader, obj T, mutate Mutate[T]) (changed bool, err error) {
	first := true
	err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
		if !first {
			if err := reader.Get(ctx, client.ObjectKeyFromObject(obj), obj); err != nil {
				return err
			}
		}
		first = false
		before := obj.DeepCopyObject().(T)
		if err := mutate(obj); err != nil {
			return err
		}
		if equality.Semantic.DeepEqual(before, obj) {
			changed = false
			return nil
		}
		if err := c.Status().Patch(ctx, obj, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{})); err != nil {
			return err
		}
		changed = true
		return nil
	})
	if err != nil {
		if apierrors.IsConflict(err) {
			return false, fmt.Errorf("patch %s status: still conflicting after retries: %w", obj.GetName(), err)
		}
		return false, fmt.Errorf("patch %s status: %w", obj.GetName(), err)
	}
	return changed, nil
}

// EventRule says which conditions produce events and with which type.
type EventRule struct {
	// Types are the condition types that produce events.
	Types []string
	// NormalWhenFalse lists types whose False status is expected progress
	// (for example Scheduled=False while queued), reported as Normal.
	NormalWhenFalse []string
	// OnlyTrue lists types that produce an event only when they become
	// True (a Model's Verified: its other states show through Ready).
	OnlyTrue []string
	// TrueOnRecovery lists types whose True produces an event only when it
	// follows False or Unknown: not when first set, nor when only the
	// reason of a True condition changed.
	TrueOnRecovery []string
	// TrueReason, when set, is the reason of every event for a True
	// condition, whatever the condition's own reason.
	TrueReason string
	// Action is the event's action (for example "Reconcile").
	Action string
	// QuietReasons are reasons whose transitions produce no event: steps
	// on the way that another event already tells (for example a job's
	// admission, which its placement event follows). Warnings are never
	// quiet.
	QuietReasons []string
}

// RecordTransitions emits one event per condition in rule.Types whose
// status or reason differs between before and after (narrowed by OnlyTrue
// and TrueOnRecovery): reason = the new condition's reason (or TrueReason),
// note = its message. True is Normal; False and Unknown are Warning unless
// listed in NormalWhenFalse. Call it after the status was saved, so an
// event never names a state that did not land.
func RecordTransitions(rec events.EventRecorder, obj runtime.Object, before, after []metav1.Condition, rule EventRule) {
	if rec == nil {
		return
	}
	action := rule.Action
	if action == "" {
		action = "Reconcile"
	}
	for _, t := range rule.Types {
		n := meta.FindStatusCondition(after, t)
		if n == nil {
			continue
		}
		o := meta.FindStatusCondition(before, t)
		if o != nil && o.Status == n.Status && o.Reason == n.Reason {
			continue
		}
		wasTrue := o != nil && o.Status == metav1.ConditionTrue
		isTrue := n.Status == metav1.ConditionTrue
		switch {
		case contains(rule.OnlyTrue, t) && (!isTrue || wasTrue):
			continue
		case contains(rule.TrueOnRecovery, t) && isTrue && (o == nil || wasTrue):
			continue
		}
		typ, reason := corev1.EventTypeNormal, n.Reason
		if isTrue && rule.TrueReason != "" {
			reason = rule.TrueReason
		}
		if !isTrue && !contains(rule.NormalWhenFalse, t) {
			typ = corev1.EventTypeWarning
		}
		if typ == corev1.EventTypeNormal && contains(rule.QuietReasons, n.Reason) {
			continue
		}
		rec.Eventf(obj, nil, typ, reason, action, "%s", n.Message)
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
