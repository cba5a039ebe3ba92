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
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/aivm-dev/aivm-operator/api/v1alpha1"
)

// TestJobPodSpec: the pod follows the runtime contract and the API server
// accepts it in a namespace that enforces Pod Security restricted.
func TestJobPodSpec(t *testing.T) {
	e := newJobEnv(t)
	ctx := context.Background()
	// The namespace really enforces restricted: a pod without the
	// restricted settings is refused, so the job pod's acceptance means something.
	bad := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: e.wl, Name: "bad"},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}}}
	if err := k8sClient.Create(ctx, bad); !apierrors.IsForbidden(err) {
		t.Fatalf("a privileged pod in the restricted namespace: %v, want Forbidden", err)
	}
	tol := corev1.Toleration{Key: "nvidia.com/gpu", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule}
	e.kernel("k", true, func(k *v1alpha1.Kernel) {
		k.Spec.Tolerations = []corev1.Toleration{tol}
		k.Spec.GPU.Count = 1
		k.Spec.Determinism.Seed = ptr.To[int64](42)
		k.Spec.Runtime.Env = []corev1.EnvVar{{Name: "ENGINE_THREADS", Value: "4"}, {Name: "AIVM_JOB_NAME", Value: "spoofed"}}
		mem := resource.MustParse("2Gi")
		k.Spec.Resources = &v1alpha1.KernelResources{Memory: &mem}
	})
	job := e.job("summarize", "k", func(j *v1alpha1.InferenceJob) { j.Spec.Parameters.MaxTokens = 16 })
	e.place(job, e.node)
	pod := e.pod("summarize-1")

	// A pod that waits to start costs no status write: the placement
	// records it with the pod's first change (here, running).
	got := e.waitCond(job, v1alpha1.ConditionRunning, metav1.ConditionFalse, v1alpha1.ReasonPodPending)
	if p := placement(got, 1, 0); p == nil || p.Pod != "" || p.PodUID != "" {
		t.Errorf("placement records pod %+v before it changed", p)
	}
	if got.Status.StartTime == nil || got.Status.ObservedGeneration != got.Generation {
		t.Errorf("startTime %v, observedGeneration %d (generation %d)", got.Status.StartTime, got.Status.ObservedGeneration, got.Generation)
	}

	wantLabels := map[string]string{LabelJobNamespace: e.ns, LabelJobName: "summarize", LabelJobUID: string(got.UID), LabelAttempt: "1", LabelMember: "0", labelManaged: managedByAIVM}
	if diff := cmp.Diff(wantLabels, pod.Labels); diff != "" {
		t.Errorf("labels (-want +got):\n%s", diff)
	}
	// The pod runs in the workload namespace, apart from its job: no owner
	// reference can cross namespaces, the annotation names the job.
	if pod.Namespace != e.wl || len(pod.OwnerReferences) != 0 || pod.Annotations[AnnotationJob] != e.ns+"/summarize" {
		t.Errorf("pod %s/%s owners %+v annotation %q: want it in the workload namespace %s naming its job", pod.Namespace, pod.Name, pod.OwnerReferences, pod.Annotations[AnnotationJob], e.wl)
	}
	s := pod.Spec
	if s.NodeName != e.node || s.RestartPolicy != corev1.RestartPolicyNever || s.ServiceAccountName != RuntimeServiceAccount ||
		!ptr.Deref(s.SecurityContext.RunAsNonRoot, false) || ptr.Deref(s.SecurityContext.RunAsUser, 0) != 65532 ||
		ptr.Deref(s.AutomountServiceAccountToken, true) {
		t.Errorf("pod spec basics wrong: node %q restart %q sa %q sc %+v automount %v", s.NodeName, s.RestartPolicy, s.ServiceAccountName, s.SecurityContext, s.AutomountServiceAccountToken)
	}
	// The API server adds the not-ready and unreachable tolerations.
	if len(s.Tolerations) == 0 || !cmp.Equal(s.Tolerations[0], tol) {
		t.Errorf("tolerations %+v, want the kernel's %+v first", s.Tolerations, tol)
	}
	if len(s.Containers) != 1 {
		t.Fatalf("%d containers, want the runtime only", len(s.Containers))
	}
	c := s.Containers[0]
	if c.Image != testRuntimeImage || !cmp.Equal(c.Args, []string{"run"}) {
		t.Errorf("runtime container image %q args %v", c.Image, c.Args)
	}
	sc := c.SecurityContext
	if !ptr.Deref(sc.ReadOnlyRootFilesystem, false) || ptr.Deref(sc.AllowPrivilegeEscalation, true) ||
		sc.Capabilities == nil || !cmp.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) ||
		sc.SeccompProfile == nil || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("container security context not restricted: %+v", sc)
	}
	if q := c.Resources.Limits[nvidiaGPU]; q.Value() != 1 {
		t.Errorf("nvidia.com/gpu limit %v, want 1", c.Resources.Limits)
	}
	if q := c.Resources.Limits[corev1.ResourceMemory]; q.String() != "2Gi" {
		t.Errorf("memory limit %v, want 2Gi", c.Resources.Limits)
	}
	env := map[string]string{}
	for _, ev := range c.Env {
		if _, dup := env[ev.Name]; dup {
			t.Errorf("env %s set twice", ev.Name)
		}
		env[ev.Name] = ev.Value
	}
	for k, v := range map[string]string{
		"AIVM_JOB_NAMESPACE": e.ns, "AIVM_JOB_NAME": "summarize", "AIVM_JOB_UID": string(got.UID), "AIVM_ATTEMPT": "1", "AIVM_MEMBER": "0",
		"AIVM_KERNEL_DIGEST": "sha256:" + strings.Repeat("ab", 32), "AIVM_MODEL_DIGEST": strings.Repeat("cd", 32), "AIVM_ENGINE": "builtin",
		"AIVM_STARTUP_TIMEOUT": "15m0s", "AIVM_INFERENCE_TIMEOUT": "5m0s",
		"AIVM_RESULT_URL": "https://aivm-result.aivm-system.svc:9443/v1/results",
		"AIVM_MODEL_DIR":  "/var/run/aivm/model", "AIVM_INPUT_FILE": "/var/run/aivm/input/input",
		"AIVM_RESULT_TOKEN_FILE": "/var/run/aivm/token/token", "AIVM_RESULT_CA_FILE": "/var/run/aivm/ca/ca.crt",
		"ENGINE_THREADS": "4",
	} {
		if env[k] != v {
			t.Errorf("env %s = %q, want %q", k, env[k], v)
		}
	}
	var params map[string]any
	if err := json.Unmarshal([]byte(env["AIVM_PARAMETERS"]), &params); err != nil || params["seed"] != float64(42) || params["maxTokens"] != float64(16) {
		t.Errorf("AIVM_PARAMETERS %s (%v): want the kernel's seed 42 and maxTokens 16", env["AIVM_PARAMETERS"], err)
	}
	vols := map[string]corev1.Volume{}
	for _, v := range s.Volumes {
		vols[v.Name] = v
	}
	csi := vols["model"].CSI
	if csi == nil || csi.Driver != ModelCSIDriver || !ptr.Deref(csi.ReadOnly, false) ||
		!cmp.Equal(csi.VolumeAttributes, map[string]string{"model.aivm.dev/namespace": e.ns, "model.aivm.dev/name": "tiny", "model.aivm.dev/digest": strings.Repeat("cd", 32)}) {
		t.Errorf("model volume %+v", vols["model"])
	}
	if tok := vols["token"].Projected; tok == nil || tok.Sources[0].ServiceAccountToken.Audience != ResultTokenAudience ||
		ptr.Deref(tok.Sources[0].ServiceAccountToken.ExpirationSeconds, 0) != 600 {
		t.Errorf("token volume %+v", vols["token"])
	}
	// The inline input travels in the pod: an annotation that a downward
	// API volume turns into the input file.
	if in := vols["input"].DownwardAPI; in == nil || len(in.Items) != 1 || in.Items[0].Path != "input" || in.Items[0].FieldRef == nil ||
		in.Items[0].FieldRef.FieldPath != "metadata.annotations['aivm.dev/input']" {
		t.Errorf("input volume %+v", vols["input"])
	}
	if got := pod.Annotations[AnnotationInput]; got != "hello" {
		t.Errorf("pod annotation %s = %q, want the job's input %q", AnnotationInput, got, "hello")
	}
	if vols["tmp"].EmptyDir == nil || vols["ca"].ConfigMap == nil || vols["ca"].ConfigMap.Name != ResultCAConfigMap {
		t.Errorf("tmp %+v / ca %+v volumes", vols["tmp"], vols["ca"])
	}

	// What the pod mounts exists: service account, CA; no input ConfigMap is made.
	sa := &corev1.ServiceAccount{}
	if err := k8sClient.Get(ctx, client.ObjectKey{Namespace: e.wl, Name: RuntimeServiceAccount}, sa); err != nil || ptr.Deref(sa.AutomountServiceAccountToken, true) {
		t.Errorf("service account: %v, automount %v", err, sa.AutomountServiceAccountToken)
	}
	if err := k8sClient.Get(ctx, client.ObjectKey{Namespace: e.ns, Name: "summarize-input"}, &corev1.ConfigMap{}); !apierrors.IsNotFound(err) {
		t.Errorf("input configmap: %v, want none", err)
	}
	ca := &corev1.ConfigMap{}
	if err := k8sClient.Get(ctx, client.ObjectKey{Namespace: e.wl, Name: ResultCAConfigMap}, ca); err != nil || ca.Data[caKey] != "test-ca" {
		t.Errorf("CA configmap: %v %+v", err, ca.Data)
	}
	e.kubelet(pod, corev1.PodRunning, running())
	e.waitJob(job, func(j *v1alpha1.InferenceJob) error {
		if p := placement(j, 1, 0); p == nil || p.PodUID != string(pod.UID) || p.Pod != pod.Name {
			return fmt.Errorf("placement does not record running pod %s/%s: %+v", pod.Name, pod.UID, p)
		}
		return hasCondition(v1alpha1.ConditionRunning, metav1.ConditionTrue, v1alpha1.ReasonPodRunning)(j.Status.Conditions)
	})
}

