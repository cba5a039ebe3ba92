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
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	aivmv1alpha1 "github.com/aivm-dev/aivm-operator/api/v1alpha1"
	"github.com/aivm-dev/aivm-operator/chain-client/aivmv1"
	"github.com/aivm-dev/aivm-operator/chain-client/receipt"
	"github.com/aivm-dev/aivm-operator/internal/testenv"
)

// The package's tests that read InferenceJobs share one kube-apiserver and
// etcd, started by the first of them and stopped by TestMain.
var (
	kubeOnce       sync.Once
	kubeEnv        *envtest.Environment
	kubeClient     client.Client
	kubeconfigPath string
	kubeErr        error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if kubeEnv != nil {
		_ = kubeEnv.Stop()
	}
	if kubeconfigPath != "" {
		_ = os.RemoveAll(filepath.Dir(kubeconfigPath))
	}
	os.Exit(code)
}

// kube starts the shared API server on first use and returns a client and a
// kubeconfig file for it.
func kube(t *testing.T) (client.Client, string) {
	t.Helper()
	kubeOnce.Do(func() {
		env, cfg, err := testenv.Start()
		if err != nil {
			kubeErr = err
			return
		}
		kubeEnv = env
		if kubeClient, err = client.New(cfg, client.Options{Scheme: testenv.Scheme()}); err != nil {
			kubeErr = err
			return
		}
		dir, err := os.MkdirTemp("", "aivmctl-kubeconfig-")
		if err != nil {
			kubeErr = err
			return
		}
		kubeconfigPath = filepath.Join(dir, "kubeconfig")
		kc := clientcmdapi.NewConfig()
		kc.Clusters["envtest"] = &clientcmdapi.Cluster{Server: cfg.Host, CertificateAuthorityData: cfg.CAData}
		kc.AuthInfos["envtest"] = &clientcmdapi.AuthInfo{ClientCertificateData: cfg.CertData, ClientKeyData: cfg.KeyData, Token: cfg.BearerToken}
		kc.Contexts["envtest"] = &clientcmdapi.Context{Cluster: "envtest", AuthInfo: "envtest"}
		kc.CurrentContext = "envtest"
		kubeErr = clientcmd.WriteToFile(*kc, kubeconfigPath)
	})
	if kubeErr != nil {
		t.Fatal(kubeErr)
	}
	return kubeClient, kubeconfigPath
}

// jobStatus is the status the job controller and chain reporter write for a
// signed result r (its inclusion in status.chain when it has one).
func jobStatus(r *receipt.Receipt) aivmv1alpha1.InferenceJobStatus {
	rec := r.Record
	st := aivmv1alpha1.InferenceJobStatus{Result: &aivmv1alpha1.JobResult{
		OutputDigest: rec.GetOutputDigest(), InputDigest: rec.GetInputDigest(),
		KernelDigest: rec.GetKernelDigest(), ModelDigest: rec.GetModelDigest(),
		InputTokens: int64(rec.GetInputTokens()), OutputTokens: int64(rec.GetOutputTokens()), DurationMillis: int64(rec.GetDurationMs()),
		Receipt: &aivmv1alpha1.Receipt{LeafHash: r.LeafHash.String(), Signature: base64.StdEncoding.EncodeToString(r.Signature), SignerAddress: r.Signer},
	}}
	if c := r.Chain; c != nil {
		st.Chain = &aivmv1alpha1.ChainStatus{TxHash: c.TxHash, Height: c.Height, BatchRoot: c.Root.String(),
			LeafIndex: int32(c.Proof.LeafIndex), BatchSize: int32(c.Proof.TreeSize)}
		for _, h := range c.Proof.Path {
			st.Chain.Proof = append(st.Chain.Proof, h.String())
		}
	}
	return st
}

