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
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/aivm-dev/aivm-operator/api/v1alpha1"
	"github.com/aivm-dev/aivm-operator/internal/committee"
)

// The job state machine is drawn in docs/job-lifecycle.md. decide is its
// one implementation: a pure function of the job and what the reconciler
// observed, so it runs again unchanged on a fresh copy after a Conflict.

// Reasons of a placement that fails an attempt without counting against
// spec.backoffLimit: the provider's fault or the user's suspension, not the job's.
var uncountedReasons = map[string]bool{
	v1alpha1.ReasonGPUUnhealthy:  true,
	v1alpha1.ReasonNodeNotReady:  true,
	v1alpha1.ReasonSuspended:     true,
	v1alpha1.ReasonAttemptFailed: true,
	v1alpha1.ReasonPodDeleted:    true,
	v1alpha1.ReasonPodNotOwned:   true,
	// The kubelet refused the pod for the node's capacity.
	v1alpha1.ReasonAdmissionRejected: true,
}

// maxFailovers bounds the attempts that do not count against the backoff
// limit, so a job that breaks every node it lands on still ends.
const maxFailovers = 10

// jobConfig are the reconciler settings decide depends on.
type jobConfig struct {
	nodeGrace      time.Duration
	imagePullGrace time.Duration
	backoffBase    time.Duration
	backoffMax     time.Duration
}

// nodeState is what the reconciler saw of a placement's node.
type nodeState struct {
	node    *corev1.Node // nil when the node does not exist
	gpuNode *v1alpha1.GPUNode
}

// observed is everything decide reads besides the job.
type observed struct {
	now    time.Time
	kernel *v1alpha1.Kernel // nil when not found
	// pods are the job's pods by name.
	pods map[string]*corev1.Pod
	// nodes are the nodes of the placements without an outcome.
	nodes map[string]nodeState
	// deleted are pods this process created for placements that do not
	// record them yet, and that the API server no longer has.
	deleted map[string]bool
	// foreign are pods with a placement's name that the manager did not
	// build for it, and why: never adopted (verifyPods).
	foreign map[string]string
}

// decision is what decide found besides the status it wrote.
type decision struct {
	// requeueAt is the earliest time a decision changes by itself
	// (backoff, deadline, grace periods); zero when none.
	requeueAt time.Time
	// createPods lists placements (indexes into status.placements) whose pod
	// should exist and does not.
	createPods []int
}

func (d *decision) wakeAt(t time.Time) {
	if d.requeueAt.IsZero() || t.Before(d.requeueAt) {
		d.requeueAt = t
	}
}

// finished reports whether the job succeeded or failed for good.
func finished(job *v1alpha1.InferenceJob) bool {
	return meta.IsStatusConditionTrue(job.Status.Conditions, v1alpha1.ConditionSucceeded) ||
		meta.IsStatusConditionTrue(job.Status.Conditions, v1alpha1.ConditionFailed)
}

func suspended(job *v1alpha1.InferenceJob) bool { return ptr.Deref(job.Spec.Suspend, false) }

// kernelAdmits reports whether jobs on kernel are admitted: it is Ready
// and carries its digest.
func kernelAdmits(kernel *v1alpha1.Kernel) bool {
	ready := kernelReady(kernel)
	return ready != nil && ready.Status == metav1.ConditionTrue && kernel.Status.KernelDigest != ""
}

// awaitsFirstAdmission reports whether the job is admissible and has never
// been admitted. Its admission (Admitted=True, attempt 1, startTime) is
// written by the scheduler together with its first scheduling decision,
// in one status write (admit); the job controller writes nothing for it
// until then.
func awaitsFirstAdmission(job *v1alpha1.InferenceJob, kernel *v1alpha1.Kernel) bool {
	return job.Status.Attempts == 0 && !suspended(job) && !finished(job) && kernelAdmits(kernel)
}

// admit records the job's admission: Admitted=True, its first attempt and
// startTime when it has none. The job controller calls it for a job
// admitted again (after a resume, or a Kernel that was not ready for a
// while); the scheduler for a job's first admission, with its first
// placement, so both write the same condition.
func admit(job *v1alpha1.InferenceJob, kernel string, now metav1.Time) {
	meta.SetStatusCondition(&job.Status.Conditions, metav1.Condition{
		Type: v1alpha1.ConditionAdmitted, Status: metav1.ConditionTrue, Reason: v1alpha1.ReasonAdmitted,
		Message: truncateMessage(fmt.Sprintf("kernel %s is ready", kernel)), ObservedGeneration: job.Generation, LastTransitionTime: now,
	})
	if job.Status.Attempts == 0 {
		job.Status.Attempts = 1
	}
	if job.Status.StartTime == nil {
		job.Status.StartTime = &now
	}
}

