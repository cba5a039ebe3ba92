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

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/aivm-dev/aivm-operator/api/v1alpha1"
	"github.com/aivm-dev/aivm-operator/controllers/indexer"
)

// squatter is a pod that someone other than the manager made with the
// name, labels and service account of a job's placement pod, running an
// image of its own: the pod-name squatting attack.
func squatter(e *jobEnv, job *v1alpha1.InferenceJob, attempt int32) *corev1.Pod {
	e.t.Helper()
	job = e.get(job)
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: e.wl, Name: PodName(job, attempt, 0, false),
			Labels: map[string]string{
				LabelJobNamespace: job.Namespace, LabelJobName: job.Name, LabelJobUID: string(job.UID),
				LabelAttempt: fmt.Sprint(attempt), LabelMember: "0", labelManaged: managedByAIVM,
			},
			Annotations: map[string]string{AnnotationJob: job.Namespace + "/" + job.Name},
		},
		Spec: corev1.PodSpec{
			NodeName: e.node, ServiceAccountName: RuntimeServiceAccount, AutomountServiceAccountToken: ptr.To(false),
			RestartPolicy: corev1.RestartPolicyNever,
			SecurityContext: &corev1.PodSecurityContext{RunAsNonRoot: ptr.To(true), RunAsUser: ptr.To[int64](1000),
				SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault}},
			Containers: []corev1.Container{{Name: runtimeContainer, Image: "attacker.example/forger:1", SecurityContext: restrictedContainer()}},
		},
	}
	mustCreate(e.t, pod)
	return pod
}

// TestSquattedPodNotAdopted: a pod made ahead of the job controller with a
// placement's name, labels and service account, but not the spec the
// manager builds, is never adopted: the placement fails PodNotOwned with
// a Warning event naming it, the pod is never recorded (so the result
// endpoint never accepts its token), and the pod is left alone.
func TestSquattedPodNotAdopted(t *testing.T) {
	e := newJobEnv(t)
	e.kernel("k", true, nil)
	job := e.job("victim", "k", func(j *v1alpha1.InferenceJob) { j.Spec.BackoffLimit = ptr.To[int32](0) })
	sq := squatter(e, job, 1)
	// The controller sees the pod before the job is placed, and leaves it:
	// a pod with the job's labels is not the manager's to delete.
	eventually(t, func() error { return e.cache.Get(context.Background(), client.ObjectKeyFromObject(sq), &corev1.Pod{}) })
	e.reconcileNow(job)
	e.place(job, e.node)
	got := e.waitJob(job, placementEnded(1, 0, v1alpha1.PlacementFailed, v1alpha1.ReasonPodNotOwned))
	if p := placement(got, 1, 0); p.Pod != "" || p.PodUID != "" {
		t.Errorf("placement records pod %s/%s; the squatted pod must never be recorded", p.Pod, p.PodUID)
	}
	waitEvent(t, e.ns, "victim", corev1.EventTypeWarning, v1alpha1.ReasonPodNotOwned)
	still := &corev1.Pod{}
	if err := k8sClient.Get(context.Background(), client.ObjectKeyFromObject(sq), still); err != nil || still.UID != sq.UID || still.DeletionTimestamp != nil {
		t.Errorf("the squatted pod: %v (deleting %v); the manager leaves pods it did not make alone", err, still.DeletionTimestamp)
	}
	// PodNotOwned is the provider's problem, not the job's: with
	// backoffLimit 0 the job still gets a second attempt, whose pod has
	// another name.
	got = e.waitJob(job, hasAttempts(2))
	if meta.IsStatusConditionTrue(got.Status.Conditions, v1alpha1.ConditionFailed) {
		t.Errorf("the job failed: %+v; a squatted pod does not count against backoffLimit", got.Status.Conditions)
	}
	if PodName(got, 2, 0, false) == sq.Name {
		t.Errorf("attempt 2 would reuse the squatted name %s", sq.Name)
	}
}

