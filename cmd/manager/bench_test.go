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

// The manager's end-to-end benchmarks run against the package's envtest
// API server. They take minutes, so they run only when AIVM_BENCH_E2E=1
// (see docs/benchmarks.md); plain `make bench` skips them. The manager
// runs in a child process (this test binary, TestManagerProcess), as
// kube-scheduler does in the comparison, so neither shares the
// benchmark's own process.

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	aivmv1alpha1 "github.com/aivm-dev/aivm-operator/api/v1alpha1"
	"github.com/aivm-dev/aivm-operator/controllers"
	"github.com/aivm-dev/aivm-operator/internal/testenv"
)

// Environment of the benchmarks and of the manager child process.
const (
	benchE2EEnv = "AIVM_BENCH_E2E"
	// managerProcessEnv names the kubeconfig the child manager uses; set,
	// TestMain starts no API server and TestManagerProcess runs the manager.
	managerProcessEnv = "AIVM_BENCH_MANAGER_KUBECONFIG"
	managerArgsEnv    = "AIVM_BENCH_MANAGER_ARGS"
	managerHeapEnv    = "AIVM_BENCH_MANAGER_HEAP_FILE"
	benchPoolLabel    = "aivm.dev/bench-pool"
	gpuResource       = corev1.ResourceName("nvidia.com/gpu")
	mib               = 1 << 20
)

func skipUnlessE2E(b *testing.B) {
	if os.Getenv(benchE2EEnv) == "" {
		b.Skipf("set %s=1 to run the end-to-end benchmarks (minutes)", benchE2EEnv)
	}
}

