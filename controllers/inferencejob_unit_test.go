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
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	"github.com/aivm-dev/aivm-operator/api/v1alpha1"
)

// TestPodName: names fit 63 characters, and jobs whose names and
// attempts used to give the same name (job "a" attempt 1 member 2 and job
// "a-1" attempt 2 were both "a-1-2") get distinct ones.
func TestPodName(t *testing.T) {
	job := func(name, uid string) *v1alpha1.InferenceJob {
		return &v1alpha1.InferenceJob{ObjectMeta: metav1.ObjectMeta{Name: name, UID: types.UID(uid)}}
	}
	a, a1 := job("a", "uid-a"), job("a-1", "uid-a-1")
	long := job(strings.Repeat("a", 253), "uid-long")
	cases := []struct {
		job             *v1alpha1.InferenceJob
		attempt, member int32
		committee       bool
		wantPrefix      string
	}{
		{a, 1, 2, true, "a-"},
		{a1, 2, 0, false, "a-1-"},
		{long, 1, 0, false, "aaaa"},
		{long, 12, 7, true, "aaaa"},
	}
	seen := map[string]bool{}
	for _, c := range cases {
		got := PodName(c.job, c.attempt, c.member, c.committee)
		if !strings.HasPrefix(got, c.wantPrefix) {
			t.Errorf("PodName(%.20q, %d, %d) = %q, want the prefix %q", c.job.Name, c.attempt, c.member, got, c.wantPrefix)
		}
		if len(got) > 63 || len(validation.NameIsDNSSubdomain(got, false)) > 0 {
			t.Errorf("PodName(%.20q) = %q is not a valid pod name of at most 63 characters", c.job.Name, got)
		}
		if seen[got] {
			t.Errorf("PodName %q given twice", got)
		}
		seen[got] = true
	}
	if x, y := PodName(a, 1, 0, false), PodName(job("a", "another-uid"), 1, 0, false); x == y {
		t.Errorf("two jobs named a (in two namespaces) share the pod name %s", x)
	}
}

func TestExitReason(t *testing.T) {
	cases := []struct {
		code       int32
		message    string
		wantReason string
		wantIn     string
	}{
		{14, `{"reason":"InferenceTimeout","message":"no token in 300s"}`, "InferenceTimeout", "no token in 300s"},
		{12, `{"reason":"ModelInvalid","message":"bad header"}`, "ModelInvalid", "bad header"},
		{12, "", "EngineError", "code 12"},
		{11, `{"reason":"not pascal case!","message":"x"}`, "DigestMismatch", "x"},
		{99, "plain text", v1alpha1.ReasonRuntimeExited, "plain text"},
	}
	for _, c := range cases {
		reason, msg := exitReason(&corev1.ContainerStateTerminated{ExitCode: c.code, Message: c.message})
		if reason != c.wantReason || !strings.Contains(msg, c.wantIn) {
			t.Errorf("exit %d %q: %s %q, want %s containing %q", c.code, c.message, reason, msg, c.wantReason, c.wantIn)
		}
	}
}

// TestPodOutcomeAdmissionRejected: a pod the kubelet refused for the
// node's capacity ends AdmissionRejected, a reason not counted against
// backoffLimit; another failure reason passes through when PascalCase.
func TestPodOutcomeAdmissionRejected(t *testing.T) {
	for _, c := range []struct{ reason, want string }{
		{"OutOfnvidia.com/gpu", v1alpha1.ReasonAdmissionRejected},
		{"UnexpectedAdmissionError", v1alpha1.ReasonAdmissionRejected},
		{"Evicted", "Evicted"},
		{"not pascal", v1alpha1.ReasonPodFailed},
	} {
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p"}, Status: corev1.PodStatus{Phase: corev1.PodFailed, Reason: c.reason,
			Message: "Pod was rejected: Node didn't have enough resource: nvidia.com/gpu, requested: 1, used: 8, capacity: 8"}}
		var d decision
		out := podOutcome(pod, nil, time.Now(), jobConfig{}, &d)
		if out.outcome != v1alpha1.PlacementFailed || out.reason != c.want {
			t.Errorf("pod failed %s: %+v, want Failed/%s", c.reason, out, c.want)
		}
	}
	if !uncountedReasons[v1alpha1.ReasonAdmissionRejected] {
		t.Error("AdmissionRejected counts against backoffLimit")
	}
}

