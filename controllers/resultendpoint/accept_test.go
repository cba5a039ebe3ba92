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
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	aivmv1alpha1 "github.com/aivm-dev/aivm-operator/api/v1alpha1"
	"github.com/aivm-dev/aivm-operator/chain-client/aivmv1"
	"github.com/aivm-dev/aivm-operator/chain-client/receipt"
	"github.com/aivm-dev/aivm-operator/controllers"
	"github.com/aivm-dev/aivm-operator/runtime-image/envelope"
)

// bare is a digest's record form.
func bare(d string) string { return strings.TrimPrefix(d, "sha256:") }

// TestAccept: the current pod's result is stored in the result ConfigMap
// (owned by the job), recorded as the member's result and the job's
// result with canonical digests and a receipt that verifies; a flipped
// byte of it does not. A replay changes nothing; a different envelope for
// the same member is refused.
func TestAccept(t *testing.T) {
	f := newFixture(t, nil)
	tok := f.token(f.pod)
	env := f.envelope(1, 0, " world")
	env.Digests.Model = modelDigest // the bare form is the same digest
	post(t, tok, env).want(t, http.StatusOK, ReasonAccepted, "Result accepted")

	j := f.get()
	out := bare(envelope.Digest([]byte(" world")))
	if len(j.Status.MemberResults) != 1 {
		t.Fatalf("memberResults %+v, want one", j.Status.MemberResults)
	}
	mr := j.Status.MemberResults[0]
	mr.ReceivedTime = nil
	want := aivmv1alpha1.MemberResult{Attempt: 1, Member: 0, Pod: f.pod.Name, OutputDigest: out, OutputKey: OutputKey(out),
		InputTokens: 1, OutputTokens: 3, DurationMillis: 32, Engine: "builtin/test", GPUUUIDs: []string{"GPU-0"}}
	if d := cmp.Diff(want, mr); d != "" {
		t.Errorf("member result (-want +got):\n%s", d)
	}
	res := j.Status.Result
	if res == nil || res.OutputDigest != out || res.InputDigest != bare(envelope.Digest([]byte("hello"))) ||
		res.KernelDigest != bare(kernelDigest) || res.ModelDigest != modelDigest || res.OutputKey != OutputKey(out) ||
		res.OutputConfigMapRef == nil || res.OutputConfigMapRef.Name != "story-result" || res.Attempt != 1 ||
		res.InputTokens != 1 || res.OutputTokens != 3 || res.DurationMillis != 32 || res.DecidedTime == nil || res.Receipt == nil {
		t.Fatalf("result %+v", res)
	}
	cm := &corev1.ConfigMap{}
	if err := k8sClient.Get(context.Background(), client.ObjectKey{Namespace: f.ns, Name: "story-result"}, cm); err != nil {
		t.Fatal(err)
	}
	if cm.Data[OutputKey(out)] != " world" || !metav1.IsControlledBy(cm, j) {
		t.Errorf("result ConfigMap data %v owners %v", cm.Data, cm.OwnerReferences)
	}

	// The receipt: the record of status.result, signed by the provider key.
	rec := &aivmv1.ResultRecord{JobUid: string(j.UID), KernelDigest: res.KernelDigest, ModelDigest: res.ModelDigest,
		InputDigest: res.InputDigest, OutputDigest: res.OutputDigest, InputTokens: 1, OutputTokens: 3, DurationMs: 32}
	leaf, err := receipt.LeafHash(rec)
	if err != nil {
		t.Fatal(err)
	}
	if res.Receipt.LeafHash != leaf.String() || res.Receipt.SignerAddress != signer.Address() {
		t.Fatalf("receipt %+v, want leaf %s signer %s", res.Receipt, leaf, signer.Address())
	}
	sig, err := base64.StdEncoding.DecodeString(res.Receipt.Signature)
	if err != nil {
		t.Fatal(err)
	}
	if err := receipt.VerifyBySigner(res.Receipt.SignerAddress, leaf, sig); err != nil {
		t.Errorf("receipt does not verify: %v", err)
	}
	flipped := leaf
	flipped[0] ^= 1
	if err := receipt.VerifyBySigner(res.Receipt.SignerAddress, flipped, sig); err == nil {
		t.Error("receipt verifies over a flipped leaf byte")
	}
	sig[5] ^= 1
	if err := receipt.VerifyBySigner(res.Receipt.SignerAddress, leaf, sig); err == nil {
		t.Error("receipt verifies with a flipped signature byte")
	}

	// Replay: accepted, nothing changes.
	post(t, tok, env).want(t, http.StatusOK, ReasonAccepted, "")
	if again := f.get(); again.ResourceVersion != j.ResourceVersion {
		t.Errorf("replay changed the job: %s -> %s", j.ResourceVersion, again.ResourceVersion)
	}
	// A different result for the same member: refused, nothing changes.
	other := f.envelope(1, 0, " there")
	post(t, tok, other).want(t, http.StatusConflict, ReasonConflict, "attempt 1 member 0 already posted a different result")
	if again := f.get(); again.ResourceVersion != j.ResourceVersion {
		t.Errorf("conflicting post changed the job")
	}
}

