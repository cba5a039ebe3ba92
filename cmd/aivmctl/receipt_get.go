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

package main

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/config"

	aivmv1alpha1 "github.com/aivm-dev/aivm-operator/api/v1alpha1"
	"github.com/aivm-dev/aivm-operator/chain-client/aivmv1"
	"github.com/aivm-dev/aivm-operator/chain-client/merkle"
	"github.com/aivm-dev/aivm-operator/chain-client/receipt"
	"github.com/aivm-dev/aivm-operator/internal/scheme"
)

// apiTimeout bounds the reads from the Kubernetes API.
const apiTimeout = 30 * time.Second

// receiptGet builds the receipt envelope of an InferenceJob from its status:
// the result record (job UID, digests, token counts, duration), the
// provider's leaf hash, signer and signature, and the chain inclusion once
// the result is on chain. It refuses to write an envelope whose leaf hash is
// not the record's, whose signature does not verify, or whose inclusion
// proof does not lead to the batch root.
func receiptGet(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	fs := newFlagSet("receipt get", stderr, "receipt get [-n NAMESPACE] [--kubeconfig FILE] [--context NAME] [-o FILE] JOB")
	var namespace string
	fs.StringVar(&namespace, "n", "", "namespace of the InferenceJob (default: the kubeconfig context's namespace)")
	fs.StringVar(&namespace, "namespace", "", "same as -n")
	kubeconfig := fs.String("kubeconfig", "", "path to a kubeconfig (default: $KUBECONFIG, ~/.kube/config, or the in-cluster config)")
	kubeContext := fs.String("context", "", "kubeconfig context to use (default: the current context)")
	outFile := fs.String("o", "", "write the receipt to this file instead of stdout")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		fs.Usage()
		return errUsage
	}
	name := pos[0]
	cfg, ns, err := kubeClientConfig(*kubeconfig, *kubeContext)
	if err != nil {
		return err
	}
	if namespace != "" {
		ns = namespace
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme.New()})
	if err != nil {
		return fmt.Errorf("create Kubernetes client: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, apiTimeout)
	defer cancel()
	job := &aivmv1alpha1.InferenceJob{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, job); err != nil {
		if apierrors.IsNotFound(err) {
			return fmt.Errorf("InferenceJob %q not found in namespace %q", name, ns)
		}
		return fmt.Errorf("get InferenceJob %s/%s: %w", ns, name, err)
	}
	r, err := jobReceipt(ctx, c, job)
	if err != nil {
		return err
	}
	data, err := receipt.Encode(r)
	if err != nil {
		return err
	}
	// What is written must be what `aivmctl receipt verify` accepts.
	decoded, err := receipt.Decode(data)
	if err != nil {
		return fmt.Errorf("InferenceJob %s/%s: %w", ns, name, err)
	}
	if err := decoded.Verify(); err != nil {
		return fmt.Errorf("InferenceJob %s/%s: %w", ns, name, err)
	}
	if r.Chain == nil {
		msg := "status.chain is empty"
		if cond := meta.FindStatusCondition(job.Status.Conditions, aivmv1alpha1.ConditionReported); cond != nil {
			msg = fmt.Sprintf("Reported=%s, %s: %s", cond.Status, cond.Reason, cond.Message)
		}
		fmt.Fprintf(stderr, "aivmctl: InferenceJob %s/%s is not on chain yet (%s); the receipt has no inclusion proof\n", ns, name, msg)
	}
	if *outFile == "" {
		_, err := stdout.Write(data)
		return err
	}
	if err := os.WriteFile(*outFile, data, 0o644); err != nil {
		return fmt.Errorf("write receipt: %w", err)
	}
	return nil
}

// kubeClientConfig returns the REST config and default namespace for a
// kubeconfig path and context, each optional: without a path,
// controller-runtime's lookup ($KUBECONFIG, in-cluster, ~/.kube/config).
func kubeClientConfig(path, kubeContext string) (*rest.Config, string, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	if path != "" {
		rules = &clientcmd.ClientConfigLoadingRules{ExplicitPath: path}
	}
	loader := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: kubeContext})
	var cfg *rest.Config
	var err error
	if path != "" {
		cfg, err = loader.ClientConfig()
	} else {
		cfg, err = config.GetConfigWithContext(kubeContext)
	}
	if err != nil {
		return nil, "", fmt.Errorf("load Kubernetes client config: %w", err)
	}
	ns, _, err := loader.Namespace()
	if err != nil || ns == "" {
		ns = "default"
	}
	return cfg, ns, nil
}

