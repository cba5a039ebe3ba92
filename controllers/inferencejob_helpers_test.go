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

package controllers

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	nodev1 "k8s.io/api/node/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	testclock "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/aivm-dev/aivm-operator/api/v1alpha1"
	"github.com/aivm-dev/aivm-operator/controllers/indexer"
	"github.com/aivm-dev/aivm-operator/internal/status"
	"github.com/aivm-dev/aivm-operator/internal/testenv"
)

// The job controller's envtest tests play the other parts themselves: the
// scheduler (placements), the kubelet (pod phases and container states),
// the result endpoint (memberResults and result) and the reporter.

const testRuntimeImage = "registry.example/aivm-runtime:test"

// staticCA is a CABundleSource for tests.
type staticCA []byte

func (s staticCA) CABundle() []byte { return s }

// jobEnv is one test's namespace, clock and job controller.
type jobEnv struct {
	t  *testing.T
	ns string
	// wl is the test's workload namespace, where the job pods run.
	wl    string
	clock *testclock.FakeClock
	node  string
	// stopLast stops the manager start started last.
	stopLast func()
	// cache is the informer cache of the manager started last.
	cache cache.Cache
	// opts are the job controller's options in this test.
	opts []InferenceJobOption
}

// newJobEnv creates a namespace for jobs and a workload namespace for their
// pods (Pod Security restricted enforced), a Ready node with a Healthy GPU
// and its GPUNode, and starts a manager running the job controller on
// both namespaces with a fake clock.
func newJobEnv(t *testing.T, opts ...InferenceJobOption) *jobEnv {
	t.Helper()
	e := &jobEnv{t: t, ns: newNamespace(t), wl: newNamespace(t), clock: testclock.NewFakeClock(time.Now())}
	patchSpec(t, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: e.wl}}, func(n *corev1.Namespace) {
		if n.Labels == nil {
			n.Labels = map[string]string{}
		}
		n.Labels["pod-security.kubernetes.io/enforce"] = "restricted"
	})
	e.node = e.addNode("n0")
	e.start(opts...)
	return e
}

// start starts a manager with the job controller, stopped when the test ends.
func (e *jobEnv) start(opts ...InferenceJobOption) ctrl.Manager {
	t := e.t
	t.Helper()
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                 testenv.Scheme(),
		Logger:                 testLogger(),
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Controller:             config.Controller{SkipNameValidation: ptr.To(true)},
		// Other tests' jobs stay behind (envtest deletes no namespace's
		// contents), so this manager sees only this test's namespace.
		Cache: cache.Options{DefaultNamespaces: map[string]cache.Config{e.ns: {}, e.wl: {}}},
	})
	if err != nil {
		t.Fatalf("new manager: %v", err)
	}
	if err := indexer.Setup(context.Background(), mgr.GetFieldIndexer()); err != nil {
		t.Fatal(err)
	}
	e.opts = append([]InferenceJobOption{
		WithJobClock(e.clock), WithRuntimeImage(testRuntimeImage), WithCABundle(staticCA("test-ca")),
		WithResultURL("https://aivm-result.aivm-system.svc:9443/v1/results"), WithWorkloadNamespace(e.wl),
	}, opts...)
	r := NewInferenceJobReconciler(mgr.GetClient(), mgr.GetAPIReader(), mgr.GetEventRecorder("inferencejob-controller"), e.opts...)
	if err := r.SetupWithManager(mgr); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("manager: %v", err)
		}
	}
	t.Cleanup(stop)
	e.stopLast, e.cache = stop, mgr.GetCache()
	return mgr
}

// addNode creates a Ready Node and a GPUNode with one Healthy GPU, named
// after the namespace so tests never share nodes.
func (e *jobEnv) addNode(suffix string) string {
	t := e.t
	name := e.ns + "-" + suffix
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}}
	mustCreate(t, node)
	t.Cleanup(func() { _ = k8sClient.Delete(context.Background(), node) })
	e.setNodeReady(name, corev1.ConditionTrue)
	gn := &v1alpha1.GPUNode{ObjectMeta: metav1.ObjectMeta{Name: name}}
	mustCreate(t, gn)
	t.Cleanup(func() { _ = k8sClient.Delete(context.Background(), gn) })
	e.setGPUHealth(name, v1alpha1.GPUHealthy)
	return name
}

func gpuUUID(node string) string { return "GPU-" + node }

