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

package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/aivm-dev/aivm-operator/api/v1alpha1"
	"github.com/aivm-dev/aivm-operator/internal/devenv"
	"github.com/aivm-dev/aivm-operator/runtime-image/engine/builtin/testmodel"
)

// demoNamespace holds the demo's objects.
const demoNamespace = "demo"

// demoTimeout bounds the wait for the demo's jobs.
const demoTimeout = 5 * time.Minute

// runDemo generates a small seeded GPT-2 snapshot, serves it over HTTP as a
// file-set Model, applies a Kernel, a committee Kernel and a few jobs,
// waits for them to succeed and be reported, prints a table and verifies
// one receipt against the chain.
func runDemo(ctx context.Context, env *devenv.Env, dir string, stdout, stderr io.Writer) error {
	files, base, stop, err := serveDemoModel(filepath.Join(dir, "demo-model"))
	if err != nil {
		return err
	}
	defer stop()
	c := env.Client
	prompts := map[string]string{
		"hello":     "Hello world",
		"story":     "Once upon a time",
		"committee": "The answer is",
	}
	objs := []client.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: demoNamespace}},
		&v1alpha1.Model{
			ObjectMeta: metav1.ObjectMeta{Namespace: demoNamespace, Name: "gpt2-tiny"},
			Spec: v1alpha1.ModelSpec{BaseURI: base, Files: files, Format: v1alpha1.ModelFormatSafetensors,
				GPUMemory: resource.MustParse("1Gi")},
		},
		demoKernel("gpt2-tiny-builtin", 1),
		demoKernel("gpt2-tiny-committee", 3),
	}
	for _, name := range []string{"hello", "story", "committee"} {
		kernel := "gpt2-tiny-builtin"
		if name == "committee" {
			kernel = "gpt2-tiny-committee"
		}
		prompt := prompts[name]
		objs = append(objs, &v1alpha1.InferenceJob{
			ObjectMeta: metav1.ObjectMeta{Namespace: demoNamespace, Name: name},
			Spec: v1alpha1.InferenceJobSpec{
				KernelRef:  v1alpha1.LocalObjectReference{Name: kernel},
				Input:      v1alpha1.JobInput{Text: &prompt},
				Parameters: v1alpha1.GenerationParameters{MaxTokens: 12, Temperature: "0", Seed: ptr.To[int64](1)},
			},
		})
	}
	for _, o := range objs {
		if err := c.Create(ctx, o); err != nil {
			return fmt.Errorf("demo: create %T %s: %w", o, o.GetName(), err)
		}
	}
	fmt.Fprintln(stderr, "demo: applied a Model, two Kernels and 3 InferenceJobs (one a committee of 3); waiting")
	jobs, err := waitDemoJobs(ctx, c, len(prompts), stderr)
	if err != nil {
		return err
	}
	printDemoTable(ctx, c, jobs, stdout)
	// One receipt, fetched and verified against the chain as a user would:
	// aivmctl receipt get JOB | aivmctl receipt verify --rpc URL -
	var rec bytes.Buffer
	if err := receiptGet(ctx, []string{"--kubeconfig", env.Kubeconfig, "-n", demoNamespace, "hello"}, nil, &rec, stderr); err != nil {
		return fmt.Errorf("demo: receipt get: %w", err)
	}
	fmt.Fprintf(stdout, "\n$ aivmctl receipt get -n %s hello | aivmctl receipt verify --rpc %s --signer %s -\n",
		demoNamespace, env.Chain.RPCURL(), env.Provider)
	if err := receiptVerify(ctx, []string{"--rpc", env.Chain.RPCURL(), "--signer", env.Provider, "-"}, &rec, stdout, stderr); err != nil {
		return fmt.Errorf("demo: receipt verify: %w", err)
	}
	return nil
}

func demoKernel(name string, replicas int32) *v1alpha1.Kernel {
	return &v1alpha1.Kernel{
		ObjectMeta: metav1.ObjectMeta{Namespace: demoNamespace, Name: name},
		Spec: v1alpha1.KernelSpec{
			ModelRef:    v1alpha1.LocalObjectReference{Name: "gpt2-tiny"},
			Runtime:     v1alpha1.KernelRuntime{Image: devenv.RuntimeImage, Engine: v1alpha1.EngineBuiltin},
			GPU:         v1alpha1.KernelGPU{Count: 1, Memory: ptr.To(resource.MustParse("1Gi"))},
			Determinism: v1alpha1.Determinism{Seed: ptr.To[int64](42)},
			Committee:   v1alpha1.Committee{Replicas: replicas},
		},
	}
}