// TestOwnPodAdoptedAfterCrash: the pod the manager made before a crash is
// adopted (it is exactly the pod it builds), not failed PodNotOwned.
func TestOwnPodAdoptedAfterCrash(t *testing.T) {
	e := newJobEnv(t)
	k := e.kernel("k", true, nil)
	job := e.job("mine", "k", nil)
	e.place(job, e.node)
	cur := e.get(job)
	want, err := buildPod(cur, e.getKernel(k), cur.Status.Placements[0], podConfig{
		namespace: e.wl, runtimeImage: testRuntimeImage, binding: GPUBindingDevicePlugin,
		resultURL: "https://aivm-result.aivm-system.svc:9443/v1/results",
	})
	if err != nil {
		t.Fatal(err)
	}
	pod := e.pod("mine-1")
	if why := notOwned(pod, want); why != "" {
		t.Fatalf("the manager's own pod as the API server returns it is not owned: %s", why)
	}
	e.kubelet(pod, corev1.PodRunning, running())
	e.waitCond(job, v1alpha1.ConditionRunning, metav1.ConditionTrue, v1alpha1.ReasonPodRunning)
}

// getKernel reads the kernel as the API server has it.
func (e *jobEnv) getKernel(k *v1alpha1.Kernel) *v1alpha1.Kernel {
	e.t.Helper()
	out := &v1alpha1.Kernel{}
	if err := k8sClient.Get(context.Background(), client.ObjectKeyFromObject(k), out); err != nil {
		e.t.Fatal(err)
	}
	return out
}

// TestOrphanPodsDeleted: a job's pods run in the workload namespace, where
// no owner reference can point at the job; deleting the job still removes
// them.
func TestOrphanPodsDeleted(t *testing.T) {
	e := newJobEnv(t)
	e.kernel("k", true, nil)
	job := e.job("gone", "k", nil)
	e.place(job, e.node)
	e.pod("gone-1")
	if err := k8sClient.Delete(context.Background(), e.get(job)); err != nil {
		t.Fatal(err)
	}
	e.waitPodGone("gone-1")
}

// TestReferencedInputCopied: a ConfigMap input is copied into the
// workload namespace (the pod never reads the tenant's namespace), owned
// by the pod so it goes with it; a missing ConfigMap is a FailedCreate
// Warning naming it, and the job waits.
func TestReferencedInputCopied(t *testing.T) {
	e := newJobEnv(t)
	e.kernel("k", true, nil)
	ref := func(j *v1alpha1.InferenceJob) {
		j.Spec.Input = v1alpha1.JobInput{ConfigMapKeyRef: &v1alpha1.KeyReference{Name: "prompt", Key: "text"}}
	}
	job := e.job("copy", "k", ref)
	e.place(job, e.node)
	waitEvent(t, e.ns, "copy", corev1.EventTypeWarning, v1alpha1.ReasonFailedCreate)
	if pod := e.findPod("copy-1"); pod != nil {
		t.Fatalf("pod %s made without its input", pod.Name)
	}
	mustCreate(t, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: "prompt"}, Data: map[string]string{"text": "tell me"}})
	e.poke(job)
	pod := e.pod("copy-1")
	var in *corev1.Volume
	for i := range pod.Spec.Volumes {
		if pod.Spec.Volumes[i].Name == "input" {
			in = &pod.Spec.Volumes[i]
		}
	}
	if in == nil || in.Secret == nil || in.Secret.SecretName != InputSecretName(pod.Name) {
		t.Fatalf("input volume %+v, want the Secret %s", in, InputSecretName(pod.Name))
	}
	eventually(t, func() error {
		sec := &corev1.Secret{}
		if err := k8sClient.Get(context.Background(), client.ObjectKey{Namespace: e.wl, Name: InputSecretName(pod.Name)}, sec); err != nil {
			return err
		}
		if string(sec.Data[InputSecretKey]) != "tell me" {
			return fmt.Errorf("copy holds %q", sec.Data[InputSecretKey])
		}
		if len(sec.OwnerReferences) != 1 || sec.OwnerReferences[0].UID != pod.UID {
			return fmt.Errorf("copy owned by %+v, want the pod %s", sec.OwnerReferences, pod.UID)
		}
		return nil
	})
	if err := k8sClient.Get(context.Background(), client.ObjectKey{Namespace: e.ns, Name: InputSecretName(pod.Name)}, &corev1.Secret{}); !apierrors.IsNotFound(err) {
		t.Errorf("a copy in the tenant's namespace: %v", err)
	}
}

