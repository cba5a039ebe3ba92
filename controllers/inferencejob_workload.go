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
	"errors"
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/aivm-dev/aivm-operator/api/v1alpha1"
	"github.com/aivm-dev/aivm-operator/controllers/indexer"
)

// Job pods run in the workload namespace, apart from the tenants' jobs
// (docs/security.md): a tenant who may create pods, tokens or exec
// sessions in its own namespace can neither squat a job's pod name nor
// mint a token for its pod there. This file holds what that separation
// needs: the copy of a ConfigMap or Secret input, the check that a pod is
// one the manager built, and the removal of pods whose job is gone.

// MaxInputBytes bounds a ConfigMap or Secret input the manager copies
// into the workload namespace: the largest ConfigMap or Secret value, and
// the most the runtime reads.
const MaxInputBytes = 1 << 20

// WithWorkloadNamespace sets the namespace job pods run in
// (DefaultWorkloadNamespace by default).
func WithWorkloadNamespace(ns string) InferenceJobOption {
	return func(r *InferenceJobReconciler) {
		if ns != "" {
			r.pods.namespace = ns
		}
	}
}

// errInput is an input the manager cannot copy: it names the tenant's
// object and key, never their content.
type errInput struct{ msg string }

func (e *errInput) Error() string { return e.msg }

// readJobInput returns the bytes of a job's ConfigMap or Secret input, at
// most MaxInputBytes, read from the API server (tenant Secrets are never
// cached). The result endpoint hashes the copy, so what is signed is what
// the pod read.
func readJobInput(ctx context.Context, r client.Reader, job *v1alpha1.InferenceJob) ([]byte, error) {
	in := job.Spec.Input
	var data []byte
	switch {
	case in.ConfigMapKeyRef != nil:
		ref := in.ConfigMapKeyRef
		cm := &corev1.ConfigMap{}
		if err := r.Get(ctx, types.NamespacedName{Namespace: job.Namespace, Name: ref.Name}, cm); err != nil {
			return nil, inputReadErr(err, "ConfigMap", ref.Name)
		}
		v, ok := cm.Data[ref.Key]
		data = []byte(v)
		if !ok {
			if data, ok = cm.BinaryData[ref.Key]; !ok {
				return nil, &errInput{fmt.Sprintf("ConfigMap %s has no key %s", ref.Name, ref.Key)}
			}
		}
	case in.SecretKeyRef != nil:
		ref := in.SecretKeyRef
		sec := &corev1.Secret{}
		if err := r.Get(ctx, types.NamespacedName{Namespace: job.Namespace, Name: ref.Name}, sec); err != nil {
			return nil, inputReadErr(err, "Secret", ref.Name)
		}
		var ok bool
		if data, ok = sec.Data[ref.Key]; !ok {
			return nil, &errInput{fmt.Sprintf("Secret %s has no key %s", ref.Name, ref.Key)}
		}
	default:
		return nil, nil
	}
	if len(data) > MaxInputBytes {
		return nil, &errInput{fmt.Sprintf("input of %d bytes exceeds %d", len(data), MaxInputBytes)}
	}
	return data, nil
}

func inputReadErr(err error, kind, name string) error {
	if apierrors.IsNotFound(err) {
		return &errInput{fmt.Sprintf("%s %s holding the input does not exist", kind, name)}
	}
	return fmt.Errorf("get input %s %s: %w", kind, name, err)
}

// ensureInputCopy writes the copy of the job's input that pod reads, as a
// Secret owned by the pod (the garbage collector removes it with the pod).
// It is written after the pod, which waits for its volume meanwhile, so a
// copy never outlives its pod; an existing copy is left as it is.
func (r *InferenceJobReconciler) ensureInputCopy(ctx context.Context, pod *corev1.Pod, input []byte) error {
	sec := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: pod.Namespace, Name: InputSecretName(pod.Name),
			Labels: map[string]string{
				LabelJobNamespace: pod.Labels[LabelJobNamespace], LabelJobName: pod.Labels[LabelJobName],
				LabelJobUID: pod.Labels[LabelJobUID], labelManaged: managedByAIVM,
			},
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion: "v1", Kind: "Pod", Name: pod.Name, UID: pod.UID,
			}},
		},
		Type: corev1.SecretTypeOpaque,
		Data: map[string][]byte{inputKey: input},
	}
	if err := r.client.Create(ctx, sec); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create input copy %s: %w", klog.KObj(sec), err)
	}
	return nil
}

