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
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"slices"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	aivmv1alpha1 "github.com/aivm-dev/aivm-operator/api/v1alpha1"
	"github.com/aivm-dev/aivm-operator/chain-client/aivmv1"
	"github.com/aivm-dev/aivm-operator/controllers"
	"github.com/aivm-dev/aivm-operator/internal/committee"
	"github.com/aivm-dev/aivm-operator/internal/status"
)

// OutputKey is the result ConfigMap key of an output with the canonical
// digest d: content-addressed, so agreeing members share one copy and two
// racing posts never overwrite each other's output.
func OutputKey(d string) string { return "sha256-" + d }

// errReplay ends a status write that finds the same result already there.
var errReplay = errors.New("replayed result")

// +kubebuilder:rbac:groups=aivm.dev,resources=inferencejobs/status,verbs=get;update;patch

// accept stores the output, then appends the member's result and, when the
// committee agrees, the job's result in one status write. The output is
// stored first so status never points at a missing key.
func (s *Server) accept(ctx context.Context, job *aivmv1alpha1.InferenceJob, id identity, c *checked) error {
	now := metav1.NewTime(s.clock.Now())
	mr := aivmv1alpha1.MemberResult{
		Attempt: c.env.Attempt, Member: c.env.Member, Pod: c.pod,
		OutputDigest: c.outputDigest, InputTokens: c.env.InputTokens, OutputTokens: c.env.OutputTokens,
		DurationMillis: c.env.Timings.PromptMillis + c.env.Timings.GenerateMillis,
		Engine:         c.env.Engine, GPUUUIDs: c.env.GPUUUIDs, ReceivedTime: &now,
	}
	if err := sameAsRecorded(job, &mr); err != nil {
		if errors.Is(err, errReplay) {
			return nil
		}
		return err
	}
	stored, err := s.storeOutput(ctx, job, OutputKey(c.outputDigest), c.env.Output)
	if err != nil {
		return err
	}
	if stored {
		mr.OutputKey = OutputKey(c.outputDigest)
	}
	policy, replicas, err := s.committee(ctx, job, c.env.Attempt)
	if err != nil {
		return err
	}
	_, err = status.Update(ctx, s.client, s.reader, job, func(j *aivmv1alpha1.InferenceJob) error {
		if err := sameAsRecorded(j, &mr); err != nil {
			return err
		}
		// authorize may have read a cached copy: the copy written must allow the post too.
		if _, err := placementOf(j, id, c.env); err != nil {
			if errors.Is(err, errNotRecorded) {
				return refuse(http.StatusForbidden, ReasonNotCurrentPod, "pod %s is not the pod of %s", id.podName, attemptLabel(mr.Attempt, mr.Member))
			}
			return err
		}
		// memberResults hold the current attempt only.
		results := slices.DeleteFunc(slices.Clone(j.Status.MemberResults), func(r aivmv1alpha1.MemberResult) bool { return r.Attempt != mr.Attempt })
		results = append(results, mr)
		j.Status.MemberResults = results
		if j.Status.Result != nil {
			// Decided already: a late member is recorded, the result stays.
			return nil
		}
		dec := committee.Decide(policy, replicas, results, failedMembers(j, mr.Attempt))
		if !dec.Decided || dec.Disagreement {
			return nil
		}
		res, err := s.result(j, c, dec, results, now)
		if err != nil {
			return err
		}
		j.Status.Result = res
		return nil
	})
	if errors.Is(err, errReplay) {
		return nil
	}
	var rf *refusal
	if errors.As(err, &rf) {
		return rf
	}
	return err
}

// sameAsRecorded returns errReplay when the member's result is already
// recorded identically, a 409 refusal when it is recorded differently, and
// nil when the member has not posted.
func sameAsRecorded(job *aivmv1alpha1.InferenceJob, mr *aivmv1alpha1.MemberResult) error {
	for _, r := range job.Status.MemberResults {
		if r.Attempt != mr.Attempt || r.Member != mr.Member {
			continue
		}
		if r.OutputDigest == mr.OutputDigest && r.InputTokens == mr.InputTokens && r.OutputTokens == mr.OutputTokens &&
			r.DurationMillis == mr.DurationMillis && r.Engine == mr.Engine && r.Pod == mr.Pod && slices.Equal(r.GPUUUIDs, mr.GPUUUIDs) {
			return errReplay
		}
		return refuse(http.StatusConflict, ReasonConflict, "%s already posted a different result", attemptLabel(mr.Attempt, mr.Member))
	}
	return nil
}

