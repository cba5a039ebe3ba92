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

package resultendpoint

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	aivmv1alpha1 "github.com/aivm-dev/aivm-operator/api/v1alpha1"
	"github.com/aivm-dev/aivm-operator/chain-client/receipt"
	"github.com/aivm-dev/aivm-operator/controllers"
	"github.com/aivm-dev/aivm-operator/runtime-image/envelope"
)

// checked is a post whose every checkable claim held, with its digests in
// the record's canonical form (receipt.CanonicalDigest).
type checked struct {
	env          *envelope.Envelope
	pod          string
	outputDigest string
	inputDigest  string
	kernelDigest string
	modelDigest  string
}

// +kubebuilder:rbac:groups=aivm.dev,resources=inferencejobs,verbs=get;list;watch
// +kubebuilder:rbac:groups=aivm.dev,resources=kernels,verbs=get;list;watch

// authorize accepts only the current attempt's pod of the job the envelope
// names: same namespace as the token's service account, same job UID, the
// current attempt, and a placement of that attempt and member recording
// the token's pod by name and UID. It reads the job from the client's
// cache first and, when that copy refuses, once more through the API
// reader, since the cache can lag the write that recorded the pod. A stale
// copy that passes is harmless: accept writes status with the optimistic
// lock from that copy and runs placementOf again on every fresh copy.
func (s *Server) authorize(ctx context.Context, id identity, env *envelope.Envelope) (*aivmv1alpha1.InferenceJob, *aivmv1alpha1.Placement, error) {
	if id.namespace != env.Namespace {
		return nil, nil, refuse(http.StatusForbidden, ReasonNotCurrentPod, "the token's service account is not in namespace %s", env.Namespace)
	}
	job, p, err := s.authorizeFrom(ctx, s.client, id, env)
	var rf *refusal
	if err == nil || !errors.As(err, &rf) || s.reader == client.Reader(s.client) {
		return job, p, err
	}
	return s.authorizeFrom(ctx, s.reader, id, env)
}

func (s *Server) authorizeFrom(ctx context.Context, r client.Reader, id identity, env *envelope.Envelope) (*aivmv1alpha1.InferenceJob, *aivmv1alpha1.Placement, error) {
	job := &aivmv1alpha1.InferenceJob{}
	if err := r.Get(ctx, client.ObjectKey{Namespace: env.Namespace, Name: env.Job}, job); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, nil, refuse(http.StatusForbidden, ReasonNotCurrentPod, "InferenceJob %s/%s does not exist", env.Namespace, env.Job)
		}
		return nil, nil, fmt.Errorf("get InferenceJob %s/%s: %w", env.Namespace, env.Job, err)
	}
	p, err := placementOf(job, id, env)
	if errors.Is(err, errNotRecorded) {
		return nil, nil, s.unrecorded(ctx, job, id, env)
	}
	if err != nil {
		return nil, nil, err
	}
	return job, p, nil
}

// errNotRecorded is placementOf's answer for a placement whose pod the job
// controller has not recorded yet.
var errNotRecorded = errors.New("pod not recorded")

// placementOf returns the placement of job that the token's pod may post
// for, or the refusal that says why there is none.
func placementOf(job *aivmv1alpha1.InferenceJob, id identity, env *envelope.Envelope) (*aivmv1alpha1.Placement, error) {
	if string(job.UID) != env.JobUID {
		return nil, refuse(http.StatusForbidden, ReasonNotCurrentPod, "jobUID %s is not the UID of InferenceJob %s/%s", env.JobUID, env.Namespace, env.Job)
	}
	if env.Attempt != job.Status.Attempts {
		return nil, refuse(http.StatusForbidden, ReasonStaleAttempt, "attempt %d is not the job's current attempt %d", env.Attempt, job.Status.Attempts)
	}
	var target *aivmv1alpha1.Placement
	for i := range job.Status.Placements {
		p := &job.Status.Placements[i]
		if p.Attempt == env.Attempt && p.Member == env.Member {
			target = p
		}
	}
	if target != nil && target.PodUID == "" && target.Outcome == "" {
		return nil, errNotRecorded
	}
	if target == nil || target.PodUID != id.podUID || target.Pod != id.podName {
		return nil, refuse(http.StatusForbidden, ReasonNotCurrentPod, "pod %s is not the pod of %s", id.podName, attemptLabel(env.Attempt, env.Member))
	}
	if target.Outcome == aivmv1alpha1.PlacementFailed {
		return nil, refuse(http.StatusForbidden, ReasonNotCurrentPod, "%s already failed (%s)", attemptLabel(env.Attempt, env.Member), target.Reason)
	}
	if meta.IsStatusConditionTrue(job.Status.Conditions, aivmv1alpha1.ConditionFailed) {
		return nil, refuse(http.StatusConflict, ReasonJobFinished, "the job has failed")
	}
	return target, nil
}

