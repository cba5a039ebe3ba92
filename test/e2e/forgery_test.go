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
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1alpha1 "github.com/aivm-dev/aivm-operator/api/v1alpha1"
	"github.com/aivm-dev/aivm-operator/controllers"
	"github.com/aivm-dev/aivm-operator/internal/devenv"
	"github.com/aivm-dev/aivm-operator/runtime-image/envelope"
)

// TestForgeriesNeverReachTheChain runs the two forgeries that once put
// invented outputs on chain, on the dev environment, and checks what lands
// on the devnet:
//
//  1. a pod squatting the job's first pod name in the workload namespace,
//     with the job's labels and the runtime service account, made while the
//     job waits for its Kernel: it is never adopted (attempt 1 fails
//     PodNotOwned) and the job runs on attempt 2's pod;
//  2. what a tenant with edit in its own namespace can do there: its own
//     aivm-runtime service account, a pod with the running pod's exact
//     name and labels, a token minted for it with the result audience, and
//     an invented output with its own correct digest posted while the real
//     pod waits: 403.
//
// The chain then holds exactly one record of the job, and its output is the
// engine's, run directly on the same model.
func TestForgeriesNeverReachTheChain(t *testing.T) {
	enabled(t)
	hold, release := holdRuntime(t)
	env, bins := startEnvWith(t, hold, "dgxa100")
	ctx := t.Context()
	c := env.Client
	const ns = "forgery"
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		t.Fatal(err)
	}
	prompt := "Hello world"
	job := newJob(ns, "victim", "gpt2-tiny-builtin", prompt)
	if err := c.Create(ctx, job); err != nil {
		t.Fatal(err)
	}
	key := client.ObjectKeyFromObject(job)
	describe := func() string { return describeJob(ctx, c, key) }

	// 1. The squatter, before the Kernel exists.
	squatter := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: devenv.Namespace, Name: controllers.PodName(job, 1, 0, false),
			Labels: map[string]string{
				controllers.LabelJobNamespace: ns, controllers.LabelJobName: job.Name, controllers.LabelJobUID: string(job.UID),
				controllers.LabelAttempt: "1", controllers.LabelMember: "0", "app.kubernetes.io/managed-by": "aivm-operator",
			},
			Annotations: map[string]string{controllers.AnnotationJob: ns + "/" + job.Name},
		},
		Spec: corev1.PodSpec{
			ServiceAccountName: controllers.RuntimeServiceAccount, AutomountServiceAccountToken: ptr.To(false),
			RestartPolicy: corev1.RestartPolicyNever,
			Containers:    []corev1.Container{{Name: "runtime", Image: "attacker.example/forger:1"}},
		},
	}
	if err := c.Create(ctx, squatter); err != nil {
		t.Fatal(err)
	}
	files, base, modelDir := serveModel(t)
	model, kernel := builtinKernel(ns, "gpt2-tiny-builtin", files, base)
	for _, o := range []client.Object{model, kernel} {
		if err := c.Create(ctx, o); err != nil {
			t.Fatalf("create %T: %v", o, err)
		}
	}
	var pod *corev1.Pod
	waitFor(t, "attempt 1 failed PodNotOwned and attempt 2's pod made", 3*time.Minute, func() (bool, error) {
		if err := c.Get(ctx, key, job); err != nil {
			return false, err
		}
		first := placementOf(job, 1)
		if first != nil && first.Outcome != "" && first.Reason != v1alpha1.ReasonPodNotOwned {
			return false, fmt.Errorf("attempt 1 ended %s, want PodNotOwned: %s", first.Reason, describe())
		}
		if first == nil || first.Reason != v1alpha1.ReasonPodNotOwned || placementOf(job, 2) == nil {
			return false, nil
		}
		p := &corev1.Pod{}
		err := c.Get(ctx, client.ObjectKey{Namespace: devenv.Namespace, Name: controllers.PodName(job, 2, 0, false)}, p)
		if err != nil {
			return false, client.IgnoreNotFound(err)
		}
		pod = p
		return true, nil
	}, describe)

	// 2. The tenant's copy of the real pod, its token and an invented output.
	if err := c.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: controllers.RuntimeServiceAccount}}); err != nil {
		t.Fatal(err)
	}
	copycat := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: pod.Name, Labels: pod.Labels},
		Spec: corev1.PodSpec{
			ServiceAccountName: controllers.RuntimeServiceAccount, AutomountServiceAccountToken: ptr.To(false),
			Containers: []corev1.Container{{Name: "runtime", Image: "attacker.example/forger:1"}},
		},
	}
	if err := c.Create(ctx, copycat); err != nil {
		t.Fatal(err)
	}
	tr := &authnv1.TokenRequest{Spec: authnv1.TokenRequestSpec{
		Audiences: []string{"aivm.dev/result"}, ExpirationSeconds: ptr.To[int64](600),
		BoundObjectRef: &authnv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: copycat.Name, UID: copycat.UID},
	}}
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: controllers.RuntimeServiceAccount}}
	if err := c.SubResource("token").Create(ctx, sa, tr); err != nil {
		t.Fatalf("mint a token in the tenant's namespace: %v", err)
	}
	invented := "an output nobody computed"
	forged := &envelope.Envelope{
		Version: envelope.Version, JobUID: string(job.UID), Namespace: ns, Job: job.Name, Attempt: 2, Member: 0,
		Output: invented, FinishReason: "length", InputTokens: 2, OutputTokens: 4, Engine: "builtin",
		Digests: envelope.Digests{Input: envelope.Digest([]byte(prompt)), Output: envelope.Digest([]byte(invented))},
	}
	if err := c.Get(ctx, client.ObjectKeyFromObject(kernel), kernel); err != nil {
		t.Fatal(err)
	}
	forged.Digests.Model, forged.Digests.Kernel = "sha256:"+kernel.Status.ModelDigest, kernel.Status.KernelDigest
	code, body := postResult(t, env, tr.Status.Token, forged)
	if code != http.StatusForbidden || !strings.Contains(body, "workload namespace") {
		t.Errorf("the minted token's post: %d %s, want 403 naming the workload namespace", code, body)
	}

	// The real pod runs; the job ends with its output, on chain once.
	release()
	condTrue := func(typ string) func() (bool, error) {
		return func() (bool, error) {
			if err := c.Get(ctx, key, job); err != nil {
				return false, err
			}
			if meta.IsStatusConditionTrue(job.Status.Conditions, v1alpha1.ConditionFailed) {
				return false, fmt.Errorf("job failed: %s", describe())
			}
			return meta.IsStatusConditionTrue(job.Status.Conditions, typ), nil
		}
	}
	waitFor(t, "job Reported", 5*time.Minute, condTrue(v1alpha1.ConditionReported), describe)
	out, err := exec.CommandContext(ctx, bins.Runtime, "generate", "--model-dir", modelDir, "--prompt", prompt,
		"--max-tokens", "4", "--temperature", "0", "--seed", "1", "--json").Output()
	if err != nil {
		t.Fatalf("aivm-runtime generate: %v", err)
	}
	var want struct {
		OutputDigest string `json:"outputDigest"`
	}
	if err := json.Unmarshal(out, &want); err != nil {
		t.Fatal(err)
	}
	if got := job.Status.Result.OutputDigest; got != strings.TrimPrefix(want.OutputDigest, "sha256:") || got == strings.TrimPrefix(forged.Digests.Output, "sha256:") {
		t.Errorf("signed output digest %s, want the engine's %s", got, want.OutputDigest)
	}
	checkOnChainOnce(t, env, []v1alpha1.InferenceJob{*job})
	still := &corev1.Pod{}
	if err := c.Get(ctx, client.ObjectKeyFromObject(squatter), still); err != nil || still.UID != squatter.UID {
		t.Errorf("the squatted pod: %v; the manager leaves pods it did not make alone", err)
	}
}

// postResult posts env with token to the dev environment's result endpoint,
// trusting the CA the job pods trust.
func postResult(t *testing.T, env *devenv.Env, token string, e *envelope.Envelope) (int, string) {
	t.Helper()
	ca := &corev1.ConfigMap{}
	if err := env.Client.Get(t.Context(), client.ObjectKey{Namespace: devenv.Namespace, Name: controllers.ResultCAConfigMap}, ca); err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM([]byte(ca.Data["ca.crt"]))
	hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
	b, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, env.ResultURL, bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("post: %v", err)
	}
	defer func() { _ = resp.Body.Close() }()
	var buf bytes.Buffer
	_, _ = buf.ReadFrom(resp.Body)
	return resp.StatusCode, buf.String()
}