// TestAcceptCommittee: members' results are recorded as they come; the
// job's result is decided once a majority agrees, naming the agreeing
// members and the dissenter, and both outputs are kept in the ConfigMap.
func TestAcceptCommittee(t *testing.T) {
	f := newFixture(t, func(j *aivmv1alpha1.InferenceJob) { j.Spec.KernelRef.Name = "c" })
	f.kernel("c", 3)
	f.place(1, 1)
	f.place(1, 2)
	pods := []*corev1.Pod{f.pod, f.newPod(1, 1), f.newPod(1, 2)}
	f.record(pods[1])
	f.record(pods[2])

	post(t, f.token(pods[0]), f.envelope(1, 0, " world")).want(t, http.StatusOK, ReasonAccepted, "")
	post(t, f.token(pods[1]), f.envelope(1, 1, " there")).want(t, http.StatusOK, ReasonAccepted, "")
	if j := f.get(); len(j.Status.MemberResults) != 2 || j.Status.Result != nil {
		t.Fatalf("after 2 of 3 disagreeing: memberResults %d result %+v", len(j.Status.MemberResults), j.Status.Result)
	}
	post(t, f.token(pods[2]), f.envelope(1, 2, " world")).want(t, http.StatusOK, ReasonAccepted, "")
	j := f.get()
	res := j.Status.Result
	if res == nil || res.OutputDigest != bare(envelope.Digest([]byte(" world"))) || res.Receipt == nil {
		t.Fatalf("result %+v", res)
	}
	if d := cmp.Diff([]int32{0, 2}, res.AgreedMembers); d != "" {
		t.Errorf("agreed members (-want +got):\n%s", d)
	}
	if len(res.Dissenters) != 1 || res.Dissenters[0] != 1 {
		t.Errorf("dissenters %v, want [1]", res.Dissenters)
	}
	cm := &corev1.ConfigMap{}
	if err := k8sClient.Get(context.Background(), client.ObjectKey{Namespace: f.ns, Name: "story-result"}, cm); err != nil {
		t.Fatal(err)
	}
	if len(cm.Data) != 2 {
		t.Errorf("result ConfigMap keys %d, want the two distinct outputs", len(cm.Data))
	}
}

// TestAcceptInputRefs: a ConfigMap or Secret input is checked against the
// manager's copy in the workload namespace, the bytes the pod read: the
// tenant's object changing or going meanwhile changes nothing; without the
// copy the input cannot be checked (409, nothing written).
func TestAcceptInputRefs(t *testing.T) {
	for _, kind := range []string{"ConfigMap", "Secret"} {
		t.Run(kind, func(t *testing.T) {
			f := newFixture(t, func(j *aivmv1alpha1.InferenceJob) {
				j.Spec.Input.Text = nil
				ref := aivmv1alpha1.KeyReference{Name: "in", Key: "prompt"}
				if kind == "ConfigMap" {
					j.Spec.Input.ConfigMapKeyRef = &ref
				} else {
					j.Spec.Input.SecretKeyRef = &ref
				}
			})
			tok := f.token(f.pod)
			post(t, tok, f.envelope(1, 0, " world")).want(t, http.StatusConflict, ReasonDigestMismatch, "copy of the job's input is gone")
			f.nothingWritten()
			// The tenant's object says something else: the copy is what counts.
			mustCreate(t, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: "in"}, Data: map[string]string{"prompt": "changed"}})
			mustCreate(t, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: workloadNS, Name: controllers.InputSecretName(f.pod.Name)},
				Data: map[string][]byte{controllers.InputSecretKey: []byte("hello")}})
			post(t, tok, f.envelope(1, 0, " world")).want(t, http.StatusOK, ReasonAccepted, "")
		})
	}
}

// TestAcceptLongJobName: a job whose name is near the 253-character limit
// gets its output in the ConfigMap the job controller names and deletes.
func TestAcceptLongJobName(t *testing.T) {
	name := strings.Repeat("j", 250)
	f := newFixture(t, func(j *aivmv1alpha1.InferenceJob) { j.Name = name })
	post(t, f.token(f.pod), f.envelope(1, 0, " world")).want(t, http.StatusOK, ReasonAccepted, "")
	j := f.get()
	cmName := controllers.ResultConfigMapName(name)
	if j.Status.Result == nil || j.Status.Result.OutputConfigMapRef.Name != cmName || j.Status.MemberResults[0].OutputKey == "" {
		t.Fatalf("result %+v memberResults %+v, want the output in %s", j.Status.Result, j.Status.MemberResults, cmName)
	}
	cm := &corev1.ConfigMap{}
	if err := k8sClient.Get(context.Background(), client.ObjectKey{Namespace: f.ns, Name: cmName}, cm); err != nil {
		t.Fatal(err)
	}
}

// TestAcceptAfterFailure: a job that failed, or a placement that failed,
// takes no result.
func TestAcceptAfterFailure(t *testing.T) {
	f := newFixture(t, nil)
	f.writeStatus(func(j *aivmv1alpha1.InferenceJob) {
		j.Status.Placements[0].Outcome = aivmv1alpha1.PlacementFailed
		j.Status.Placements[0].Reason = "OOMKilled"
	})
	post(t, f.token(f.pod), f.envelope(1, 0, " world")).want(t, http.StatusForbidden, ReasonNotCurrentPod, "already failed (OOMKilled)")
	f.nothingWritten()
}