// TestManagerProcess is the manager child process of the benchmarks: it
// runs the manager with the flags in AIVM_BENCH_MANAGER_ARGS until killed
// and, with AIVM_BENCH_MANAGER_HEAP_FILE, writes there every second what
// its informer cache holds and its live heap (see managerSample). Without
// the environment it does nothing.
func TestManagerProcess(t *testing.T) {
	kubeconfig := os.Getenv(managerProcessEnv)
	if kubeconfig == "" {
		t.Skip("the benchmarks' manager process")
	}
	restCfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	opts, err := parseFlags(strings.Fields(os.Getenv(managerArgsEnv))...)
	if err != nil {
		t.Fatal(err)
	}
	mgr, err := newManager(restCfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	if f := os.Getenv(managerHeapEnv); f != "" {
		if err := mgr.Add(manager.RunnableFunc(func(ctx context.Context) error {
			writeSamples(ctx, mgr.GetCache(), f)
			return nil
		})); err != nil {
			t.Fatal(err)
		}
	}
	profileManager(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := mgr.Start(ctx); err != nil {
		t.Fatal(err)
	}
}

// profileManager writes a CPU profile of the manager child process when
// AIVM_BENCH_MANAGER_PROFILE names a directory: <dir>/manager-<pid>.pprof,
// over its first AIVM_BENCH_MANAGER_PROFILE_SECONDS (30 by default; the
// process is killed at the end of a run, so the profile stops on a timer).
func profileManager(t *testing.T) {
	dir := os.Getenv("AIVM_BENCH_MANAGER_PROFILE")
	if dir == "" {
		return
	}
	seconds, err := strconv.Atoi(os.Getenv("AIVM_BENCH_MANAGER_PROFILE_SECONDS"))
	if err != nil || seconds < 1 {
		seconds = 30
	}
	f, err := os.Create(filepath.Join(dir, fmt.Sprintf("manager-%d.pprof", os.Getpid())))
	if err != nil {
		t.Fatal(err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		t.Fatal(err)
	}
	time.AfterFunc(time.Duration(seconds)*time.Second, func() {
		pprof.StopCPUProfile()
		_ = f.Close()
	})
}

// managerSample is what the manager child process reports: the objects
// its informer cache holds, how many of the jobs there have an Admitted
// condition, and its live heap after a collection.
type managerSample struct {
	Jobs, Admitted, GPUNodes, Nodes, Pods int
	Heap                                  uint64
}

// writeSamples writes a managerSample of c to file, as JSON, every second.
func writeSamples(ctx context.Context, c cache.Cache, file string) {
	if !c.WaitForCacheSync(ctx) {
		return
	}
	count := func(list client.ObjectList) int {
		if c.List(ctx, list, client.UnsafeDisableDeepCopy) != nil {
			return -1
		}
		return meta.LenList(list)
	}
	for ctx.Err() == nil {
		var s managerSample
		s.Jobs, s.Admitted = countJobs(ctx, c)
		s.GPUNodes = count(&aivmv1alpha1.GPUNodeList{})
		s.Nodes = count(&corev1.NodeList{})
		s.Pods = count(&corev1.PodList{})
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		s.Heap = ms.HeapAlloc
		if data, err := json.Marshal(s); err == nil {
			tmp := file + ".tmp"
			if os.WriteFile(tmp, data, 0o600) == nil {
				_ = os.Rename(tmp, file)
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

// countJobs counts the InferenceJobs in c and those with an Admitted
// condition.
func countJobs(ctx context.Context, c cache.Cache) (jobs, admitted int) {
	var list aivmv1alpha1.InferenceJobList
	if c.List(ctx, &list, client.UnsafeDisableDeepCopy) != nil {
		return -1, -1
	}
	for i := range list.Items {
		if meta.FindStatusCondition(list.Items[i].Status.Conditions, aivmv1alpha1.ConditionAdmitted) != nil {
			admitted++
		}
	}
	return len(list.Items), admitted
}

// readSample reads the manager child's latest sample from file; ok is
// false before the first.
func readSample(file string) (s managerSample, ok bool) {
	data, err := os.ReadFile(file)
	if err != nil || json.Unmarshal(data, &s) != nil {
		return managerSample{}, false
	}
	return s, true
}

// writeKubeconfig writes a kubeconfig for c into dir.
func writeKubeconfig(b *testing.B, c *rest.Config, dir string) string {
	b.Helper()
	kc := clientcmdapi.NewConfig()
	kc.Clusters["envtest"] = &clientcmdapi.Cluster{Server: c.Host, CertificateAuthorityData: c.CAData}
	kc.AuthInfos["envtest"] = &clientcmdapi.AuthInfo{ClientCertificateData: c.CertData, ClientKeyData: c.KeyData, Token: c.BearerToken}
	kc.Contexts["envtest"] = &clientcmdapi.Context{Cluster: "envtest", AuthInfo: "envtest"}
	kc.CurrentContext = "envtest"
	path := filepath.Join(dir, "kubeconfig")
	if err := clientcmd.WriteToFile(*kc, path); err != nil {
		b.Fatal(err)
	}
	return path
}

// startProcess starts cmd with its output in dir/name.log and kills it
// when stop is called.
func startProcess(b *testing.B, cmd *exec.Cmd, dir, name string) (stop func()) {
	b.Helper()
	logFile, err := os.Create(filepath.Join(dir, name+".log"))
	if err != nil {
		b.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		b.Fatalf("start %s: %v", name, err)
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			_ = logFile.Close()
		})
	}
}

// startManagerProcess runs the manager with args in a child process.
func startManagerProcess(b *testing.B, kubeconfig, managerNS, heapFile string, args ...string) (stop func()) {
	b.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestManagerProcess$", "-test.count=1", "-test.timeout=0")
	cmd.Env = append(os.Environ(),
		managerProcessEnv+"="+kubeconfig,
		managerArgsEnv+"="+strings.Join(append([]string{
			"--metrics-bind-address=0", "--health-probe-bind-address=0", "--result-bind-address=127.0.0.1:0",
			"--gpunode-heartbeat-stale-after=1h",
		}, args...), " "),
		managerHeapEnv+"="+heapFile,
		PodNamespaceEnv+"="+managerNS,
	)
	return startProcess(b, cmd, filepath.Dir(kubeconfig), "manager")
}

// benchClient is a client of the test API server that the rate limiter
// does not hold back: the benchmarks create thousands of objects.
func benchClient(b *testing.B) client.Client {
	b.Helper()
	c := rest.CopyConfig(cfg)
	c.QPS, c.Burst = 10000, 20000
	cl, err := client.New(c, client.Options{Scheme: testenv.Scheme()})
	if err != nil {
		b.Fatal(err)
	}
	return cl
}

// parallel runs fn(i) for i in [0, n) on 32 goroutines; the first error
// fails the benchmark.
func parallel(b *testing.B, n int, fn func(i int) error) {
	b.Helper()
	var next atomic.Int64
	var wg sync.WaitGroup
	var firstErr error
	var mu sync.Mutex
	for w := 0; w < 32; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if err := fn(i); err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					return
				}
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		b.Fatal(firstErr)
	}
}

func benchNamespace(b *testing.B, c client.Client, name string) string {
	b.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: name + "-"}}
	if err := c.Create(context.Background(), ns); err != nil {
		b.Fatal(err)
	}
	// envtest has no controller that makes the default service account.
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: "default"}}
	if err := c.Create(context.Background(), sa); err != nil {
		b.Fatal(err)
	}
	return ns.Name
}