// TestJobPodOpenAIVisibleDevices: an openai kernel adds the engine
// container; visible-devices binding names the GPU UUIDs under the nvidia
// RuntimeClass and requests no extended resource.
func TestJobPodOpenAIVisibleDevices(t *testing.T) {
	ensureNvidiaRuntimeClass(t)
	e := newJobEnv(t, WithGPUBinding(GPUBindingVisibleDevices))
	e.kernel("vllm", true, func(k *v1alpha1.Kernel) {
		k.Spec.Runtime.Engine = v1alpha1.EngineOpenAI
		k.Spec.Runtime.Port = ptr.To[int32](8000)
		k.Spec.Runtime.Args = []string{"--model", "/var/run/aivm/model"}
	})
	job := e.job("chat", "vllm", nil)
	e.place(job, e.node)
	pod := e.pod("chat-1")
	if ptr.Deref(pod.Spec.RuntimeClassName, "") != "nvidia" {
		t.Errorf("runtimeClassName %v, want nvidia", pod.Spec.RuntimeClassName)
	}
	if len(pod.Spec.Containers) != 2 || pod.Spec.Containers[1].Name != engineContainer {
		t.Fatalf("containers %d, want runtime and engine", len(pod.Spec.Containers))
	}
	eng := pod.Spec.Containers[1]
	if eng.Image != "registry.example/engine:1" || eng.Ports[0].ContainerPort != 8000 || !cmp.Equal(eng.Args, []string{"--model", "/var/run/aivm/model"}) {
		t.Errorf("engine container %+v", eng)
	}
	for _, c := range pod.Spec.Containers {
		if len(c.Resources.Limits) != 0 {
			t.Errorf("container %s requests %v, want no extended resource", c.Name, c.Resources.Limits)
		}
		found := false
		for _, ev := range c.Env {
			if ev.Name == "NVIDIA_VISIBLE_DEVICES" {
				found = ev.Value == gpuUUID(e.node)
			}
			if ev.Name == "AIVM_ENGINE_URL" && ev.Value != "http://127.0.0.1:8000" {
				t.Errorf("AIVM_ENGINE_URL %q", ev.Value)
			}
		}
		if !found {
			t.Errorf("container %s lacks NVIDIA_VISIBLE_DEVICES=%s", c.Name, gpuUUID(e.node))
		}
	}
}

