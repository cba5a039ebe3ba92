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
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/aivm-dev/aivm-operator/api/v1alpha1"
)

// How a placement ends, read from its pod and its node.

// Exit codes of aivm-runtime (docs/runtime-contract.md) and the placement
// reasons they map to when the termination message names none.
var exitReasons = map[int32]string{
	10: "BadInput",
	11: "DigestMismatch",
	12: "EngineError",
	13: "EngineStartTimeout",
	14: "InferenceTimeout",
	15: "OutOfMemory",
	16: "ResultRefused",
	17: "ResultEndpointUnreachable",
}

var pascalCase = regexp.MustCompile(`^[A-Z][A-Za-z0-9]{0,63}$`)

// nodeFault reports a fault of the placement's GPUs or node: an unhealthy
// GPU at once; a NotReady node, or a GPUNode whose heartbeat went stale,
// only once that lasted grace, so a blip changes nothing.
func nodeFault(p *v1alpha1.Placement, ns nodeState, now time.Time, grace time.Duration, d *decision) (string, string, bool) {
	if gn := ns.gpuNode; gn != nil {
		for _, uuid := range p.GPUUUIDs {
			for _, g := range gn.Status.GPUs {
				if g.UUID != uuid && !hasMIG(g, uuid) {
					continue
				}
				if g.Health == v1alpha1.GPUUnhealthy {
					return v1alpha1.ReasonGPUUnhealthy,
						fmt.Sprintf("GPU %s on node %s is unhealthy: %s", g.UUID, p.Node, g.HealthReason), true
				}
			}
		}
	}
	if ns.node == nil {
		return v1alpha1.ReasonNodeNotReady, fmt.Sprintf("node %s no longer exists", p.Node), true
	}
	check := func(c *metav1.Condition, what string) (string, string, bool) {
		if c == nil || c.Status == metav1.ConditionTrue {
			return "", "", false
		}
		since := c.LastTransitionTime.Time
		if now.Sub(since) < grace {
			d.wakeAt(since.Add(grace))
			return "", "", false
		}
		return v1alpha1.ReasonNodeNotReady,
			fmt.Sprintf("%s of node %s has been %s since %s (%s: %s)", what, p.Node, c.Status, since.UTC().Format(time.RFC3339), c.Reason, c.Message), true
	}
	var nodeReady *metav1.Condition
	for _, c := range ns.node.Status.Conditions {
		if c.Type == corev1.NodeReady {
			nodeReady = &metav1.Condition{Status: metav1.ConditionStatus(c.Status), Reason: c.Reason, Message: c.Message, LastTransitionTime: c.LastTransitionTime}
		}
	}
	if r, m, ok := check(nodeReady, "Ready"); ok {
		return r, m, ok
	}
	if gn := ns.gpuNode; gn != nil {
		if r, m, ok := check(meta.FindStatusCondition(gn.Status.Conditions, v1alpha1.ConditionReady), "the GPU agent's heartbeat"); ok {
			return r, m, ok
		}
	}
	return "", "", false
}

func hasMIG(g v1alpha1.GPUStatus, uuid string) bool {
	for _, m := range g.MIGDevices {
		if m.UUID == uuid {
			return true
		}
	}
	return false
}

// podEnd is how a pod ended, or that it still runs or waits.
type podEnd struct {
	outcome  v1alpha1.PlacementOutcome
	reason   string
	msg      string
	exitCode *int32
	running  bool
}

// terminationMessage is the runtime's /dev/termination-log line.
type terminationMessage struct {
	Reason  string `json:"reason"`
	Message string `json:"message"`
}