func TestPodOutcomeImagePull(t *testing.T) {
	now := time.Now()
	cfg := jobConfig{imagePullGrace: time.Minute}
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", CreationTimestamp: metav1.NewTime(now.Add(-30 * time.Second))},
		Status: corev1.PodStatus{Phase: corev1.PodPending, ContainerStatuses: []corev1.ContainerStatus{{Name: runtimeContainer,
			State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ImagePullBackOff", Message: "not found"}}}}}}
	var d decision
	if out := podOutcome(pod, nil, now, cfg, &d); out.outcome != "" || !d.requeueAt.Equal(now.Add(30*time.Second)) {
		t.Errorf("inside the grace: %+v, requeue %v", out, d.requeueAt)
	}
	if out := podOutcome(pod, nil, now.Add(31*time.Second), cfg, &d); out.reason != v1alpha1.ReasonImagePullFailed {
		t.Errorf("past the grace: %+v, want ImagePullFailed", out)
	}
}

func TestBuildPodMIG(t *testing.T) {
	job := &v1alpha1.InferenceJob{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "j", UID: "u"},
		Spec: v1alpha1.InferenceJobSpec{Input: v1alpha1.JobInput{SecretKeyRef: &v1alpha1.KeyReference{Name: "s", Key: "prompt"}}}}
	kernel := &v1alpha1.Kernel{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "k"},
		Spec: v1alpha1.KernelSpec{GPU: v1alpha1.KernelGPU{Count: 1, MIGProfile: "1g.10gb"}}}
	pod, err := buildPod(job, kernel, v1alpha1.Placement{Attempt: 1, Node: "n", GPUUUIDs: []string{"MIG-1"}}, podConfig{binding: GPUBindingDevicePlugin})
	if err != nil {
		t.Fatal(err)
	}
	lim := pod.Spec.Containers[0].Resources.Limits
	if q := lim["nvidia.com/mig-1g.10gb"]; q.Value() != 1 || len(lim) != 1 {
		t.Errorf("limits %v, want nvidia.com/mig-1g.10gb: 1 only", lim)
	}
	for _, v := range pod.Spec.Volumes {
		if v.Name == "input" && (v.Secret == nil || v.Secret.SecretName != InputSecretName(pod.Name) || v.Secret.Items[0].Key != "input" || v.Secret.Items[0].Path != "input") {
			t.Errorf("input volume %+v, want the manager's copy of the input at path input", v)
		}
	}
}

// TestDecideCommitteeMemberFails: under unanimous, one member failing ends
// the attempt: the others are stopped (AttemptFailed) and, the failure
// being the job's own, the next attempt waits for the backoff.
func TestDecideCommitteeMemberFails(t *testing.T) {
	now := time.Now()
	job := &v1alpha1.InferenceJob{ObjectMeta: metav1.ObjectMeta{Name: "j", Namespace: "ns", Generation: 1},
		Spec: v1alpha1.InferenceJobSpec{KernelRef: v1alpha1.LocalObjectReference{Name: "k"}}}
	job.Status.Attempts = 1
	for m := int32(0); m < 2; m++ {
		job.Status.Placements = append(job.Status.Placements, v1alpha1.Placement{Attempt: 1, Member: m, Node: "n", PodUID: "uid"})
	}
	kernel := &v1alpha1.Kernel{ObjectMeta: metav1.ObjectMeta{Name: "k", Namespace: "ns"},
		Spec: v1alpha1.KernelSpec{Committee: v1alpha1.Committee{Replicas: 2, Aggregation: v1alpha1.AggregationUnanimous}}}
	kernel.Status.KernelDigest = "sha256:x"
	kernel.Status.Conditions = []metav1.Condition{{Type: v1alpha1.ConditionReady, Status: metav1.ConditionTrue, Reason: "Ready"}}
	podOf := func(name string, phase corev1.PodPhase, st corev1.ContainerState) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, UID: "uid", CreationTimestamp: metav1.NewTime(now)},
			Status: corev1.PodStatus{Phase: phase, ContainerStatuses: []corev1.ContainerStatus{{Name: runtimeContainer, State: st}}}}
	}
	obs := &observed{now: now, kernel: kernel,
		pods: map[string]*corev1.Pod{
			PodName(job, 1, 0, true): podOf(PodName(job, 1, 0, true), corev1.PodFailed, corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 12}}),
			PodName(job, 1, 1, true): podOf(PodName(job, 1, 1, true), corev1.PodRunning, corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}),
		},
		nodes: map[string]nodeState{"n": {node: &corev1.Node{Status: corev1.NodeStatus{Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}}}}}},
	}
	d := decide(job, obs, jobConfig{nodeGrace: time.Minute, imagePullGrace: time.Minute, backoffBase: 10 * time.Second, backoffMax: time.Minute})
	p0, p1 := job.Status.Placements[0], job.Status.Placements[1]
	if p0.Reason != "EngineError" || p1.Outcome != v1alpha1.PlacementFailed || p1.Reason != v1alpha1.ReasonAttemptFailed {
		t.Errorf("placements %s/%s and %s/%s, want EngineError and AttemptFailed", p0.Outcome, p0.Reason, p1.Outcome, p1.Reason)
	}
	if job.Status.Attempts != 1 || !d.requeueAt.Equal(now.Add(10*time.Second)) {
		t.Errorf("attempts %d requeue %v, want 1 and a 10s backoff", job.Status.Attempts, d.requeueAt.Sub(now))
	}
}

