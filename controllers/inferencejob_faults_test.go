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
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/aivm-dev/aivm-operator/api/v1alpha1"
)

// TestJobRetriesThenBackoffLimit: an OOMKilled pod fails attempt 1 and the
// next attempt waits for the backoff; the runtime's exit 14 with its
// termination message fails attempt 2; with backoffLimit 1 the job fails.
func TestJobRetriesThenBackoffLimit(t *testing.T) {
	e := newJobEnv(t)
	e.kernel("k", true, nil)
	job := e.job("flaky", "k", func(j *v1alpha1.InferenceJob) { j.Spec.BackoffLimit = ptr.To[int32](1) })
	e.place(job, e.node)
	pod := e.pod("flaky-1")
	e.kubelet(pod, corev1.PodFailed, exited(137, "OOMKilled", ""))
	e.waitJob(job, placementEnded(1, 0, v1alpha1.PlacementFailed, v1alpha1.ReasonOOMKilled))
	got := e.waitCond(job, v1alpha1.ConditionRunning, metav1.ConditionFalse, v1alpha1.ReasonBackoff)
	if got.Status.Attempts != 1 || ptr.Deref(placement(got, 1, 0).ExitCode, 0) != 137 {
		t.Fatalf("attempts %d exit %v during the backoff, want 1 and 137", got.Status.Attempts, placement(got, 1, 0).ExitCode)
	}
	e.waitPodGone("flaky-1")
	// Not yet: 9 of the 10 seconds.
	e.clock.Step(9 * time.Second)
	e.poke(job)
	e.waitJob(job, func(j *v1alpha1.InferenceJob) error {
		if j.Annotations["test.aivm.dev/poke"] == "" || j.Status.Attempts != 1 {
			return fmt.Errorf("attempts %d", j.Status.Attempts)
		}
		return hasCondition(v1alpha1.ConditionRunning, metav1.ConditionFalse, v1alpha1.ReasonBackoff)(j.Status.Conditions)
	})
	e.clock.Step(2 * time.Second)
	e.poke(job)
	e.waitJob(job, hasAttempts(2)) // after the backoff
	e.place(job, e.node)
	pod = e.pod("flaky-2")
	e.kubelet(pod, corev1.PodFailed, exited(14, "Error", `{"reason":"InferenceTimeout","message":"no token in 300s"}`))
	got = e.waitCond(job, v1alpha1.ConditionFailed, metav1.ConditionTrue, v1alpha1.ReasonBackoffLimitExceeded)
	p := placement(got, 2, 0)
	if p.Reason != "InferenceTimeout" || ptr.Deref(p.ExitCode, 0) != 14 || !strings.Contains(p.Message, "no token in 300s") {
		t.Errorf("placement 2 = %s %v %q, want InferenceTimeout, 14 and the runtime's message", p.Reason, p.ExitCode, p.Message)
	}
	if got.Status.Attempts != 2 || got.Status.CompletionTime == nil {
		t.Errorf("attempts %d completion %v", got.Status.Attempts, got.Status.CompletionTime)
	}
	waitEvent(t, e.ns, "flaky", corev1.EventTypeWarning, v1alpha1.ReasonOOMKilled)
	waitEvent(t, e.ns, "flaky", corev1.EventTypeWarning, v1alpha1.ReasonBackoffLimitExceeded)
	if n := counterValue(jobFailures.WithLabelValues(v1alpha1.ReasonBackoffLimitExceeded)); n < 1 {
		t.Errorf("aivm_inferencejob_failures_total{reason=BackoffLimitExceeded} = %v, want at least 1", n)
	}
	if n := counterValue(attemptFailures.WithLabelValues(v1alpha1.ReasonOOMKilled)); n < 1 {
		t.Errorf("aivm_inferencejob_placement_failures_total{reason=OOMKilled} = %v, want at least 1", n)
	}
}