// committee returns the Kernel's aggregation policy and the committee size
// of the attempt (its placements; the scheduler places all members or none).
func (s *Server) committee(ctx context.Context, job *aivmv1alpha1.InferenceJob, attempt int32) (aivmv1alpha1.AggregationPolicy, int, error) {
	replicas := 0
	for _, p := range job.Status.Placements {
		if p.Attempt == attempt {
			replicas++
		}
	}
	policy := aivmv1alpha1.AggregationPolicy("")
	kernel := &aivmv1alpha1.Kernel{}
	err := s.client.Get(ctx, client.ObjectKey{Namespace: job.Namespace, Name: job.Spec.KernelRef.Name}, kernel)
	switch {
	case err == nil:
		policy = kernel.Spec.Committee.Aggregation
		replicas = max(replicas, int(kernel.Spec.Committee.Replicas))
	case !apierrors.IsNotFound(err):
		return "", 0, fmt.Errorf("get Kernel %s/%s: %w", job.Namespace, job.Spec.KernelRef.Name, err)
	}
	return policy, replicas, nil
}

// failedMembers counts the attempt's placements that failed without a
// result: they can no longer help the committee agree.
func failedMembers(job *aivmv1alpha1.InferenceJob, attempt int32) int {
	n := 0
	for _, p := range job.Status.Placements {
		if p.Attempt == attempt && p.Outcome == aivmv1alpha1.PlacementFailed {
			n++
		}
	}
	return n
}

// result builds status.result for an agreed decision: counts and timings
// of the lowest agreeing member, and a receipt when a signer is set.
func (s *Server) result(job *aivmv1alpha1.InferenceJob, c *checked, dec committee.Decision, results []aivmv1alpha1.MemberResult, now metav1.Time) (*aivmv1alpha1.JobResult, error) {
	var lead aivmv1alpha1.MemberResult
	for _, r := range results {
		if r.Member == dec.Members[0] {
			lead = r
			break
		}
	}
	res := &aivmv1alpha1.JobResult{
		OutputDigest: dec.Agreed, InputDigest: c.inputDigest, KernelDigest: c.kernelDigest, ModelDigest: c.modelDigest,
		OutputConfigMapRef: &aivmv1alpha1.LocalObjectReference{Name: controllers.ResultConfigMapName(job.Name)},
		OutputKey:          lead.OutputKey,
		InputTokens:        lead.InputTokens, OutputTokens: lead.OutputTokens, DurationMillis: lead.DurationMillis,
		Attempt: lead.Attempt, AgreedMembers: dec.Members, Dissenters: dec.Dissenters, DecidedTime: &now,
	}
	if s.signer == nil {
		return res, nil
	}
	r, err := s.signer.SignReceipt(&aivmv1.ResultRecord{
		JobUid: string(job.UID), KernelDigest: res.KernelDigest, ModelDigest: res.ModelDigest,
		InputDigest: res.InputDigest, OutputDigest: res.OutputDigest,
		InputTokens: uint64(res.InputTokens), OutputTokens: uint64(res.OutputTokens), DurationMs: uint64(res.DurationMillis),
	})
	if err != nil {
		return nil, fmt.Errorf("sign result of %s/%s: %w", job.Namespace, job.Name, err)
	}
	res.Receipt = &aivmv1alpha1.Receipt{
		LeafHash: r.LeafHash.String(), Signature: base64.StdEncoding.EncodeToString(r.Signature), SignerAddress: r.Signer,
	}
	return res, nil
}

// storeOutput puts output under key in the job's result ConfigMap, owned by
// the job. It reports false, storing nothing, when the ConfigMap cannot
// grow by the output (its 1 MiB limit; only distinct outputs of a
// committee can reach it): the digest is still recorded.
func (s *Server) storeOutput(ctx context.Context, job *aivmv1alpha1.InferenceJob, key, output string) (bool, error) {
	name := controllers.ResultConfigMapName(job.Name)
	// Most jobs have one member: create first, and read only when another
	// member's output is there already.
	cm := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Namespace: job.Namespace, Name: name, Labels: map[string]string{controllers.LabelJobName: controllers.JobNameLabel(job.Name)}},
		Data:       map[string]string{key: output},
	}
	if err := controllerutil.SetControllerReference(job, cm, s.client.Scheme()); err != nil {
		return false, err
	}
	err := s.client.Create(ctx, cm)
	if apierrors.IsAlreadyExists(err) {
		err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
			cm := &corev1.ConfigMap{}
			if err := s.reader.Get(ctx, client.ObjectKey{Namespace: job.Namespace, Name: name}, cm); err != nil {
				return err
			}
			if v, ok := cm.Data[key]; ok && v == output {
				return nil
			}
			if cm.Data == nil {
				cm.Data = map[string]string{}
			}
			cm.Data[key] = output
			return s.client.Update(ctx, cm)
		})
	}
	if apierrors.IsRequestEntityTooLargeError(err) || apierrors.IsInvalid(err) {
		s.log.Info("Result ConfigMap is full; output not stored", "configMap", job.Namespace+"/"+name, "key", key)
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("store output in ConfigMap %s/%s: %w", job.Namespace, name, err)
	}
	return true, nil
}
