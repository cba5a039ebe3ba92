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
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"google.golang.org/protobuf/proto"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/config"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	aivmv1alpha1 "github.com/aivm-dev/aivm-operator/api/v1alpha1"
	"github.com/aivm-dev/aivm-operator/chain-client/aivmv1"
	"github.com/aivm-dev/aivm-operator/chain-client/keys"
	"github.com/aivm-dev/aivm-operator/internal/testenv"
)

// newGPUNode creates a GPUNode whose status lists GPUs of the given
// products and memory.
func newGPUNode(t *testing.T, name string, gpus ...aivmv1alpha1.GPUStatus) {
	t.Helper()
	ctx := context.Background()
	n := &aivmv1alpha1.GPUNode{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if err := k8sClient.Create(ctx, n); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = k8sClient.Delete(context.Background(), n) })
	n.Status.GPUs = gpus
	if err := k8sClient.Status().Update(ctx, n); err != nil {
		t.Fatal(err)
	}
}

func gpu(i int32, product string, mem string) aivmv1alpha1.GPUStatus {
	return aivmv1alpha1.GPUStatus{Index: i, UUID: fmt.Sprintf("GPU-%s-%d", product[:4], i), Product: product, MemoryTotal: resource.MustParse(mem)}
}

// TestSetupFromFlags wires the reporter the way the manager does, from
// flags, and checks the registration carries the cluster's GPUs and a job
// gets reported.
func TestSetupFromFlags(t *testing.T) {
	suffix := fmt.Sprint(chainNode.Height())
	newGPUNode(t, "b-node-"+suffix, gpu(0, "NVIDIA H100 80GB HBM3", "80Gi"))
	newGPUNode(t, "a-node-"+suffix, gpu(0, "NVIDIA A100-SXM4-40GB", "40Gi"), gpu(1, "NVIDIA A100-SXM4-40GB", "40Gi"))

	keyFile := filepath.Join(t.TempDir(), "provider.key")
	if err := keys.SaveFile(keyFile, setupKey, false); err != nil {
		t.Fatal(err)
	}
	var rc Config
	fs := flag.NewFlagSet("manager", flag.ContinueOnError)
	rc.BindFlags(fs)
	if err := fs.Parse([]string{
		"--report-results", "--chain-rpc-url", chainNode.RPCURL(), "--chain-id", chainNode.ChainID(),
		"--chain-key-dir", keyFile, "--chain-outbox-dir", t.TempDir(), "--chain-batch-interval", "20ms",
		"--chain-gas-price", "0.03unes",
		"--provider-moniker", "flags-test", "--provider-endpoint", "https://flags.example",
	}); err != nil {
		t.Fatal(err)
	}

	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme: testenv.Scheme(), Logger: logr.Discard(),
		Metrics: metricsserver.Options{BindAddress: "0"}, HealthProbeBindAddress: "0",
		Controller: config.Controller{SkipNameValidation: ptr.To(true)},
	})
	if err != nil {
		t.Fatal(err)
	}
	cc, err := Setup(mgr, rc)
	if err != nil {
		t.Fatal(err)
	}
	if cc == nil {
		t.Fatal("Setup with reporting on returned no reporter")
	}
	if cc.Address() != addressOf(setupKey) {
		t.Fatalf("client reports as %s, want %s", cc.Address(), addressOf(setupKey))
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("manager: %v", err)
		}
	})

	ns := newNamespace(t)
	job := newSucceededJob(t, ns, newKernel(t, ns), jobOpts{signer: setupKey})
	reported(t, job, metav1.ConditionTrue, aivmv1alpha1.ReasonCommitted)

	var p *aivmv1.Provider
	eventually(t, func() (err error) { p, err = chainRPC.Provider(context.Background(), addressOf(setupKey)); return err })
	if p == nil {
		t.Fatal("provider not registered")
	}
	want := &aivmv1.MsgRegisterProvider{
		Provider: addressOf(setupKey), Moniker: "flags-test", Endpoint: "https://flags.example", Version: "dev",
		Gpus: []*aivmv1.GPU{
			{Product: "NVIDIA H100 80GB HBM3", MemoryBytes: 80 << 30},
			{Product: "NVIDIA A100-SXM4-40GB", MemoryBytes: 40 << 30},
			{Product: "NVIDIA A100-SXM4-40GB", MemoryBytes: 40 << 30},
		},
		TotalVramBytes: 160 << 30,
	}
	if !proto.Equal(p.GetRegistration(), want) {
		t.Fatalf("registration on chain = %v, want %v", p.GetRegistration(), want)
	}
}