// setNodeReady sets the Node's Ready condition, its transition at the fake clock's now.
func (e *jobEnv) setNodeReady(name string, s corev1.ConditionStatus) {
	e.t.Helper()
	node := &corev1.Node{}
	if err := k8sClient.Get(context.Background(), client.ObjectKey{Name: name}, node); err != nil {
		e.t.Fatal(err)
	}
	now := metav1.NewTime(e.clock.Now())
	node.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: s, Reason: "KubeletReady",
		Message: "kubelet says " + string(s), LastHeartbeatTime: now, LastTransitionTime: now}}
	if err := k8sClient.Status().Update(context.Background(), node); err != nil {
		e.t.Fatal(err)
	}
}

// setGPUHealth writes the GPUNode's one GPU with the health, heartbeat fresh.
func (e *jobEnv) setGPUHealth(name string, h v1alpha1.GPUHealth) {
	e.t.Helper()
	gn := &v1alpha1.GPUNode{}
	if err := k8sClient.Get(context.Background(), client.ObjectKey{Name: name}, gn); err != nil {
		e.t.Fatal(err)
	}
	now := metav1.NewTime(e.clock.Now())
	gn.Status.GPUs = []v1alpha1.GPUStatus{{Index: 0, UUID: gpuUUID(name), Product: "NVIDIA H100 80GB HBM3", Health: h, HealthReason: map[bool]string{true: "XID 79: GPU has fallen off the bus"}[h == v1alpha1.GPUUnhealthy]}}
	gn.Status.GPUCount = 1
	gn.Status.HeartbeatTime = &now
	meta.SetStatusCondition(&gn.Status.Conditions, metav1.Condition{Type: v1alpha1.ConditionReady, Status: metav1.ConditionTrue, Reason: v1alpha1.ReasonHeartbeat, Message: "fresh"})
	if err := k8sClient.Status().Update(context.Background(), gn); err != nil {
		e.t.Fatal(err)
	}
}

// kernel creates a Kernel and writes a Ready status as the Kernel
// controller would (unless ready is false).
func (e *jobEnv) kernel(name string, ready bool, change func(*v1alpha1.Kernel)) *v1alpha1.Kernel {
	e.t.Helper()
	k := &v1alpha1.Kernel{
		ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: name},
		Spec: v1alpha1.KernelSpec{
			ModelRef: v1alpha1.LocalObjectReference{Name: "tiny"},
			Runtime:  v1alpha1.KernelRuntime{Image: "registry.example/engine:1"},
		},
	}
	if change != nil {
		change(k)
	}
	mustCreate(e.t, k)
	if ready {
		e.setKernelReady(k)
	}
	return k
}

func (e *jobEnv) setKernelReady(k *v1alpha1.Kernel) {
	e.t.Helper()
	if err := k8sClient.Get(context.Background(), client.ObjectKeyFromObject(k), k); err != nil {
		e.t.Fatal(err)
	}
	k.Status.KernelDigest = "sha256:" + strings.Repeat("ab", 32)
	k.Status.ModelDigest = strings.Repeat("cd", 32)
	meta.SetStatusCondition(&k.Status.Conditions, metav1.Condition{Type: v1alpha1.ConditionReady, Status: metav1.ConditionTrue,
		Reason: v1alpha1.ReasonReady, Message: "model tiny is ready", ObservedGeneration: k.Generation})
	if err := k8sClient.Status().Update(context.Background(), k); err != nil {
		e.t.Fatal(err)
	}
}

// job creates an InferenceJob with inline input on the kernel.
func (e *jobEnv) job(name, kernel string, change func(*v1alpha1.InferenceJob)) *v1alpha1.InferenceJob {
	e.t.Helper()
	j := &v1alpha1.InferenceJob{
		ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: name},
		Spec: v1alpha1.InferenceJobSpec{
			KernelRef: v1alpha1.LocalObjectReference{Name: kernel},
			Input:     v1alpha1.JobInput{Text: ptr.To("hello")},
		},
	}
	if change != nil {
		change(j)
	}
	mustCreate(e.t, j)
	return j
}

// get reads the job.
func (e *jobEnv) get(j *v1alpha1.InferenceJob) *v1alpha1.InferenceJob {
	e.t.Helper()
	out := &v1alpha1.InferenceJob{}
	if err := k8sClient.Get(context.Background(), client.ObjectKeyFromObject(j), out); err != nil {
		e.t.Fatalf("get job: %v", err)
	}
	return out
}

// waitJob waits until check passes on the job.
func (e *jobEnv) waitJob(j *v1alpha1.InferenceJob, check func(*v1alpha1.InferenceJob) error) *v1alpha1.InferenceJob {
	e.t.Helper()
	var last *v1alpha1.InferenceJob
	eventually(e.t, func() error {
		last = &v1alpha1.InferenceJob{}
		if err := k8sClient.Get(context.Background(), client.ObjectKeyFromObject(j), last); err != nil {
			return err
		}
		return check(last)
	})
	return last
}

