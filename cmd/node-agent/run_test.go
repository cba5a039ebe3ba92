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
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/go-logr/logr/testr"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	aivmv1alpha1 "github.com/aivm-dev/aivm-operator/api/v1alpha1"
	"github.com/aivm-dev/aivm-operator/internal/testenv"
	"github.com/aivm-dev/aivm-operator/internal/testutil"
	"github.com/aivm-dev/aivm-operator/nodeagent/simulate"
)

// TestRunPrefetchesOnModelWatch runs the whole agent (simulated GPUs) on a
// test API server. Its poll, heartbeat and cache sync intervals are an hour,
// so only the Model watch can start the prefetch and only the cache
// manager's wake-up can publish its result in time.
func TestRunPrefetchesOnModelWatch(t *testing.T) {
	cfg, c := startAPIServer(t)
	ctx := context.Background()
	const nodeName = "agent-run-0"
	if err := c.Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: nodeName, Labels: map[string]string{"pool": "run"}}}); err != nil {
		t.Fatal(err)
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "run-models"}}
	if err := c.Create(ctx, ns); err != nil {
		t.Fatal(err)
	}

	data := make([]byte, 64<<10)
	_, _ = rand.Read(data)
	sum := sha256.Sum256(data)
	digest := hex.EncodeToString(sum[:])
	var gets atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gets.Add(1)
		http.ServeContent(w, r, "w", time.Unix(1700000000, 0), bytes.NewReader(data))
	}))
	t.Cleanup(srv.Close)

	o := defaults()
	o.nodeName, o.simulate, o.metricsAddr = nodeName, "dgxh100", "0"
	o.pollInterval, o.heartbeatInterval, o.cacheSyncInterval = time.Hour, time.Hour, time.Hour
	o.modelCacheDir = t.TempDir()
	o.restConfig = func() (*rest.Config, error) { return cfg, nil }
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- run(runCtx, o, testr.New(t), io.Discard) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	})

	gpuNode := func() (*aivmv1alpha1.GPUNode, error) {
		gn := &aivmv1alpha1.GPUNode{}
		return gn, c.Get(ctx, client.ObjectKey{Name: nodeName}, gn)
	}
	eventually(t, func() error {
		gn, err := gpuNode()
		if err != nil {
			return err
		}
		if gn.Status.GPUCount != 8 {
			return fmt.Errorf("gpuCount = %d", gn.Status.GPUCount)
		}
		return nil
	})
	if n := gets.Load(); n != 0 {
		t.Fatalf("fetched %d times before any Model asked for it", n)
	}

	model := &aivmv1alpha1.Model{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: "prefetched"},
		Spec: aivmv1alpha1.ModelSpec{
			URI: srv.URL + "/w.gguf", SHA256: digest, GPUMemory: resource.MustParse("1Gi"),
			Prefetch: &aivmv1alpha1.ModelPrefetch{NodeSelector: metav1.LabelSelector{MatchLabels: map[string]string{"pool": "run"}}},
		},
	}
	if err := c.Create(ctx, model); err != nil {
		t.Fatal(err)
	}
	eventually(t, func() error {
		gn, err := gpuNode()
		if err != nil {
			return err
		}
		if !slices.Contains(gn.Status.CachedModels, digest) {
			return fmt.Errorf("cachedModels = %v", gn.Status.CachedModels)
		}
		return nil
	})
	if got, err := os.ReadFile(filepath.Join(o.modelCacheDir, "sha256", digest)); err != nil || !bytes.Equal(got, data) {
		t.Errorf("cached blob: %v", err)
	}
	if n := gets.Load(); n != 1 {
		t.Errorf("fetched %d times, want 1", n)
	}
}

// startAPIServer starts a test API server for the test and returns its
// config and a client.
func startAPIServer(t *testing.T) (*rest.Config, client.Client) {
	t.Helper()
	env, cfg, err := testenv.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := env.Stop(); err != nil {
			t.Errorf("stop envtest: %v", err)
		}
	})
	c, err := client.New(cfg, client.Options{Scheme: testenv.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	return cfg, c
}

// TestRunPublishesGPUFaultAtOnce runs the whole agent on a simulated node
// with an hour between polls: only the health watcher can publish the XID
// in time. On return the watcher has stopped before NVML was shut down.
func TestRunPublishesGPUFaultAtOnce(t *testing.T) {
	cfg, c := startAPIServer(t)
	ctx := context.Background()
	const nodeName = "agent-run-xid-0"
	if err := c.Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: nodeName}}); err != nil {
		t.Fatal(err)
	}
	sim, err := simulate.New("dgxh100", simulate.WithSeed(nodeName))
	if err != nil {
		t.Fatal(err)
	}
	waitersAtShutdown := -1
	sim.ShutdownFunc = func() nvml.Return { waitersAtShutdown = sim.EventWaiters(); return nvml.SUCCESS }

	o := defaults()
	o.nodeName, o.sim, o.metricsAddr, o.modelCacheDir = nodeName, sim, "0", ""
	o.pollInterval, o.heartbeatInterval = time.Hour, time.Hour
	o.restConfig = func() (*rest.Config, error) { return cfg, nil }
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- run(runCtx, o, testr.New(t), io.Discard) }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	}
	t.Cleanup(stop)

	gpu2 := func() (aivmv1alpha1.GPUStatus, error) {
		gn := &aivmv1alpha1.GPUNode{}
		if err := c.Get(ctx, client.ObjectKey{Name: nodeName}, gn); err != nil {
			return aivmv1alpha1.GPUStatus{}, err
		}
		if len(gn.Status.GPUs) != 8 {
			return aivmv1alpha1.GPUStatus{}, fmt.Errorf("%d GPUs listed", len(gn.Status.GPUs))
		}
		return gn.Status.GPUs[2], nil
	}
	eventually(t, func() error {
		if _, err := gpu2(); err != nil {
			return err
		}
		if w := sim.EventWaiters(); w != 1 {
			return fmt.Errorf("%d health watchers wait for events", w)
		}
		return nil
	})
	sim.InjectXID(2, 79)
	eventually(t, func() error {
		g, err := gpu2()
		if err == nil && (g.Health != aivmv1alpha1.GPUUnhealthy || g.HealthReason != "XID 79: GPU has fallen off the bus") {
			err = fmt.Errorf("GPU 2 = %s %q", g.Health, g.HealthReason)
		}
		return err
	})
	stop()
	if waitersAtShutdown != 0 {
		t.Errorf("NVML shut down with %d callers waiting on its event set, want 0 (shut down at all: %v)", waitersAtShutdown, waitersAtShutdown >= 0)
	}
}

// eventually is testutil.Eventually.
func eventually(t *testing.T, fn func() error) {
	t.Helper()
	testutil.Eventually(t, fn)
}