// podNotRecordedRetry is the Retry-After of a post that arrived before the
// job controller recorded its pod in the placement.
const podNotRecordedRetry = 2 * time.Second

// +kubebuilder:rbac:groups="",resources=pods,verbs=get;list;watch

// unrecorded answers a post for a placement whose pod the job controller
// has not recorded yet: a fast runtime can post before that status write.
// When the token's pod is a pod of this job, attempt and member (its
// labels and controller reference say so), the answer is a retryable 503;
// otherwise 403. Nothing is accepted until the pod is recorded.
func (s *Server) unrecorded(ctx context.Context, job *aivmv1alpha1.InferenceJob, id identity, env *envelope.Envelope) error {
	notCurrent := refuse(http.StatusForbidden, ReasonNotCurrentPod, "pod %s is not the pod of %s", id.podName, attemptLabel(env.Attempt, env.Member))
	pod := &corev1.Pod{}
	if err := s.reader.Get(ctx, client.ObjectKey{Namespace: job.Namespace, Name: id.podName}, pod); err != nil {
		if apierrors.IsNotFound(err) {
			return notCurrent
		}
		return fmt.Errorf("get pod %s/%s: %w", job.Namespace, id.podName, err)
	}
	owner := metav1.GetControllerOf(pod)
	if string(pod.UID) != id.podUID || owner == nil || owner.UID != job.UID ||
		pod.Labels[controllers.LabelJobUID] != string(job.UID) ||
		pod.Labels[controllers.LabelAttempt] != strconv.Itoa(int(env.Attempt)) || pod.Labels[controllers.LabelMember] != strconv.Itoa(int(env.Member)) {
		return notCurrent
	}
	rf := refuse(http.StatusServiceUnavailable, ReasonPodNotRecorded, "pod %s of %s is not recorded in the job's status yet; retry", id.podName, attemptLabel(env.Attempt, env.Member))
	rf.retryAfter = podNotRecordedRetry
	return rf
}

