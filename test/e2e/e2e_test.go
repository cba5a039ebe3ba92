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

// Package e2e runs the whole provider on the local dev environment
// (internal/devenv): real kube-apiserver and etcd, the manager and node
// agent binaries, job pods run as local aivm-runtime processes, and the
// devnet chain. The tests take minutes (binaries are built first), so they
// run only with AIVM_E2E=1, which `make test` and `make e2e` set.
package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/aivm-dev/aivm-operator/api/v1alpha1"
	"github.com/aivm-dev/aivm-operator/chain-client/rpc"
	"github.com/aivm-dev/aivm-operator/internal/devenv"
	"github.com/aivm-dev/aivm-operator/internal/testenv"
	"github.com/aivm-dev/aivm-operator/runtime-image/engine/builtin/testmodel"
)

// enabled says whether the end-to-end tests run.
func enabled(t *testing.T) {
	t.Helper()
	if os.Getenv("AIVM_E2E") != "1" {
		t.Skip("end-to-end tests run with AIVM_E2E=1 (make e2e): they build the binaries and start the whole dev environment")
	}
	if testing.Short() {
		t.Skip("end-to-end tests do not run under -short")
	}
	if os.Geteuid() != 0 {
		t.Skip("end-to-end tests need root: the node agent publishes model volumes as bind mounts (CI runs as root)")
	}
}

// startEnv builds the binaries and starts a dev environment with the given
// nodes; it is stopped when the test ends, its logs listed on failure.
func startEnv(t *testing.T, nodes ...string) (*devenv.Env, devenv.Binaries) {
	t.Helper()
	return startEnvWith(t, nil, nodes...)
}

// startEnvWith is startEnv with mod changing the configuration (binaries
// built) before the environment starts.
func startEnvWith(t *testing.T, mod func(*devenv.Config), nodes ...string) (*devenv.Env, devenv.Binaries) {
	t.Helper()
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	assets, err := testenv.Assets()
	if err != nil {
		t.Fatal(err)
	}
	kcm, err := testenv.ControllerManager()
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "aivm-e2e-")
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	bins, err := devenv.Build(ctx, root, filepath.Join(dir, "bin"), os.Stderr)
	if err != nil {
		t.Fatal(err)
	}
	cfg := devenv.Config{
		Dir: dir, RepoRoot: root, Assets: assets, ControllerManager: kcm, Bin: bins, Nodes: nodes,
		Progress: os.Stderr, Log: testr.New(t),
	}
	if mod != nil {
		mod(&cfg)
	}
	start := time.Now()
	env, err := devenv.Start(ctx, cfg)
	if err != nil {
		t.Fatalf("dev environment: %v (logs in %s)", err, filepath.Join(dir, "logs"))
	}
	t.Logf("dev environment ready in %s", time.Since(start).Round(time.Millisecond))
	t.Cleanup(func() {
		if err := env.Stop(); err != nil {
			t.Errorf("stop: %v", err)
		}
		if t.Failed() {
			t.Logf("logs kept in %s", env.LogDir())
			return
		}
		_ = os.RemoveAll(dir)
	})
	return env, bins
}

// serveModel writes the small seeded GPT-2 snapshot and serves it over
// HTTP; it returns the Model's files and base URI.
func serveModel(t *testing.T) ([]v1alpha1.ModelFile, string, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "gpt2-tiny")
	files, err := testmodel.Write(dir, testmodel.Default)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.FileServer(http.Dir(dir)))
	t.Cleanup(srv.Close)
	out := make([]v1alpha1.ModelFile, 0, len(files))
	for path, sum := range files {
		out = append(out, v1alpha1.ModelFile{Path: path, SHA256: sum})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out, srv.URL + "/", dir
}

// waitFor polls cond every second until it holds, logging what describe
// says every 15 seconds, and fails after limit.
func waitFor(t *testing.T, what string, limit time.Duration, cond func() (bool, error), describe func() string) {
	t.Helper()
	start := time.Now()
	last := start
	for {
		ok, err := cond()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if ok {
			t.Logf("%s after %s", what, time.Since(start).Round(time.Millisecond))
			return
		}
		if time.Since(start) > limit {
			t.Fatalf("%s: not within %s; %s", what, limit, describe())
		}
		if time.Since(last) > 15*time.Second {
			t.Logf("waiting for %s (%s): %s", what, time.Since(start).Round(time.Second), describe())
			last = time.Now()
		}
		time.Sleep(time.Second)
	}
}

