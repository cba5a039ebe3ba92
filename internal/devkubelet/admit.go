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

package devkubelet

import (
	"context"
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// admit is the kubelet's admission of extended resources (nvidia.com/gpu
// and other domain-qualified names): a pod whose requests, with those of
// the pods already running here, exceed the node's allocatable is refused
// with the kubelet's reason OutOf<resource> and its message. It returns ""
// when the pod is admitted. Call it with k.mu held.
func (k *Kubelet) admit(pod *corev1.Pod) (reason, message string) {
	want := extendedRequests(pod)
	if len(want) == 0 {
		return "", ""
	}
	used := map[corev1.ResourceName]int64{}
	for _, w := range k.workers {
		for name, n := range extendedRequests(w.pod) {
			used[name] += n
		}
	}
	capacity := k.capacity()
	names := make([]corev1.ResourceName, 0, len(want))
	for name := range want {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		c := capacity[name]
		if have := c.Value(); want[name]+used[name] > have {
			return "OutOf" + string(name), fmt.Sprintf("Pod was rejected: Node didn't have enough resource: %s, requested: %d, used: %d, capacity: %d",
				name, want[name], used[name], have)
		}
	}
	return "", ""
}

// extendedRequests sums the pod's requests (or limits, which the API
// server copies to requests) of extended resources over its containers.
func extendedRequests(pod *corev1.Pod) map[corev1.ResourceName]int64 {
	out := map[corev1.ResourceName]int64{}
	for _, c := range pod.Spec.Containers {
		for name, q := range c.Resources.Limits {
			if strings.Contains(string(name), "/") && !strings.HasPrefix(string(name), "kubernetes.io/") {
				out[name] += q.Value()
			}
		}
	}
	return out
}

// reject ends a pod the node cannot admit, as the kubelet does: phase
// Failed, the reason and message, no container ever started.
func (k *Kubelet) reject(ctx context.Context, pod *corev1.Pod, reason, message string) {
	k.cfg.Log.Info("Pod rejected", "pod", pod.Namespace+"/"+pod.Name, "reason", reason, "message", message)
	w := &podWorker{k: k, pod: pod, log: k.cfg.Log}
	w.updateStatus(ctx, func(st *corev1.PodStatus) {
		st.Phase, st.Reason, st.Message = corev1.PodFailed, reason, message
	})
}
