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
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/aivm-dev/aivm-operator/api/v1alpha1"
	"github.com/aivm-dev/aivm-operator/internal/devenv"
)

// Sizes of the fault tests (the issue's: 500 jobs, 10 kills, 60 s outage).
const (
	killJobs     = 500
	killCount    = 10
	outageJobs   = 40
	chainOutage  = 60 * time.Second
	quietProcess = true
)

// quiet drops the process runners' logs (hundreds of pods would flood the
// test log); the processes' own logs stay in the environment's log dir.
func quiet(cfg *devenv.Config) {
	if quietProcess {
		cfg.Log = logr.Discard()
	}
}

// TestManagerKilledRepeatedly runs killJobs jobs on two nodes while the
// manager is killed with SIGKILL killCount times (each time restarted with
// the same flags once the last one is ready). Every job must end Succeeded
// and Reported, every one in exactly one committed record on the devnet, and
// no job attempt may ever have had two pods.
func TestManagerKilledRepeatedly(t *testing.T) {
	enabled(t)
	env, _ := startEnvWith(t, quiet, "dgxa100", "dgxh100")
	ctx := t.Context()
	ns := "kills"
	setUpKernel(t, env, ns)
	pods := watchPods(t, env, devenv.Namespace)
	start := time.Now()
	createJobs(t, env.Client, ns, "job", killJobs)
	t.Logf("created %d jobs in %s", killJobs, time.Since(start).Round(time.Millisecond))

	for i := range killCount {
		time.Sleep(4 * time.Second)
		before, err := countJobs(ctx, env.Client, ns)
		if err != nil {
			t.Fatal(err)
		}
		if before.reported == killJobs {
			t.Fatalf("kill %d: the run ended before %d kills (%s); raise killJobs", i+1, killCount, before)
		}
		killed := time.Now()
		if err := env.RestartManager(ctx); err != nil {
			t.Fatalf("kill %d: %v", i+1, err)
		}
		t.Logf("kill %d at %s: %s; manager ready again after %s", i+1, killed.Sub(start).Round(time.Second), before,
			time.Since(killed).Round(time.Millisecond))
	}
	final := waitAllReported(t, env, ns, killJobs, 25*time.Minute)
	t.Logf("all %d jobs Succeeded and Reported %s after they were created", killJobs, time.Since(start).Round(time.Second))
	if d := pods.duplicates(); len(d) > 0 {
		t.Errorf("job attempts with two pods: %v", d)
	}
	checkOnChainOnce(t, env, final.jobs)
}

// TestChainOutage stops the devnet for at least chainOutage in the middle
// of a run:
// jobs keep running and succeeding while it is down, none is Reported then,
// and once it is back every result lands on chain exactly once.
func TestChainOutage(t *testing.T) {
	enabled(t)
	env, _ := startEnvWith(t, quiet, "dgxh100")
	ctx := t.Context()
	ns := "outage"
	setUpKernel(t, env, ns)
	half := outageJobs / 2
	createJobs(t, env.Client, ns, "before", half)
	var c jobCounts
	waitFor(t, "a first job Reported", 5*time.Minute, func() (bool, error) {
		var err error
		c, err = countJobs(ctx, env.Client, ns)
		return c.reported > 0, err
	}, func() string { return c.String() })

	chain := env.Chain
	if err := env.StopChain(); err != nil {
		t.Fatal(err)
	}
	down := time.Now()
	// The last block: a job may turn Reported after the stop for a batch
	// committed before it, never for a later one.
	lastHeight := chain.Height()
	t.Logf("devnet stopped at height %d: %s", lastHeight, c)
	createJobs(t, env.Client, ns, "during", outageJobs-half)
	waitFor(t, "every job Succeeded while the chain is down", 5*time.Minute, func() (bool, error) {
		var err error
		c, err = countJobs(ctx, env.Client, ns)
		return c.succeeded == outageJobs, err
	}, func() string { return c.String() })
	time.Sleep(time.Until(down.Add(chainOutage)))
	c, err := countJobs(ctx, env.Client, ns)
	if err != nil {
		t.Fatal(err)
	}
	for _, j := range c.jobs {
		// Reported means on chain: nothing can have landed while it was down.
		if meta.IsStatusConditionTrue(j.Status.Conditions, v1alpha1.ConditionReported) &&
			(j.Status.Chain == nil || j.Status.Chain.Height > lastHeight) {
			t.Errorf("job %s Reported while the chain was down with %+v (last block before the stop: %d)", j.Name, j.Status.Chain, lastHeight)
		}
	}
	if c.reported == outageJobs {
		t.Fatal("every job was Reported before the outage; the outage tested nothing")
	}
	t.Logf("devnet down for %s: %s", time.Since(down).Round(time.Second), c)
	if err := env.StartChain(ctx); err != nil {
		t.Fatal(err)
	}
	back := time.Now()
	final := waitAllReported(t, env, ns, outageJobs, 10*time.Minute)
	t.Logf("all Reported %s after the chain came back", time.Since(back).Round(time.Second))
	checkOnChainOnce(t, env, final.jobs)
}