// TestJobWaitsForKernel: a job on a missing kernel waits (Admitted=False
// KernelNotFound, then KernelNotReady naming the kernel's reason) and is
// admitted once the kernel is ready.
func TestJobWaitsForKernel(t *testing.T) {
	e := newJobEnv(t)
	job := e.job("early", "later", nil)
	got := e.waitCond(job, v1alpha1.ConditionAdmitted, metav1.ConditionFalse, v1alpha1.ReasonKernelNotFound)
	if c := meta.FindStatusCondition(got.Status.Conditions, v1alpha1.ConditionAdmitted); !strings.Contains(c.Message, `"later"`) || got.Status.Attempts != 0 {
		t.Errorf("message %q should name the kernel; attempts %d", c.Message, got.Status.Attempts)
	}
	k := e.kernel("later", false, func(*v1alpha1.Kernel) {})
	k.Status.Conditions = []metav1.Condition{{Type: v1alpha1.ConditionReady, Status: metav1.ConditionFalse, Reason: v1alpha1.ReasonModelNotReady,
		Message: "model tiny is not ready", LastTransitionTime: metav1.Now()}}
	if err := k8sClient.Status().Update(context.Background(), k); err != nil {
		t.Fatal(err)
	}
	e.waitJob(job, func(j *v1alpha1.InferenceJob) error {
		if err := hasCondition(v1alpha1.ConditionAdmitted, metav1.ConditionFalse, v1alpha1.ReasonKernelNotReady)(j.Status.Conditions); err != nil {
			return err
		}
		if c := meta.FindStatusCondition(j.Status.Conditions, v1alpha1.ConditionAdmitted); !strings.Contains(c.Message, "kernel later") || !strings.Contains(c.Message, "ModelNotReady") {
			return fmt.Errorf("message %q should name the kernel and its reason", c.Message)
		}
		return nil
	})
	// A Ready kernel: the job's first admission comes with its first
	// placement, in the scheduler's one write (here the test's).
	e.setKernelReady(k)
	e.place(job, e.node)
	e.pod("early-1")
	got = e.waitCond(job, v1alpha1.ConditionRunning, metav1.ConditionFalse, v1alpha1.ReasonPodPending)
	if err := hasCondition(v1alpha1.ConditionAdmitted, metav1.ConditionTrue, v1alpha1.ReasonAdmitted)(got.Status.Conditions); err != nil {
		t.Error(err)
	}
	if got.Status.Attempts != 1 || got.Status.StartTime == nil {
		t.Errorf("attempts %d startTime %v, want 1 and set", got.Status.Attempts, got.Status.StartTime)
	}
	waitEvent(t, e.ns, "early", corev1.EventTypeWarning, v1alpha1.ReasonKernelNotFound)
}