// jobReceipt rebuilds the signed record of job from its status, as the
// chain reporter does, and checks the status's leaf hash and signature
// against it. The inclusion is set when status.chain is.
func jobReceipt(ctx context.Context, c client.Reader, job *aivmv1alpha1.InferenceJob) (*receipt.Receipt, error) {
	id := job.Namespace + "/" + job.Name
	res := job.Status.Result
	if res == nil {
		return nil, fmt.Errorf("InferenceJob %s has no result yet (status.result is empty)", id)
	}
	if res.Receipt == nil {
		return nil, fmt.Errorf("InferenceJob %s has a result but no receipt yet (status.result.receipt is empty)", id)
	}
	kernelDigest, modelDigest := res.KernelDigest, res.ModelDigest
	if kernelDigest == "" || modelDigest == "" {
		// Results accepted before the digests were recorded in the result
		// were signed over the Kernel's digests; a Kernel changed since
		// fails the leaf check below.
		kernel := &aivmv1alpha1.Kernel{}
		if err := c.Get(ctx, client.ObjectKey{Namespace: job.Namespace, Name: job.Spec.KernelRef.Name}, kernel); err != nil {
			if apierrors.IsNotFound(err) {
				return nil, fmt.Errorf("InferenceJob %s: status.result has no kernel digest and Kernel %q is not found", id, job.Spec.KernelRef.Name)
			}
			return nil, fmt.Errorf("InferenceJob %s: get Kernel %q: %w", id, job.Spec.KernelRef.Name, err)
		}
		if kernel.Status.KernelDigest == "" || kernel.Status.ModelDigest == "" {
			return nil, fmt.Errorf("InferenceJob %s: status.result has no kernel digest and Kernel %q has none yet", id, kernel.Name)
		}
		kernelDigest, modelDigest = kernel.Status.KernelDigest, kernel.Status.ModelDigest
	}
	if res.InputTokens < 0 || res.OutputTokens < 0 || res.DurationMillis < 0 {
		return nil, fmt.Errorf("InferenceJob %s: status.result has negative token counts or duration", id)
	}
	rec := &aivmv1.ResultRecord{
		JobUid:       string(job.UID),
		InputTokens:  uint64(res.InputTokens),
		OutputTokens: uint64(res.OutputTokens),
		DurationMs:   uint64(res.DurationMillis),
	}
	// The Kernel's status and older results carry "sha256:"-prefixed
	// digests; the record holds the canonical form only.
	for _, d := range []struct {
		dst  *string
		name string
		src  string
	}{{&rec.KernelDigest, "kernelDigest", kernelDigest}, {&rec.ModelDigest, "modelDigest", modelDigest},
		{&rec.InputDigest, "inputDigest", res.InputDigest}, {&rec.OutputDigest, "outputDigest", res.OutputDigest}} {
		c, err := receipt.CanonicalDigest(d.src)
		if err != nil {
			return nil, fmt.Errorf("InferenceJob %s: status.result %s: %w", id, d.name, err)
		}
		*d.dst = c
	}
	leaf, err := receipt.LeafHash(rec)
	if err != nil {
		return nil, fmt.Errorf("InferenceJob %s: status.result: %w", id, err)
	}
	want, err := merkle.ParseHash(res.Receipt.LeafHash)
	if err != nil {
		return nil, fmt.Errorf("InferenceJob %s: status.result.receipt.leafHash: %w", id, err)
	}
	if leaf != want {
		return nil, fmt.Errorf("InferenceJob %s: status.result.receipt.leafHash %s does not match the leaf hash %s of the record rebuilt from status.result",
			id, want, leaf)
	}
	sig, err := base64.StdEncoding.Strict().DecodeString(res.Receipt.Signature)
	if err != nil {
		return nil, fmt.Errorf("InferenceJob %s: status.result.receipt.signature is not base64: %w", id, err)
	}
	if err := receipt.VerifyBySigner(res.Receipt.SignerAddress, leaf, sig); err != nil {
		return nil, fmt.Errorf("InferenceJob %s: status.result.receipt.signature does not verify for signer %q: %w", id, res.Receipt.SignerAddress, err)
	}
	r := &receipt.Receipt{Record: rec, LeafHash: leaf, Signer: res.Receipt.SignerAddress, Signature: sig}
	if job.Status.Chain != nil {
		inc, err := inclusion(job.Status.Chain)
		if err != nil {
			return nil, fmt.Errorf("InferenceJob %s: %w", id, err)
		}
		if err := merkle.Verify(leaf, inc.Proof, inc.Root); err != nil {
			return nil, fmt.Errorf("InferenceJob %s: status.chain.proof does not lead from the result's leaf to status.chain.batchRoot: %w", id, err)
		}
		r.Chain = inc
	}
	return r, nil
}

// inclusion converts status.chain into a receipt inclusion.
func inclusion(cs *aivmv1alpha1.ChainStatus) (*receipt.Inclusion, error) {
	root, err := merkle.ParseHash(cs.BatchRoot)
	if err != nil {
		return nil, fmt.Errorf("status.chain.batchRoot: %w", err)
	}
	if cs.LeafIndex < 0 || cs.BatchSize <= 0 || cs.LeafIndex >= cs.BatchSize {
		return nil, fmt.Errorf("status.chain leafIndex %d / batchSize %d is invalid", cs.LeafIndex, cs.BatchSize)
	}
	inc := &receipt.Inclusion{
		TxHash: cs.TxHash,
		Height: cs.Height,
		Root:   root,
		Proof:  merkle.Proof{LeafIndex: uint64(cs.LeafIndex), TreeSize: uint64(cs.BatchSize)},
	}
	for i, s := range cs.Proof {
		h, err := merkle.ParseHash(s)
		if err != nil {
			return nil, fmt.Errorf("status.chain.proof[%d]: %w", i, err)
		}
		inc.Proof.Path = append(inc.Proof.Path, h)
	}
	if inc.TxHash == "" || inc.Height <= 0 {
		return nil, errors.New("status.chain has no transaction hash or height")
	}
	return inc, nil
}