// addNodes creates n Ready Nodes in pool, each with 8 GPUs in its
// allocatable resources and a GPUNode of 8 healthy 80 GiB H100s.
func addNodes(b *testing.B, c client.Client, pool string, n int) {
	b.Helper()
	ctx := context.Background()
	parallel(b, n, func(i int) error {
		name := fmt.Sprintf("%s-%04d", pool, i)
		labels := map[string]string{benchPoolLabel: pool, corev1.LabelHostname: name}
		node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
		if err := c.Create(ctx, node); err != nil {
			return err
		}
		resources := corev1.ResourceList{
			corev1.ResourceCPU: resource.MustParse("64"), corev1.ResourceMemory: resource.MustParse("512Gi"),
			corev1.ResourcePods: resource.MustParse("110"), gpuResource: resource.MustParse("8"),
		}
		node.Status = corev1.NodeStatus{
			Capacity: resources, Allocatable: resources,
			Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue,
				LastHeartbeatTime: metav1.Now(), LastTransitionTime: metav1.Now(), Reason: "KubeletReady"}},
		}
		if err := c.Status().Update(ctx, node); err != nil {
			return err
		}
		// The API server taints new Nodes not-ready; envtest has no node
		// lifecycle controller to lift it.
		before := node.DeepCopy()
		node.Spec.Taints = nil
		if err := c.Patch(ctx, node, client.MergeFrom(before)); err != nil {
			return err
		}
		gn := &aivmv1alpha1.GPUNode{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
		if err := c.Create(ctx, gn); err != nil {
			return err
		}
		for g := 0; g < 8; g++ {
			gn.Status.GPUs = append(gn.Status.GPUs, aivmv1alpha1.GPUStatus{
				Index: int32(g), UUID: fmt.Sprintf("GPU-%s-%d", name, g), Product: "NVIDIA H100 80GB HBM3",
				MemoryTotal: resource.MustParse("80Gi"), MemoryFree: resource.MustParse("80Gi"), ComputeCapability: "9.0",
				MIGMode: aivmv1alpha1.MIGDisabled, Health: aivmv1alpha1.GPUHealthy,
			})
		}
		gn.Status.GPUCount, gn.Status.HealthyGPUCount = 8, 8
		gn.Status.HeartbeatTime = ptr.To(metav1.Now())
		return c.Status().Update(ctx, gn)
	})
}

// removeNodes deletes the pool's Nodes and GPUNodes.
func removeNodes(c client.Client, pool string) {
	ctx := context.Background()
	sel := client.MatchingLabels{benchPoolLabel: pool}
	_ = c.DeleteAllOf(ctx, &corev1.Node{}, sel)
	_ = c.DeleteAllOf(ctx, &aivmv1alpha1.GPUNode{}, sel)
}

// boundPods counts the namespace's pods that have a node, from a watch.
type boundPods struct {
	mu    sync.Mutex
	bound map[string]bool
	want  int
	done  chan struct{}
}

// watchBound starts counting the bound pods of ns; done closes at want.
func watchBound(ctx context.Context, b *testing.B, ns string, want int) *boundPods {
	b.Helper()
	bp := &boundPods{bound: map[string]bool{}, want: want, done: make(chan struct{})}
	c, err := cache.New(cfg, cache.Options{Scheme: testenv.Scheme(), DefaultNamespaces: map[string]cache.Config{ns: {}}})
	if err != nil {
		b.Fatal(err)
	}
	inf, err := c.GetInformer(ctx, &corev1.Pod{})
	if err != nil {
		b.Fatal(err)
	}
	see := func(o any) {
		pod, ok := o.(*corev1.Pod)
		if !ok || pod.Spec.NodeName == "" {
			return
		}
		bp.mu.Lock()
		defer bp.mu.Unlock()
		if bp.bound[string(pod.UID)] {
			return
		}
		bp.bound[string(pod.UID)] = true
		if len(bp.bound) == bp.want {
			close(bp.done)
		}
	}
	if _, err := inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc: see, UpdateFunc: func(_, o any) { see(o) },
	}); err != nil {
		b.Fatal(err)
	}
	go func() { _ = c.Start(ctx) }()
	if !c.WaitForCacheSync(ctx) {
		b.Fatal("pod watch did not sync")
	}
	return bp
}