// placementOf returns the job's placement of the given attempt, or nil.
func placementOf(job *v1alpha1.InferenceJob, attempt int32) *v1alpha1.Placement {
	for i := range job.Status.Placements {
		if job.Status.Placements[i].Attempt == attempt {
			return &job.Status.Placements[i]
		}
	}
	return nil
}

// runningPlacement waits until the job's first attempt is placed and its
// pod Running (the runtime held), and returns the placement.
func runningPlacement(t *testing.T, env *devenv.Env, job *v1alpha1.InferenceJob) v1alpha1.Placement {
	t.Helper()
	ctx := t.Context()
	key := client.ObjectKeyFromObject(job)
	var pl v1alpha1.Placement
	waitFor(t, "job "+job.Name+" Running on its GPU", 5*time.Minute, func() (bool, error) {
		if err := env.Client.Get(ctx, key, job); err != nil {
			return false, err
		}
		p := placementOf(job, 1)
		if p == nil || p.Node == "" || len(p.GPUUUIDs) == 0 {
			return false, nil
		}
		var pods corev1.PodList
		if err := env.Client.List(ctx, &pods, client.InNamespace(devenv.Namespace),
			client.MatchingLabels{"aivm.dev/job-uid": string(job.UID), "aivm.dev/attempt": "1"}); err != nil {
			return false, err
		}
		for _, pod := range pods.Items {
			if pod.Status.Phase == corev1.PodRunning {
				pl = *p
				return true, nil
			}
		}
		return false, nil
	}, func() string { return describeJob(ctx, env.Client, key) })
	return pl
}

// movedPlacement waits until the job's first attempt failed with reason and
// a second attempt is placed, and returns both.
func movedPlacement(t *testing.T, env *devenv.Env, job *v1alpha1.InferenceJob, reason string, limit time.Duration) (v1alpha1.Placement, v1alpha1.Placement) {
	t.Helper()
	ctx := t.Context()
	key := client.ObjectKeyFromObject(job)
	var first, second v1alpha1.Placement
	waitFor(t, "job "+job.Name+" moved ("+reason+")", limit, func() (bool, error) {
		if err := env.Client.Get(ctx, key, job); err != nil {
			return false, err
		}
		p1, p2 := placementOf(job, 1), placementOf(job, 2)
		if p1 == nil || p1.Outcome == "" {
			return false, nil
		}
		if p1.Outcome != v1alpha1.PlacementFailed || p1.Reason != reason {
			return false, fmt.Errorf("attempt 1 ended %s %s (%s), want Failed %s", p1.Outcome, p1.Reason, p1.Message, reason)
		}
		if p2 == nil || p2.Node == "" || len(p2.GPUUUIDs) == 0 {
			return false, nil
		}
		first, second = *p1, *p2
		return true, nil
	}, func() string { return describeJob(ctx, env.Client, key) })
	return first, second
}