// notOwned says why pod is not the pod the manager builds for its
// placement ("" when it is): the fields that decide what runs, where, and
// with which token. A pod of that name that the manager did not make is
// never adopted (docs/security.md).
func notOwned(pod, want *corev1.Pod) string {
	for _, k := range []string{LabelJobNamespace, LabelJobUID, LabelAttempt, LabelMember, labelManaged} {
		if pod.Labels[k] != want.Labels[k] {
			return fmt.Sprintf("label %s is %q, want %q", k, pod.Labels[k], want.Labels[k])
		}
	}
	if len(pod.OwnerReferences) > 0 {
		return "it has owner references"
	}
	ps, ws := &pod.Spec, &want.Spec
	switch {
	case ps.NodeName != ws.NodeName:
		return fmt.Sprintf("node %q, want %q", ps.NodeName, ws.NodeName)
	case ps.ServiceAccountName != ws.ServiceAccountName:
		return fmt.Sprintf("service account %q, want %q", ps.ServiceAccountName, ws.ServiceAccountName)
	case len(ps.InitContainers) > 0 || len(ps.EphemeralContainers) > 0:
		return "it has init or ephemeral containers"
	case len(ps.Containers) != len(ws.Containers):
		return fmt.Sprintf("%d containers, want %d", len(ps.Containers), len(ws.Containers))
	case !equality.Semantic.DeepEqual(ps.RuntimeClassName, ws.RuntimeClassName):
		return "another runtime class"
	case !equality.Semantic.DeepEqual(ps.SecurityContext, ws.SecurityContext):
		return "another pod security context"
	}
	for i := range ws.Containers {
		pc, wc := &ps.Containers[i], &ws.Containers[i]
		switch {
		case pc.Name != wc.Name || pc.Image != wc.Image:
			return fmt.Sprintf("container %d is %s (%s), want %s (%s)", i, pc.Name, pc.Image, wc.Name, wc.Image)
		case !slices.Equal(pc.Command, wc.Command) || !slices.Equal(pc.Args, wc.Args):
			return fmt.Sprintf("container %s runs another command", wc.Name)
		case !equality.Semantic.DeepEqual(pc.Env, wc.Env) || len(pc.EnvFrom) > 0:
			return fmt.Sprintf("container %s has another environment", wc.Name)
		case !equality.Semantic.DeepEqual(pc.VolumeMounts, wc.VolumeMounts):
			return fmt.Sprintf("container %s mounts other volumes", wc.Name)
		case !equality.Semantic.DeepEqual(pc.SecurityContext, wc.SecurityContext):
			return fmt.Sprintf("container %s has another security context", wc.Name)
		}
	}
	if len(ps.Volumes) != len(ws.Volumes) {
		return fmt.Sprintf("%d volumes, want %d", len(ps.Volumes), len(ws.Volumes))
	}
	for i := range ws.Volumes {
		if !equality.Semantic.DeepEqual(withoutModes(ps.Volumes[i]), withoutModes(ws.Volumes[i])) {
			return fmt.Sprintf("volume %s differs", ws.Volumes[i].Name)
		}
	}
	return ""
}

// withoutModes drops the file modes the API server defaults in volume
// sources, so a volume compares equal to the one it was built from.
func withoutModes(v corev1.Volume) corev1.Volume {
	v = *v.DeepCopy()
	s := &v.VolumeSource
	switch {
	case s.ConfigMap != nil:
		s.ConfigMap.DefaultMode = nil
	case s.Secret != nil:
		s.Secret.DefaultMode = nil
	case s.DownwardAPI != nil:
		s.DownwardAPI.DefaultMode = nil
	case s.Projected != nil:
		s.Projected.DefaultMode = nil
	}
	return v
}

// verifyPods removes from pods those of the current attempt's open
// placements that are not the pod the manager builds for them, and
// returns why for each: decide fails their placements PodNotOwned. A pod
// already recorded in its placement was checked before it was recorded.
func (r *InferenceJobReconciler) verifyPods(job *v1alpha1.InferenceJob, kernel *v1alpha1.Kernel, pods map[string]*corev1.Pod) map[string]string {
	var foreign map[string]string
	for i := range job.Status.Placements {
		p := &job.Status.Placements[i]
		if p.Attempt != job.Status.Attempts || p.Outcome != "" {
			continue
		}
		name := placementPodName(job, p)
		pod := pods[name]
		if pod == nil || (p.PodUID != "" && string(pod.UID) == p.PodUID) {
			continue
		}
		why := ""
		if kernel == nil || kernel.Status.KernelDigest == "" {
			why = notOwnedLabels(pod, job, p)
		} else if want, err := buildPodNamed(job, kernel, *p, name, r.pods); err != nil {
			why = err.Error()
		} else {
			why = notOwned(pod, want)
		}
		if why == "" {
			continue
		}
		if foreign == nil {
			foreign = map[string]string{}
		}
		foreign[name] = why
		delete(pods, name)
	}
	return foreign
}

