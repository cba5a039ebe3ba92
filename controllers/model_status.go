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
	"errors"
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/aivm-dev/aivm-operator/api/v1alpha1"
	"github.com/aivm-dev/aivm-operator/artifact"
	"github.com/aivm-dev/aivm-operator/internal/status"
)

// The Model's status decision: its conditions and counts from what
// ModelReconciler.observe saw, and the events their transitions give.

// setStatus writes the conditions and counts obs implies.
func (r *ModelReconciler) setStatus(model *v1alpha1.Model, obs modelObservation) {
	now := metav1.NewTime(r.clock.Now())
	gen := model.Generation
	set := func(t string, s metav1.ConditionStatus, reason, msg string) {
		meta.SetStatusCondition(&model.Status.Conditions, metav1.Condition{
			Type: t, Status: s, Reason: reason, Message: truncateMessage(msg),
			ObservedGeneration: gen, LastTransitionTime: now,
		})
	}
	model.Status.ObservedGeneration = gen
	model.Status.CachedNodes = int32(len(obs.cachedNodes))
	model.Status.ModelDigest = obs.digest
	model.Status.FileCount = int32(len(obs.files))
	model.Status.TotalSizeBytes = totalSize(model, obs.check.result)

	if obs.specErr != nil {
		set(v1alpha1.ConditionVerified, metav1.ConditionUnknown, v1alpha1.ReasonPendingVerification, "the spec is invalid")
		set(v1alpha1.ConditionReady, metav1.ConditionFalse, v1alpha1.ReasonInvalidSource, obs.specErr.Error())
		return
	}

	held := len(obs.cachedNodes) > 0
	nodeLocal := obs.check.result.NodeLocal
	switch {
	case held:
		set(v1alpha1.ConditionVerified, metav1.ConditionTrue, v1alpha1.ReasonVerified,
			fmt.Sprintf("the verified bytes are cached on %s", nodeList(obs.cachedNodes)))
	case len(obs.mismatches) > 0:
		set(v1alpha1.ConditionVerified, metav1.ConditionFalse, v1alpha1.ReasonDigestMismatch, mismatchMessage(obs.mismatches))
	case len(obs.downNodes) > 0:
		set(v1alpha1.ConditionVerified, metav1.ConditionUnknown, v1alpha1.ReasonPendingVerification,
			fmt.Sprintf("no ready node holds the verified bytes; %s holding them %s not Ready",
				nodeList(obs.downNodes), pluralVerb(len(obs.downNodes), "is", "are")))
	case nodeLocal:
		set(v1alpha1.ConditionVerified, metav1.ConditionUnknown, v1alpha1.ReasonPendingVerification,
			"no node has fetched the bytes yet; file:// sources are checked on the nodes that fetch them")
	default:
		set(v1alpha1.ConditionVerified, metav1.ConditionUnknown, v1alpha1.ReasonPendingVerification, "no node has fetched the bytes yet")
	}

	c := obs.check
	var sm *artifact.SizeMismatchError
	var sdm *artifact.SourceDigestMismatchError
	switch {
	case len(obs.mismatches) > 0:
		set(v1alpha1.ConditionReady, metav1.ConditionFalse, v1alpha1.ReasonDigestMismatch, mismatchMessage(obs.mismatches))
	case c.err != nil && errors.As(c.err, &sm):
		set(v1alpha1.ConditionReady, metav1.ConditionFalse, v1alpha1.ReasonSizeMismatch, sizeMismatchMessage(c.err, sm))
	case c.err != nil && errors.As(c.err, &sdm):
		// Before the cached bytes count: a source that states other bytes
		// does not serve these, whoever else holds them.
		set(v1alpha1.ConditionReady, metav1.ConditionFalse, v1alpha1.ReasonSourceDigestMismatch, c.err.Error())
	case len(obs.refusals) > 0:
		set(v1alpha1.ConditionReady, metav1.ConditionFalse, v1alpha1.ReasonAccessNotProven, refusalMessage(obs.refusals))
	case c.failed() && held:
		cause := "source unreachable: " + errString(c.err)
		if c.credErr != nil {
			cause = "credentials not found: " + c.credErr.Error()
		}
		set(v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonVerified,
			fmt.Sprintf("%s; the verified bytes are still cached on %s", cause, nodeList(obs.cachedNodes)))
	case c.credErr != nil:
		set(v1alpha1.ConditionReady, metav1.ConditionFalse, v1alpha1.ReasonCredentialsNotFound, c.credErr.Error())
	case c.err != nil:
		set(v1alpha1.ConditionReady, metav1.ConditionFalse, v1alpha1.ReasonSourceUnreachable, c.err.Error())
	case held:
		set(v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonVerified,
			fmt.Sprintf("the source answers and the verified bytes are cached on %s", nodeList(obs.cachedNodes)))
	case nodeLocal:
		set(v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonReady,
			"file:// sources are checked on the nodes that fetch them")
	default:
		msg := "the source answers"
		if c.result.Size >= 0 {
			msg = fmt.Sprintf("the source answers with %d bytes", c.result.Size)
		}
		set(v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonSourceReachable, msg)
	}
}

