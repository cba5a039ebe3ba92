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
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/aivm-dev/aivm-operator/api/v1alpha1"
	"github.com/aivm-dev/aivm-operator/artifact"
)

// TestModelStatusPrecedence covers the combinations of node reports and
// source checks that decide Verified and Ready, without an API server.
func TestModelStatusPrecedence(t *testing.T) {
	mismatch := []nodeCacheError{{node: "n2", ModelCacheError: v1alpha1.ModelCacheError{Reason: v1alpha1.ReasonDigestMismatch}}}
	unreachable := sourceCheck{err: &artifact.HTTPStatusError{Source: "https://h/w", StatusCode: 503, Status: "503 Service Unavailable"}}
	sourceMismatch := &artifact.FileError{Path: "w.safetensors", Err: &artifact.SourceDigestMismatchError{
		Source: "https://h/w.safetensors", Header: artifact.HeaderLinkedETag, Expected: strings.Repeat("a", 64), Stated: strings.Repeat("b", 64)}}
	refusal := []nodeCacheError{{node: "n1", self: true, ModelCacheError: v1alpha1.ModelCacheError{Reason: v1alpha1.ReasonAccessNotProven, Model: "ns/m"}}}
	tests := []struct {
		name           string
		obs            modelObservation
		verified       metav1.ConditionStatus
		verifiedReason string
		ready          metav1.ConditionStatus
		readyReason    string
	}{
		{"invalid spec", modelObservation{specErr: errors.New("bad uri")},
			metav1.ConditionUnknown, v1alpha1.ReasonPendingVerification, metav1.ConditionFalse, v1alpha1.ReasonInvalidSource},
		{"reachable", modelObservation{check: sourceCheck{result: artifact.CheckResult{Size: 10}}},
			metav1.ConditionUnknown, v1alpha1.ReasonPendingVerification, metav1.ConditionTrue, v1alpha1.ReasonSourceReachable},
		{"file source", modelObservation{check: sourceCheck{result: artifact.CheckResult{NodeLocal: true}}},
			metav1.ConditionUnknown, v1alpha1.ReasonPendingVerification, metav1.ConditionTrue, v1alpha1.ReasonReady},
		{"held", modelObservation{cachedNodes: []string{"n1"}},
			metav1.ConditionTrue, v1alpha1.ReasonVerified, metav1.ConditionTrue, v1alpha1.ReasonVerified},
		{"held, source down", modelObservation{cachedNodes: []string{"n1"}, check: unreachable},
			metav1.ConditionTrue, v1alpha1.ReasonVerified, metav1.ConditionTrue, v1alpha1.ReasonVerified},
		{"held, credentials gone", modelObservation{cachedNodes: []string{"n1"}, check: sourceCheck{credErr: errors.New("secret ns/s not found")}},
			metav1.ConditionTrue, v1alpha1.ReasonVerified, metav1.ConditionTrue, v1alpha1.ReasonVerified},
		{"held and mismatch elsewhere", modelObservation{cachedNodes: []string{"n1"}, mismatches: mismatch},
			metav1.ConditionTrue, v1alpha1.ReasonVerified, metav1.ConditionFalse, v1alpha1.ReasonDigestMismatch},
		{"mismatch only", modelObservation{mismatches: mismatch},
			metav1.ConditionFalse, v1alpha1.ReasonDigestMismatch, metav1.ConditionFalse, v1alpha1.ReasonDigestMismatch},
		{"unreachable", modelObservation{check: unreachable},
			metav1.ConditionUnknown, v1alpha1.ReasonPendingVerification, metav1.ConditionFalse, v1alpha1.ReasonSourceUnreachable},
		{"credentials missing", modelObservation{check: sourceCheck{credErr: errors.New("secret ns/s not found")}},
			metav1.ConditionUnknown, v1alpha1.ReasonPendingVerification, metav1.ConditionFalse, v1alpha1.ReasonCredentialsNotFound},
		{"held only by nodes that are down", modelObservation{downNodes: []string{"n1"}, check: sourceCheck{result: artifact.CheckResult{Size: 10}}},
			metav1.ConditionUnknown, v1alpha1.ReasonPendingVerification, metav1.ConditionTrue, v1alpha1.ReasonSourceReachable},
		{"held only by nodes that are down, source down", modelObservation{downNodes: []string{"n1"}, check: unreachable},
			metav1.ConditionUnknown, v1alpha1.ReasonPendingVerification, metav1.ConditionFalse, v1alpha1.ReasonSourceUnreachable},
		{"held by a live node and one that is down", modelObservation{cachedNodes: []string{"n1"}, downNodes: []string{"n2"}, check: unreachable},
			metav1.ConditionTrue, v1alpha1.ReasonVerified, metav1.ConditionTrue, v1alpha1.ReasonVerified},
		{"mismatch, and held by a node that is down", modelObservation{downNodes: []string{"n1"}, mismatches: mismatch},
			metav1.ConditionFalse, v1alpha1.ReasonDigestMismatch, metav1.ConditionFalse, v1alpha1.ReasonDigestMismatch},
		{"size differs, even when held", modelObservation{cachedNodes: []string{"n1"}, check: sourceCheck{err: &artifact.SizeMismatchError{Expected: 1, Actual: 2}}},
			metav1.ConditionTrue, v1alpha1.ReasonVerified, metav1.ConditionFalse, artifact.ReasonSizeMismatch},
		{"source states another digest", modelObservation{check: sourceCheck{err: sourceMismatch}},
			metav1.ConditionUnknown, v1alpha1.ReasonPendingVerification, metav1.ConditionFalse, v1alpha1.ReasonSourceDigestMismatch},
		{"source states another digest, even when held", modelObservation{cachedNodes: []string{"n1"}, check: sourceCheck{err: sourceMismatch}},
			metav1.ConditionTrue, v1alpha1.ReasonVerified, metav1.ConditionFalse, v1alpha1.ReasonSourceDigestMismatch},
		{"held, but not served to this Model", modelObservation{cachedNodes: []string{"n1"}, refusals: refusal},
			metav1.ConditionTrue, v1alpha1.ReasonVerified, metav1.ConditionFalse, v1alpha1.ReasonAccessNotProven},
	}
	clk := clocktesting.NewFakePassiveClock(time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC))
	r := NewModelReconciler(nil, nil, nil, nil, WithModelClock(clk))
	for _, tt := range tests {
		m := &v1alpha1.Model{ObjectMeta: metav1.ObjectMeta{Generation: 3}}
		r.setStatus(m, tt.obs)
		v := meta.FindStatusCondition(m.Status.Conditions, v1alpha1.ConditionVerified)
		rd := meta.FindStatusCondition(m.Status.Conditions, v1alpha1.ConditionReady)
		if v == nil || rd == nil {
			t.Fatalf("%s: conditions missing: %+v", tt.name, m.Status.Conditions)
		}
		if v.Status != tt.verified || v.Reason != tt.verifiedReason {
			t.Errorf("%s: Verified = %s/%s, want %s/%s", tt.name, v.Status, v.Reason, tt.verified, tt.verifiedReason)
		}
		if rd.Status != tt.ready || rd.Reason != tt.readyReason {
			t.Errorf("%s: Ready = %s/%s (%s), want %s/%s", tt.name, rd.Status, rd.Reason, rd.Message, tt.ready, tt.readyReason)
		}
		if rd.ObservedGeneration != 3 || m.Status.ObservedGeneration != 3 || !rd.LastTransitionTime.Time.Equal(clk.Now()) {
			t.Errorf("%s: generation/time not recorded: %+v", tt.name, rd)
		}
		if m.Status.CachedNodes != int32(len(tt.obs.cachedNodes)) {
			t.Errorf("%s: cachedNodes = %d", tt.name, m.Status.CachedNodes)
		}
	}
}