func (bp *boundPods) count() int {
	bp.mu.Lock()
	defer bp.mu.Unlock()
	return len(bp.bound)
}

// wait waits for every pod to be bound, failing after timeout.
func (bp *boundPods) wait(b *testing.B, timeout time.Duration) {
	b.Helper()
	select {
	case <-bp.done:
	case <-time.After(timeout):
		b.Fatalf("%d of %d pods bound after %s", bp.count(), bp.want, timeout)
	}
}

// Size of the end-to-end scheduling benchmark (issue's target shape).
// AIVM_BENCH_E2E_JOBS sets fewer jobs for a quicker look (at most 2,000:
// the nodes hold that many).
const (
	e2eNodes = 250
	e2eJobs  = 2000
)

// e2eJobCount is AIVM_BENCH_E2E_JOBS when set to 1..e2eJobs, else e2eJobs.
func e2eJobCount() int {
	if n, err := strconv.Atoi(os.Getenv("AIVM_BENCH_E2E_JOBS")); err == nil && n >= 1 && n <= e2eJobs {
		return n
	}
	return e2eJobs
}

// BenchmarkSchedulingEndToEnd: N InferenceJobs created → N pods bound by
// the manager, against kube-scheduler (built from the same Kubernetes
// release by hack/kube-scheduler.sh) binding N equivalent pods, each
// asking for one nvidia.com/gpu, on 250 simulated nodes of 8 GPUs each.
// Each model takes a whole 80 GiB GPU, so both place one job per GPU.
// Each run has its own nodes and namespace. Reports pods/s; run with
// -benchtime=1x. KUBE_SCHEDULER names a prebuilt binary.
func BenchmarkSchedulingEndToEnd(b *testing.B) {
	skipUnlessE2E(b)
	tuned := []string{"--kube-api-qps=5000", "--kube-api-burst=10000"}
	b.Run("aivm/defaults", func(b *testing.B) { benchAIVM(b, nil) })
	b.Run("aivm/tuned", func(b *testing.B) { benchAIVM(b, tuned) })
	b.Run("kube-scheduler/defaults", func(b *testing.B) { benchKubeScheduler(b, false) })
	b.Run("kube-scheduler/tuned", func(b *testing.B) { benchKubeScheduler(b, true) })
}

func benchAIVM(b *testing.B, args []string) {
	jobs := e2eJobCount()
	c := benchClient(b)
	ctx := context.Background()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		pool := fmt.Sprintf("aivm%d-%d", len(args), i)
		addNodes(b, c, pool, e2eNodes)
		ns := benchNamespace(b, c, "bench-aivm")
		mustBench(b, c.Create(ctx, &aivmv1alpha1.Model{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "m"},
			Spec: aivmv1alpha1.ModelSpec{URI: "file:///models/m.gguf", SHA256: strings.Repeat("ab", 32),
				GPUMemory: resource.MustParse("80Gi")},
		}))
		kernel := &aivmv1alpha1.Kernel{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "k"},
			Spec: aivmv1alpha1.KernelSpec{
				ModelRef:     aivmv1alpha1.LocalObjectReference{Name: "m"},
				Runtime:      aivmv1alpha1.KernelRuntime{Image: "ghcr.io/aivm-dev/aivm-runtime:v0.1.0"},
				NodeSelector: map[string]string{benchPoolLabel: pool},
			},
		}
		mustBench(b, c.Create(ctx, kernel))
		dir := b.TempDir()
		stop := startManagerProcess(b, writeKubeconfig(b, cfg, dir), ns, "", args...)
		waitFor(b, 2*time.Minute, "kernel Ready", func() bool {
			return c.Get(ctx, client.ObjectKeyFromObject(kernel), kernel) == nil &&
				meta.IsStatusConditionTrue(kernel.Status.Conditions, aivmv1alpha1.ConditionReady)
		})
		wctx, cancel := context.WithCancel(ctx)
		bp := watchBound(wctx, b, ns, jobs)
		text := "hello"
		requests := apiRequests(b)
		profile := profileAPIServer(b, "aivm"+strings.Join(args, ""))
		b.StartTimer()
		start := time.Now()
		parallel(b, jobs, func(j int) error {
			return c.Create(ctx, &aivmv1alpha1.InferenceJob{
				ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("job-%05d", j)},
				Spec: aivmv1alpha1.InferenceJobSpec{
					KernelRef: aivmv1alpha1.LocalObjectReference{Name: "k"},
					Input:     aivmv1alpha1.JobInput{Text: &text},
				},
			})
		})
		created := time.Since(start)
		bp.wait(b, 10*time.Minute)
		elapsed := time.Since(start)
		b.StopTimer()
		profile()
		b.ReportMetric(float64(jobs)/elapsed.Seconds(), "pods/s")
		b.ReportMetric(created.Seconds(), "create-s")
		reportRequests(b, requests, jobs)
		cancel()
		stop()
		cleanupNamespace(c, ns, pool)
	}
}

