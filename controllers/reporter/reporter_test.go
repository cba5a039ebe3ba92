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

package reporter

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"testing"

	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	aivmv1alpha1 "github.com/aivm-dev/aivm-operator/api/v1alpha1"
	"github.com/aivm-dev/aivm-operator/chain-client/aivmv1"
	"github.com/aivm-dev/aivm-operator/chain-client/devnet"
	"github.com/aivm-dev/aivm-operator/chain-client/keys"
	"github.com/aivm-dev/aivm-operator/chain-client/merkle"
	"github.com/aivm-dev/aivm-operator/chain-client/outbox"
	"github.com/aivm-dev/aivm-operator/chain-client/receipt"
	"github.com/aivm-dev/aivm-operator/chain-client/rpc"
)

var aivmRegistration = aivmv1.MsgRegisterProvider{
	Moniker:        "reporter-test",
	Endpoint:       "https://provider.example",
	Version:        "v0.1.0",
	Gpus:           []*aivmv1.GPU{{Product: "NVIDIA H100 80GB HBM3", MemoryBytes: 80 << 30}},
	TotalVramBytes: 80 << 30,
}

const kernelYAML = `
apiVersion: aivm.dev/v1alpha1
kind: Kernel
metadata:
  name: tiny
spec:
  modelRef:
    name: tiny-model
  runtime:
    image: ghcr.io/aivm-dev/aivm-runtime:v0.1.0
    engine: builtin
  gpu:
    count: 1
    memory: 1Gi
  determinism:
    seed: 1
  committee:
    replicas: 1
`

const jobYAML = `
apiVersion: aivm.dev/v1alpha1
kind: InferenceJob
metadata:
  name: job
spec:
  kernelRef:
    name: tiny
  input:
    text: "hello"
`

