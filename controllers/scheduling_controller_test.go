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
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/aivm-dev/aivm-operator/api/v1alpha1"
	"github.com/aivm-dev/aivm-operator/controllers/indexer"
	"github.com/aivm-dev/aivm-operator/controllers/scheduler"
)

// testPoolLabel keeps each test's jobs on its own nodes: Nodes are
// cluster-scoped and other tests in the package create some.
const testPoolLabel = "aivm.dev/test-pool"

// startScheduler starts a manager running the scheduling controller with a
// fresh scheduler core, as a restarted manager would.
func startScheduler(t *testing.T) {
	t.Helper()
	startManager(t, func(mgr ctrl.Manager) error {
		if err := indexer.Setup(context.Background(), mgr.GetFieldIndexer()); err != nil {
			return err
		}
		s, err := scheduler.New(scheduler.Options{HeartbeatStaleAfter: time.Hour})
		if err != nil {
			return err
		}
		return NewSchedulingReconciler(mgr.GetClient(), mgr.GetAPIReader(), mgr.GetEventRecorder("scheduler"), s).SetupWithManager(mgr)
	})
}

// gpuShape is a node shape after go-nvml's mock servers.
type gpuShape struct {
	product, cc string
	memory      resource.Quantity
}

var (
	dgxA100 = gpuShape{"NVIDIA A100-SXM4-40GB", "8.0", resource.MustParse("40Gi")}
	dgxH100 = gpuShape{"NVIDIA H100 80GB HBM3", "9.0", resource.MustParse("80Gi")}
)

// addGPUNode creates a Ready Node in pool and its GPUNode with n GPUs of
// shape, heartbeat now. GPU UUIDs are GPU-<name>-<i>.
func addGPUNode(t *testing.T, pool, name string, n int, shape gpuShape) {
	t.Helper()
	ctx := context.Background()
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{testPoolLabel: pool}}}
	mustCreate(t, node)
	t.Cleanup(func() { _ = k8sClient.Delete(context.Background(), node) })
	node.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue, LastHeartbeatTime: metav1.Now(), LastTransitionTime: metav1.Now()}}
	if err := k8sClient.Status().Update(ctx, node); err != nil {
		t.Fatalf("node status: %v", err)
	}
	// The API server taints new Nodes not-ready; with no node lifecycle
	// controller in envtest, the test lifts the taint as it would.
	patchSpec(t, node, func(n *corev1.Node) { n.Spec.Taints = nil })
	gn := &v1alpha1.GPUNode{ObjectMeta: metav1.ObjectMeta{Name: name}}
	mustCreate(t, gn)
	t.Cleanup(func() { _ = k8sClient.Delete(context.Background(), gn) })
	for i := 0; i < n; i++ {
		gn.Status.GPUs = append(gn.Status.GPUs, v1alpha1.GPUStatus{
			Index: int32(i), UUID: fmt.Sprintf("GPU-%s-%d", name, i), Product: shape.product,
			MemoryTotal: shape.memory, MemoryFree: shape.memory, ComputeCapability: shape.cc,
			MIGMode: v1alpha1.MIGDisabled, Health: v1alpha1.GPUHealthy,
		})
	}
	gn.Status.GPUCount, gn.Status.HealthyGPUCount = int32(n), int32(n)
	gn.Status.HeartbeatTime = ptr.To(metav1.Now())
	if err := k8sClient.Status().Update(ctx, gn); err != nil {
		t.Fatalf("gpunode status: %v", err)
	}
}

// addKernel creates a Model and a Kernel that needs memory per GPU on the
// pool's nodes.
func addKernel(t *testing.T, ns, name, memory string) {
	t.Helper()
	mustCreate(t, &v1alpha1.Model{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: v1alpha1.ModelSpec{URI: "https://models.example/" + name, SHA256: strings.Repeat("a", 64),
			GPUMemory: resource.MustParse(memory)},
	})
	mustCreate(t, &v1alpha1.Kernel{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: v1alpha1.KernelSpec{
			ModelRef:     v1alpha1.LocalObjectReference{Name: name},
			Runtime:      v1alpha1.KernelRuntime{Image: "registry.example/runtime:1"},
			NodeSelector: map[string]string{testPoolLabel: ns},
		},
	})
}