// TestJobSucceeds: a running pod makes Running=True; the endpoint's result
// makes Succeeded=True, closes the placement and deletes the pod.
func TestJobSucceeds(t *testing.T) {
	e := newJobEnv(t)
	e.kernel("k", true, nil)
	job := e.job("ok", "k", nil)
	e.place(job, e.node)
	pod := e.pod("ok-1")
	e.kubelet(pod, corev1.PodRunning, running())
	e.waitCond(job, v1alpha1.ConditionRunning, metav1.ConditionTrue, v1alpha1.ReasonPodRunning)
	endpointResult(e, job, 1, 0, "ok-1", strings.Repeat("ef", 32), true)
	got := e.waitCond(job, v1alpha1.ConditionSucceeded, metav1.ConditionTrue, v1alpha1.ReasonResultReceived)
	if err := placementEnded(1, 0, v1alpha1.PlacementSucceeded, v1alpha1.ReasonResultReceived)(got); err != nil {
		t.Error(err)
	}
	if got.Status.CompletionTime == nil || meta.IsStatusConditionTrue(got.Status.Conditions, v1alpha1.ConditionRunning) {
		t.Errorf("completionTime %v, Running %+v", got.Status.CompletionTime, meta.FindStatusCondition(got.Status.Conditions, v1alpha1.ConditionRunning))
	}
	e.waitPodGone("ok-1")
	waitEvent(t, e.ns, "ok", corev1.EventTypeNormal, v1alpha1.ReasonResultReceived)
}