// awaitPods records what the job controller would write for an attempt
// whose pods are about to be made: Running=False PodPending and the
// observed generation. The scheduler's placement write carries it, so the
// pods' creation costs no status write of its own: their names and UIDs
// are recorded with the next change the job controller writes (the pods
// running, or ending), as decide does.
func awaitPods(job *v1alpha1.InferenceJob, attempt int32, now metav1.Time) {
	job.Status.ObservedGeneration = job.Generation
	meta.SetStatusCondition(&job.Status.Conditions, metav1.Condition{
		Type: v1alpha1.ConditionRunning, Status: metav1.ConditionFalse, Reason: v1alpha1.ReasonPodPending,
		Message: podsPendingMessage(attempt), ObservedGeneration: job.Generation, LastTransitionTime: now,
	})
}

// podsPendingMessage is the Running=False PodPending message of an attempt.
func podsPendingMessage(attempt int32) string {
	return fmt.Sprintf("attempt %d: waiting for pods to start", attempt)
}

// decide writes the job controller's fields of job.Status from obs.
func decide(job *v1alpha1.InferenceJob, obs *observed, cfg jobConfig) decision {
	var d decision
	if awaitsFirstAdmission(job, obs.kernel) {
		return d // the scheduler admits it with its first decision
	}
	st := &job.Status
	st.ObservedGeneration = job.Generation
	now := metav1.NewTime(obs.now)
	set := func(typ string, s metav1.ConditionStatus, reason, msg string) {
		meta.SetStatusCondition(&st.Conditions, metav1.Condition{
			Type: typ, Status: s, Reason: reason, Message: truncateMessage(msg),
			ObservedGeneration: job.Generation, LastTransitionTime: now,
		})
	}
	finish := func(typ, reason, msg string) {
		set(typ, metav1.ConditionTrue, reason, msg)
		if typ == v1alpha1.ConditionFailed {
			// kubectl's Succeeded column then shows why.
			set(v1alpha1.ConditionSucceeded, metav1.ConditionFalse, reason, msg)
		}
		set(v1alpha1.ConditionRunning, metav1.ConditionFalse, v1alpha1.ReasonFinished, msg)
		if st.CompletionTime == nil {
			st.CompletionTime = &now
		}
	}
	if finished(job) {
		return d
	}
	attempt := st.Attempts
	// closeOpen gives every open placement of the current attempt an outcome.
	// A pod that was still pending, and so not recorded yet, is recorded
	// with that outcome, so status names the pod the attempt ended with.
	closeOpen := func(outcome v1alpha1.PlacementOutcome, reason, msg string) {
		for i := range st.Placements {
			p := &st.Placements[i]
			if p.Attempt != attempt || p.Outcome != "" {
				continue
			}
			if p.PodUID == "" {
				if pod := obs.pods[placementPodName(job, p)]; pod != nil {
					p.Pod, p.PodUID = pod.Name, string(pod.UID)
				}
			}
			setOutcome(p, outcome, reason, msg, nil, now)
		}
	}

	// A result ends the job, whatever else happened meanwhile.
	if st.Result != nil {
		closeOpen(v1alpha1.PlacementSucceeded, v1alpha1.ReasonResultReceived, "result accepted")
		finish(v1alpha1.ConditionSucceeded, v1alpha1.ReasonResultReceived,
			fmt.Sprintf("result accepted; output digest %s", st.Result.OutputDigest))
		return d
	}
	if st.StartTime != nil && job.Spec.ActiveDeadlineSeconds != nil {
		deadline := st.StartTime.Add(time.Duration(*job.Spec.ActiveDeadlineSeconds) * time.Second)
		if !obs.now.Before(deadline) {
			msg := fmt.Sprintf("job ran longer than activeDeadlineSeconds %d", *job.Spec.ActiveDeadlineSeconds)
			closeOpen(v1alpha1.PlacementFailed, v1alpha1.ReasonDeadlineExceeded, msg)
			finish(v1alpha1.ConditionFailed, v1alpha1.ReasonDeadlineExceeded, msg)
			return d
		}
		d.wakeAt(deadline)
	}

	// Admission.
	if suspended(job) {
		set(v1alpha1.ConditionAdmitted, metav1.ConditionFalse, v1alpha1.ReasonSuspended, "spec.suspend is true")
		closeOpen(v1alpha1.PlacementFailed, v1alpha1.ReasonSuspended, "stopped: spec.suspend was set")
		set(v1alpha1.ConditionRunning, metav1.ConditionFalse, v1alpha1.ReasonSuspended, "spec.suspend is true")
		// As for a Kubernetes Job, the deadline counts again from the resume.
		st.StartTime = nil
		return d
	}
	kernel := obs.kernel
	admitted := false
	switch ready := kernelReady(kernel); {
	case kernel == nil:
		set(v1alpha1.ConditionAdmitted, metav1.ConditionFalse, v1alpha1.ReasonKernelNotFound,
			fmt.Sprintf("kernel %q not found in namespace %s", job.Spec.KernelRef.Name, job.Namespace))
	case ready == nil || ready.Status != metav1.ConditionTrue || kernel.Status.KernelDigest == "":
		reason, msg := "Unknown", "no Ready condition yet"
		if ready != nil {
			reason, msg = ready.Reason, ready.Message
		}
		set(v1alpha1.ConditionAdmitted, metav1.ConditionFalse, v1alpha1.ReasonKernelNotReady,
			fmt.Sprintf("kernel %s is not ready (%s): %s", kernel.Name, reason, msg))
	default:
		admitted = true
		started := st.StartTime != nil
		admit(job, kernel.Name, now)
		attempt = st.Attempts
		if !started && job.Spec.ActiveDeadlineSeconds != nil {
			d.wakeAt(obs.now.Add(time.Duration(*job.Spec.ActiveDeadlineSeconds) * time.Second))
		}
	}
	if attempt == 0 {
		set(v1alpha1.ConditionRunning, metav1.ConditionFalse, v1alpha1.ReasonWaitingForPlacement, "waiting for admission")
		return d
	}

	// The current attempt's placements: pods, their ends, node faults.
	var running, pending, open, total int
	for i := range st.Placements {
		p := &st.Placements[i]
		if p.Attempt != attempt {
			continue
		}
		total++
		if p.Outcome != "" {
			continue
		}
		name := placementPodName(job, p)
		if why, ok := obs.foreign[name]; ok {
			setOutcome(p, v1alpha1.PlacementFailed, v1alpha1.ReasonPodNotOwned,
				fmt.Sprintf("pod %s exists but is not the pod the operator builds for it (%s); it is not used", name, why), nil, now)
			continue
		}
		pod := obs.pods[name]
		if pod != nil && p.PodUID != "" && string(pod.UID) != p.PodUID {
			pod = nil // a pod of that name the job controller did not record
		}
		if pod == nil {
			if p.PodUID != "" || obs.deleted[name] {
				setOutcome(p, v1alpha1.PlacementFailed, v1alpha1.ReasonPodDeleted,
					fmt.Sprintf("pod %s was deleted before it finished", name), nil, now)
				continue
			}
			if admitted {
				d.createPods = append(d.createPods, i)
			}
			open++
			pending++
			continue
		}
		// A pod that only waits to start is not recorded yet: its name
		// and UID go into status with the next change written for it.
		record := func() { p.Pod, p.PodUID = pod.Name, string(pod.UID) }
		// A placement newer than what observe read (decide runs again on a
		// fresh copy after a Conflict) has a node nobody looked at: no
		// verdict on it this pass; the next reconcile reads it.
		ns, observedNode := obs.nodes[p.Node]
		if !observedNode {
			d.wakeAt(obs.now.Add(time.Second))
		}
		if reason, msg, ok := nodeFault(p, ns, obs.now, cfg.nodeGrace, &d); observedNode && ok {
			record()
			setOutcome(p, v1alpha1.PlacementFailed, reason, msg, nil, now)
			continue
		}
		out := podOutcome(pod, kernel, obs.now, cfg, &d)
		if out.outcome == v1alpha1.PlacementSucceeded && !hasMemberResult(st, attempt, p.Member) {
			out = podEnd{outcome: v1alpha1.PlacementFailed, reason: v1alpha1.ReasonNoResult,
				msg: "runtime exited 0 but no result of it was accepted", exitCode: out.exitCode}
		}
		if out.outcome != "" {
			record()
			setOutcome(p, out.outcome, out.reason, out.msg, out.exitCode, now)
			continue
		}
		open++
		if out.running {
			record()
			running++
		} else {
			pending++
		}
	}

	// The attempt's end: a committee decision, or members that failed.
	results, failed, failReason := attemptResults(st, attempt)
	if total > 0 {
		dec := committee.Decide(aggregation(kernel), max(total, 1), results, failed)
		if dec.Disagreement && distinctDigests(results) > 1 {
			msg := fmt.Sprintf("committee members %v disagree under policy %s", dec.Dissenters, aggregation(kernel))
			closeOpen(v1alpha1.PlacementFailed, v1alpha1.ReasonCommitteeDisagreement, msg)
			finish(v1alpha1.ConditionFailed, v1alpha1.ReasonCommitteeDisagreement, msg)
			return d
		}
		if dec.Disagreement || (open == 0 && failed > 0) || (failed > 0 && !canStillAgree(st, attempt, aggregation(kernel), total, results, failed)) {
			closeOpen(v1alpha1.PlacementFailed, v1alpha1.ReasonAttemptFailed,
				fmt.Sprintf("another member of attempt %d failed (%s)", attempt, failReason))
			return retry(job, obs, cfg, set, finish, d)
		}
	}
	switch {
	case total == 0:
		set(v1alpha1.ConditionRunning, metav1.ConditionFalse, v1alpha1.ReasonWaitingForPlacement,
			fmt.Sprintf("attempt %d waits for a placement", attempt))
	case running > 0:
		set(v1alpha1.ConditionRunning, metav1.ConditionTrue, v1alpha1.ReasonPodRunning,
			fmt.Sprintf("attempt %d: %d of %d pods running", attempt, running, total))
	case pending > 0:
		set(v1alpha1.ConditionRunning, metav1.ConditionFalse, v1alpha1.ReasonPodPending, podsPendingMessage(attempt))
	}
	return d
}