// TestReceiptGet reads the receipts of InferenceJobs from a real API server,
// whose statuses carry results signed and committed on the devnet, and
// checks them with `receipt verify --rpc` against that chain.
func TestReceiptGet(t *testing.T) {
	c, kubeconfig := kube(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const ns = "receipt-get"
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		t.Fatal(err)
	}
	names := []string{"committed", "tampered-output", "tampered-proof", "tampered-height", "bad-signature", "pending", "no-result", "no-receipt"}
	jobs := map[string]*aivmv1alpha1.InferenceJob{}
	for _, n := range names {
		job := &aivmv1alpha1.InferenceJob{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: n},
			Spec: aivmv1alpha1.InferenceJobSpec{KernelRef: aivmv1alpha1.LocalObjectReference{Name: "kernel"},
				Input: aivmv1alpha1.JobInput{Text: ptr.To("hello")}},
		}
		if err := c.Create(ctx, job); err != nil {
			t.Fatal(err)
		}
		jobs[n] = job
	}
	// The committed jobs' results go on chain in one batch under their UIDs.
	onChain := names[:5]
	var recs []*aivmv1.ResultRecord
	for i, n := range onChain {
		recs = append(recs, testRecord(string(jobs[n].UID), i))
	}
	url, key, rs := commitResults(t, recs...)
	pending, err := receipt.Sign(key, "", testRecord(string(jobs["pending"].UID), 99))
	if err != nil {
		t.Fatal(err)
	}
	statuses := map[string]aivmv1alpha1.InferenceJobStatus{"pending": jobStatus(pending)}
	for i, n := range onChain {
		statuses[n] = jobStatus(rs[i])
	}
	noReceipt := jobStatus(pending)
	noReceipt.Result.Receipt = nil
	statuses["no-receipt"] = noReceipt
	statuses["tampered-output"].Result.OutputDigest = sha("another output")
	statuses["tampered-proof"].Chain.Proof[0] = sha("another sibling")
	statuses["tampered-height"].Chain.Height++
	sig := append([]byte(nil), rs[4].Signature...)
	sig[3] ^= 1
	statuses["bad-signature"].Result.Receipt.Signature = base64.StdEncoding.EncodeToString(sig)
	for n, st := range statuses {
		jobs[n].Status = st
		if err := c.Status().Update(ctx, jobs[n]); err != nil {
			t.Fatalf("status of %s: %v", n, err)
		}
	}

	get := func(t *testing.T, args ...string) (string, string, error) {
		t.Helper()
		return runCmd(t, "", append([]string{"receipt", "get", "--kubeconfig", kubeconfig, "-n", ns}, args...)...)
	}

	t.Run("committed", func(t *testing.T) {
		out, errOut, err := get(t, "committed")
		if err != nil {
			t.Fatalf("get: %v\n%s", err, errOut)
		}
		if errOut != "" {
			t.Errorf("stderr for a committed job: %q", errOut)
		}
		got, err := receipt.Decode([]byte(out))
		if err != nil {
			t.Fatalf("decode %v:\n%s", err, out)
		}
		if got.Record.GetJobUid() != string(jobs["committed"].UID) || got.LeafHash != rs[0].LeafHash || got.Chain == nil ||
			got.Chain.TxHash != rs[0].Chain.TxHash || got.Chain.Root != rs[0].Chain.Root {
			t.Fatalf("receipt %+v, want the committed one %+v", got, rs[0])
		}
		// aivmctl receipt get ... | aivmctl receipt verify --rpc URL -
		vout, _, err := runCmd(t, out, "receipt", "verify", "--rpc", url, "--signer", rs[0].Signer, "-")
		if err != nil {
			t.Fatalf("verify: %v\n%s", err, vout)
		}
		for _, want := range []string{"signature OK", "proof OK", "(matches)", rs[0].Chain.TxHash} {
			if !strings.Contains(vout, want) {
				t.Errorf("verify output lacks %q:\n%s", want, vout)
			}
		}
		// -o writes the same envelope to a file.
		file := filepath.Join(t.TempDir(), "r.json")
		if fout, _, err := get(t, "committed", "-o", file); err != nil || fout != "" {
			t.Fatalf("get -o: %v, stdout %q", err, fout)
		}
		if data, err := os.ReadFile(file); err != nil || string(data) != out {
			t.Fatalf("file %q (%v), want %q", data, err, out)
		}
	})

	t.Run("not on chain yet", func(t *testing.T) {
		out, errOut, err := get(t, "pending")
		if err != nil {
			t.Fatalf("get: %v\n%s", err, errOut)
		}
		if !strings.Contains(errOut, "not on chain yet") {
			t.Errorf("stderr %q does not say the result is not on chain", errOut)
		}
		got, err := receipt.Decode([]byte(out))
		if err != nil || got.Chain != nil || got.LeafHash != pending.LeafHash {
			t.Fatalf("receipt %+v, %v", got, err)
		}
		if _, _, err := runCmd(t, out, "receipt", "verify", "-"); err != nil {
			t.Errorf("offline verify: %v", err)
		}
		if _, _, err := runCmd(t, out, "receipt", "verify", "--rpc", url, "-"); err == nil || !strings.Contains(err.Error(), "holds no result") {
			t.Errorf("verify --rpc of a result not on chain: %v", err)
		}
	})

	t.Run("tampered height fails verify against the chain", func(t *testing.T) {
		out, errOut, err := get(t, "tampered-height")
		if err != nil {
			t.Fatalf("get: %v\n%s", err, errOut)
		}
		if _, _, err := runCmd(t, out, "receipt", "verify", "--rpc", url, "-"); err == nil || !strings.Contains(err.Error(), "height") {
			t.Fatalf("verify: %v, want a height mismatch", err)
		}
	})

	tests := map[string]struct {
		args []string
		want string
	}{
		"no such job":      {args: []string{"absent"}, want: `InferenceJob "absent" not found in namespace "receipt-get"`},
		"other namespace":  {args: []string{"committed", "-n", "default"}, want: `InferenceJob "committed" not found in namespace "default"`},
		"no result yet":    {args: []string{"no-result"}, want: "has no result yet (status.result is empty)"},
		"no receipt yet":   {args: []string{"no-receipt"}, want: "has a result but no receipt yet (status.result.receipt is empty)"},
		"tampered output":  {args: []string{"tampered-output"}, want: "does not match the leaf hash"},
		"tampered proof":   {args: []string{"tampered-proof"}, want: "status.chain.proof does not lead"},
		"bad signature":    {args: []string{"bad-signature"}, want: "signature does not verify for signer"},
		"no kubeconfig":    {args: []string{"committed", "--kubeconfig", filepath.Join(t.TempDir(), "none")}, want: "load Kubernetes client config"},
		"unknown context":  {args: []string{"committed", "--context", "elsewhere"}, want: "elsewhere"},
		"two job names":    {args: []string{"committed", "pending"}, want: errUsage.Error()},
		"missing job name": {args: nil, want: errUsage.Error()},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "r.json")
			out, _, err := get(t, append(tc.args, "-o", file)...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %v, want one mentioning %q", err, tc.want)
			}
			if out != "" {
				t.Errorf("stdout %q on error", out)
			}
			if _, err := os.Stat(file); !os.IsNotExist(err) {
				t.Errorf("a receipt was written on error (%v)", err)
			}
		})
	}
}