// TestJobDeadline: past activeDeadlineSeconds from startTime the job fails
// and its pod is deleted.
func TestJobDeadline(t *testing.T) {
	e := newJobEnv(t)
	e.kernel("k", true, nil)
	job := e.job("slow", "k", func(j *v1alpha1.InferenceJob) { j.Spec.ActiveDeadlineSeconds = ptr.To[int64](60) })
	e.place(job, e.node)
	pod := e.pod("slow-1")
	e.kubelet(pod, corev1.PodRunning, running())
	e.waitCond(job, v1alpha1.ConditionRunning, metav1.ConditionTrue, v1alpha1.ReasonPodRunning)
	e.clock.Step(61 * time.Second)
	e.poke(job)
	got := e.waitCond(job, v1alpha1.ConditionFailed, metav1.ConditionTrue, v1alpha1.ReasonDeadlineExceeded)
	if err := placementEnded(1, 0, v1alpha1.PlacementFailed, v1alpha1.ReasonDeadlineExceeded)(got); err != nil {
		t.Error(err)
	}
	e.waitPodGone("slow-1")
}

// TestJobSuspendResume: suspending a running job stops its pod (outcome
// Failed/Suspended); resuming starts a new attempt that does not count
// against backoffLimit.
func TestJobSuspendResume(t *testing.T) {
	e := newJobEnv(t)
	e.kernel("k", true, nil)
	job := e.job("pause", "k", func(j *v1alpha1.InferenceJob) { j.Spec.BackoffLimit = ptr.To[int32](0) })
	e.place(job, e.node)
	pod := e.pod("pause-1")
	e.kubelet(pod, corev1.PodRunning, running())
	e.waitCond(job, v1alpha1.ConditionRunning, metav1.ConditionTrue, v1alpha1.ReasonPodRunning)
	patchSpec(t, job, func(j *v1alpha1.InferenceJob) { j.Spec.Suspend = ptr.To(true) })
	got := e.waitCond(job, v1alpha1.ConditionAdmitted, metav1.ConditionFalse, v1alpha1.ReasonSuspended)
	if err := placementEnded(1, 0, v1alpha1.PlacementFailed, v1alpha1.ReasonSuspended)(got); err != nil {
		t.Error(err)
	}
	e.waitPodGone("pause-1")
	patchSpec(t, job, func(j *v1alpha1.InferenceJob) { j.Spec.Suspend = ptr.To(false) })
	e.waitCond(job, v1alpha1.ConditionAdmitted, metav1.ConditionTrue, v1alpha1.ReasonAdmitted)
	got = e.waitJob(job, hasAttempts(2))
	if meta.IsStatusConditionTrue(got.Status.Conditions, v1alpha1.ConditionFailed) {
		t.Error("a suspension counted against backoffLimit 0")
	}
	e.place(job, e.node)
	e.pod("pause-2")
}

// TestJobGPUUnhealthyFailsOver: a GPU of a running placement turning
// Unhealthy ends the attempt at once and starts the next one.
func TestJobGPUUnhealthyFailsOver(t *testing.T) {
	e := newJobEnv(t)
	other := e.addNode("n1")
	e.kernel("k", true, nil)
	job := e.job("move", "k", func(j *v1alpha1.InferenceJob) { j.Spec.BackoffLimit = ptr.To[int32](0) })
	e.place(job, e.node)
	pod := e.pod("move-1")
	e.kubelet(pod, corev1.PodRunning, running())
	e.waitCond(job, v1alpha1.ConditionRunning, metav1.ConditionTrue, v1alpha1.ReasonPodRunning)
	e.setGPUHealth(e.node, v1alpha1.GPUUnhealthy)
	got := e.waitJob(job, placementEnded(1, 0, v1alpha1.PlacementFailed, v1alpha1.ReasonGPUUnhealthy))
	if p := placement(got, 1, 0); !strings.Contains(p.Message, "XID 79") {
		t.Errorf("message %q should carry the GPU's health reason", p.Message)
	}
	e.waitJob(job, hasAttempts(2))
	e.waitPodGone("move-1")
	e.place(job, other)
	if p := e.pod("move-2"); p.Spec.NodeName != other {
		t.Errorf("attempt 2 on %s, want %s", p.Spec.NodeName, other)
	}
}