// retry starts the next attempt after the current one failed, once its
// backoff passed, or fails the job when no retry is left.
func retry(job *v1alpha1.InferenceJob, obs *observed, cfg jobConfig,
	set func(string, metav1.ConditionStatus, string, string), finish func(string, string, string), d decision) decision {
	st := &job.Status
	counted, failovers, lastReason := failureCounts(st)
	limit := ptr.Deref(job.Spec.BackoffLimit, 3)
	if counted > int(limit) {
		finish(v1alpha1.ConditionFailed, v1alpha1.ReasonBackoffLimitExceeded,
			fmt.Sprintf("%d attempts failed, more than backoffLimit %d; last: %s", counted, limit, lastReason))
		return d
	}
	if failovers > maxFailovers || len(st.Placements)+len(placementsOf(st, st.Attempts)) > 128 {
		finish(v1alpha1.ConditionFailed, v1alpha1.ReasonBackoffLimitExceeded,
			fmt.Sprintf("%d attempts moved off failing nodes; giving up; last: %s", failovers, lastReason))
		return d
	}
	// Failures of the provider's nodes (and suspension) retry at once; the
	// job's own failures wait 10s, 20s, 40s, ... capped.
	if !uncountedReasons[lastReasonOf(st, st.Attempts)] {
		backoff := cfg.backoffBase << max(counted-1, 0)
		if backoff > cfg.backoffMax || backoff <= 0 {
			backoff = cfg.backoffMax
		}
		next := lastFinished(st, st.Attempts).Add(backoff)
		if obs.now.Before(next) {
			set(v1alpha1.ConditionRunning, metav1.ConditionFalse, v1alpha1.ReasonBackoff,
				// An absolute time, so the message (and the status) stays
				// the same on every reconcile of the backoff.
				fmt.Sprintf("attempt %d failed (%s); attempt %d starts after %s (backoff %s)", st.Attempts, lastReason, st.Attempts+1,
					next.UTC().Format(time.RFC3339), backoff))
			d.wakeAt(next)
			return d
		}
	}
	st.Attempts++
	set(v1alpha1.ConditionRunning, metav1.ConditionFalse, v1alpha1.ReasonWaitingForPlacement,
		fmt.Sprintf("attempt %d waits for a placement after attempt %d failed (%s)", st.Attempts, st.Attempts-1, lastReason))
	return d
}