func TestSetupDisabled(t *testing.T) {
	var rc Config
	fs := flag.NewFlagSet("manager", flag.ContinueOnError)
	rc.BindFlags(fs)
	if err := fs.Parse(nil); err != nil {
		t.Fatal(err)
	}
	cc, err := Setup(nil, rc)
	if err != nil || cc != nil {
		t.Fatalf("Setup with reporting off = %v, %v; want nothing", cc, err)
	}
}

func TestSetupRefusesAMissingKey(t *testing.T) {
	rc := Config{Enabled: true, KeyPath: filepath.Join(t.TempDir(), "absent"), OutboxDir: t.TempDir(), RPCURL: chainNode.RPCURL(), GasPrice: "0.025unes"}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme: testenv.Scheme(), Logger: logr.Discard(),
		Metrics: metricsserver.Options{BindAddress: "0"}, HealthProbeBindAddress: "0",
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Setup(mgr, rc); err == nil {
		t.Fatal("Setup without a key succeeded")
	}
}

// TestSetupRefusesBadChainSettings: settings the chain client refuses stop
// Setup on every replica, before any replica leads and opens the outbox.
func TestSetupRefusesBadChainSettings(t *testing.T) {
	keyFile := filepath.Join(t.TempDir(), "provider.key")
	if err := keys.SaveFile(keyFile, setupKey, false); err != nil {
		t.Fatal(err)
	}
	outboxDir := filepath.Join(t.TempDir(), "outbox")
	rc := Config{
		Enabled: true, KeyPath: keyFile, OutboxDir: outboxDir, RPCURL: chainNode.RPCURL(),
		GasPrice: "0.025unes", MaxTxBytes: 100,
	}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme: testenv.Scheme(), Logger: logr.Discard(),
		Metrics: metricsserver.Options{BindAddress: "0"}, HealthProbeBindAddress: "0",
		Controller: config.Controller{SkipNameValidation: ptr.To(true)},
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Setup(mgr, rc); err == nil || !strings.Contains(err.Error(), "MaxTxBytes") {
		t.Fatalf("Setup with a 100-byte transaction limit = %v, want an error naming MaxTxBytes", err)
	}
	if _, err := os.Stat(outboxDir); !os.IsNotExist(err) {
		t.Errorf("Setup touched the outbox directory: %v", err)
	}
}

func TestSetupRefusesABadGasPrice(t *testing.T) {
	rc := Config{Enabled: true, GasPrice: "0.025", OutboxDir: t.TempDir(), RPCURL: chainNode.RPCURL()}
	if _, err := Setup(nil, rc); err == nil {
		t.Fatal("Setup with a gas price without denomination succeeded")
	}
}

