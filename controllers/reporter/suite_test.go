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
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/aivm-dev/aivm-operator/internal/testutil"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	chainclient "github.com/aivm-dev/aivm-operator/chain-client"
	"github.com/aivm-dev/aivm-operator/chain-client/devnet"
	"github.com/aivm-dev/aivm-operator/chain-client/keys"
	"github.com/aivm-dev/aivm-operator/chain-client/outbox"
	"github.com/aivm-dev/aivm-operator/chain-client/rpc"
	"github.com/aivm-dev/aivm-operator/internal/testenv"
)

// The package's tests share one kube-apiserver and etcd and one devnet.
var (
	cfg       *rest.Config
	k8sClient client.Client
	chainNode *devnet.Node
	chainRPC  *rpc.Client
)

const (
	eventuallyTimeout = 60 * time.Second
	eventuallyPoll    = 25 * time.Millisecond
	funds             = 1_000_000_000_000
)

func keyFor(seed string) *keys.Key {
	h := sha256.Sum256([]byte(seed))
	k, err := keys.FromHex(hex.EncodeToString(h[:]))
	if err != nil {
		panic(err)
	}
	return k
}

func addressOf(k *keys.Key) string {
	a, err := k.Address("")
	if err != nil {
		panic(err)
	}
	return a
}

// Provider keys funded in the devnet's genesis.
var (
	providerKey = keyFor("reporter-provider")
	otherKey    = keyFor("reporter-other-provider")
	setupKey    = keyFor("reporter-setup-provider")
	failoverKey = keyFor("reporter-failover-provider")
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	ctrl.SetLogger(logr.Discard())
	env, c, err := testenv.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer env.Stop()
	cfg = c
	if k8sClient, err = client.New(cfg, client.Options{Scheme: testenv.Scheme()}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	home, err := os.MkdirTemp("", "reporter-devnet-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(home)
	ctx, cancel := context.WithTimeout(context.Background(), eventuallyTimeout)
	defer cancel()
	chainNode, err = devnet.Start(ctx, devnet.Config{
		Home:      home,
		BlockTime: 100 * time.Millisecond,
		Accounts:  map[string]uint64{addressOf(providerKey): funds, addressOf(otherKey): funds, addressOf(setupKey): funds, addressOf(failoverKey): funds},
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer chainNode.Stop()
	if chainRPC, err = rpc.New(chainNode.RPCURL()); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}

// harness is a manager running the reporter over a chain client.
type harness struct {
	client     *chainclient.Client
	reconciler *Reconciler
}

// startChainClient runs a chain client for key against chain until the
// test ends; onEvent may be nil.
func startChainClient(t *testing.T, key *keys.Key, chain chainclient.Chain, onEvent func(chainclient.Event)) *chainclient.Client {
	t.Helper()
	box, err := outbox.Open(t.TempDir(), outbox.Options{})
	if err != nil {
		t.Fatal(err)
	}
	cc, err := chainclient.New(chainclient.Options{
		Key: key, ChainID: chainNode.ChainID(), Chain: chain, Outbox: box,
		BatchDelay: 20 * time.Millisecond, PollInterval: 50 * time.Millisecond,
		MinBackoff: 50 * time.Millisecond, MaxBackoff: 200 * time.Millisecond,
		Registration: &aivmRegistration,
		OnEvent:      onEvent,
		Logger:       testLogger(),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- cc.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
		box.Close()
	})
	return cc
}

// startHarness runs a chain client for key against chain and a manager with
// the reporter, until the test ends.
func startHarness(t *testing.T, key *keys.Key, chain chainclient.Chain) *harness {
	t.Helper()
	h := &harness{}
	h.client = startChainClient(t, key, chain, func(e chainclient.Event) { h.reconciler.OnChainEvent(e) })
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                 testenv.Scheme(),
		Logger:                 logr.Discard(),
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Controller:             config.Controller{SkipNameValidation: ptr.To(true)},
	})
	if err != nil {
		t.Fatal(err)
	}
	h.reconciler = NewReconciler(mgr.GetClient(), mgr.GetEventRecorder("reporter"), h.client, WithPendingRecheck(100*time.Millisecond))
	if err := h.reconciler.SetupWithManager(mgr); err != nil {
		t.Fatal(err)
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
	return h
}

// testLogger logs to stderr when AIVM_TEST_LOG is set.
func testLogger() logr.Logger {
	if os.Getenv("AIVM_TEST_LOG") == "" {
		return logr.Discard()
	}
	return funcr.New(func(prefix, args string) { fmt.Fprintln(os.Stderr, prefix, args) }, funcr.Options{Verbosity: 1})
}

// newNamespace creates a namespace for one test.
func newNamespace(t *testing.T) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "reporter-"}}
	if err := k8sClient.Create(context.Background(), ns); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = k8sClient.Delete(context.Background(), ns) })
	return ns.Name
}

// eventually is testutil.Eventually.
func eventually(t *testing.T, fn func() error) {
	t.Helper()
	testutil.Eventually(t, fn)
}
