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

// WithWorkloadNamespace sets the namespace job pods run in
// (controllers.DefaultWorkloadNamespace by default): only tokens of its
// runtime service account are accepted.
func WithWorkloadNamespace(ns string) Option {
	return func(s *Server) {
		if ns != "" {
			s.workloadNamespace = ns
		}
	}
}

// authorize accepts only the current attempt's pod of the job the envelope
// names: a token of the runtime service account of the workload namespace
// (where only the manager creates pods and tokens, docs/security.md), the
// same job UID, the current attempt, and a placement of that attempt and
// member recording the token's pod by name and UID. It reads the job from the client's
// cache first and, when that copy refuses, once more through the API
// reader, since the cache can lag the write that recorded the pod. A stale
// copy that passes is harmless: accept writes status with the optimistic
// lock from that copy and runs placementOf again on every fresh copy.
func (s *Server) authorize(ctx context.Context, id identity, env *envelope.Envelope) (*aivmv1alpha1.InferenceJob, *aivmv1alpha1.Placement, error) {
	if id.namespace != s.workloadNamespace || id.serviceAccount != controllers.RuntimeServiceAccount {
		return nil, nil, refuse(http.StatusForbidden, ReasonNotCurrentPod, "the token's service account is not %s of the workload namespace %s",
			controllers.RuntimeServiceAccount, s.workloadNamespace)
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
// labels in the workload namespace say so), the answer is a retryable 503;
// otherwise 403. Nothing is accepted until the pod is recorded.
func (s *Server) unrecorded(ctx context.Context, job *aivmv1alpha1.InferenceJob, id identity, env *envelope.Envelope) error {
	notCurrent := refuse(http.StatusForbidden, ReasonNotCurrentPod, "pod %s is not the pod of %s", id.podName, attemptLabel(env.Attempt, env.Member))
	pod := &corev1.Pod{}
	if err := s.reader.Get(ctx, client.ObjectKey{Namespace: s.workloadNamespace, Name: id.podName}, pod); err != nil {
		if apierrors.IsNotFound(err) {
			return notCurrent
		}
		return fmt.Errorf("get pod %s/%s: %w", s.workloadNamespace, id.podName, err)
	}
	if string(pod.UID) != id.podUID || id.podName != expectedPod(job, env) || pod.Labels[controllers.LabelJobNamespace] != job.Namespace ||
		pod.Labels[controllers.LabelJobUID] != string(job.UID) ||
		pod.Labels[controllers.LabelAttempt] != strconv.Itoa(int(env.Attempt)) || pod.Labels[controllers.LabelMember] != strconv.Itoa(int(env.Member)) {
		return notCurrent
	}
	rf := refuse(http.StatusServiceUnavailable, ReasonPodNotRecorded, "pod %s of %s is not recorded in the job's status yet; retry", id.podName, attemptLabel(env.Attempt, env.Member))
	rf.retryAfter = podNotRecordedRetry
	return rf
}

// expectedPod is the name the job controller gives the pod of the
// envelope's placement ("" when there is no such placement).
func expectedPod(job *aivmv1alpha1.InferenceJob, env *envelope.Envelope) string {
	for i := range job.Status.Placements {
		if p := &job.Status.Placements[i]; p.Attempt == env.Attempt && p.Member == env.Member {
			return controllers.PlacementPodName(job, p)
		}
	}
	return ""
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
	input, err := s.readInput(ctx, job, p)
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

// readInput returns the input bytes the placement's pod read: the inline
// text, or the manager's copy of the ConfigMap or Secret key in the
// workload namespace (controllers.InputSecretName), so a tenant who
// changes its ConfigMap meanwhile cannot change what is signed. The bytes
// are only hashed, never logged.
func (s *Server) readInput(ctx context.Context, job *aivmv1alpha1.InferenceJob, p *aivmv1alpha1.Placement) ([]byte, error) {
	in := job.Spec.Input
	switch {
	case in.Text != nil:
		return []byte(*in.Text), nil
	case in.ConfigMapKeyRef != nil || in.SecretKeyRef != nil:
		name := controllers.InputSecretName(p.Pod)
		sec := &corev1.Secret{}
		if err := s.reader.Get(ctx, client.ObjectKey{Namespace: s.workloadNamespace, Name: name}, sec); err != nil {
			if apierrors.IsNotFound(err) {
				return nil, refuse(http.StatusConflict, ReasonDigestMismatch, "the copy of the job's input is gone; the input cannot be checked")
			}
			return nil, fmt.Errorf("get input copy %s/%s: %w", s.workloadNamespace, name, err)
		}
		if v, ok := sec.Data[controllers.InputSecretKey]; ok {
			return v, nil
		}
		return nil, refuse(http.StatusConflict, ReasonDigestMismatch, "the copy of the job's input has no input key; the input cannot be checked")
	}
	return nil, refuse(http.StatusConflict, ReasonDigestMismatch, "the job has no input")
}