// TestNodeHeartbeatsStop stops the heartbeats of the node a held job runs
// on: kube-controller-manager's node lifecycle controller must turn the
// Node NotReady (Unknown, NodeStatusUnknown), the job's attempt must fail
// with NodeNotReady once the grace period passed and move to the other
// node, and the job must end Succeeded, on chain exactly once.
func TestNodeHeartbeatsStop(t *testing.T) {
	enabled(t)
	hold, release := holdRuntime(t)
	defer release()
	env, _ := startEnvWith(t, hold, "dgxa100", "dgxh100")
	ctx := t.Context()
	ns := "heartbeat"
	setUpKernel(t, env, ns)
	job := newJob(ns, "moves", "gpt2-tiny-builtin", "The node went quiet and")
	if err := env.Client.Create(ctx, job); err != nil {
		t.Fatal(err)
	}
	pl := runningPlacement(t, env, job)
	var node *devenv.Node
	for _, n := range env.Nodes {
		if n.Name == pl.Node {
			node = n
		}
	}
	if node == nil {
		t.Fatalf("job placed on %s, not a node of the environment", pl.Node)
	}
	node.Kubelet.SetHeartbeats(false)
	stopped := time.Now()
	t.Logf("heartbeats of %s stopped", node.Name)

	var n corev1.Node
	waitFor(t, "node "+node.Name+" NotReady", 3*time.Minute, func() (bool, error) {
		if err := env.Client.Get(ctx, client.ObjectKey{Name: node.Name}, &n); err != nil {
			return false, err
		}
		for _, c := range n.Status.Conditions {
			if c.Type == corev1.NodeReady {
				return c.Status != corev1.ConditionTrue, nil
			}
		}
		return false, nil
	}, func() string { return fmt.Sprintf("%+v", n.Status.Conditions) })
	for _, c := range n.Status.Conditions {
		// The node lifecycle controller's mark: the process runner never
		// writes Unknown.
		if c.Type == corev1.NodeReady && (c.Status != corev1.ConditionUnknown || c.Reason != "NodeStatusUnknown") {
			t.Errorf("Ready condition %s (%s), want Unknown (NodeStatusUnknown) from the node lifecycle controller", c.Status, c.Reason)
		}
	}
	t.Logf("node NotReady %s after its heartbeats stopped", time.Since(stopped).Round(time.Second))

	_, second := movedPlacement(t, env, job, v1alpha1.ReasonNodeNotReady, 5*time.Minute)
	if second.Node == node.Name {
		t.Errorf("attempt 2 placed on the NotReady node %s", node.Name)
	}
	t.Logf("job moved to %s %s after the heartbeats stopped", second.Node, time.Since(stopped).Round(time.Second))
	release()
	final := waitAllReported(t, env, ns, 1, 5*time.Minute)
	if p := placementOf(&final.jobs[0], final.jobs[0].Status.Placements[len(final.jobs[0].Status.Placements)-1].Attempt); p.Node == node.Name {
		t.Errorf("the job succeeded on the NotReady node %s", node.Name)
	}
	checkOnChainOnce(t, env, final.jobs)
}

// TestXIDMovesJobAndFencesGPU injects a critical XID into the GPU under a
// held job: the GPU turns Unhealthy in the GPUNode, the job's attempt fails
// with GPUUnhealthy and moves to another GPU, and no later placement of any
// job lands on that GPU. Every job ends Succeeded, on chain exactly once.
func TestXIDMovesJobAndFencesGPU(t *testing.T) {
	enabled(t)
	hold, release := holdRuntime(t)
	defer release()
	env, _ := startEnvWith(t, hold, "dgxa100")
	ctx := t.Context()
	ns := "xid"
	setUpKernel(t, env, ns)
	job := newJob(ns, "struck", "gpt2-tiny-builtin", "The GPU fell off the bus and")
	if err := env.Client.Create(ctx, job); err != nil {
		t.Fatal(err)
	}
	pl := runningPlacement(t, env, job)
	bad := pl.GPUUUIDs[0]
	if err := env.Nodes[0].InjectFaults("xid " + bad + " 79\n"); err != nil {
		t.Fatal(err)
	}
	var gn v1alpha1.GPUNode
	waitFor(t, "GPU "+bad+" Unhealthy", 2*time.Minute, func() (bool, error) {
		if err := env.Client.Get(ctx, client.ObjectKey{Name: pl.Node}, &gn); err != nil {
			return false, err
		}
		for _, g := range gn.Status.GPUs {
			if g.UUID == bad {
				return g.Health == v1alpha1.GPUUnhealthy, nil
			}
		}
		return false, fmt.Errorf("GPUNode %s has no GPU %s", pl.Node, bad)
	}, func() string { return fmt.Sprintf("%+v", gn.Status.GPUs) })
	_, second := movedPlacement(t, env, job, v1alpha1.ReasonGPUUnhealthy, 3*time.Minute)
	if slices.Contains(second.GPUUUIDs, bad) {
		t.Fatalf("attempt 2 placed on the unhealthy GPU %s", bad)
	}

	// More held jobs than the node's healthy GPUs: none may be placed on
	// the unhealthy one.
	more := createJobs(t, env.Client, ns, "after", len(gn.Status.GPUs))
	var c jobCounts
	waitFor(t, "the new jobs placed", 3*time.Minute, func() (bool, error) {
		var err error
		if c, err = countJobs(ctx, env.Client, ns); err != nil {
			return false, err
		}
		placed := 0
		for _, j := range c.jobs {
			if len(j.Status.Placements) > 0 {
				placed++
			}
		}
		// The scheduler may share GPUs between jobs (they ask for 1Gi
		// each); with exclusive GPUs some wait for the held ones.
		return placed >= len(gn.Status.GPUs)-1, nil
	}, func() string { return c.String() })
	release()
	final := waitAllReported(t, env, ns, len(more)+1, 5*time.Minute)
	for _, j := range final.jobs {
		for _, p := range j.Status.Placements {
			if j.Name == job.Name && p.Attempt == 1 {
				continue
			}
			if slices.Contains(p.GPUUUIDs, bad) {
				t.Errorf("job %s attempt %d placed on the unhealthy GPU %s", j.Name, p.Attempt, bad)
			}
		}
	}
	checkOnChainOnce(t, env, final.jobs)
}