// addAdmittedJob creates a job on kernel and admits it as the job
// controller would: Admitted=True, attempts 1.
func addAdmittedJob(t *testing.T, ns, name, kernel string) *v1alpha1.InferenceJob {
	t.Helper()
	job := &v1alpha1.InferenceJob{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: v1alpha1.InferenceJobSpec{KernelRef: v1alpha1.LocalObjectReference{Name: kernel},
			Input: v1alpha1.JobInput{Text: ptr.To("hello")}},
	}
	mustCreate(t, job)
	updateJobStatus(t, job, func(j *v1alpha1.InferenceJob) {
		meta.SetStatusCondition(&j.Status.Conditions, metav1.Condition{Type: v1alpha1.ConditionAdmitted,
			Status: metav1.ConditionTrue, Reason: v1alpha1.ReasonReady, Message: "kernel ready", ObservedGeneration: j.Generation})
		j.Status.Attempts = 1
	})
	return job
}

// updateJobStatus re-reads the job and writes its status changed by change,
// retrying on conflicts with the scheduler's writes.
func updateJobStatus(t *testing.T, job *v1alpha1.InferenceJob, change func(*v1alpha1.InferenceJob)) {
	t.Helper()
	eventually(t, func() error {
		if err := k8sClient.Get(context.Background(), client.ObjectKeyFromObject(job), job); err != nil {
			return err
		}
		change(job)
		return k8sClient.Status().Update(context.Background(), job)
	})
}

// waitScheduled waits for the job's Scheduled condition and returns the job.
func waitScheduled(t *testing.T, ns, name string, status metav1.ConditionStatus, reason string) *v1alpha1.InferenceJob {
	t.Helper()
	job := &v1alpha1.InferenceJob{}
	eventually(t, func() error {
		if err := k8sClient.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, job); err != nil {
			return err
		}
		return hasCondition(v1alpha1.ConditionScheduled, status, reason)(job.Status.Conditions)
	})
	return job
}

