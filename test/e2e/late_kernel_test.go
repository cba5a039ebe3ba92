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
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1alpha1 "github.com/aivm-dev/aivm-operator/api/v1alpha1"
	"github.com/aivm-dev/aivm-operator/internal/devenv"
)

// TestJobWaitsForItsKernel applies an InferenceJob whose Kernel does not
// exist yet: the job waits with Admitted=False naming the missing Kernel,
// no pod is made, and once the Model and Kernel are applied it runs to
// Succeeded without being touched.
func TestJobWaitsForItsKernel(t *testing.T) {
	enabled(t)
	env, _ := startEnv(t, "dgxh100")
	ctx := t.Context()
	c := env.Client
	ns := "late"
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		t.Fatal(err)
	}
	prompt := "Once upon a time"
	job := &v1alpha1.InferenceJob{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "early"},
		Spec: v1alpha1.InferenceJobSpec{
			KernelRef:  v1alpha1.LocalObjectReference{Name: "later"},
			Input:      v1alpha1.JobInput{Text: &prompt},
			Parameters: v1alpha1.GenerationParameters{MaxTokens: 4, Temperature: "0", Seed: ptr.To[int64](1)},
		},
	}
	if err := c.Create(ctx, job); err != nil {
		t.Fatal(err)
	}
	key := client.ObjectKeyFromObject(job)
	describe := func() string { return describeJob(ctx, c, key) }
	waitFor(t, "Admitted=False (KernelNotFound)", 2*time.Minute, func() (bool, error) {
		if err := c.Get(ctx, key, job); err != nil {
			return false, err
		}
		cond := meta.FindStatusCondition(job.Status.Conditions, v1alpha1.ConditionAdmitted)
		return cond != nil && cond.Status == metav1.ConditionFalse && cond.Reason == v1alpha1.ReasonKernelNotFound, nil
	}, describe)
	if cond := meta.FindStatusCondition(job.Status.Conditions, v1alpha1.ConditionAdmitted); !strings.Contains(cond.Message, "later") {
		t.Errorf("Admitted message %q does not name the missing kernel", cond.Message)
	}
	var pods corev1.PodList
	if err := c.List(ctx, &pods, client.InNamespace(devenv.Namespace), client.MatchingLabels{"aivm.dev/job-namespace": ns}); err != nil {
		t.Fatal(err)
	}
	if len(pods.Items) != 0 || len(job.Status.Placements) != 0 {
		t.Fatalf("a job without its kernel got pods %d, placements %+v", len(pods.Items), job.Status.Placements)
	}

	files, base, _ := serveModel(t)
	model, kernel := builtinKernel(ns, "later", files, base)
	for _, o := range []client.Object{model, kernel} {
		if err := c.Create(ctx, o); err != nil {
			t.Fatalf("create %T: %v", o, err)
		}
	}
	waitFor(t, "job Succeeded", 5*time.Minute, func() (bool, error) {
		if err := c.Get(ctx, key, job); err != nil {
			return false, err
		}
		return meta.IsStatusConditionTrue(job.Status.Conditions, v1alpha1.ConditionSucceeded), nil
	}, describe)
	if job.Status.Result == nil || job.Status.Result.OutputDigest == "" {
		t.Errorf("result %+v", job.Status.Result)
	}
}