// Model events: Verified only when it becomes True (its other states show
// through Ready); Ready when it goes False or Unknown, and when it recovers
// (reason Ready), not when it is first True.
var (
	modelVerifiedEvents = status.EventRule{
		Types: []string{v1alpha1.ConditionVerified}, OnlyTrue: []string{v1alpha1.ConditionVerified}, Action: "Verify",
	}
	modelReadyEvents = status.EventRule{
		Types: []string{v1alpha1.ConditionReady}, TrueOnRecovery: []string{v1alpha1.ConditionReady},
		TrueReason: v1alpha1.ReasonReady, Action: "CheckSource",
	}
)

// recordEvents emits events for condition changes, after the status is saved.
func (r *ModelReconciler) recordEvents(before, after *v1alpha1.Model) {
	status.RecordTransitions(r.recorder, after, before.Status.Conditions, after.Status.Conditions, modelVerifiedEvents)
	status.RecordTransitions(r.recorder, after, before.Status.Conditions, after.Status.Conditions, modelReadyEvents)
}

// totalSize is the size of all of a Model's files when every size is known:
// from the spec, else from the source check; nil otherwise.
func totalSize(model *v1alpha1.Model, checked artifact.CheckResult) *int64 {
	if len(model.Spec.Files) == 0 {
		if model.Spec.SizeBytes != nil {
			return ptr.To(*model.Spec.SizeBytes)
		}
		if checked.Size >= 0 && !checked.NodeLocal {
			return ptr.To(checked.Size)
		}
		return nil
	}
	var sum int64
	for _, f := range model.Spec.Files {
		if f.SizeBytes == nil {
			if checked.Size >= 0 && !checked.NodeLocal {
				return ptr.To(checked.Size)
			}
			return nil
		}
		sum += *f.SizeBytes
	}
	return &sum
}

func sizeMismatchMessage(err error, sm *artifact.SizeMismatchError) string {
	var fe *artifact.FileError
	if errors.As(err, &fe) {
		return fmt.Sprintf("file %s: the source announces %d bytes but its sizeBytes is %d", fe.Path, sm.Actual, sm.Expected)
	}
	return fmt.Sprintf("the source announces %d bytes but spec.sizeBytes is %d", sm.Actual, sm.Expected)
}

func mismatchMessage(ms []nodeCacheError) string {
	m := ms[0]
	what := "bytes whose sha256 differs from spec.sha256"
	if m.File != "" {
		what = fmt.Sprintf("file %s with a sha256 other than the one its files entry gives", m.File)
	}
	msg := fmt.Sprintf("node %s fetched %s; nothing runs on them", m.node, what)
	// A message reported for another Model of the digest may name that
	// Model and its source: it shows only on its own Model.
	if m.Message != "" && m.self {
		msg += ": " + m.Message
	}
	if len(ms) > 1 {
		msg += fmt.Sprintf(" (%d nodes reported a mismatch)", len(ms))
	}
	return msg
}

// refusalMessage says why nodes did not serve their cached bytes to this
// Model; the messages are the node's refusals of this Model alone.
func refusalMessage(rs []nodeCacheError) string {
	r := rs[0]
	msg := fmt.Sprintf("node %s holds these bytes but did not serve them to this Model: its source and credentials have not shown they can fetch them "+
		"(the source must state the sha256 in a digest header such as X-Linked-Etag, or deliver the bytes)", r.node)
	if r.Message != "" {
		msg += ": " + r.Message
	}
	if len(rs) > 1 {
		msg += fmt.Sprintf(" (%d nodes refused)", len(rs))
	}
	return msg
}

// nodeList renders node names for a message: "node a", "nodes a, b" or
// "7 nodes (a, b, c, d, e, ...)".
func nodeList(nodes []string) string {
	switch {
	case len(nodes) == 1:
		return "node " + nodes[0]
	case len(nodes) <= maxListedNodes:
		return "nodes " + strings.Join(nodes, ", ")
	default:
		return fmt.Sprintf("%d nodes (%s, ...)", len(nodes), strings.Join(nodes[:maxListedNodes], ", "))
	}
}

func pluralVerb(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
