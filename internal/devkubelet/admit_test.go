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
	"fmt"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// TestAdmitExtendedResources: as the kubelet, a pod whose nvidia.com/gpu
// requests exceed what the node advertises minus what its running pods
// hold is refused OutOfnvidia.com/gpu with the kubelet's message; a pod
// asking for none is always admitted.
func TestAdmitExtendedResources(t *testing.T) {
	k := &Kubelet{workers: map[types.UID]*podWorker{}, finished: map[types.UID]bool{}}
	gpuPod := func(name string, n int64) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, UID: types.UID(name)}, Spec: corev1.PodSpec{Containers: []corev1.Container{
			{Name: "runtime"},
			{Name: "engine", Resources: corev1.ResourceRequirements{Limits: corev1.ResourceList{"nvidia.com/gpu": *resource.NewQuantity(n, resource.DecimalSI)}}},
		}}}
	}
	if reason, _ := k.admit(gpuPod("before", 1)); reason != "OutOfnvidia.com/gpu" {
		t.Errorf("a GPU pod on a node that advertises no GPUs: %q, want OutOfnvidia.com/gpu", reason)
	}
	k.SetCapacity("nvidia.com/gpu", *resource.NewQuantity(8, resource.DecimalSI))
	for i := range 4 {
		p := gpuPod(fmt.Sprintf("two-%d", i), 2)
		if reason, msg := k.admit(p); reason != "" {
			t.Fatalf("pod %d of 2 GPUs on 8: %s %s", i, reason, msg)
		}
		k.workers[p.UID] = &podWorker{pod: p}
	}
	reason, msg := k.admit(gpuPod("ninth", 1))
	if reason != "OutOfnvidia.com/gpu" || !strings.Contains(msg, "requested: 1, used: 8, capacity: 8") {
		t.Errorf("the ninth GPU: %q %q, want OutOfnvidia.com/gpu with the counts", reason, msg)
	}
	if reason, _ := k.admit(&corev1.Pod{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c"}}}}); reason != "" {
		t.Errorf("a pod without GPUs: %q", reason)
	}
}