// endpointResult writes what the result endpoint writes for a member's
// accepted post; final also sets status.result.
func endpointResult(e *jobEnv, job *v1alpha1.InferenceJob, attempt, member int32, pod, digest string, final bool) {
	e.writeStatus(job, func(o *v1alpha1.InferenceJob) {
		o.Status.MemberResults = append(o.Status.MemberResults, v1alpha1.MemberResult{Attempt: attempt, Member: member, Pod: pod, OutputDigest: digest})
		if final {
			o.Status.Result = &v1alpha1.JobResult{OutputDigest: digest,
				OutputConfigMapRef: &v1alpha1.LocalObjectReference{Name: ResultConfigMapName(o.Name)}}
		}
	})
}

// TestJobStatusWritersInterleave: the reporter and the endpoint write the
// job's status between the job controller's writes, from copies that the
// controller's writes made stale; nobody's fields are lost.
func TestJobStatusWritersInterleave(t *testing.T) {
	e := newJobEnv(t)
	e.kernel("k", true, nil)
	job := e.job("shared", "k", nil)
	e.place(job, e.node)
	pod := e.pod("shared-1")
	stale := e.waitCond(job, v1alpha1.ConditionRunning, metav1.ConditionFalse, v1alpha1.ReasonPodPending)
	e.kubelet(pod, corev1.PodRunning, running())
	e.waitCond(job, v1alpha1.ConditionRunning, metav1.ConditionTrue, v1alpha1.ReasonPodRunning)
	// The reporter writes from the copy read before Running=True landed: its
	// first patch conflicts and is recomputed on a fresh copy.
	if _, err := statusUpdate(stale, func(o *v1alpha1.InferenceJob) {
		meta.SetStatusCondition(&o.Status.Conditions, metav1.Condition{Type: v1alpha1.ConditionReported, Status: metav1.ConditionFalse,
			Reason: v1alpha1.ReasonReportPending, Message: "waiting"})
	}); err != nil {
		t.Fatal(err)
	}
	endpointResult(e, job, 1, 0, "shared-1", strings.Repeat("12", 32), true)
	got := e.waitCond(job, v1alpha1.ConditionSucceeded, metav1.ConditionTrue, v1alpha1.ReasonResultReceived)
	if err := hasCondition(v1alpha1.ConditionReported, metav1.ConditionFalse, v1alpha1.ReasonReportPending)(got.Status.Conditions); err != nil {
		t.Errorf("the reporter's condition was lost: %v", err)
	}
	if len(got.Status.MemberResults) != 1 || got.Status.Result == nil || placement(got, 1, 0).PodUID != string(pod.UID) {
		t.Errorf("a writer's fields were lost: memberResults %v result %v placement %+v", got.Status.MemberResults, got.Status.Result, placement(got, 1, 0))
	}
	if meta.FindStatusCondition(got.Status.Conditions, v1alpha1.ConditionScheduled) == nil {
		t.Error("the scheduler's Scheduled condition was lost")
	}
}