// podOutcome maps a pod's phase and container states to a placement outcome.
func podOutcome(pod *corev1.Pod, kernel *v1alpha1.Kernel, now time.Time, cfg jobConfig, d *decision) podEnd {
	if pod.DeletionTimestamp != nil {
		return podEnd{outcome: v1alpha1.PlacementFailed, reason: v1alpha1.ReasonPodDeleted,
			msg: fmt.Sprintf("pod %s was deleted before it finished", pod.Name)}
	}
	statuses := append(append([]corev1.ContainerStatus{}, pod.Status.InitContainerStatuses...), pod.Status.ContainerStatuses...)
	for _, cs := range statuses {
		if t := cs.State.Terminated; t != nil && t.Reason == "OOMKilled" {
			return podEnd{outcome: v1alpha1.PlacementFailed, reason: v1alpha1.ReasonOOMKilled, exitCode: ptr.To(t.ExitCode),
				msg: fmt.Sprintf("container %s was killed for exceeding its memory limit", cs.Name)}
		}
	}
	switch pod.Status.Phase {
	case corev1.PodSucceeded, corev1.PodFailed:
		for _, cs := range pod.Status.ContainerStatuses {
			if cs.Name != runtimeContainer || cs.State.Terminated == nil {
				continue
			}
			t := cs.State.Terminated
			if t.ExitCode == 0 {
				return podEnd{outcome: v1alpha1.PlacementSucceeded, reason: v1alpha1.ReasonResultReceived, msg: "runtime exited 0", exitCode: ptr.To[int32](0)}
			}
			reason, msg := exitReason(t)
			return podEnd{outcome: v1alpha1.PlacementFailed, reason: reason, msg: msg, exitCode: ptr.To(t.ExitCode)}
		}
		if pod.Status.Phase == corev1.PodSucceeded {
			return podEnd{outcome: v1alpha1.PlacementSucceeded, reason: v1alpha1.ReasonResultReceived, msg: "pod succeeded"}
		}
		reason := v1alpha1.ReasonPodFailed
		switch r := pod.Status.Reason; {
		case strings.HasPrefix(r, "OutOf") || r == "UnexpectedAdmissionError":
			// The kubelet refused the pod (OutOfnvidia.com/gpu, ...): the
			// node's capacity, not the job, so it is not counted.
			reason = v1alpha1.ReasonAdmissionRejected
		case pascalCase.MatchString(r):
			reason = pod.Status.Reason // Evicted, NodeLost, DeadlineExceeded, ...
		}
		return podEnd{outcome: v1alpha1.PlacementFailed, reason: reason,
			msg: strings.TrimSpace(fmt.Sprintf("pod %s failed: %s", pod.Name, pod.Status.Message))}
	case corev1.PodRunning:
		return podEnd{running: true}
	}
	// Pending: an image that cannot be pulled, or a pod that never starts.
	created := pod.CreationTimestamp.Time
	for _, cs := range statuses {
		w := cs.State.Waiting
		if w == nil {
			continue
		}
		switch w.Reason {
		case "InvalidImageName", "ErrImageNeverPull":
			return podEnd{outcome: v1alpha1.PlacementFailed, reason: v1alpha1.ReasonImagePullFailed,
				msg: fmt.Sprintf("container %s: %s: %s", cs.Name, w.Reason, w.Message)}
		case "ErrImagePull", "ImagePullBackOff":
			if now.Sub(created) >= cfg.imagePullGrace {
				return podEnd{outcome: v1alpha1.PlacementFailed, reason: v1alpha1.ReasonImagePullFailed,
					msg: fmt.Sprintf("container %s: %s: %s", cs.Name, w.Reason, w.Message)}
			}
			d.wakeAt(created.Add(cfg.imagePullGrace))
		}
	}
	startup := time.Duration(900) * time.Second
	if kernel != nil && kernel.Spec.Timeouts.StartupSeconds > 0 {
		startup = time.Duration(kernel.Spec.Timeouts.StartupSeconds) * time.Second
	}
	if now.Sub(created) >= startup {
		return podEnd{outcome: v1alpha1.PlacementFailed, reason: v1alpha1.ReasonPodStuckPending,
			msg: fmt.Sprintf("pod %s stayed Pending longer than the kernel's startupSeconds %d", pod.Name, int(startup.Seconds()))}
	}
	d.wakeAt(created.Add(startup))
	return podEnd{}
}

// exitReason maps a runtime exit to a reason: the runtime's own reason from
// its termination message when it gives a valid one, else the exit code's.
func exitReason(t *corev1.ContainerStateTerminated) (string, string) {
	reason, ok := exitReasons[t.ExitCode]
	if !ok {
		reason = v1alpha1.ReasonRuntimeExited
	}
	var tm terminationMessage
	detail := strings.TrimSpace(t.Message)
	if json.Unmarshal([]byte(detail), &tm) == nil {
		if pascalCase.MatchString(tm.Reason) {
			reason = tm.Reason
		}
		detail = tm.Message
	}
	msg := fmt.Sprintf("runtime exited with code %d (%s)", t.ExitCode, reason)
	if detail != "" {
		msg += ": " + detail
	}
	return reason, msg
}