func kernelReady(k *v1alpha1.Kernel) *metav1.Condition {
	if k == nil {
		return nil
	}
	return meta.FindStatusCondition(k.Status.Conditions, v1alpha1.ConditionReady)
}

func aggregation(k *v1alpha1.Kernel) v1alpha1.AggregationPolicy {
	if k == nil || k.Spec.Committee.Aggregation == "" {
		return v1alpha1.AggregationMajority
	}
	return k.Spec.Committee.Aggregation
}

func setOutcome(p *v1alpha1.Placement, o v1alpha1.PlacementOutcome, reason, msg string, exit *int32, now metav1.Time) {
	p.Outcome, p.Reason, p.Message, p.ExitCode, p.FinishedTime = o, reason, truncateMessage(msg), exit, &now
}

func placementsOf(st *v1alpha1.InferenceJobStatus, attempt int32) []v1alpha1.Placement {
	var ps []v1alpha1.Placement
	for _, p := range st.Placements {
		if p.Attempt == attempt {
			ps = append(ps, p)
		}
	}
	return ps
}

func hasMemberResult(st *v1alpha1.InferenceJobStatus, attempt, member int32) bool {
	for _, r := range st.MemberResults {
		if r.Attempt == attempt && r.Member == member {
			return true
		}
	}
	return false
}