// TestJobRestartMakesNoSecondPod: a manager that crashed after creating a
// pod but before recording it, and a second one started on the same state,
// adopt the pod instead of creating another.
func TestJobRestartMakesNoSecondPod(t *testing.T) {
	e := newJobEnv(t)
	e.kernel("k", true, nil)
	job := e.job("again", "k", nil)
	e.place(job, e.node)
	first := e.pod("again-1")
	// The crash: the pod exists, its record does not (a pod that waits to
	// start is not recorded yet).
	e.stopLast()
	e.start()
	e.start() // and a second reconciler on the same state
	e.kubelet(first, corev1.PodRunning, running())
	e.waitJob(job, func(j *v1alpha1.InferenceJob) error {
		if p := placement(j, 1, 0); p == nil || p.PodUID != string(first.UID) {
			return fmt.Errorf("placement %+v does not record the first pod %s", p, first.UID)
		}
		return nil
	})
	var pods corev1.PodList
	if err := k8sClient.List(context.Background(), &pods, client.InNamespace(e.wl)); err != nil {
		t.Fatal(err)
	}
	if len(pods.Items) != 1 || pods.Items[0].UID != first.UID {
		t.Errorf("%d pods after the restart, want the first one only", len(pods.Items))
	}
}

func statusUpdate(stale *v1alpha1.InferenceJob, mutate func(*v1alpha1.InferenceJob)) (bool, error) {
	return statusUpdateWith(stale.DeepCopy(), mutate)
}

// rotatingCA is a CABundleSource whose bundle the test changes.
type rotatingCA struct {
	mu     sync.Mutex
	bundle string
}

func (c *rotatingCA) CABundle() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return []byte(c.bundle)
}

func (c *rotatingCA) set(b string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.bundle = b
}

// TestJobResultCARotates: a rotated result CA reaches the namespace's
// aivm-result-ca ConfigMap while a job's pod runs.
func TestJobResultCARotates(t *testing.T) {
	ca := &rotatingCA{bundle: "ca-1"}
	e := newJobEnv(t, WithCABundle(ca))
	e.kernel("k", true, nil)
	job := e.job("rot", "k", nil)
	e.place(job, e.node)
	pod := e.pod("rot-1")
	waitCA := func(want string) {
		t.Helper()
		eventually(t, func() error {
			cm := &corev1.ConfigMap{}
			if err := k8sClient.Get(context.Background(), client.ObjectKey{Namespace: e.wl, Name: ResultCAConfigMap}, cm); err != nil {
				return err
			}
			if cm.Data["ca.crt"] != want {
				return fmt.Errorf("ca.crt %q, want %q", cm.Data["ca.crt"], want)
			}
			return nil
		})
	}
	waitCA("ca-1")
	ca.set("ca-2")
	e.kubelet(pod, corev1.PodRunning, running())
	waitCA("ca-2")
}

// creatingClient counts the Create calls it passes on, by object type.
type creatingClient struct {
	client.Client
	mu      sync.Mutex
	creates map[string]int
}

func (c *creatingClient) Create(ctx context.Context, obj client.Object, opts ...client.CreateOption) error {
	c.mu.Lock()
	c.creates[fmt.Sprintf("%T", obj)]++
	c.mu.Unlock()
	return c.Client.Create(ctx, obj, opts...)
}

// TestNamespaceObjectsWrittenOnce: the first jobs, reconciled on many
// workers at once, create the workload namespace's runtime service
// account and result CA ConfigMap once, not once per worker.
func TestNamespaceObjectsWrittenOnce(t *testing.T) {
	ns := newNamespace(t)
	cc := &creatingClient{Client: k8sClient, creates: map[string]int{}}
	r := NewInferenceJobReconciler(cc, k8sClient, nil, WithCABundle(staticCA("test-ca")), WithWorkloadNamespace(ns))
	errs := make(chan error, 16)
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() { errs <- r.ensureNamespaceObjects(context.Background()) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if sa, cm := cc.creates["*v1.ServiceAccount"], cc.creates["*v1.ConfigMap"]; sa != 1 || cm != 1 {
		t.Errorf("%d service account and %d ConfigMap creations from 16 workers, want 1 each", sa, cm)
	}
	ca := &corev1.ConfigMap{}
	if err := k8sClient.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: ResultCAConfigMap}, ca); err != nil || ca.Data[caKey] != "test-ca" {
		t.Errorf("result CA ConfigMap %v, %v", ca.Data, err)
	}
}
