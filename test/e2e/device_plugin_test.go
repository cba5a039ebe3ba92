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

package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1alpha1 "github.com/aivm-dev/aivm-operator/api/v1alpha1"
	"github.com/aivm-dev/aivm-operator/internal/devenv"
)

// TestDevicePluginMoreJobsThanGPUs runs the manager with
// --gpu-binding=device-plugin on one 8-GPU node whose process runner
// admits pods as the kubelet does (nvidia.com/gpu beyond allocatable is
// refused OutOfnvidia.com/gpu). Ten 1Gi jobs, their runtimes held: eight
// run, one per GPU, and two wait unplaced, saying that jobs take whole
// GPUs; no pod is refused. Released, all ten succeed and are reported.
func TestDevicePluginMoreJobsThanGPUs(t *testing.T) {
	enabled(t)
	hold, release := holdRuntime(t)
	env, _ := startEnvWith(t, func(cfg *devenv.Config) {
		hold(cfg)
		cfg.ManagerArgs = append(cfg.ManagerArgs, "--gpu-binding=device-plugin")
	}, "dgxa100")
	ctx := t.Context()
	c := env.Client
	const ns, n = "device-plugin", 10
	setUpKernel(t, env, ns)
	createJobs(t, c, ns, "job", n)

	var pods corev1.PodList
	waitFor(t, "8 pods running and 2 jobs waiting for a whole GPU", 4*time.Minute, func() (bool, error) {
		if err := c.List(ctx, &pods, client.InNamespace(devenv.Namespace), client.MatchingLabels{"aivm.dev/job-namespace": ns}); err != nil {
			return false, err
		}
		running := 0
		for _, p := range pods.Items {
			if p.Status.Phase == corev1.PodFailed {
				return false, fmt.Errorf("pod %s refused: %s %s", p.Name, p.Status.Reason, p.Status.Message)
			}
			if p.Status.Phase == corev1.PodRunning {
				running++
			}
		}
		counts, err := countJobs(ctx, c, ns)
		if err != nil {
			return false, err
		}
		waiting := 0
		for _, j := range counts.jobs {
			cond := meta.FindStatusCondition(j.Status.Conditions, v1alpha1.ConditionScheduled)
			if cond != nil && cond.Status == "False" && strings.Contains(cond.Message, "whole GPUs") {
				waiting++
			}
		}
		return running == 8 && len(pods.Items) == 8 && waiting == 2, nil
	}, func() string { return fmt.Sprintf("%d pods", len(pods.Items)) })
	for _, p := range pods.Items {
		q := p.Spec.Containers[0].Resources.Limits["nvidia.com/gpu"]
		if q.Value() != 1 || p.Spec.RuntimeClassName != nil {
			t.Errorf("pod %s: nvidia.com/gpu %v, runtimeClass %v; want one GPU from the device plugin", p.Name, q.String(), p.Spec.RuntimeClassName)
		}
	}

	// Released, the two waiting jobs take the GPUs of jobs that end. A
	// job's GPUs are released when its result is accepted, a moment before
	// its pod exits: a pod placed on such a GPU in between can still be
	// refused by the kubelet, and is then retried at once, uncounted
	// (AdmissionRejected). Nothing else may fail an attempt.
	release()
	done := waitAllReported(t, env, ns, n, 5*time.Minute)
	for _, j := range done.jobs {
		for _, p := range j.Status.Placements {
			if p.Outcome == v1alpha1.PlacementFailed && p.Reason != v1alpha1.ReasonAdmissionRejected {
				t.Errorf("job %s attempt %d failed %s: %s", j.Name, p.Attempt, p.Reason, describeJob(ctx, c, client.ObjectKeyFromObject(&j)))
			}
		}
	}
	checkOnChainOnce(t, env, done.jobs)
}