// check recomputes the output and input digests and requires the kernel
// and model digests the job was placed with.
func (s *Server) check(ctx context.Context, job *aivmv1alpha1.InferenceJob, p *aivmv1alpha1.Placement, env *envelope.Envelope) (*checked, error) {
	c := &checked{env: env, pod: p.Pod}
	var err error
	c.outputDigest, _ = receipt.CanonicalDigest(envelope.Digest([]byte(env.Output)))
	if err := claim("output", env.Digests.Output, c.outputDigest); err != nil {
		return nil, err
	}
	input, err := s.readInput(ctx, job)
	if err != nil {
		return nil, err
	}
	c.inputDigest, _ = receipt.CanonicalDigest(envelope.Digest(input))
	if err := claim("input", env.Digests.Input, c.inputDigest); err != nil {
		return nil, err
	}
	kernelDigest, modelDigest := p.KernelDigest, p.ModelDigest
	if kernelDigest == "" || modelDigest == "" {
		// Placements recorded without digests: the Kernel's current ones.
		kernel := &aivmv1alpha1.Kernel{}
		if err := s.reader.Get(ctx, client.ObjectKey{Namespace: job.Namespace, Name: job.Spec.KernelRef.Name}, kernel); err != nil {
			if apierrors.IsNotFound(err) {
				return nil, refuse(http.StatusConflict, ReasonDigestMismatch, "Kernel %s is gone; its digests cannot be checked", job.Spec.KernelRef.Name)
			}
			return nil, fmt.Errorf("get Kernel %s/%s: %w", job.Namespace, job.Spec.KernelRef.Name, err)
		}
		kernelDigest, modelDigest = kernel.Status.KernelDigest, kernel.Status.ModelDigest
	}
	if c.kernelDigest, err = receipt.CanonicalDigest(kernelDigest); err != nil {
		return nil, refuse(http.StatusConflict, ReasonDigestMismatch, "the job's kernel digest is unknown")
	}
	if c.modelDigest, err = receipt.CanonicalDigest(modelDigest); err != nil {
		return nil, refuse(http.StatusConflict, ReasonDigestMismatch, "the job's model digest is unknown")
	}
	if err := claim("kernel", env.Digests.Kernel, c.kernelDigest); err != nil {
		return nil, err
	}
	if err := claim("model", env.Digests.Model, c.modelDigest); err != nil {
		return nil, err
	}
	return c, nil
}

// claim refuses a posted digest that is not want (canonical form).
func claim(what, posted, want string) error {
	got, err := receipt.CanonicalDigest(posted)
	if err != nil || got != want {
		return refuse(http.StatusBadRequest, ReasonDigestMismatch, "%s digest %q is not the %s's digest sha256:%s", what, posted, what, want)
	}
	return nil
}

// +kubebuilder:rbac:groups="",resources=configmaps,verbs=get;list;watch;create;update;patch
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get

// readInput returns the job's input bytes exactly as the job holds them:
// the inline text, or the referenced ConfigMap or Secret key. The bytes
// are only hashed, never logged.
func (s *Server) readInput(ctx context.Context, job *aivmv1alpha1.InferenceJob) ([]byte, error) {
	in := job.Spec.Input
	switch {
	case in.Text != nil:
		return []byte(*in.Text), nil
	case in.ConfigMapKeyRef != nil:
		cm := &corev1.ConfigMap{}
		if err := s.reader.Get(ctx, client.ObjectKey{Namespace: job.Namespace, Name: in.ConfigMapKeyRef.Name}, cm); err != nil {
			return nil, inputErr(err, "ConfigMap", in.ConfigMapKeyRef.Name)
		}
		if v, ok := cm.Data[in.ConfigMapKeyRef.Key]; ok {
			return []byte(v), nil
		}
		if v, ok := cm.BinaryData[in.ConfigMapKeyRef.Key]; ok {
			return v, nil
		}
		return nil, refuse(http.StatusConflict, ReasonDigestMismatch, "ConfigMap %s has no key %s; the input cannot be checked", in.ConfigMapKeyRef.Name, in.ConfigMapKeyRef.Key)
	case in.SecretKeyRef != nil:
		sec := &corev1.Secret{}
		if err := s.reader.Get(ctx, client.ObjectKey{Namespace: job.Namespace, Name: in.SecretKeyRef.Name}, sec); err != nil {
			return nil, inputErr(err, "Secret", in.SecretKeyRef.Name)
		}
		if v, ok := sec.Data[in.SecretKeyRef.Key]; ok {
			return v, nil
		}
		return nil, refuse(http.StatusConflict, ReasonDigestMismatch, "Secret %s has no key %s; the input cannot be checked", in.SecretKeyRef.Name, in.SecretKeyRef.Key)
	}
	return nil, refuse(http.StatusConflict, ReasonDigestMismatch, "the job has no input")
}

func inputErr(err error, kind, name string) error {
	if apierrors.IsNotFound(err) {
		return refuse(http.StatusConflict, ReasonDigestMismatch, "%s %s holding the input is gone; the input cannot be checked", kind, name)
	}
	return fmt.Errorf("get input %s %s: %w", kind, name, err)
}