func benchKubeScheduler(b *testing.B, tuned bool) {
	bin := kubeSchedulerBinary(b)
	jobs := e2eJobCount()
	c := benchClient(b)
	ctx := context.Background()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		pool := fmt.Sprintf("ks%t-%d", tuned, i)
		addNodes(b, c, pool, e2eNodes)
		ns := benchNamespace(b, c, "bench-kube-scheduler")
		dir := b.TempDir()
		kubeconfig := writeKubeconfig(b, cfg, dir)
		conf := "apiVersion: kubescheduler.config.k8s.io/v1\nkind: KubeSchedulerConfiguration\n" +
			"leaderElection:\n  leaderElect: false\nclientConnection:\n  kubeconfig: " + kubeconfig + "\n"
		if tuned {
			conf += "  qps: 5000\n  burst: 10000\n"
		}
		confPath := filepath.Join(dir, "scheduler.yaml")
		mustBench(b, os.WriteFile(confPath, []byte(conf), 0o600))
		stop := startProcess(b, exec.Command(bin, "--config="+confPath, "--secure-port=0", "-v=1"), dir, "kube-scheduler")
		pod := func(name string) *corev1.Pod {
			return &corev1.Pod{
				ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
				Spec: corev1.PodSpec{
					NodeSelector:                 map[string]string{benchPoolLabel: pool},
					AutomountServiceAccountToken: ptr.To(false),
					Containers: []corev1.Container{{
						Name: "runtime", Image: "ghcr.io/aivm-dev/aivm-runtime:v0.1.0",
						Resources: corev1.ResourceRequirements{
							Requests: corev1.ResourceList{gpuResource: resource.MustParse("1")},
							Limits:   corev1.ResourceList{gpuResource: resource.MustParse("1")},
						},
					}},
				},
			}
		}
		// The scheduler is ready once it binds a first pod (not counted).
		warm := pod("warm-up")
		mustBench(b, c.Create(ctx, warm))
		waitFor(b, 2*time.Minute, "kube-scheduler to bind a first pod", func() bool {
			return c.Get(ctx, client.ObjectKeyFromObject(warm), warm) == nil && warm.Spec.NodeName != ""
		})
		mustBench(b, c.Delete(ctx, warm, client.GracePeriodSeconds(0)))
		wctx, cancel := context.WithCancel(ctx)
		bp := watchBound(wctx, b, ns, jobs)
		requests := apiRequests(b)
		profile := profileAPIServer(b, fmt.Sprintf("kube-scheduler-tuned-%t", tuned))
		b.StartTimer()
		start := time.Now()
		parallel(b, jobs, func(j int) error { return c.Create(ctx, pod(fmt.Sprintf("pod-%05d", j))) })
		created := time.Since(start)
		bp.wait(b, 10*time.Minute)
		elapsed := time.Since(start)
		b.StopTimer()
		profile()
		b.ReportMetric(float64(jobs)/elapsed.Seconds(), "pods/s")
		b.ReportMetric(created.Seconds(), "create-s")
		reportRequests(b, requests, jobs)
		cancel()
		stop()
		cleanupNamespace(c, ns, pool)
	}
}