// TestFirstAdmissionComesWithPlacement: the job controller writes nothing
// for a job it would admit for the first time (the scheduler's decision
// admits it), and the scheduler queues exactly such jobs besides admitted
// ones without a placement.
func TestFirstAdmissionComesWithPlacement(t *testing.T) {
	ready := &v1alpha1.Kernel{ObjectMeta: metav1.ObjectMeta{Name: "k", Namespace: "ns"}}
	ready.Status.KernelDigest = "sha256:x"
	ready.Status.Conditions = []metav1.Condition{{Type: v1alpha1.ConditionReady, Status: metav1.ConditionTrue, Reason: "Ready"}}
	notReady := ready.DeepCopy()
	notReady.Status.Conditions[0].Status = metav1.ConditionFalse
	fresh := func(change func(*v1alpha1.InferenceJob)) *v1alpha1.InferenceJob {
		j := &v1alpha1.InferenceJob{ObjectMeta: metav1.ObjectMeta{Name: "j", Namespace: "ns", Generation: 1},
			Spec: v1alpha1.InferenceJobSpec{KernelRef: v1alpha1.LocalObjectReference{Name: "k"}}}
		if change != nil {
			change(j)
		}
		return j
	}
	admitted := func(j *v1alpha1.InferenceJob) { admit(j, "k", metav1.Now()) }
	placed := func(j *v1alpha1.InferenceJob) {
		admitted(j)
		j.Status.Placements = []v1alpha1.Placement{{Attempt: 1, Node: "n"}}
	}
	suspend := func(j *v1alpha1.InferenceJob) { j.Spec.Suspend = ptr.To(true) }
	for _, tc := range []struct {
		name          string
		job           *v1alpha1.InferenceJob
		kernel        *v1alpha1.Kernel
		jobController bool // the job controller writes its status
		needs         bool // the scheduler places it
	}{
		{"never admitted, kernel ready", fresh(nil), ready, false, true},
		{"never admitted, kernel not ready", fresh(nil), notReady, true, false},
		{"never admitted, kernel missing", fresh(nil), nil, true, false},
		{"never admitted, suspended", fresh(suspend), ready, true, false},
		{"admitted, no placement", fresh(admitted), ready, true, true},
		{"admitted and placed", fresh(placed), ready, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := needsPlacement(tc.job, tc.kernel); got != tc.needs {
				t.Errorf("needsPlacement = %v, want %v", got, tc.needs)
			}
			j := tc.job.DeepCopy()
			decide(j, &observed{now: time.Now(), kernel: tc.kernel, pods: map[string]*corev1.Pod{}, nodes: map[string]nodeState{}},
				jobConfig{nodeGrace: time.Minute, imagePullGrace: time.Minute, backoffBase: time.Second, backoffMax: time.Minute})
			if wrote := !equality.Semantic.DeepEqual(j.Status, tc.job.Status); wrote != tc.jobController {
				t.Errorf("job controller changed status: %v, want %v (%+v)", wrote, tc.jobController, j.Status)
			}
		})
	}
}