// attemptResults returns the attempt's member results, how many of its
// members failed, and the first failure's reason.
func attemptResults(st *v1alpha1.InferenceJobStatus, attempt int32) ([]v1alpha1.MemberResult, int, string) {
	var results []v1alpha1.MemberResult
	for _, r := range st.MemberResults {
		if r.Attempt == attempt {
			results = append(results, r)
		}
	}
	failed, reason := 0, ""
	for _, p := range placementsOf(st, attempt) {
		if p.Outcome == v1alpha1.PlacementFailed {
			failed++
			if reason == "" || reason == v1alpha1.ReasonAttemptFailed {
				reason = p.Reason
			}
		}
	}
	return results, failed, reason
}

// canStillAgree reports whether the attempt could still reach agreement if
// every member that has neither failed nor posted posted the leading
// digest. committee.Decide alone waits for such members, but under
// unanimous one failed member already rules agreement out.
func canStillAgree(st *v1alpha1.InferenceJobStatus, attempt int32, policy v1alpha1.AggregationPolicy, total int, results []v1alpha1.MemberResult, failed int) bool {
	counts := map[string]int{}
	best := "pending"
	for _, r := range results {
		counts[r.OutputDigest]++
		if counts[r.OutputDigest] > counts[best] {
			best = r.OutputDigest
		}
	}
	optimistic := append([]v1alpha1.MemberResult{}, results...)
	for _, p := range placementsOf(st, attempt) {
		if p.Outcome != v1alpha1.PlacementFailed && !hasMemberResult(st, attempt, p.Member) {
			optimistic = append(optimistic, v1alpha1.MemberResult{Attempt: attempt, Member: p.Member, OutputDigest: best})
		}
	}
	return !committee.Decide(policy, total, optimistic, failed).Disagreement
}

func distinctDigests(rs []v1alpha1.MemberResult) int {
	seen := map[string]bool{}
	for _, r := range rs {
		seen[r.OutputDigest] = true
	}
	return len(seen)
}

// lastReasonOf is the reason that failed the attempt: the first failed
// member's own reason (AttemptFailed only names the knock-on effect).
func lastReasonOf(st *v1alpha1.InferenceJobStatus, attempt int32) string {
	_, _, reason := attemptResults(st, attempt)
	return reason
}

// failureCounts returns how many attempts failed for a reason that counts
// against backoffLimit, how many failed over, and the latest reason.
func failureCounts(st *v1alpha1.InferenceJobStatus) (counted, failovers int, last string) {
	for a := int32(1); a <= st.Attempts; a++ {
		reason := lastReasonOf(st, a)
		if reason == "" {
			continue
		}
		last = reason
		if uncountedReasons[reason] {
			if reason != v1alpha1.ReasonSuspended {
				failovers++
			}
			continue
		}
		counted++
	}
	return counted, failovers, last
}

func lastFinished(st *v1alpha1.InferenceJobStatus, attempt int32) time.Time {
	var t time.Time
	for _, p := range placementsOf(st, attempt) {
		if p.FinishedTime != nil && p.FinishedTime.After(t) {
			t = p.FinishedTime.Time
		}
	}
	return t
}