// profileAPIServer starts a CPU profile of the API server when
// AIVM_BENCH_APISERVER_PROFILE names a directory: the server's
// /debug/pprof/profile over the first AIVM_BENCH_APISERVER_PROFILE_SECONDS
// (10 by default) of the run. The returned func waits for it and writes
// <dir>/<name>.pprof, for `go tool pprof`.
func profileAPIServer(b *testing.B, name string) (wait func()) {
	b.Helper()
	dir := os.Getenv("AIVM_BENCH_APISERVER_PROFILE")
	if dir == "" {
		return func() {}
	}
	seconds := os.Getenv("AIVM_BENCH_APISERVER_PROFILE_SECONDS")
	if _, err := strconv.Atoi(seconds); err != nil {
		seconds = "10"
	}
	rc, err := rest.RESTClientFor(restConfigForMetrics())
	if err != nil {
		b.Fatal(err)
	}
	done := make(chan struct{})
	var body []byte
	var perr error
	go func() {
		defer close(done)
		body, perr = rc.Get().AbsPath("/debug/pprof/profile").Param("seconds", seconds).
			Timeout(5 * time.Minute).DoRaw(context.Background())
	}()
	return func() {
		<-done
		if perr != nil {
			b.Fatalf("profile the API server: %v", perr)
		}
		path := filepath.Join(dir, name+".pprof")
		if err := os.WriteFile(path, body, 0o600); err != nil {
			b.Fatal(err)
		}
		b.Logf("API server CPU profile: %s", path)
	}
}

// apiRequests reads the API server's request counts
// (apiserver_request_total) by verb and resource, summed over codes:
// "PATCH inferencejobs/status" → n.
func apiRequests(b *testing.B) map[string]float64 {
	b.Helper()
	rc, err := rest.RESTClientFor(restConfigForMetrics())
	if err != nil {
		b.Fatal(err)
	}
	body, err := rc.Get().AbsPath("/metrics").DoRaw(context.Background())
	if err != nil {
		b.Fatalf("read the API server's metrics: %v", err)
	}
	counts := map[string]float64{}
	for _, line := range strings.Split(string(body), "\n") {
		sample, ok := strings.CutPrefix(line, "apiserver_request_total{")
		if !ok {
			continue
		}
		labels, value, ok := strings.Cut(sample, "} ")
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
		if err != nil {
			continue
		}
		l := map[string]string{}
		for _, kv := range strings.Split(labels, ",") {
			if k, val, ok := strings.Cut(kv, "="); ok {
				l[k] = strings.Trim(val, `"`)
			}
		}
		key := l["verb"] + " " + l["resource"]
		if l["subresource"] != "" {
			key += "/" + l["subresource"]
		}
		counts[key] += v
	}
	return counts
}

// restConfigForMetrics is the test API server's admin config for a plain
// REST client (no group, no rate limit).
func restConfigForMetrics() *rest.Config {
	c := rest.CopyConfig(cfg)
	c.QPS, c.Burst = 1000, 1000
	c.NegotiatedSerializer = scheme.Codecs.WithoutConversion()
	c.GroupVersion = &schema.GroupVersion{}
	return c
}

// writeVerbs are the request verbs that change objects.
var writeVerbs = map[string]bool{"POST": true, "PUT": true, "PATCH": true, "APPLY": true, "DELETE": true, "DELETECOLLECTION": true}

// reportRequests waits until the API server has had no write for two
// seconds (the last status writes of a run may follow its last binding;
// at most a minute), then reports the writes and reads made since before
// (the run's creations included) per pod, and logs them by verb and
// resource, so runs can be compared by what they cost the API server.
func reportRequests(b *testing.B, before map[string]float64, pods int) {
	b.Helper()
	writes := func(m map[string]float64) (n float64) {
		for k, v := range m {
			if writeVerbs[strings.Fields(k)[0]] {
				n += v
			}
		}
		return n
	}
	after := apiRequests(b)
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); {
		time.Sleep(2 * time.Second)
		now := apiRequests(b)
		if writes(now) == writes(after) {
			break
		}
		after = now
	}
	var w, r float64
	var lines []string
	for k, v := range after {
		d := v - before[k]
		verb := strings.Fields(k)[0]
		if d <= 0 || verb == "WATCH" {
			continue
		}
		if writeVerbs[verb] {
			w += d
		} else {
			r += d
		}
		lines = append(lines, fmt.Sprintf("%-40s %8.0f %6.2f/pod", k, d, d/float64(pods)))
	}
	sort.Strings(lines)
	b.Logf("API requests while %d pods were made and bound, and until writes stopped:\n%s", pods, strings.Join(lines, "\n"))
	b.ReportMetric(w/float64(pods), "writes/pod")
	b.ReportMetric(r/float64(pods), "reads/pod")
}