// TestTamperedModelNeverRuns changes one byte of a served model file (the
// size stays the same) after its digest was taken. The job's pod asks the
// node for the model; the CSI driver refuses it with DigestMismatch, the
// node agent lists the refusal in its GPUNode, the Model turns
// Verified=False (DigestMismatch), and the job never runs: no runtime
// container started, no result, nothing on chain.
func TestTamperedModelNeverRuns(t *testing.T) {
	enabled(t)
	env, _ := startEnvWith(t, quiet, "dgxa100")
	ctx := t.Context()
	c := env.Client
	ns := "tampered"
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		t.Fatal(err)
	}
	files, base, dir := serveModel(t)
	// The largest file (the weights) gets one byte flipped.
	largest := ""
	var size int64
	for _, f := range files {
		st, err := os.Stat(filepath.Join(dir, f.Path))
		if err != nil {
			t.Fatal(err)
		}
		if st.Size() > size {
			largest, size = f.Path, st.Size()
		}
	}
	b, err := os.ReadFile(filepath.Join(dir, largest))
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0xff
	if err := os.WriteFile(filepath.Join(dir, largest), b, 0o600); err != nil {
		t.Fatal(err)
	}
	pods := watchPods(t, env, devenv.Namespace)
	model, kernel := builtinKernel(ns, "gpt2-tiny-builtin", files, base)
	// No prefetch: the job's pod is what makes the node fetch the model,
	// and the CSI driver's refusal is what its GPUNode lists for the Model
	// controller.
	job := newJob(ns, "never", kernel.Name, "This must not run")
	for _, o := range []client.Object{model, kernel, job} {
		if err := c.Create(ctx, o); err != nil {
			t.Fatalf("create %T: %v", o, err)
		}
	}
	key := client.ObjectKeyFromObject(job)
	waitFor(t, "Model Verified=False (DigestMismatch)", 5*time.Minute, func() (bool, error) {
		if err := c.Get(ctx, client.ObjectKeyFromObject(model), model); err != nil {
			return false, err
		}
		v := meta.FindStatusCondition(model.Status.Conditions, v1alpha1.ConditionVerified)
		return v != nil && v.Status == metav1.ConditionFalse && v.Reason == v1alpha1.ReasonDigestMismatch, nil
	}, func() string {
		return fmt.Sprintf("model %+v; job %s", model.Status.Conditions, describeJob(ctx, c, key))
	})
	v := meta.FindStatusCondition(model.Status.Conditions, v1alpha1.ConditionVerified)
	t.Logf("Model: %s", v.Message)
	waitFor(t, "Kernel not Ready (ModelNotVerified)", 2*time.Minute, func() (bool, error) {
		if err := c.Get(ctx, client.ObjectKeyFromObject(kernel), kernel); err != nil {
			return false, err
		}
		r := meta.FindStatusCondition(kernel.Status.Conditions, v1alpha1.ConditionReady)
		return r != nil && r.Status == metav1.ConditionFalse && r.Reason == v1alpha1.ReasonModelNotVerified, nil
	}, func() string { return fmt.Sprintf("%+v", kernel.Status.Conditions) })

	if err := c.Get(ctx, key, job); err != nil {
		t.Fatal(err)
	}
	// A pod placed before the mismatch was known waits: the CSI driver
	// refuses to publish the model, naming the mismatch.
	var jobPods corev1.PodList
	if err := c.List(ctx, &jobPods, client.InNamespace(devenv.Namespace), client.MatchingLabels{"aivm.dev/job-uid": string(job.UID)}); err != nil {
		t.Fatal(err)
	}
	for _, p := range jobPods.Items {
		for _, cs := range p.Status.ContainerStatuses {
			if w := cs.State.Waiting; w == nil || !strings.Contains(w.Message, "DigestMismatch") {
				t.Errorf("pod %s container %s: %+v, want waiting on the model volume with DigestMismatch", p.Name, cs.Name, cs.State)
			}
		}
	}
	if meta.IsStatusConditionTrue(job.Status.Conditions, v1alpha1.ConditionSucceeded) || job.Status.Result != nil {
		t.Errorf("the job on the tampered model has a result: %s", describeJob(ctx, c, key))
	}
	if pods.ranOn(job.UID) {
		t.Errorf("a runtime container of the job started on the tampered model: %s", describeJob(ctx, c, key))
	}
	counts, err := chainRecords(ctx, env)
	if err != nil {
		t.Fatal(err)
	}
	if len(counts) != 0 {
		t.Errorf("the chain holds records %v; the job on the tampered model must have none", counts)
	}
	t.Logf("job: %s", describeJob(ctx, c, key))
}