// waitCond waits for a condition of the job.
func (e *jobEnv) waitCond(j *v1alpha1.InferenceJob, typ string, s metav1.ConditionStatus, reason string) *v1alpha1.InferenceJob {
	e.t.Helper()
	return e.waitJob(j, func(j *v1alpha1.InferenceJob) error { return hasCondition(typ, s, reason)(j.Status.Conditions) })
}

// writeStatus changes the job's status as another writer would.
func (e *jobEnv) writeStatus(j *v1alpha1.InferenceJob, mutate func(*v1alpha1.InferenceJob)) {
	e.t.Helper()
	cur := e.get(j)
	if _, err := status.Update(context.Background(), k8sClient, k8sClient, cur, func(o *v1alpha1.InferenceJob) error {
		mutate(o)
		return nil
	}); err != nil {
		e.t.Fatalf("write job status: %v", err)
	}
}

// place appends placements for the job's current attempt as the scheduler
// would, once the job waits for one: one member per node. A job never
// admitted (its Kernel Ready) is admitted in the same write, as the
// scheduler does with a job's first decision.
func (e *jobEnv) place(j *v1alpha1.InferenceJob, nodes ...string) int32 {
	e.t.Helper()
	cur := e.waitJob(j, func(j *v1alpha1.InferenceJob) error {
		if j.Status.Attempts == 0 {
			return nil // admitted with this placement
		}
		if !meta.IsStatusConditionTrue(j.Status.Conditions, v1alpha1.ConditionAdmitted) {
			return fmt.Errorf("not admitted: %+v", j.Status.Conditions)
		}
		for _, p := range j.Status.Placements {
			if p.Attempt == j.Status.Attempts {
				return fmt.Errorf("attempt %d already placed", p.Attempt)
			}
		}
		return nil
	})
	attempt := max(cur.Status.Attempts, 1)
	e.writeStatus(j, func(o *v1alpha1.InferenceJob) {
		now := metav1.NewTime(e.clock.Now())
		if o.Status.Attempts == 0 {
			admit(o, o.Spec.KernelRef.Name, now)
		}
		for m, n := range nodes {
			o.Status.Placements = append(o.Status.Placements, v1alpha1.Placement{
				Attempt: attempt, Member: int32(m), Node: n, GPUUUIDs: []string{gpuUUID(n)}, PlacedTime: &now})
		}
		meta.SetStatusCondition(&o.Status.Conditions, metav1.Condition{Type: v1alpha1.ConditionScheduled,
			Status: metav1.ConditionTrue, Reason: v1alpha1.ReasonPlaced, Message: "placed"})
		awaitPods(o, attempt, now) // as the scheduler's placement write does
	})
	return attempt
}

// pod waits for the pod <job>-<attempt>[-<member>] in the workload
// namespace and returns it: name leaves out the job UID's part of the pod
// name (PodName).
func (e *jobEnv) pod(name string) *corev1.Pod {
	e.t.Helper()
	var pod *corev1.Pod
	eventually(e.t, func() error {
		pod = e.findPod(name)
		if pod == nil {
			return fmt.Errorf("no pod %s in %s", name, e.wl)
		}
		return nil
	})
	return pod
}

// findPod returns the workload namespace's pod <job>-<attempt>[-<member>]
// (name without the UID part), or nil.
func (e *jobEnv) findPod(name string) *corev1.Pod {
	e.t.Helper()
	var pods corev1.PodList
	if err := k8sClient.List(context.Background(), &pods, client.InNamespace(e.wl)); err != nil {
		e.t.Fatal(err)
	}
	for i := range pods.Items {
		p := &pods.Items[i]
		if shortPodName(p) == name {
			return p
		}
	}
	return nil
}

// shortPodName is a job pod's name without its job UID part.
func shortPodName(p *corev1.Pod) string {
	uid := p.Labels[LabelJobUID]
	full := PodName(&v1alpha1.InferenceJob{ObjectMeta: metav1.ObjectMeta{Name: "x", UID: types.UID(uid)}}, 1, 0, false)
	hash := strings.TrimSuffix(strings.TrimPrefix(full, "x"), "-1")
	return strings.Replace(p.Name, hash, "", 1)
}

// kubelet writes the pod's phase and the runtime container's state.
func (e *jobEnv) kubelet(pod *corev1.Pod, phase corev1.PodPhase, state corev1.ContainerState) {
	e.t.Helper()
	if err := k8sClient.Get(context.Background(), client.ObjectKeyFromObject(pod), pod); err != nil {
		e.t.Fatal(err)
	}
	pod.Status.Phase = phase
	pod.Status.ContainerStatuses = nil
	for _, c := range pod.Spec.Containers {
		cs := corev1.ContainerStatus{Name: c.Name, Image: c.Image, State: state, Ready: state.Running != nil}
		pod.Status.ContainerStatuses = append(pod.Status.ContainerStatuses, cs)
	}
	if err := k8sClient.Status().Update(context.Background(), pod); err != nil {
		e.t.Fatalf("write pod status: %v", err)
	}
}