// kubeSchedulerBinary is testenv.KubeScheduler's binary; the benchmark is
// skipped without one.
func kubeSchedulerBinary(b *testing.B) string {
	b.Helper()
	bin, err := testenv.KubeScheduler()
	if err != nil {
		b.Skipf("no kube-scheduler: %v", err)
	}
	return bin
}

// cleanupNamespace removes what a run made, so the next runs on an empty
// cluster (envtest has no namespace controller to empty a namespace).
func cleanupNamespace(c client.Client, ns, pool string) {
	ctx := context.Background()
	_ = c.DeleteAllOf(ctx, &corev1.Pod{}, client.InNamespace(ns), client.GracePeriodSeconds(0))
	_ = c.DeleteAllOf(ctx, &aivmv1alpha1.InferenceJob{}, client.InNamespace(ns))
	_ = c.DeleteAllOf(ctx, &corev1.ConfigMap{}, client.InNamespace(ns))
	_ = c.DeleteAllOf(ctx, &corev1.Event{}, client.InNamespace(ns))
	removeNodes(c, pool)
}

func mustBench(b *testing.B, err error) {
	b.Helper()
	if err != nil {
		b.Fatal(err)
	}
}

// waitFor polls cond every 100ms until it holds, failing after timeout.
func waitFor(b *testing.B, timeout time.Duration, what string, cond func() bool) {
	b.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			b.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Size of the manager memory benchmark.
const (
	memGPUNodes = 1000
	memJobs     = 10000
	memPods     = 8000
)

// BenchmarkManagerMemory: the live heap of the manager (after a
// collection) once its informer cache holds 1,000 Nodes and GPUNodes of 8
// GPUs, 10,000 InferenceJobs and 8,000 job pods (MiB-heap), and again once
// it has written every job's status or a time limit passed
// (MiB-heap-settled, with jobs-admitted saying how many it had written).
// The jobs name a Kernel that does not exist, so each gets one status
// write (Admitted=False) and the cluster then stays quiet. The manager
// child reports what its cache holds, so the benchmark never lists the
// 10,000 jobs from the API server itself.
func BenchmarkManagerMemory(b *testing.B) {
	skipUnlessE2E(b)
	c := benchClient(b)
	ctx := context.Background()
	b.StopTimer()
	pool := "memory"
	addNodes(b, c, pool, memGPUNodes)
	ns := benchNamespace(b, c, "bench-memory")
	text := "summarize the attached report in three sentences"
	parallel(b, memJobs, func(j int) error {
		return c.Create(ctx, &aivmv1alpha1.InferenceJob{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("job-%05d", j),
				Labels: map[string]string{"app.kubernetes.io/part-of": "bench"}},
			Spec: aivmv1alpha1.InferenceJobSpec{
				KernelRef: aivmv1alpha1.LocalObjectReference{Name: "missing"},
				Input:     aivmv1alpha1.JobInput{Text: &text},
			},
		})
	})
	parallel(b, memPods, func(p int) error { return c.Create(ctx, memPod(ns, pool, p)) })
	dir := b.TempDir()
	heapFile := filepath.Join(dir, "heap")
	for i := 0; i < b.N; i++ {
		_ = os.Remove(heapFile)
		b.StartTimer()
		start := time.Now()
		stop := startManagerProcess(b, writeKubeconfig(b, cfg, dir), ns, heapFile, "--kube-api-qps=5000", "--kube-api-burst=10000")
		var full managerSample
		waitFor(b, 10*time.Minute, "the manager's cache to hold every object", func() bool {
			s, ok := readSample(heapFile)
			full = s
			return ok && s.Jobs >= memJobs && s.GPUNodes >= memGPUNodes && s.Nodes >= memGPUNodes && s.Pods >= memPods
		})
		synced := time.Since(start)
		// Written statuses add conditions to the cached jobs: a second
		// figure once every job has one, or after at most 5 minutes.
		deadline := time.Now().Add(5 * time.Minute)
		settled := full
		for settled.Admitted < memJobs && time.Now().Before(deadline) {
			time.Sleep(2 * time.Second)
			if s, ok := readSample(heapFile); ok {
				settled = s
			}
		}
		time.Sleep(3 * time.Second) // a fresh figure after the last writes
		if s, ok := readSample(heapFile); ok {
			settled = s
		}
		stop()
		b.StopTimer()
		b.ReportMetric(float64(full.Heap)/mib, "MiB-heap")
		b.ReportMetric(float64(settled.Heap)/mib, "MiB-heap-settled")
		b.ReportMetric(float64(settled.Admitted), "jobs-admitted")
		b.ReportMetric(synced.Seconds(), "cache-full-s")
	}
	cleanupNamespace(c, ns, pool)
}