// checkNoOverbooking fails if any GPU holds more memory than it has, over
// the active placements of every job in ns.
func checkNoOverbooking(t *testing.T, ns string, perGPU map[string]int64, total int64) {
	t.Helper()
	var jobs v1alpha1.InferenceJobList
	if err := k8sClient.List(context.Background(), &jobs, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	used := map[string]int64{}
	for i := range jobs.Items {
		j := &jobs.Items[i]
		for _, p := range activePlacements(j) {
			for _, u := range p.GPUUUIDs {
				used[u] += perGPU[j.Spec.KernelRef.Name]
			}
		}
	}
	for u, b := range used {
		if b > total {
			t.Errorf("GPU %s is booked for %s, more than its %s", u, resource.NewQuantity(b, resource.BinarySI), resource.NewQuantity(total, resource.BinarySI))
		}
	}
}

// TestSchedulerPlacesJobsOnGPUsThatFit: jobs land on GPUs with enough
// memory, in one status write with Scheduled=True; a job that fits nowhere
// gets Scheduled=False saying what is largest free and where.
func TestSchedulerPlacesJobsOnGPUsThatFit(t *testing.T) {
	ns := newNamespace(t)
	a100, h100 := ns+"-a100", ns+"-h100"
	addGPUNode(t, ns, a100, 8, dgxA100)
	addGPUNode(t, ns, h100, 8, dgxH100)
	addKernel(t, ns, "big", "60Gi")
	addKernel(t, ns, "huge", "100Gi")
	addKernel(t, ns, "small", "30Gi")
	startScheduler(t)

	addAdmittedJob(t, ns, "big", "big")
	job := waitScheduled(t, ns, "big", metav1.ConditionTrue, v1alpha1.ReasonPlaced)
	if len(job.Status.Placements) != 1 || job.Status.Placements[0].Node != h100 || job.Status.Placements[0].Attempt != 1 || job.Status.Placements[0].PlacedTime == nil {
		t.Fatalf("big job placements %+v, want one on %s for attempt 1", job.Status.Placements, h100)
	}
	waitEvent(t, ns, "big", corev1.EventTypeNormal, v1alpha1.ReasonPlaced)

	addAdmittedJob(t, ns, "huge", "huge")
	job = waitScheduled(t, ns, "huge", metav1.ConditionFalse, v1alpha1.ReasonNoGPUWithEnoughMemory)
	if got, want := meta.FindStatusCondition(job.Status.Conditions, v1alpha1.ConditionScheduled).Message,
		"no healthy GPU with 100Gi free; largest free is 80Gi on "+h100; got != want {
		t.Errorf("huge job message %q, want %q", got, want)
	}
	if len(job.Status.Placements) != 0 {
		t.Errorf("unplaceable job has placements %+v", job.Status.Placements)
	}
	waitEvent(t, ns, "huge", corev1.EventTypeWarning, v1alpha1.ReasonNoGPUWithEnoughMemory)

	// Ten 30Gi jobs: binpack puts one on each A100 (40Gi) and the rest on
	// H100s; none on a GPU without 30Gi free.
	for i := 0; i < 10; i++ {
		addAdmittedJob(t, ns, fmt.Sprintf("small-%d", i), "small")
	}
	onA100 := 0
	for i := 0; i < 10; i++ {
		job := waitScheduled(t, ns, fmt.Sprintf("small-%d", i), metav1.ConditionTrue, v1alpha1.ReasonPlaced)
		if job.Status.Placements[0].Node == a100 {
			onA100++
		}
	}
	if onA100 != 8 {
		t.Errorf("%d small jobs on the A100 node, want 8 (one per 40Gi GPU)", onA100)
	}
	checkNoOverbooking(t, ns, map[string]int64{"big": 60 << 30, "small": 30 << 30}, 80<<30)
}

// TestSchedulerAdmitsWithFirstPlacement: a job never admitted, on a Ready
// Kernel, is admitted and placed by one status write: its first status
// change carries Admitted=True, attempt 1, startTime, the placement and
// Scheduled=True.
func TestSchedulerAdmitsWithFirstPlacement(t *testing.T) {
	ns := newNamespace(t)
	node := ns + "-n"
	addGPUNode(t, ns, node, 1, dgxH100)
	addKernel(t, ns, "k", "50Gi")
	kernel := &v1alpha1.Kernel{}
	if err := k8sClient.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "k"}, kernel); err != nil {
		t.Fatal(err)
	}
	kernel.Status.KernelDigest = "sha256:" + strings.Repeat("ab", 32)
	kernel.Status.Conditions = []metav1.Condition{{Type: v1alpha1.ConditionReady, Status: metav1.ConditionTrue,
		Reason: v1alpha1.ReasonReady, Message: "ready", LastTransitionTime: metav1.Now()}}
	if err := k8sClient.Status().Update(context.Background(), kernel); err != nil {
		t.Fatal(err)
	}
	wc, err := client.NewWithWatch(cfg, client.Options{Scheme: k8sClient.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	w, err := wc.Watch(ctx, &v1alpha1.InferenceJobList{}, client.InNamespace(ns))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	startScheduler(t)
	mustCreate(t, &v1alpha1.InferenceJob{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "fresh"},
		Spec: v1alpha1.InferenceJobSpec{KernelRef: v1alpha1.LocalObjectReference{Name: "k"},
			Input: v1alpha1.JobInput{Text: ptr.To("hello")}},
	})
	for ev := range w.ResultChan() {
		job, ok := ev.Object.(*v1alpha1.InferenceJob)
		if !ok || len(job.Status.Conditions) == 0 && len(job.Status.Placements) == 0 {
			continue // the creation
		}
		if err := hasCondition(v1alpha1.ConditionAdmitted, metav1.ConditionTrue, v1alpha1.ReasonAdmitted)(job.Status.Conditions); err != nil {
			t.Errorf("first status write: %v", err)
		}
		if err := hasCondition(v1alpha1.ConditionScheduled, metav1.ConditionTrue, v1alpha1.ReasonPlaced)(job.Status.Conditions); err != nil {
			t.Errorf("first status write: %v", err)
		}
		if job.Status.Attempts != 1 || job.Status.StartTime == nil || len(job.Status.Placements) != 1 ||
			job.Status.Placements[0].Node != node || job.Status.Placements[0].Attempt != 1 {
			t.Errorf("first status write: attempts %d, startTime %v, placements %+v; want 1, set, one on %s",
				job.Status.Attempts, job.Status.StartTime, job.Status.Placements, node)
		}
		return
	}
	t.Fatal("the watch ended before the job's status was written")
}