// TestRegistrationFromClusterCapsAndCleans: a cluster with more GPUs than a
// registration may list registers its largest ones, and a GPU without a
// product name is listed as unknown.
func TestRegistrationFromClusterCapsAndCleans(t *testing.T) {
	suffix := fmt.Sprint(chainNode.Height())
	var small []aivmv1alpha1.GPUStatus
	for i := range int32(MaxRegisteredGPUs) {
		small = append(small, gpu(i, "NVIDIA T4", "16Gi"))
	}
	newGPUNode(t, "small-"+suffix, small...)
	newGPUNode(t, "big-"+suffix, aivmv1alpha1.GPUStatus{Index: 0, UUID: "GPU-x", MemoryTotal: resource.MustParse("141Gi")})
	msg, err := RegistrationFromCluster(k8sClient, &aivmv1.MsgRegisterProvider{Moniker: "m"})(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(msg.GetGpus()) != MaxRegisteredGPUs {
		t.Fatalf("%d GPUs listed, want %d", len(msg.GetGpus()), MaxRegisteredGPUs)
	}
	if g := msg.GetGpus()[0]; g.GetProduct() != "unknown" || g.GetMemoryBytes() != 141<<30 {
		t.Fatalf("first GPU = %v, want the 141Gi one as unknown", g)
	}
	want := uint64(141<<30) + uint64(MaxRegisteredGPUs-1)*(16<<30)
	if msg.GetTotalVramBytes() != want {
		t.Fatalf("total VRAM %d, want %d", msg.GetTotalVramBytes(), want)
	}
}

// TestStandbyReplicaSharesOutbox runs two manager replicas with leader
// election over one outbox directory (a ReadWriteMany volume, or the same
// node's volume during a rolling update). The standby neither fails nor
// takes the outbox's lock; when the leader goes, it takes over reporting
// from the same outbox.
func TestStandbyReplicaSharesOutbox(t *testing.T) {
	keyFile := filepath.Join(t.TempDir(), "provider.key")
	if err := keys.SaveFile(keyFile, failoverKey, false); err != nil {
		t.Fatal(err)
	}
	outboxDir := t.TempDir()
	leaseID := "reporter-failover-" + fmt.Sprint(chainNode.Height())
	replica := func(name string) (ctrl.Manager, ResultReporter) {
		t.Helper()
		var rc Config
		fs := flag.NewFlagSet(name, flag.ContinueOnError)
		rc.BindFlags(fs)
		if err := fs.Parse([]string{
			"--report-results", "--chain-rpc-url", chainNode.RPCURL(), "--chain-id", chainNode.ChainID(),
			"--chain-key-dir", keyFile, "--chain-outbox-dir", outboxDir, "--chain-batch-interval", "20ms",
		}); err != nil {
			t.Fatal(err)
		}
		mgr, err := ctrl.NewManager(cfg, ctrl.Options{
			Scheme: testenv.Scheme(), Logger: logr.Discard(),
			Metrics: metricsserver.Options{BindAddress: "0"}, HealthProbeBindAddress: "0",
			Controller:     config.Controller{SkipNameValidation: ptr.To(true)},
			LeaderElection: true, LeaderElectionID: leaseID, LeaderElectionNamespace: "default",
			LeaderElectionReleaseOnCancel: true,
			// Generous enough that a loaded machine does not lose the lease;
			// the handover is quick because the leader releases it on stop.
			LeaseDuration: ptr.To(15 * time.Second),
			RenewDeadline: ptr.To(10 * time.Second),
			RetryPeriod:   ptr.To(200 * time.Millisecond),
		})
		if err != nil {
			t.Fatal(err)
		}
		rr, err := Setup(mgr, rc)
		if err != nil {
			t.Fatalf("Setup of %s: %v", name, err)
		}
		return mgr, rr
	}
	start := func(mgr ctrl.Manager) (stop func()) {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- mgr.Start(ctx) }()
		var once bool
		stop = func() {
			if once {
				return
			}
			once = true
			cancel()
			if err := <-done; err != nil {
				t.Errorf("manager: %v", err)
			}
		}
		t.Cleanup(stop)
		return stop
	}

	mgrA, chainA := replica("a")
	// Set up, not leading: the outbox is not held.
	if _, err := chainA.Get("any"); !errors.Is(err, ErrChainClientNotStarted) {
		t.Fatalf("Get before leading = %v, want ErrChainClientNotStarted", err)
	}
	stopA := start(mgrA)
	<-mgrA.Elected()
	mgrB, chainB := replica("b")
	start(mgrB)

	ns := newNamespace(t)
	kernel := newKernel(t, ns)
	first := reported(t, newSucceededJob(t, ns, kernel, jobOpts{name: "first", signer: failoverKey}),
		metav1.ConditionTrue, aivmv1alpha1.ReasonCommitted)
	if _, err := chainB.Get(string(first.UID)); !errors.Is(err, ErrChainClientNotStarted) {
		t.Fatalf("the standby's chain client answered Get: %v", err)
	}

	stopA() // releases the lease and the outbox
	select {
	case <-mgrB.Elected():
	case <-time.After(eventuallyTimeout):
		t.Fatal("the standby did not take over")
	}
	second := reported(t, newSucceededJob(t, ns, kernel, jobOpts{name: "second", signer: failoverKey}),
		metav1.ConditionTrue, aivmv1alpha1.ReasonCommitted)
	if second.Status.Chain.TxHash == first.Status.Chain.TxHash {
		t.Errorf("both jobs in transaction %s: the second was not reported by the new leader", first.Status.Chain.TxHash)
	}
	// The new leader reads the same outbox: the first job's entry is there.
	eventually(t, func() error {
		e, err := chainB.Get(string(first.UID))
		if err != nil {
			return err
		}
		if e.TxHash != first.Status.Chain.TxHash {
			return fmt.Errorf("first job's entry has tx %s, want %s", e.TxHash, first.Status.Chain.TxHash)
		}
		return nil
	})
}