// TestResultCARepaired: the workload namespace's result CA ConfigMap,
// deleted while a job's pod waits for it, is written again without a
// manager restart or another change to the job.
func TestResultCARepaired(t *testing.T) {
	e := newJobEnv(t)
	e.kernel("k", true, nil)
	job := e.job("ca", "k", nil)
	e.place(job, e.node)
	e.pod("ca-1")
	key := client.ObjectKey{Namespace: e.wl, Name: ResultCAConfigMap}
	if err := k8sClient.Delete(context.Background(), &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name}}); err != nil {
		t.Fatal(err)
	}
	eventually(t, func() error {
		cm := &corev1.ConfigMap{}
		if err := k8sClient.Get(context.Background(), key, cm); err != nil {
			return err
		}
		if cm.Data[caKey] != "test-ca" {
			return fmt.Errorf("ca.crt %q", cm.Data[caKey])
		}
		return nil
	})
}

// laggingJobs is a client whose cache has not seen any InferenceJob yet.
type laggingJobs struct{ client.Client }

func (c laggingJobs) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	if _, ok := obj.(*v1alpha1.InferenceJob); ok {
		return apierrors.NewNotFound(v1alpha1.GroupVersion.WithResource("inferencejobs").GroupResource(), key.Name)
	}
	return c.Client.Get(ctx, key, obj, opts...)
}

// TestCacheLagDeletesNoPods: a pod event can reach the job controller
// before its cache has the job; the API server still has it, so the job's
// pods (here one made before the job was placed) are not taken for
// orphans. Once the API server has no job, they are.
func TestCacheLagDeletesNoPods(t *testing.T) {
	e := newJobEnv(t)
	e.kernel("k", true, nil)
	job := e.job("lag", "k", nil)
	sq := squatter(e, job, 1)
	r := NewInferenceJobReconciler(laggingJobs{fakePodIndex{k8sClient}}, k8sClient, nil, e.opts...)
	req := ctrl.Request{NamespacedName: client.ObjectKeyFromObject(job)}
	if _, err := r.Reconcile(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	kept := &corev1.Pod{}
	if err := k8sClient.Get(context.Background(), client.ObjectKeyFromObject(sq), kept); err != nil || kept.DeletionTimestamp != nil {
		t.Fatalf("the pod of a job the cache had not seen: %v, deleting %v", err, kept.DeletionTimestamp)
	}
	if err := k8sClient.Delete(context.Background(), e.get(job)); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Reconcile(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	p := &corev1.Pod{}
	if err := k8sClient.Get(context.Background(), client.ObjectKeyFromObject(sq), p); !apierrors.IsNotFound(err) && p.DeletionTimestamp == nil {
		t.Errorf("the pod of a deleted job is still there: %v", err)
	}
}

// fakePodIndex lists pods by the job key index as the cache would, from
// the API server by labels (which serves no field index).
type fakePodIndex struct{ client.Client }

func (c fakePodIndex) List(ctx context.Context, list client.ObjectList, opts ...client.ListOption) error {
	lo := (&client.ListOptions{}).ApplyOptions(opts)
	if lo.FieldSelector == nil {
		return c.Client.List(ctx, list, opts...)
	}
	key, ok := lo.FieldSelector.RequiresExactMatch(indexer.PodJobKey)
	if !ok {
		return c.Client.List(ctx, list, opts...)
	}
	ns, name, _ := strings.Cut(key, "/")
	return c.Client.List(ctx, list, client.InNamespace(lo.Namespace), client.MatchingLabels{LabelJobNamespace: ns, LabelJobName: name})
}