// TestSchedulerRestartKeepsReservations: a second scheduler started from
// the same API state holds the first one's placements: no GPU is booked
// twice, and a finished job frees its GPU.
func TestSchedulerRestartKeepsReservations(t *testing.T) {
	ns := newNamespace(t)
	node := ns + "-n"
	addGPUNode(t, ns, node, 2, dgxH100)
	addKernel(t, ns, "k", "50Gi")
	t.Run("first scheduler", func(t *testing.T) {
		startScheduler(t)
		addAdmittedJob(t, ns, "j1", "k")
		addAdmittedJob(t, ns, "j2", "k")
		waitScheduled(t, ns, "j1", metav1.ConditionTrue, v1alpha1.ReasonPlaced)
		waitScheduled(t, ns, "j2", metav1.ConditionTrue, v1alpha1.ReasonPlaced)
	})
	t.Run("second scheduler", func(t *testing.T) {
		startScheduler(t)
		addAdmittedJob(t, ns, "j3", "k")
		waitScheduled(t, ns, "j3", metav1.ConditionFalse, v1alpha1.ReasonNoGPUWithEnoughMemory)
		checkNoOverbooking(t, ns, map[string]int64{"k": 50 << 30}, 80<<30)

		j1 := &v1alpha1.InferenceJob{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "j1"}}
		updateJobStatus(t, j1, func(j *v1alpha1.InferenceJob) {
			meta.SetStatusCondition(&j.Status.Conditions, metav1.Condition{Type: v1alpha1.ConditionSucceeded,
				Status: metav1.ConditionTrue, Reason: v1alpha1.ReasonResultReceived, Message: "done"})
		})
		job := waitScheduled(t, ns, "j3", metav1.ConditionTrue, v1alpha1.ReasonPlaced)
		if err := k8sClient.Get(context.Background(), client.ObjectKeyFromObject(j1), j1); err != nil {
			t.Fatal(err)
		}
		if got, want := job.Status.Placements[0].GPUUUIDs, j1.Status.Placements[0].GPUUUIDs; !slices.Equal(got, want) {
			t.Errorf("j3 on %v, want the GPU j1 freed, %v", got, want)
		}
		checkNoOverbooking(t, ns, map[string]int64{"k": 50 << 30}, 80<<30)
	})
}

// TestSchedulerSkipsUnhealthyGPUsAndCordonedNodes: a GPU turning unhealthy
// takes no new job, a cordoned node neither; each takes jobs once it is back.
func TestSchedulerSkipsUnhealthyGPUsAndCordonedNodes(t *testing.T) {
	ns := newNamespace(t)
	sick, cordon := ns+"-sick", ns+"-cordoned"
	addGPUNode(t, ns, sick, 1, dgxH100)
	addGPUNode(t, ns, cordon, 1, dgxH100)
	addKernel(t, ns, "k", "60Gi")
	setHealth := func(h v1alpha1.GPUHealth) {
		gn := &v1alpha1.GPUNode{}
		eventually(t, func() error {
			if err := k8sClient.Get(context.Background(), client.ObjectKey{Name: sick}, gn); err != nil {
				return err
			}
			gn.Status.GPUs[0].Health = h
			gn.Status.HeartbeatTime = ptr.To(metav1.Now())
			return k8sClient.Status().Update(context.Background(), gn)
		})
	}
	setCordon := func(on bool) {
		patchSpec(t, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: cordon}}, func(n *corev1.Node) { n.Spec.Unschedulable = on })
	}
	setHealth(v1alpha1.GPUUnhealthy)
	setCordon(true)
	startScheduler(t)

	addAdmittedJob(t, ns, "j1", "k")
	job := waitScheduled(t, ns, "j1", metav1.ConditionFalse, v1alpha1.ReasonNoMatchingGPU)
	if msg := meta.FindStatusCondition(job.Status.Conditions, v1alpha1.ConditionScheduled).Message; !strings.Contains(msg, "1 GPU(s) unhealthy") {
		t.Errorf("message %q does not mention the unhealthy GPU", msg)
	}
	setCordon(false)
	job = waitScheduled(t, ns, "j1", metav1.ConditionTrue, v1alpha1.ReasonPlaced)
	if job.Status.Placements[0].Node != cordon {
		t.Fatalf("j1 on %s, want %s (the other GPU is unhealthy)", job.Status.Placements[0].Node, cordon)
	}
	addAdmittedJob(t, ns, "j2", "k")
	waitScheduled(t, ns, "j2", metav1.ConditionFalse, v1alpha1.ReasonNoGPUWithEnoughMemory)
	setHealth(v1alpha1.GPUHealthy)
	job = waitScheduled(t, ns, "j2", metav1.ConditionTrue, v1alpha1.ReasonPlaced)
	if job.Status.Placements[0].Node != sick {
		t.Fatalf("j2 on %s, want %s once its GPU is healthy", job.Status.Placements[0].Node, sick)
	}
}