// notOwnedLabels is notOwned when the Kernel is gone and the pod cannot be
// rebuilt: the labels the manager writes must hold at least.
func notOwnedLabels(pod *corev1.Pod, job *v1alpha1.InferenceJob, p *v1alpha1.Placement) string {
	want := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{
		LabelJobNamespace: job.Namespace, LabelJobUID: string(job.UID),
		LabelAttempt: fmt.Sprint(p.Attempt), LabelMember: fmt.Sprint(p.Member), labelManaged: managedByAIVM,
	}}}
	for k, v := range want.Labels {
		if pod.Labels[k] != v {
			return fmt.Sprintf("label %s is %q, want %q", k, pod.Labels[k], v)
		}
	}
	return ""
}

// deleteOrphans deletes the pods in the workload namespace labelled with
// the job key whose job is gone: deleted, or replaced by a job of the same
// name (another UID). The pod watch enqueues every pod's job, so this runs
// for each orphan once the manager sees it, also after a restart.
func (r *InferenceJobReconciler) deleteOrphans(ctx context.Context, key types.NamespacedName, keepUID types.UID) error {
	var list corev1.PodList
	if err := r.client.List(ctx, &list, client.InNamespace(r.pods.namespace),
		client.MatchingFields{indexer.PodJobKey: indexer.JobKey(key.Namespace, JobNameLabel(key.Name))}); err != nil {
		return fmt.Errorf("list pods of %s: %w", key, err)
	}
	var errs []error
	for i := range list.Items {
		pod := &list.Items[i]
		if types.UID(pod.Labels[LabelJobUID]) == keepUID || pod.DeletionTimestamp != nil {
			continue
		}
		if err := r.client.Delete(ctx, pod, client.Preconditions{UID: &pod.UID}); client.IgnoreNotFound(err) != nil && !apierrors.IsConflict(err) {
			errs = append(errs, fmt.Errorf("delete orphaned pod %s: %w", klog.KObj(pod), err))
		}
	}
	return errors.Join(errs...)
}

// jobOfPod maps a pod of the workload namespace to its job.
func (r *InferenceJobReconciler) jobOfPod(_ context.Context, o client.Object) []reconcile.Request {
	if o.GetNamespace() != r.pods.namespace {
		return nil
	}
	ns, name, ok := strings.Cut(o.GetAnnotations()[AnnotationJob], "/")
	if !ok || ns == "" || name == "" {
		return nil
	}
	return []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: ns, Name: name}}}
}

// sharedObjectChanged passes the changes and deletions of objects, not
// their creation: what jobsAfterSharedChange must hear.
var sharedObjectChanged = predicate.Funcs{
	CreateFunc:  func(event.CreateEvent) bool { return false },
	UpdateFunc:  func(event.UpdateEvent) bool { return true },
	DeleteFunc:  func(event.DeleteEvent) bool { return true },
	GenericFunc: func(event.GenericEvent) bool { return false },
}

// jobsAfterSharedChange hears a change or deletion of the workload
// namespace's runtime service account or result CA ConfigMap: what this
// process remembers having written is forgotten, and every job with a pod
// there is reconciled, which writes the object again. Without it a deleted
// CA would leave new pods waiting for their volume until they fail as
// stuck, and a restart of the manager would be the only repair.
func (r *InferenceJobReconciler) jobsAfterSharedChange(ctx context.Context, o client.Object) []reconcile.Request {
	if o.GetNamespace() != r.pods.namespace {
		return nil
	}
	switch o.(type) {
	case *corev1.ConfigMap:
		if o.GetName() != ResultCAConfigMap {
			return nil
		}
		r.caWritten.Delete(r.pods.namespace)
	case *corev1.ServiceAccount:
		if o.GetName() != RuntimeServiceAccount {
			return nil
		}
		r.saCreated.Delete(r.pods.namespace)
	default:
		return nil
	}
	var pods corev1.PodList
	if err := r.client.List(ctx, &pods, client.InNamespace(r.pods.namespace), client.HasLabels{LabelJobUID}); err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "Could not list job pods to repair the workload namespace's objects")
		return nil
	}
	seen := map[reconcile.Request]bool{}
	var reqs []reconcile.Request
	for i := range pods.Items {
		for _, req := range r.jobOfPod(ctx, &pods.Items[i]) {
			if !seen[req] {
				seen[req] = true
				reqs = append(reqs, req)
			}
		}
	}
	return reqs
}
