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
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	toolscache "k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/aivm-dev/aivm-operator/api/v1alpha1"
	"github.com/aivm-dev/aivm-operator/chain-client/rpc"
	"github.com/aivm-dev/aivm-operator/controllers"
	"github.com/aivm-dev/aivm-operator/internal/devenv"
	"github.com/aivm-dev/aivm-operator/internal/devkubelet"
)

// holdRuntime returns a configuration change that runs every job pod's
// runtime through a wrapper that waits while a hold file exists and then
// execs aivm-runtime, and the function that removes the file. A held job
// is Running on its GPU without finishing, so a fault can strike it.
func holdRuntime(t *testing.T) (func(*devenv.Config), func()) {
	t.Helper()
	hold := filepath.Join(t.TempDir(), "hold")
	if err := os.WriteFile(hold, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	mod := func(cfg *devenv.Config) {
		script := fmt.Sprintf(`while [ -e '%s' ]; do sleep 0.2; done; exec '%s' "$@"`, hold, cfg.Bin.Runtime)
		cfg.Images = devkubelet.Images{devenv.RuntimeImage: {"/bin/sh", "-c", script, "aivm-runtime"}}
	}
	release := func() {
		if err := os.Remove(hold); err != nil && !os.IsNotExist(err) {
			t.Error(err)
		}
	}
	return mod, release
}

// newJob returns a builtin job on kernel with a short output.
func newJob(ns, name, kernel, prompt string) *v1alpha1.InferenceJob {
	return &v1alpha1.InferenceJob{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: v1alpha1.InferenceJobSpec{
			KernelRef:  v1alpha1.LocalObjectReference{Name: kernel},
			Input:      v1alpha1.JobInput{Text: &prompt},
			Parameters: v1alpha1.GenerationParameters{MaxTokens: 4, Temperature: "0", Seed: ptr.To[int64](1)},
		},
	}
}

// setUpKernel creates namespace ns, the served Model and a builtin Kernel
// named "gpt2-tiny-builtin", and returns the model's directory.
func setUpKernel(t *testing.T, env *devenv.Env, ns string) string {
	t.Helper()
	ctx := t.Context()
	if err := env.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		t.Fatal(err)
	}
	files, base, dir := serveModel(t)
	model, kernel := builtinKernel(ns, "gpt2-tiny-builtin", files, base)
	for _, o := range []client.Object{model, kernel} {
		if err := env.Client.Create(ctx, o); err != nil {
			t.Fatalf("create %T: %v", o, err)
		}
	}
	return dir
}