// describeJob summarises a job and its pods for progress lines.
func describeJob(ctx context.Context, c client.Client, key client.ObjectKey) string {
	var job v1alpha1.InferenceJob
	if err := c.Get(ctx, key, &job); err != nil {
		return err.Error()
	}
	s := ""
	for _, cond := range job.Status.Conditions {
		s += fmt.Sprintf("%s=%s(%s) ", cond.Type, cond.Status, cond.Reason)
		if cond.Type == "Admitted" && cond.Status != metav1.ConditionTrue {
			s += fmt.Sprintf("[%s] ", cond.Message)
		}
	}
	for _, pl := range job.Status.Placements {
		if pl.Outcome != "" {
			s += fmt.Sprintf("attempt %d on %s: %s %s", pl.Attempt, pl.Node, pl.Outcome, pl.Reason)
			if pl.ExitCode != nil {
				s += fmt.Sprintf(" exit %d", *pl.ExitCode)
			}
			s += fmt.Sprintf(" [%s] ", pl.Message)
		}
	}
	var pods corev1.PodList
	_ = c.List(ctx, &pods, client.InNamespace(devenv.Namespace), client.MatchingLabels{"aivm.dev/job-namespace": key.Namespace})
	for _, p := range pods.Items {
		s += fmt.Sprintf("pod %s %s ", p.Name, p.Status.Phase)
		for _, cs := range p.Status.ContainerStatuses {
			if cs.State.Waiting != nil {
				s += fmt.Sprintf("[%s: %s] ", cs.State.Waiting.Reason, cs.State.Waiting.Message)
			}
			if cs.State.Terminated != nil {
				s += fmt.Sprintf("[exit %d: %s] ", cs.State.Terminated.ExitCode, cs.State.Terminated.Message)
			}
		}
	}
	return s
}

// builtinKernel returns the file-set Model serveModel serves (files under
// base) and a one-GPU builtin Kernel named name that runs it.
func builtinKernel(ns, name string, files []v1alpha1.ModelFile, base string) (*v1alpha1.Model, *v1alpha1.Kernel) {
	model := &v1alpha1.Model{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "gpt2-tiny"},
		Spec: v1alpha1.ModelSpec{
			BaseURI: base, Files: files, Format: v1alpha1.ModelFormatSafetensors,
			GPUMemory: resource.MustParse("1Gi"),
		},
	}
	kernel := &v1alpha1.Kernel{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: v1alpha1.KernelSpec{
			ModelRef:    v1alpha1.LocalObjectReference{Name: model.Name},
			Runtime:     v1alpha1.KernelRuntime{Image: devenv.RuntimeImage, Engine: v1alpha1.EngineBuiltin},
			GPU:         v1alpha1.KernelGPU{Count: 1, Memory: ptr.To(resource.MustParse("1Gi"))},
			Determinism: v1alpha1.Determinism{Seed: ptr.To[int64](42)},
		},
	}
	return model, kernel
}