// TestDecidePendingPodGone: a placement whose pod waits to start is not
// recorded; once that pod is gone, the controller makes it again unless
// it knows it made it (obs.deleted), in which case the placement ends
// PodDeleted. A pending pod costs no status change; a running one is
// recorded.
// TestDecideUnobservedNode: decide runs again on a fresh copy after a
// Conflict, where the scheduler may have written a placement whose node
// observe never read. That node is not "gone": no NodeNotReady, the pod is
// made, and the controller looks again soon. A node read and missing is.
func TestDecideUnobservedNode(t *testing.T) {
	now := time.Now()
	kernel := &v1alpha1.Kernel{ObjectMeta: metav1.ObjectMeta{Name: "k", Namespace: "ns"}}
	kernel.Status.KernelDigest = "sha256:x"
	kernel.Status.Conditions = []metav1.Condition{{Type: v1alpha1.ConditionReady, Status: metav1.ConditionTrue, Reason: "Ready"}}
	job := &v1alpha1.InferenceJob{ObjectMeta: metav1.ObjectMeta{Name: "j", Namespace: "ns", Generation: 1},
		Spec: v1alpha1.InferenceJobSpec{KernelRef: v1alpha1.LocalObjectReference{Name: "k"}}}
	admit(job, "k", metav1.NewTime(now))
	job.Status.Placements = []v1alpha1.Placement{{Attempt: 1, Node: "n"}}
	running := map[string]*corev1.Pod{PodName(job, 1, 0, false): {ObjectMeta: metav1.ObjectMeta{Name: PodName(job, 1, 0, false), UID: "uid"},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, ContainerStatuses: []corev1.ContainerStatus{{Name: runtimeContainer,
			State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}}}}}

	unseen := job.DeepCopy()
	d := decide(unseen, &observed{now: now, kernel: kernel, pods: running, nodes: map[string]nodeState{}}, jobConfig{nodeGrace: time.Minute})
	if p := unseen.Status.Placements[0]; p.Outcome != "" || d.requeueAt.IsZero() {
		t.Errorf("a node observe did not read: placement %s/%s, requeue %v; want it open and a look again", p.Outcome, p.Reason, d.requeueAt)
	}
	gone := job.DeepCopy()
	decide(gone, &observed{now: now, kernel: kernel, pods: running, nodes: map[string]nodeState{"n": {}}}, jobConfig{nodeGrace: time.Minute})
	if p := gone.Status.Placements[0]; p.Reason != v1alpha1.ReasonNodeNotReady {
		t.Errorf("a node read and missing: placement %s/%s, want NodeNotReady", p.Outcome, p.Reason)
	}
}