// TestJobNodeNotReady: a NotReady blip shorter than the grace period
// changes nothing; NotReady past it fails the attempt over.
func TestJobNodeNotReady(t *testing.T) {
	e := newJobEnv(t, WithNodeFailureGrace(40*time.Second))
	e.kernel("k", true, nil)
	job := e.job("node", "k", nil)
	e.place(job, e.node)
	pod := e.pod("node-1")
	e.kubelet(pod, corev1.PodRunning, running())
	e.waitCond(job, v1alpha1.ConditionRunning, metav1.ConditionTrue, v1alpha1.ReasonPodRunning)

	// The blip: 30 s NotReady, then Ready again, then long after.
	e.setNodeReady(e.node, corev1.ConditionFalse)
	e.clock.Step(30 * time.Second)
	e.reconcileNow(job)
	if p := placement(e.get(job), 1, 0); p.Outcome != "" {
		t.Fatalf("NotReady for 30s of a 40s grace ended the placement: %+v", p)
	}
	e.setNodeReady(e.node, corev1.ConditionTrue)
	e.clock.Step(60 * time.Second)
	e.reconcileNow(job)
	got := e.get(job)
	if p := placement(got, 1, 0); p.Outcome != "" || got.Status.Attempts != 1 {
		t.Fatalf("a blip inside the grace period ended the placement: %+v, attempts %d", p, got.Status.Attempts)
	}

	e.setNodeReady(e.node, corev1.ConditionFalse)
	e.clock.Step(41 * time.Second)
	e.poke(job)
	e.waitJob(job, placementEnded(1, 0, v1alpha1.PlacementFailed, v1alpha1.ReasonNodeNotReady))
	e.waitJob(job, hasAttempts(2))
	e.waitPodGone("node-1")
}

// TestJobTTL: a finished job that reports stays until Reported=True, then
// it and its ConfigMaps are deleted once ttlSecondsAfterFinished passed.
func TestJobTTL(t *testing.T) {
	e := newJobEnv(t, WithReporting(true))
	e.kernel("k", true, nil)
	job := e.job("short", "k", func(j *v1alpha1.InferenceJob) { j.Spec.TTLSecondsAfterFinished = ptr.To[int32](30) })
	e.place(job, e.node)
	pod := e.pod("short-1")
	e.kubelet(pod, corev1.PodRunning, running())
	result := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: "short-result"}, Data: map[string]string{"output": "hi"}}
	mustCreate(t, result)
	// The input ConfigMap an older manager made for inline input.
	mustCreate(t, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: "short-input"}, Data: map[string]string{"input": "hello"}})
	endpointResult(e, job, 1, 0, "short-1", strings.Repeat("aa", 32), true)
	e.waitCond(job, v1alpha1.ConditionSucceeded, metav1.ConditionTrue, v1alpha1.ReasonResultReceived)
	e.clock.Step(31 * time.Second)
	e.reconcileNow(job)
	e.get(job) // still there past the TTL: not reported yet
	e.writeStatus(job, func(o *v1alpha1.InferenceJob) {
		meta.SetStatusCondition(&o.Status.Conditions, metav1.Condition{Type: v1alpha1.ConditionReported, Status: metav1.ConditionTrue,
			Reason: v1alpha1.ReasonCommitted, Message: "committed"})
	})
	eventually(t, func() error {
		for name, o := range map[string]client.Object{"short": &v1alpha1.InferenceJob{}, "short-result": &corev1.ConfigMap{}, "short-input": &corev1.ConfigMap{}} {
			if err := k8sClient.Get(context.Background(), client.ObjectKey{Namespace: e.ns, Name: name}, o); !apierrors.IsNotFound(err) {
				return fmt.Errorf("%s still there (%w)", name, err)
			}
		}
		return nil
	})
}