// serveDemoModel writes the snapshot into dir and serves it on loopback.
func serveDemoModel(dir string) ([]v1alpha1.ModelFile, string, func(), error) {
	sums, err := testmodel.Write(dir, testmodel.Default)
	if err != nil {
		return nil, "", nil, fmt.Errorf("demo: write model: %w", err)
	}
	files := make([]v1alpha1.ModelFile, 0, len(sums))
	for p, s := range sums {
		files = append(files, v1alpha1.ModelFile{Path: p, SHA256: s})
	}
	sort.Slice(files, func(i, j int) bool { return files[i].Path < files[j].Path })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, "", nil, fmt.Errorf("demo: serve model: %w", err)
	}
	srv := &http.Server{Handler: http.FileServer(http.Dir(dir)), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	return files, "http://" + ln.Addr().String() + "/", func() { _ = srv.Close() }, nil
}

// waitDemoJobs waits until every demo job is Succeeded and Reported,
// printing progress; a Failed job ends the wait.
func waitDemoJobs(ctx context.Context, c client.Client, n int, stderr io.Writer) ([]v1alpha1.InferenceJob, error) {
	start := time.Now()
	last := time.Time{}
	for {
		var list v1alpha1.InferenceJobList
		if err := c.List(ctx, &list, client.InNamespace(demoNamespace)); err != nil {
			return nil, err
		}
		done := 0
		var states []string
		for _, j := range list.Items {
			if meta.IsStatusConditionTrue(j.Status.Conditions, "Failed") {
				cond := meta.FindStatusCondition(j.Status.Conditions, "Failed")
				return nil, fmt.Errorf("demo: job %s failed: %s: %s", j.Name, cond.Reason, cond.Message)
			}
			st := "pending"
			switch {
			case meta.IsStatusConditionTrue(j.Status.Conditions, "Reported"):
				st = "reported"
				done++
			case meta.IsStatusConditionTrue(j.Status.Conditions, "Succeeded"):
				st = "succeeded"
			case meta.IsStatusConditionTrue(j.Status.Conditions, "Running"):
				st = "running"
			case meta.IsStatusConditionTrue(j.Status.Conditions, "Scheduled"):
				st = "scheduled"
			}
			states = append(states, j.Name+"="+st)
		}
		if done == n {
			fmt.Fprintf(stderr, "demo: %d jobs succeeded and reported in %s\n", n, time.Since(start).Round(time.Second))
			sort.Slice(list.Items, func(i, j int) bool { return list.Items[i].Name < list.Items[j].Name })
			return list.Items, nil
		}
		if time.Since(start) > demoTimeout {
			return nil, fmt.Errorf("demo: jobs not done within %s: %s", demoTimeout, strings.Join(states, " "))
		}
		if time.Since(last) > 10*time.Second {
			sort.Strings(states)
			fmt.Fprintf(stderr, "demo: %s (%s)\n", strings.Join(states, " "), time.Since(start).Round(time.Second))
			last = time.Now()
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// printDemoTable prints job, node, GPU, the output's first words, output
// digest, tx hash and block height.
func printDemoTable(ctx context.Context, c client.Client, jobs []v1alpha1.InferenceJob, stdout io.Writer) {
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "JOB\tNODE\tGPU\tOUTPUT\tOUTPUT DIGEST\tTX\tHEIGHT")
	for _, j := range jobs {
		var nodes, gpus []string
		for _, p := range j.Status.Placements {
			if j.Status.Result != nil && p.Attempt == j.Status.Result.Attempt {
				nodes = append(nodes, p.Node)
				for _, g := range p.GPUUUIDs {
					gpus = append(gpus, shortID(g))
				}
			}
		}
		output, digest, tx, height := "", "", "", ""
		if r := j.Status.Result; r != nil && r.OutputConfigMapRef != nil {
			var cm corev1.ConfigMap
			if err := c.Get(ctx, client.ObjectKey{Namespace: j.Namespace, Name: r.OutputConfigMapRef.Name}, &cm); err == nil {
				output = firstWords(cm.Data[r.OutputKey], 6)
			}
			digest = shortID(r.OutputDigest)
		}
		if ch := j.Status.Chain; ch != nil {
			tx, height = shortID(ch.TxHash), fmt.Sprint(ch.Height)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%q\t%s\t%s\t%s\n", j.Name, strings.Join(nodes, ","), strings.Join(gpus, ","), output, digest, tx, height)
	}
	_ = tw.Flush()
}

func shortID(s string) string {
	if len(s) > 12 {
		return s[:12]
	}
	return s
}

func firstWords(s string, n int) string {
	w := strings.Fields(s)
	if len(w) > n {
		return strings.Join(w[:n], " ") + " ..."
	}
	return strings.Join(w, " ")
}

// errDemoNodes explains why a demo needs three nodes.
var errDemoNodes = errors.New("--demo runs a committee of 3, which needs 3 nodes: pass at least three --nodes profiles")

// checkDemoNodes refuses a demo with fewer than three nodes.
func checkDemoNodes(profiles []string) error {
	if len(profiles) < 3 {
		return errDemoNodes
	}
	return nil
}