// createJobs creates n jobs named prefix-0 ... in parallel and returns them.
func createJobs(t *testing.T, c client.Client, ns, prefix string, n int) []*v1alpha1.InferenceJob {
	t.Helper()
	ctx := t.Context()
	jobs := make([]*v1alpha1.InferenceJob, n)
	errs := make(chan error, n)
	sem := make(chan struct{}, 16)
	var wg sync.WaitGroup
	for i := range n {
		jobs[i] = newJob(ns, fmt.Sprintf("%s-%d", prefix, i), "gpt2-tiny-builtin", fmt.Sprintf("Job number %d says", i))
		wg.Add(1)
		go func(j *v1alpha1.InferenceJob) {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			if err := c.Create(ctx, j); err != nil {
				errs <- fmt.Errorf("create job %s: %w", j.Name, err)
			}
		}(jobs[i])
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	return jobs
}

// jobCounts lists the namespace's jobs and counts them by condition.
type jobCounts struct {
	total, succeeded, reported, failed int
	jobs                               []v1alpha1.InferenceJob
}

func (c jobCounts) String() string {
	return fmt.Sprintf("%d jobs: %d Succeeded, %d Reported, %d Failed", c.total, c.succeeded, c.reported, c.failed)
}

func countJobs(ctx context.Context, c client.Client, ns string) (jobCounts, error) {
	var list v1alpha1.InferenceJobList
	if err := c.List(ctx, &list, client.InNamespace(ns)); err != nil {
		return jobCounts{}, err
	}
	out := jobCounts{total: len(list.Items), jobs: list.Items}
	for _, j := range list.Items {
		if meta.IsStatusConditionTrue(j.Status.Conditions, v1alpha1.ConditionSucceeded) {
			out.succeeded++
		}
		if meta.IsStatusConditionTrue(j.Status.Conditions, v1alpha1.ConditionReported) {
			out.reported++
		}
		if meta.IsStatusConditionTrue(j.Status.Conditions, v1alpha1.ConditionFailed) {
			out.failed++
		}
	}
	return out, nil
}

// waitAllReported waits until all n jobs of ns are Succeeded and Reported,
// failing at once if one Failed.
func waitAllReported(t *testing.T, env *devenv.Env, ns string, n int, limit time.Duration) jobCounts {
	t.Helper()
	ctx := t.Context()
	var last jobCounts
	waitFor(t, fmt.Sprintf("%d jobs Succeeded and Reported", n), limit, func() (bool, error) {
		var err error
		if last, err = countJobs(ctx, env.Client, ns); err != nil {
			return false, err
		}
		if last.failed > 0 {
			for _, j := range last.jobs {
				if meta.IsStatusConditionTrue(j.Status.Conditions, v1alpha1.ConditionFailed) {
					return false, fmt.Errorf("job %s failed: %s", j.Name, describeJob(ctx, env.Client, client.ObjectKeyFromObject(&j)))
				}
			}
		}
		return last.total == n && last.succeeded == n && last.reported == n, nil
	}, func() string { return last.String() })
	return last
}

// podLog records every pod of a namespace seen by a watch: the pod UIDs of
// each job attempt and member, and the pods whose runtime container started.
type podLog struct {
	mu       sync.Mutex
	attempts map[string]map[types.UID]bool
	started  map[string]bool
}

// watchPods starts a podLog on ns until the test ends.
func watchPods(t *testing.T, env *devenv.Env, ns string) *podLog {
	t.Helper()
	l := &podLog{attempts: map[string]map[types.UID]bool{}, started: map[string]bool{}}
	f := informers.NewSharedInformerFactoryWithOptions(env.Clientset, 0, informers.WithNamespace(ns))
	inf := f.Core().V1().Pods().Informer()
	record := func(obj any) {
		pod, ok := obj.(*corev1.Pod)
		if !ok {
			return
		}
		key := pod.Labels[controllers.LabelJobUID] + "/" + pod.Labels[controllers.LabelAttempt] + "/" + pod.Labels[controllers.LabelMember]
		l.mu.Lock()
		defer l.mu.Unlock()
		if l.attempts[key] == nil {
			l.attempts[key] = map[types.UID]bool{}
		}
		l.attempts[key][pod.UID] = true
		for _, cs := range pod.Status.ContainerStatuses {
			if cs.State.Running != nil || cs.State.Terminated != nil || cs.LastTerminationState.Terminated != nil {
				l.started[pod.Labels[controllers.LabelJobUID]] = true
			}
		}
	}
	if _, err := inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc: record, UpdateFunc: func(_, n any) { record(n) },
	}); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	t.Cleanup(func() { close(stop) })
	go inf.Run(stop)
	if !toolscache.WaitForCacheSync(t.Context().Done(), inf.HasSynced) {
		t.Fatal("pod watch did not sync")
	}
	return l
}

// duplicates returns the job attempts (job-uid/attempt/member) that had
// more than one pod.
func (l *podLog) duplicates() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for k, uids := range l.attempts {
		if len(uids) > 1 {
			out = append(out, fmt.Sprintf("%s (%d pods)", k, len(uids)))
		}
	}
	sort.Strings(out)
	return out
}

// ranOn says whether a runtime container of the job ever started.
func (l *podLog) ranOn(jobUID types.UID) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.started[string(jobUID)]
}