// TestJobCommitteeDisagreement: three members posting three digests under
// majority fail the job with CommitteeDisagreement.
func TestJobCommitteeDisagreement(t *testing.T) {
	e := newJobEnv(t)
	n1, n2 := e.addNode("n1"), e.addNode("n2")
	e.kernel("k", true, func(k *v1alpha1.Kernel) { k.Spec.Committee.Replicas = 3 })
	job := e.job("vote", "k", nil)
	e.place(job, e.node, n1, n2)
	for m := 0; m < 3; m++ {
		pod := e.pod(fmt.Sprintf("vote-1-%d", m))
		e.kubelet(pod, corev1.PodRunning, running())
	}
	for m, d := range []string{"a", "b", "c"} {
		endpointResult(e, job, 1, int32(m), fmt.Sprintf("vote-1-%d", m), strings.Repeat(d, 64), false)
	}
	got := e.waitCond(job, v1alpha1.ConditionFailed, metav1.ConditionTrue, v1alpha1.ReasonCommitteeDisagreement)
	for m := int32(0); m < 3; m++ {
		if err := placementEnded(1, m, v1alpha1.PlacementFailed, v1alpha1.ReasonCommitteeDisagreement)(got); err != nil {
			t.Error(err)
		}
	}
	e.waitPodGone("vote-1-2")
}

// counterValue reads a counter's current value.
func counterValue(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		return -1
	}
	return m.GetCounter().GetValue()
}

// TestJobPodDeletedExternally: a pod deleted by someone else ends its
// placement PodDeleted and the next attempt starts without counting.
func TestJobPodDeletedExternally(t *testing.T) {
	e := newJobEnv(t)
	e.kernel("k", true, nil)
	job := e.job("gone", "k", func(j *v1alpha1.InferenceJob) { j.Spec.BackoffLimit = ptr.To[int32](0) })
	e.place(job, e.node)
	pod := e.pod("gone-1")
	e.kubelet(pod, corev1.PodRunning, running())
	e.waitCond(job, v1alpha1.ConditionRunning, metav1.ConditionTrue, v1alpha1.ReasonPodRunning)
	if err := k8sClient.Delete(context.Background(), pod); err != nil {
		t.Fatal(err)
	}
	e.waitJob(job, placementEnded(1, 0, v1alpha1.PlacementFailed, v1alpha1.ReasonPodDeleted))
	got := e.waitJob(job, hasAttempts(2))
	if meta.IsStatusConditionTrue(got.Status.Conditions, v1alpha1.ConditionFailed) {
		t.Error("an external pod deletion counted against backoffLimit 0")
	}
}

// TestJobPendingPodDeleted: a pod deleted before it started, which the
// job's status does not record yet, ends its placement PodDeleted as well
// and is not made again. (Whether the controller sees it being deleted or
// only gone, which TestDecidePendingPodGone covers, depends on timing.)
func TestJobPendingPodDeleted(t *testing.T) {
	e := newJobEnv(t)
	e.kernel("k", true, nil)
	job := e.job("early-gone", "k", func(j *v1alpha1.InferenceJob) { j.Spec.BackoffLimit = ptr.To[int32](0) })
	e.place(job, e.node)
	pod := e.pod("early-gone-1")
	e.waitCond(job, v1alpha1.ConditionRunning, metav1.ConditionFalse, v1alpha1.ReasonPodPending)
	if err := k8sClient.Delete(context.Background(), pod, client.GracePeriodSeconds(0)); err != nil {
		t.Fatal(err)
	}
	e.waitJob(job, placementEnded(1, 0, v1alpha1.PlacementFailed, v1alpha1.ReasonPodDeleted))
	got := e.waitJob(job, hasAttempts(2))
	if meta.IsStatusConditionTrue(got.Status.Conditions, v1alpha1.ConditionFailed) {
		t.Error("an external pod deletion counted against backoffLimit 0")
	}
	again := &corev1.Pod{}
	err := k8sClient.Get(context.Background(), client.ObjectKeyFromObject(pod), again)
	if err == nil && again.UID != pod.UID && again.Labels[LabelAttempt] == "1" {
		t.Errorf("pod %s of attempt 1 was made again (uid %s, was %s)", pod.Name, again.UID, pod.UID)
	}
}