// TestBuiltinJobRunsToSucceededAndReported applies a Model served from a
// local HTTP server, a builtin Kernel and an InferenceJob; the job's pod
// runs aivm-runtime as a process on a simulated A100 node with the model
// published by the node agent's CSI driver. The job must succeed with the
// output the builtin engine computes for the same prompt, and its signed
// result must be on the devnet chain under the provider's address.
func TestBuiltinJobRunsToSucceededAndReported(t *testing.T) {
	enabled(t)
	env, bins := startEnv(t, "dgxa100")
	ctx := t.Context()
	c := env.Client
	ns := "e2e"
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		t.Fatal(err)
	}
	files, base, modelDir := serveModel(t)
	model, kernel := builtinKernel(ns, "gpt2-tiny-builtin", files, base)
	prompt := "Hello world"
	job := &v1alpha1.InferenceJob{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "hello"},
		Spec: v1alpha1.InferenceJobSpec{
			KernelRef:  v1alpha1.LocalObjectReference{Name: kernel.Name},
			Input:      v1alpha1.JobInput{Text: &prompt},
			Parameters: v1alpha1.GenerationParameters{MaxTokens: 8, Temperature: "0", Seed: ptr.To[int64](1)},
		},
	}
	for _, o := range []client.Object{model, kernel, job} {
		if err := c.Create(ctx, o); err != nil {
			t.Fatalf("create %T: %v", o, err)
		}
	}
	key := client.ObjectKeyFromObject(job)
	describe := func() string { return describeJob(ctx, c, key) }
	condTrue := func(typ string) func() (bool, error) {
		return func() (bool, error) {
			if err := c.Get(ctx, key, job); err != nil {
				return false, err
			}
			if typ == "Succeeded" && meta.IsStatusConditionTrue(job.Status.Conditions, "Failed") {
				return false, fmt.Errorf("job failed: %s", describe())
			}
			return meta.IsStatusConditionTrue(job.Status.Conditions, typ), nil
		}
	}
	waitFor(t, "job Succeeded", 5*time.Minute, condTrue("Succeeded"), describe)
	waitFor(t, "job Reported", 3*time.Minute, condTrue("Reported"), describe)

	res := job.Status.Result
	if res == nil || res.OutputDigest == "" || res.OutputConfigMapRef == nil {
		t.Fatalf("result %+v", res)
	}
	if len(job.Status.Placements) == 0 || job.Status.Placements[0].Node != env.Nodes[0].Name {
		t.Errorf("placements %+v, want node %s", job.Status.Placements, env.Nodes[0].Name)
	}
	var cm corev1.ConfigMap
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: res.OutputConfigMapRef.Name}, &cm); err != nil {
		t.Fatal(err)
	}
	output, ok := cm.Data[res.OutputKey]
	if !ok {
		t.Fatalf("result ConfigMap %s has no key %s", cm.Name, res.OutputKey)
	}

	// The same engine, run directly on the same snapshot, computes the same
	// output: the pod ran the real builtin engine on the served model.
	out, err := exec.CommandContext(ctx, bins.Runtime, "generate", "--model-dir", modelDir, "--prompt", prompt,
		"--max-tokens", "8", "--temperature", "0", "--seed", "1", "--json").Output()
	if err != nil {
		t.Fatalf("aivm-runtime generate: %v", err)
	}
	var want struct {
		Output       string `json:"output"`
		OutputDigest string `json:"outputDigest"`
	}
	if err := json.Unmarshal(out, &want); err != nil {
		t.Fatal(err)
	}
	// The runtime speaks envelope digests ("sha256:<hex>"); job status and
	// the chain record hold the bare hex (docs/runtime-contract.md).
	if output != want.Output || res.OutputDigest != strings.TrimPrefix(want.OutputDigest, "sha256:") {
		t.Errorf("job output %q (digest %s), want %q (digest %s)", output, res.OutputDigest, want.Output, want.OutputDigest)
	}

	// The chain holds the signed result under the provider's address.
	if job.Status.Chain == nil || job.Status.Chain.TxHash == "" || job.Status.Chain.Height == 0 {
		t.Fatalf("chain status %+v", job.Status.Chain)
	}
	rc, err := rpc.New(env.Chain.RPCURL())
	if err != nil {
		t.Fatal(err)
	}
	stored, err := rc.Result(ctx, string(job.UID))
	if err != nil {
		t.Fatalf("query result of job %s on chain: %v", job.UID, err)
	}
	if stored.Provider != env.Provider || stored.Result.GetOutputDigest() != res.OutputDigest ||
		stored.Height != job.Status.Chain.Height || stored.Result.GetModelDigest() != res.ModelDigest {
		t.Errorf("on chain: provider %s height %d record %+v; want provider %s height %d output %s model %s",
			stored.Provider, stored.Height, stored.Result, env.Provider, job.Status.Chain.Height, res.OutputDigest, res.ModelDigest)
	}
	t.Logf("job %s: node %s, output %q, digest %s, tx %s at height %d", job.Name, job.Status.Placements[0].Node,
		output, res.OutputDigest, job.Status.Chain.TxHash, job.Status.Chain.Height)
}