func TestNodeList(t *testing.T) {
	for n, want := range map[int]string{
		1: "node n0",
		3: "nodes n0, n1, n2",
		7: "7 nodes (n0, n1, n2, n3, n4, ...)",
	} {
		var nodes []string
		for i := range n {
			nodes = append(nodes, "n"+string(rune('0'+i)))
		}
		if got := nodeList(nodes); got != want {
			t.Errorf("nodeList(%d) = %q, want %q", n, got, want)
		}
	}
}

// TestModelStatusNamesNoOtherModel: a node's report of another Model of
// the same digest (another namespace's) shows on this Model without its
// message, which names that Model and its source.
func TestModelStatusNamesNoOtherModel(t *testing.T) {
	other := nodeCacheError{node: "n1", ModelCacheError: v1alpha1.ModelCacheError{
		Reason: v1alpha1.ReasonDigestMismatch, Model: "tenant-a/gated",
		Message: "model tenant-a/gated: fetch from https://internal.tenant-a.example/w: sha256 mismatch"}}
	r := NewModelReconciler(nil, nil, nil, nil, WithModelClock(clocktesting.NewFakePassiveClock(time.Unix(1700000000, 0))))
	m := &v1alpha1.Model{ObjectMeta: metav1.ObjectMeta{Namespace: "tenant-b", Name: "copy"}}
	r.setStatus(m, modelObservation{mismatches: []nodeCacheError{other}})
	for _, c := range m.Status.Conditions {
		if strings.Contains(c.Message, "tenant-a") {
			t.Errorf("%s names another namespace's Model: %s", c.Type, c.Message)
		}
	}
	own := other
	own.self = true
	r.setStatus(m, modelObservation{mismatches: []nodeCacheError{own}})
	if rd := meta.FindStatusCondition(m.Status.Conditions, v1alpha1.ConditionReady); !strings.Contains(rd.Message, own.Message) {
		t.Errorf("Ready = %q, want the node's message about this Model", rd.Message)
	}
}