// chainRecords reads the devnet's state: every committed result batch the
// provider submitted (found through the chain's transaction index) and,
// per job UID, how many records of it those batches hold.
func chainRecords(ctx context.Context, env *devenv.Env) (map[string]int, error) {
	rc, err := rpc.New(env.Chain.RPCURL())
	if err != nil {
		return nil, err
	}
	query := fmt.Sprintf("\"aivm.submit_results.provider='%s'\"", env.Provider)
	counts := map[string]int{}
	seen := map[string]bool{}
	for page := 1; ; page++ {
		u := fmt.Sprintf("%s/tx_search?query=%s&page=%d&per_page=100", env.Chain.RPCURL(), url.QueryEscape(query), page)
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if err != nil {
			return nil, err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return nil, err
		}
		var body struct {
			Result struct {
				Txs []struct {
					Hash     string `json:"hash"`
					TxResult struct {
						Code uint32 `json:"code"`
					} `json:"tx_result"`
				} `json:"txs"`
				TotalCount string `json:"total_count"`
			} `json:"result"`
			Error json.RawMessage `json:"error"`
		}
		err = json.NewDecoder(resp.Body).Decode(&body)
		_ = resp.Body.Close()
		if err != nil {
			return nil, fmt.Errorf("tx_search page %d: %w", page, err)
		}
		if len(body.Error) > 0 {
			return nil, fmt.Errorf("tx_search page %d: %s", page, body.Error)
		}
		total, _ := strconv.Atoi(body.Result.TotalCount)
		for _, tx := range body.Result.Txs {
			if tx.TxResult.Code != 0 || seen[tx.Hash] {
				continue
			}
			seen[tx.Hash] = true
			batches, err := rc.SubmittedResults(ctx, tx.Hash)
			if err != nil {
				return nil, err
			}
			for _, b := range batches {
				for _, r := range b.Results {
					counts[r.GetJobUid()]++
				}
			}
		}
		if len(body.Result.Txs) == 0 || page*100 >= total {
			return counts, nil
		}
	}
}

// checkOnChainOnce checks the devnet's state against the jobs: each job's
// result is in exactly one committed record, the record the chain stores
// for it matches the job's status (transaction, height, output digest), and
// the chain holds no record of any other job.
func checkOnChainOnce(t *testing.T, env *devenv.Env, jobs []v1alpha1.InferenceJob) {
	t.Helper()
	ctx := t.Context()
	counts, err := chainRecords(ctx, env)
	if err != nil {
		t.Fatalf("read the chain: %v", err)
	}
	rc, err := rpc.New(env.Chain.RPCURL())
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{}
	bad := 0
	for i := range jobs {
		j := &jobs[i]
		uid := string(j.UID)
		want[uid] = true
		if counts[uid] != 1 {
			bad++
			t.Errorf("job %s (%s) is in %d committed records, want 1", j.Name, uid, counts[uid])
			continue
		}
		stored, err := rc.Result(ctx, uid)
		if err != nil {
			t.Errorf("job %s: stored result: %v", j.Name, err)
			continue
		}
		if j.Status.Chain == nil || j.Status.Result == nil || stored.TxHash != j.Status.Chain.TxHash ||
			stored.Height != j.Status.Chain.Height || stored.Result.GetOutputDigest() != j.Status.Result.OutputDigest {
			bad++
			t.Errorf("job %s: chain stores tx %s height %d output %s; job status chain %+v result %+v",
				j.Name, stored.TxHash, stored.Height, stored.Result.GetOutputDigest(), j.Status.Chain, j.Status.Result)
		}
		if bad > 20 {
			t.Fatal("too many mismatches; stopping")
		}
	}
	for uid, n := range counts {
		if !want[uid] {
			t.Errorf("the chain holds %d record(s) of job %s, which is not one of the test's jobs", n, uid)
		}
	}
	t.Logf("chain: %d jobs, each in exactly one committed record", len(jobs))
}