func digest(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// canonical is d in the record's digest form.
func canonical(t *testing.T, d string) string {
	t.Helper()
	c, err := receipt.CanonicalDigest(d)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// newKernel creates the Kernel "tiny" with a digest in its status.
func newKernel(t *testing.T, ns string) *aivmv1alpha1.Kernel {
	t.Helper()
	ctx := context.Background()
	k := &aivmv1alpha1.Kernel{}
	if err := yaml.Unmarshal([]byte(kernelYAML), k); err != nil {
		t.Fatal(err)
	}
	k.Namespace = ns
	if err := k8sClient.Create(ctx, k); err != nil {
		t.Fatal(err)
	}
	k.Status.KernelDigest = "sha256:" + digest("kernel "+ns)
	k.Status.ModelDigest = digest("model")
	if err := k8sClient.Status().Update(ctx, k); err != nil {
		t.Fatal(err)
	}
	return k
}

// jobOpts shape a job built by newSucceededJob.
type jobOpts struct {
	name     string
	report   *bool
	signer   *keys.Key
	mutate   func(*aivmv1.ResultRecord)
	noResult bool
}

// newSucceededJob creates an InferenceJob and gives it the status the job
// controller writes on success: Succeeded=True and a result with a receipt
// signed by o.signer (default providerKey).
func newSucceededJob(t *testing.T, ns string, kernel *aivmv1alpha1.Kernel, o jobOpts) *aivmv1alpha1.InferenceJob {
	t.Helper()
	ctx := context.Background()
	job := &aivmv1alpha1.InferenceJob{}
	if err := yaml.Unmarshal([]byte(jobYAML), job); err != nil {
		t.Fatal(err)
	}
	job.Namespace = ns
	if o.name != "" {
		job.Name = o.name
	}
	job.Spec.Report = o.report
	if err := k8sClient.Create(ctx, job); err != nil {
		t.Fatal(err)
	}
	meta.SetStatusCondition(&job.Status.Conditions, metav1.Condition{
		Type: aivmv1alpha1.ConditionSucceeded, Status: metav1.ConditionTrue,
		Reason: aivmv1alpha1.ReasonResultReceived, Message: "Result received", ObservedGeneration: job.Generation,
	})
	if !o.noResult {
		rec := &aivmv1.ResultRecord{
			JobUid: string(job.UID), KernelDigest: canonical(t, kernel.Status.KernelDigest), ModelDigest: canonical(t, kernel.Status.ModelDigest),
			InputDigest: digest("hello"), OutputDigest: digest("world " + job.Name),
			InputTokens: 1, OutputTokens: 2, DurationMs: 30,
		}
		signed := rec
		if o.mutate != nil {
			signed = &aivmv1.ResultRecord{}
			*signed = aivmv1.ResultRecord{JobUid: rec.JobUid, KernelDigest: rec.KernelDigest, ModelDigest: rec.ModelDigest,
				InputDigest: rec.InputDigest, OutputDigest: rec.OutputDigest, InputTokens: rec.InputTokens,
				OutputTokens: rec.OutputTokens, DurationMs: rec.DurationMs}
			o.mutate(signed)
		}
		signer := o.signer
		if signer == nil {
			signer = providerKey
		}
		rc, err := receipt.Sign(signer, "", signed)
		if err != nil {
			t.Fatal(err)
		}
		job.Status.Result = &aivmv1alpha1.JobResult{
			OutputDigest: rec.OutputDigest, InputDigest: rec.InputDigest,
			InputTokens: int64(rec.InputTokens), OutputTokens: int64(rec.OutputTokens), DurationMillis: int64(rec.DurationMs),
			Receipt: StatusReceipt(rc),
		}
	}
	if err := k8sClient.Status().Update(ctx, job); err != nil {
		t.Fatal(err)
	}
	return job
}

// reported waits until the job's Reported condition has the given status
// and reason, and returns the job.
func reported(t *testing.T, job *aivmv1alpha1.InferenceJob, status metav1.ConditionStatus, reason string) *aivmv1alpha1.InferenceJob {
	t.Helper()
	got := &aivmv1alpha1.InferenceJob{}
	eventually(t, func() error {
		if err := k8sClient.Get(context.Background(), client.ObjectKeyFromObject(job), got); err != nil {
			return err
		}
		c := meta.FindStatusCondition(got.Status.Conditions, aivmv1alpha1.ConditionReported)
		if c == nil {
			return errors.New("no Reported condition")
		}
		if c.Status != status || c.Reason != reason {
			return fmt.Errorf("Reported=%s %s (%s), want %s %s", c.Status, c.Reason, c.Message, status, reason)
		}
		return nil
	})
	if !meta.IsStatusConditionTrue(got.Status.Conditions, aivmv1alpha1.ConditionSucceeded) {
		t.Fatalf("job is no longer Succeeded: %+v", got.Status.Conditions)
	}
	if c := meta.FindStatusCondition(got.Status.Conditions, aivmv1alpha1.ConditionReported); c.ObservedGeneration != got.Generation {
		t.Fatalf("Reported observedGeneration %d, generation %d", c.ObservedGeneration, got.Generation)
	}
	return got
}

func TestSucceededJobIsReportedOnChain(t *testing.T) {
	ns := newNamespace(t)
	h := startHarness(t, providerKey, chainRPC)
	kernel := newKernel(t, ns)
	jobs := []*aivmv1alpha1.InferenceJob{
		newSucceededJob(t, ns, kernel, jobOpts{name: "a"}),
		newSucceededJob(t, ns, kernel, jobOpts{name: "b", report: ptr.To(true)}),
		newSucceededJob(t, ns, kernel, jobOpts{name: "c"}),
	}
	ctx := context.Background()
	for _, j := range jobs {
		got := reported(t, j, metav1.ConditionTrue, aivmv1alpha1.ReasonCommitted)
		cs := got.Status.Chain
		if cs == nil {
			t.Fatalf("job %s has no status.chain", j.Name)
		}
		var stored *aivmv1.StoredResult
		eventually(t, func() (err error) { stored, err = chainRPC.Result(ctx, string(j.UID)); return err })
		if stored == nil {
			t.Fatalf("job %s is not on chain", j.Name)
		}
		if stored.GetTxHash() != cs.TxHash || stored.GetHeight() != cs.Height || hex.EncodeToString(stored.GetMerkleRoot()) != cs.BatchRoot ||
			stored.GetIndex() != uint32(cs.LeafIndex) {
			t.Fatalf("job %s: status.chain %+v differs from the chain's %v", j.Name, cs, stored)
		}
		if stored.GetProvider() != h.client.Address() {
			t.Fatalf("job %s submitted by %s, want %s", j.Name, stored.GetProvider(), h.client.Address())
		}
		// The proof in status leads from the receipt's leaf to the root.
		entry, err := h.client.Get(string(j.UID))
		if err != nil {
			t.Fatal(err)
		}
		if cs.BatchSize < 1 || uint64(cs.BatchSize) != entry.Proof.TreeSize {
			t.Fatalf("job %s: status.chain.batchSize %d, want the batch's %d", j.Name, cs.BatchSize, entry.Proof.TreeSize)
		}
		// The status alone verifies: leaf, leafIndex, batchSize, proof, root.
		proof := merkle.Proof{LeafIndex: uint64(cs.LeafIndex), TreeSize: uint64(cs.BatchSize)}
		for _, s := range cs.Proof {
			p, err := merkle.ParseHash(s)
			if err != nil {
				t.Fatal(err)
			}
			proof.Path = append(proof.Path, p)
		}
		leaf, err := merkle.ParseHash(got.Status.Result.Receipt.LeafHash)
		if err != nil {
			t.Fatal(err)
		}
		root, _ := merkle.ParseHash(cs.BatchRoot)
		if err := merkle.Verify(leaf, proof, root); err != nil {
			t.Fatalf("job %s: status proof: %v", j.Name, err)
		}
		waitForEvent(t, j, eventReported)
	}
}

// waitForEvent waits for an event with reason about job.
func waitForEvent(t *testing.T, job *aivmv1alpha1.InferenceJob, reason string) {
	t.Helper()
	eventually(t, func() error {
		var list eventsv1.EventList
		if err := k8sClient.List(context.Background(), &list, client.InNamespace(job.Namespace)); err != nil {
			return err
		}
		for _, e := range list.Items {
			if e.Regarding.Name == job.Name && e.Reason == reason {
				return nil
			}
		}
		return fmt.Errorf("no %s event for %s among %d events", reason, job.Name, len(list.Items))
	})
}

func TestReportDisabled(t *testing.T) {
	ns := newNamespace(t)
	h := startHarness(t, providerKey, chainRPC)
	job := newSucceededJob(t, ns, newKernel(t, ns), jobOpts{report: ptr.To(false)})
	got := reported(t, job, metav1.ConditionFalse, aivmv1alpha1.ReasonReportDisabled)
	if got.Status.Chain != nil {
		t.Fatalf("status.chain set for an unreported job: %+v", got.Status.Chain)
	}
	if _, err := h.client.Get(string(job.UID)); !errors.Is(err, outbox.ErrNotFound) {
		t.Fatalf("unreported job's result is in the outbox: %v", err)
	}
}

func TestInvalidReceiptsAreNotSent(t *testing.T) {
	ns := newNamespace(t)
	h := startHarness(t, providerKey, chainRPC)
	kernel := newKernel(t, ns)
	tests := map[string]jobOpts{
		"receipt over another record": {name: "other-record", mutate: func(r *aivmv1.ResultRecord) { r.OutputTokens = 99 }},
		"receipt by another key":      {name: "other-key", signer: otherKey},
	}
	for name, o := range tests {
		t.Run(name, func(t *testing.T) {
			job := newSucceededJob(t, ns, kernel, o)
			reported(t, job, metav1.ConditionFalse, ReasonInvalidReceipt)
			if _, err := h.client.Get(string(job.UID)); !errors.Is(err, outbox.ErrNotFound) {
				t.Fatalf("job with an invalid receipt was enqueued: %v", err)
			}
		})
	}
	t.Run("no receipt yet", func(t *testing.T) {
		job := newSucceededJob(t, ns, kernel, jobOpts{name: "no-receipt", noResult: true})
		reported(t, job, metav1.ConditionFalse, aivmv1alpha1.ReasonReportPending)
	})
}

// TestChainRejection: another provider put the job's UID on chain first;
// the chain refuses the result and the job says so, still Succeeded.
func TestChainRejection(t *testing.T) {
	ns := newNamespace(t)
	kernel := newKernel(t, ns)
	job := newSucceededJob(t, ns, kernel, jobOpts{name: "taken", report: ptr.To(false)})

	// The other provider reports a result under the same job UID.
	other := startChainClient(t, otherKey, chainRPC, nil)
	rec := &aivmv1.ResultRecord{JobUid: string(job.UID), KernelDigest: canonical(t, kernel.Status.KernelDigest), ModelDigest: canonical(t, kernel.Status.ModelDigest),
		InputDigest: digest("x"), OutputDigest: digest("y")}
	if err := other.Enqueue(context.Background(), rec); err != nil {
		t.Fatal(err)
	}
	eventually(t, func() error {
		e, err := other.Get(rec.GetJobUid())
		if err != nil {
			return err
		}
		if e.State != outbox.StateCommitted {
			return fmt.Errorf("other provider's result is %s", e.State)
		}
		return nil
	})

	startHarness(t, providerKey, chainRPC)
	got := &aivmv1alpha1.InferenceJob{}
	if err := k8sClient.Get(context.Background(), client.ObjectKeyFromObject(job), got); err != nil {
		t.Fatal(err)
	}
	got.Spec.Report = ptr.To(true)
	if err := k8sClient.Update(context.Background(), got); err != nil {
		t.Fatal(err)
	}
	rejected := reported(t, job, metav1.ConditionFalse, aivmv1alpha1.ReasonChainRejected)
	waitForEvent(t, job, eventChainRejected)
	c := meta.FindStatusCondition(rejected.Status.Conditions, aivmv1alpha1.ConditionReported)
	if want := fmt.Sprintf("code %d (aivm)", devnetDuplicateCode); !contains(c.Message, want) {
		t.Fatalf("Reported message %q lacks %q", c.Message, want)
	}
}

// TestChainUnreachable: with no chain to talk to, the job shows
// ChainUnreachable and stays Succeeded.
func TestChainUnreachable(t *testing.T) {
	ns := newNamespace(t)
	dead, err := rpc.New("http://127.0.0.1:1")
	if err != nil {
		t.Fatal(err)
	}
	h := startHarness(t, providerKey, dead)
	job := newSucceededJob(t, ns, newKernel(t, ns), jobOpts{})
	got := reported(t, job, metav1.ConditionFalse, aivmv1alpha1.ReasonChainUnreachable)
	if got.Status.Chain != nil {
		t.Fatal("status.chain set without a chain")
	}
	e, err := h.client.Get(string(job.UID))
	if err != nil || e.State != outbox.StatePending {
		t.Fatalf("outbox entry = %+v, %v; want Pending", e, err)
	}
}

// devnetDuplicateCode is the devnet's code for a job UID already on chain.
const devnetDuplicateCode = devnet.CodeDuplicateResult

func contains(s, sub string) bool { return strings.Contains(s, sub) }

// TestUnfundedAccountStalls: a provider account the chain does not know
// stalls reporting with a message that says so.
func TestUnfundedAccountStalls(t *testing.T) {
	ns := newNamespace(t)
	poor := keyFor("reporter-unfunded")
	startHarness(t, poor, chainRPC)
	job := newSucceededJob(t, ns, newKernel(t, ns), jobOpts{signer: poor})
	got := &aivmv1alpha1.InferenceJob{}
	eventually(t, func() error {
		if err := k8sClient.Get(context.Background(), client.ObjectKeyFromObject(job), got); err != nil {
			return err
		}
		c := meta.FindStatusCondition(got.Status.Conditions, aivmv1alpha1.ConditionReported)
		if c == nil || c.Reason != aivmv1alpha1.ReasonReportPending || !strings.Contains(c.Message, "fund it first") {
			return fmt.Errorf("Reported condition %+v", c)
		}
		return nil
	})
}

// TestMissingKernel: without the job's Kernel the signed record cannot be
// rebuilt; the job says so and nothing is sent.
func TestMissingKernel(t *testing.T) {
	ns := newNamespace(t)
	h := startHarness(t, providerKey, chainRPC)
	absent := &aivmv1alpha1.Kernel{}
	absent.Status.KernelDigest = "sha256:" + digest("gone")
	absent.Status.ModelDigest = digest("gone")
	job := newSucceededJob(t, ns, absent, jobOpts{})
	reported(t, job, metav1.ConditionFalse, ReasonKernelDigestUnknown)
	if _, err := h.client.Get(string(job.UID)); !errors.Is(err, outbox.ErrNotFound) {
		t.Fatalf("job without a kernel was enqueued: %v", err)
	}
}

// TestResultDigestsOutliveTheKernel: a result that records the kernel and
// model digests it ran with is reported even after its Kernel is gone, and
// the Kernel's later digests do not matter.
func TestResultDigestsOutliveTheKernel(t *testing.T) {
	ns := newNamespace(t)
	startHarness(t, providerKey, chainRPC)
	ran := &aivmv1alpha1.Kernel{}
	ran.Status.KernelDigest = "sha256:" + digest("kernel that ran")
	ran.Status.ModelDigest = digest("model that ran")
	job := newSucceededJob(t, ns, ran, jobOpts{name: "recorded"})
	job.Status.Result.KernelDigest = ran.Status.KernelDigest
	job.Status.Result.ModelDigest = ran.Status.ModelDigest
	if err := k8sClient.Status().Update(context.Background(), job); err != nil {
		t.Fatal(err)
	}
	got := reported(t, job, metav1.ConditionTrue, aivmv1alpha1.ReasonCommitted)
	stored, err := chainRPC.Result(context.Background(), string(got.UID))
	if err != nil {
		t.Fatal(err)
	}
	if stored.GetResult().GetKernelDigest() != canonical(t, ran.Status.KernelDigest) || stored.GetResult().GetModelDigest() != canonical(t, ran.Status.ModelDigest) {
		t.Fatalf("chain holds kernel %q model %q, want the digests recorded in the result", stored.GetResult().GetKernelDigest(), stored.GetResult().GetModelDigest())
	}
}