func TestDecidePendingPodGone(t *testing.T) {
	now := time.Now()
	kernel := &v1alpha1.Kernel{ObjectMeta: metav1.ObjectMeta{Name: "k", Namespace: "ns"}}
	kernel.Status.KernelDigest = "sha256:x"
	kernel.Status.Conditions = []metav1.Condition{{Type: v1alpha1.ConditionReady, Status: metav1.ConditionTrue, Reason: "Ready"}}
	placed := func() *v1alpha1.InferenceJob {
		job := &v1alpha1.InferenceJob{ObjectMeta: metav1.ObjectMeta{Name: "j", Namespace: "ns", Generation: 1},
			Spec: v1alpha1.InferenceJobSpec{KernelRef: v1alpha1.LocalObjectReference{Name: "k"}}}
		admit(job, "k", metav1.NewTime(now))
		job.Status.Placements = []v1alpha1.Placement{{Attempt: 1, Node: "n"}}
		awaitPods(job, 1, metav1.NewTime(now))
		return job
	}
	podName := PodName(placed(), 1, 0, false)
	ready := map[string]nodeState{"n": {node: &corev1.Node{Status: corev1.NodeStatus{Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}}}}}}
	pod := func(phase corev1.PodPhase, st corev1.ContainerState) map[string]*corev1.Pod {
		return map[string]*corev1.Pod{podName: {ObjectMeta: metav1.ObjectMeta{Name: podName, UID: "uid", CreationTimestamp: metav1.NewTime(now)},
			Status: corev1.PodStatus{Phase: phase, ContainerStatuses: []corev1.ContainerStatus{{Name: runtimeContainer, State: st}}}}}
	}
	pending := pod(corev1.PodPending, corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ContainerCreating"}})
	// observe is what the controller sees at at: pods, and the pods it made
	// that are gone.
	observe := func(at time.Time, pods map[string]*corev1.Pod, deleted ...string) *observed {
		obs := &observed{now: at, kernel: kernel, pods: pods, nodes: ready, deleted: map[string]bool{}}
		for _, name := range deleted {
			obs.deleted[name] = true
		}
		return obs
	}

	job := placed()
	before := job.Status.DeepCopy()
	d := decide(job, observe(now, map[string]*corev1.Pod{}), jobConfig{})
	if len(d.createPods) != 1 || !equality.Semantic.DeepEqual(before, &job.Status) {
		t.Errorf("no pod yet: createPods %v, status changed %v", d.createPods, !equality.Semantic.DeepEqual(before, &job.Status))
	}

	job = placed()
	d = decide(job, observe(now, pending), jobConfig{})
	if len(d.createPods) != 0 || !equality.Semantic.DeepEqual(before, &job.Status) {
		t.Errorf("pending pod: createPods %v, status changed to %+v", d.createPods, job.Status)
	}

	job = placed()
	decide(job, observe(now, pod(corev1.PodRunning, corev1.ContainerState{Running: &corev1.ContainerStateRunning{}})), jobConfig{})
	if p := job.Status.Placements[0]; p.Pod != podName || p.PodUID != "uid" {
		t.Errorf("running pod not recorded: %+v", p)
	}

	// An attempt ended while its pod waits to start names that pod.
	job = placed()
	job.Spec.ActiveDeadlineSeconds = ptr.To[int64](1)
	decide(job, observe(now.Add(time.Minute), pending), jobConfig{})
	if p := job.Status.Placements[0]; p.Reason != v1alpha1.ReasonDeadlineExceeded || p.Pod != podName || p.PodUID != "uid" {
		t.Errorf("pending pod at the deadline: placement %+v, want DeadlineExceeded naming pod %s", p, podName)
	}

	job = placed()
	d = decide(job, observe(now, map[string]*corev1.Pod{}, podName), jobConfig{})
	if p := job.Status.Placements[0]; len(d.createPods) != 0 || p.Outcome != v1alpha1.PlacementFailed || p.Reason != v1alpha1.ReasonPodDeleted {
		t.Errorf("a pod made here and gone: createPods %v, placement %+v, want PodDeleted", d.createPods, p)
	}
}

// TestCreatedPodsByUID: what the controller made for a job is not taken
// for what it made for another job of the same name.
func TestCreatedPodsByUID(t *testing.T) {
	var c createdPods
	first := &v1alpha1.InferenceJob{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "j", UID: "one"}}
	again := &v1alpha1.InferenceJob{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "j", UID: "two"}}
	c.add(first, "j-1")
	if !c.has(first, "j-1") || c.has(first, "j-2") || c.has(again, "j-1") {
		t.Errorf("after one pod of the first job: has %v %v %v, want true false false", c.has(first, "j-1"), c.has(first, "j-2"), c.has(again, "j-1"))
	}
	c.add(again, "j-2")
	if c.has(first, "j-1") || !c.has(again, "j-2") {
		t.Error("the job made again under its name still sees the first job's pods, or not its own")
	}
	c.forgetJob(types.NamespacedName{Namespace: "ns", Name: "j"})
	if c.has(again, "j-2") {
		t.Error("a forgotten job still has pods")
	}
}