func running() corev1.ContainerState {
	return corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: metav1.Now()}}
}

func exited(code int32, reason, msg string) corev1.ContainerState {
	return corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: code, Reason: reason, Message: msg,
		StartedAt: metav1.Now(), FinishedAt: metav1.Now()}}
}

// waitPodGone waits until the pod is deleted or being deleted (envtest
// runs no kubelet to finish a graceful deletion).
func (e *jobEnv) waitPodGone(name string) {
	e.t.Helper()
	eventually(e.t, func() error {
		pod := e.findPod(name)
		if pod == nil || pod.DeletionTimestamp != nil {
			return nil
		}
		return fmt.Errorf("pod %s still there", name)
	})
}

// reconcileNow runs one reconcile of the job synchronously, reading the API
// server directly, with the test's clock and options: a check that nothing
// changes then needs no waiting.
func (e *jobEnv) reconcileNow(j *v1alpha1.InferenceJob) {
	e.t.Helper()
	// Everything is read fresh from the API server, except pods: the job
	// controller lists them through the cache's index (indexer.PodJob),
	// which the API server does not serve.
	c, err := client.New(cfg, client.Options{Scheme: testenv.Scheme(), Cache: &client.CacheOptions{
		Reader: e.cache, DisableFor: []client.Object{&v1alpha1.InferenceJob{}, &v1alpha1.Kernel{}, &v1alpha1.GPUNode{},
			&corev1.Node{}, &corev1.ConfigMap{}, &corev1.ServiceAccount{}},
	}})
	if err != nil {
		e.t.Fatal(err)
	}
	r := NewInferenceJobReconciler(c, k8sClient, nil, e.opts...)
	if _, err := r.Reconcile(context.Background(), ctrl.Request{NamespacedName: client.ObjectKeyFromObject(j)}); err != nil {
		e.t.Fatalf("reconcile: %v", err)
	}
}

// poke triggers a reconcile of the job, after the fake clock moved.
func (e *jobEnv) poke(j *v1alpha1.InferenceJob) {
	e.t.Helper()
	patchSpec(e.t, &v1alpha1.InferenceJob{ObjectMeta: metav1.ObjectMeta{Namespace: j.Namespace, Name: j.Name}}, func(o *v1alpha1.InferenceJob) {
		if o.Annotations == nil {
			o.Annotations = map[string]string{}
		}
		o.Annotations["test.aivm.dev/poke"] = e.clock.Now().String()
	})
}

// placement returns the job's placement of the attempt and member.
func placement(j *v1alpha1.InferenceJob, attempt, member int32) *v1alpha1.Placement {
	for i := range j.Status.Placements {
		if p := &j.Status.Placements[i]; p.Attempt == attempt && p.Member == member {
			return p
		}
	}
	return nil
}

// hasAttempts holds when the job is at attempt n.
func hasAttempts(n int32) func(*v1alpha1.InferenceJob) error {
	return func(j *v1alpha1.InferenceJob) error {
		if j.Status.Attempts != n {
			return fmt.Errorf("attempts %d, want %d", j.Status.Attempts, n)
		}
		return nil
	}
}

// placementEnded returns a check that the placement has the outcome and reason.
func placementEnded(attempt, member int32, o v1alpha1.PlacementOutcome, reason string) func(*v1alpha1.InferenceJob) error {
	return func(j *v1alpha1.InferenceJob) error {
		p := placement(j, attempt, member)
		if p == nil {
			return fmt.Errorf("no placement %d/%d", attempt, member)
		}
		if p.Outcome != o || p.Reason != reason {
			return fmt.Errorf("placement %d/%d = %s/%s (%s), want %s/%s", attempt, member, p.Outcome, p.Reason, p.Message, o, reason)
		}
		return nil
	}
}

func ensureNvidiaRuntimeClass(t *testing.T) {
	rc := &nodev1.RuntimeClass{ObjectMeta: metav1.ObjectMeta{Name: nvidiaRuntimeCls}, Handler: "nvidia"}
	if err := k8sClient.Create(context.Background(), rc); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
}

// statusUpdateWith writes through status.Update starting from obj as read
// earlier, as a writer with a stale cache would.
func statusUpdateWith(obj *v1alpha1.InferenceJob, mutate func(*v1alpha1.InferenceJob)) (bool, error) {
	return status.Update(context.Background(), k8sClient, k8sClient, obj, func(o *v1alpha1.InferenceJob) error {
		mutate(o)
		return nil
	})
}