// memPod is a job pod as the job controller makes it, in size: labels,
// owner, runtime container with its environment, and its volumes.
func memPod(ns, pool string, p int) *corev1.Pod {
	name := fmt.Sprintf("job-%05d-1", p)
	env := []corev1.EnvVar{}
	for _, kv := range [][2]string{
		{"AIVM_JOB_NAME", name}, {"AIVM_JOB_NAMESPACE", ns}, {"AIVM_ATTEMPT", "1"}, {"AIVM_MEMBER", "0"},
		{"AIVM_RESULT_URL", controllers.DefaultResultURL}, {"AIVM_MODEL_DIGEST", strings.Repeat("ab", 32)},
		{"AIVM_KERNEL_DIGEST", strings.Repeat("cd", 32)}, {"AIVM_GPU_UUIDS", "GPU-" + strconv.Itoa(p)},
	} {
		env = append(env, corev1.EnvVar{Name: kv[0], Value: kv[1]})
	}
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{
			controllers.LabelJobUID: fmt.Sprintf("00000000-0000-0000-0000-%012d", p), "app.kubernetes.io/managed-by": "aivm-operator",
		}, Annotations: map[string]string{controllers.AnnotationInput: "summarize the attached report in three sentences"}},
		Spec: corev1.PodSpec{
			NodeName:                     fmt.Sprintf("%s-%04d", pool, p/8),
			RestartPolicy:                corev1.RestartPolicyNever,
			AutomountServiceAccountToken: ptr.To(false),
			SecurityContext: &corev1.PodSecurityContext{RunAsNonRoot: ptr.To(true),
				SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault}},
			Containers: []corev1.Container{{
				Name: "runtime", Image: "ghcr.io/aivm-dev/aivm-runtime:v0.1.0", Env: env,
				Resources: corev1.ResourceRequirements{Limits: corev1.ResourceList{gpuResource: resource.MustParse("1")}},
				SecurityContext: &corev1.SecurityContext{AllowPrivilegeEscalation: ptr.To(false), ReadOnlyRootFilesystem: ptr.To(true),
					Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}}},
				VolumeMounts: []corev1.VolumeMount{{Name: "model", MountPath: "/model", ReadOnly: true},
					{Name: "input", MountPath: "/input", ReadOnly: true}, {Name: "result-ca", MountPath: "/etc/aivm/ca", ReadOnly: true}},
			}},
			Volumes: []corev1.Volume{
				{Name: "model", VolumeSource: corev1.VolumeSource{CSI: &corev1.CSIVolumeSource{Driver: "models.aivm.dev", ReadOnly: ptr.To(true),
					VolumeAttributes: map[string]string{"digest": strings.Repeat("ab", 32)}}}},
				{Name: "input", VolumeSource: corev1.VolumeSource{DownwardAPI: &corev1.DownwardAPIVolumeSource{
					Items: []corev1.DownwardAPIVolumeFile{{Path: "input", FieldRef: &corev1.ObjectFieldSelector{
						FieldPath: "metadata.annotations['" + controllers.AnnotationInput + "']"}}}}}},
				{Name: "result-ca", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
					LocalObjectReference: corev1.LocalObjectReference{Name: "aivm-result-ca"}}}},
			},
		},
	}
}
