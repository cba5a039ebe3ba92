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

package nodeagent_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/aivm-dev/aivm-operator/internal/testutil"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	aivmv1alpha1 "github.com/aivm-dev/aivm-operator/api/v1alpha1"
	"github.com/aivm-dev/aivm-operator/artifact"
	"github.com/aivm-dev/aivm-operator/internal/testenv"
	"github.com/aivm-dev/aivm-operator/nodeagent"
	"github.com/aivm-dev/aivm-operator/nodeagent/discovery"
	"github.com/aivm-dev/aivm-operator/nodeagent/simulate"
)

func TestMetrics(t *testing.T) {
	const name = "gpu-metrics-0"
	createNode(t, name, nil)
	reg := prometheus.NewRegistry()
	m, err := nodeagent.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	a := newTestAgent(t, name, agentConfig{profile: "dgxh100", metrics: m})
	a.sim.SetMemoryUsed(1, 1<<30)
	a.sim.InjectXID(3, 79)
	failing := a.sim.Device(6)
	failing.GetMigModeFunc = nil // an NVML call that fails (the mock panics)
	a.sync(t)

	checks := []struct {
		family, label, value string
		want                 float64
	}{
		{"aivm_node_agent_gpus", "health", "Healthy", 6},
		{"aivm_node_agent_gpus", "health", "Unhealthy", 2},
		{"aivm_node_agent_gpus", "health", "Unknown", 0},
		{"aivm_node_agent_gpu_memory_used_bytes", "uuid", a.sim.UUID(1), 1 << 30},
		{"aivm_node_agent_gpu_memory_free_bytes", "uuid", a.sim.UUID(1), 80<<30 - 1<<30},
		{"aivm_node_agent_gpu_memory_free_bytes", "uuid", a.sim.UUID(0), 80 << 30},
		{"aivm_node_agent_nvml_errors_total", "", "", 1},
		{"aivm_node_agent_publish_errors_total", "", "", 0},
		{"aivm_node_agent_last_successful_poll_timestamp_seconds", "", "", float64(start.Unix())},
	}
	for _, c := range checks {
		if got, ok := sample(t, reg, c.family, c.label, c.value); !ok || got != c.want {
			t.Errorf("%s{%s=%q} = %v (found %v), want %v", c.family, c.label, c.value, got, ok, c.want)
		}
	}

	// A poll that cannot reach the API server counts as a publish error
	// and leaves the last successful poll time alone.
	if err := plainClient(t).Delete(context.Background(), &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}}); err != nil {
		t.Fatal(err)
	}
	a.clock.Step(nodeagent.DefaultHeartbeatInterval)
	if err := a.agent.Sync(context.Background()); err == nil {
		t.Fatal("Sync succeeded for a deleted Node")
	}
	if got, _ := sample(t, reg, "aivm_node_agent_publish_errors_total", "", ""); got != 1 {
		t.Errorf("publish errors = %v, want 1", got)
	}
	if got, _ := sample(t, reg, "aivm_node_agent_last_successful_poll_timestamp_seconds", "", ""); got != float64(start.Unix()) {
		t.Errorf("last successful poll = %v, want %d", got, start.Unix())
	}
}

// sample returns the value of the sample of family whose label has value
// (any sample when label is "").
func sample(t *testing.T, reg *prometheus.Registry, family, label, value string) (float64, bool) {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != family {
			continue
		}
		for _, m := range mf.GetMetric() {
			match := label == ""
			for _, l := range m.GetLabel() {
				if l.GetName() == label && l.GetValue() == value {
					match = true
				}
			}
			if !match {
				continue
			}
			switch {
			case m.GetGauge() != nil:
				return m.GetGauge().GetValue(), true
			case m.GetCounter() != nil:
				return m.GetCounter().GetValue(), true
			}
		}
	}
	return 0, false
}

// BenchmarkPoll8GPUs measures one NVML poll of an 8-GPU node through the
// go-nvml dgxa100 mock: device enumeration, the event drain and every
// per-GPU query.
func BenchmarkPoll8GPUs(b *testing.B) {
	n, err := simulate.New("dgxa100")
	if err != nil {
		b.Fatal(err)
	}
	d, err := discovery.Open(n, discovery.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	b.ReportAllocs()
	for b.Loop() {
		if inv := d.Poll(); len(inv.GPUs) != 8 {
			b.Fatalf("%d GPUs", len(inv.GPUs))
		}
	}
	reportCPUShare(b)
}

// BenchmarkSyncQuiet8GPUs measures the agent's steady state: one poll of an
// 8-GPU node, a model-cache scan of 32 digests, building the status and the
// labels and finding nothing worth writing (between two heartbeats the
// agent makes no API call).
func BenchmarkSyncQuiet8GPUs(b *testing.B) {
	const name = "gpu-bench-0"
	c := plainClient(b)
	createNode(b, name, nil)
	n, err := simulate.New("dgxa100")
	if err != nil {
		b.Fatal(err)
	}
	d, err := discovery.Open(n, discovery.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	dir := b.TempDir()
	for i := range 32 {
		writeCacheFile(b, dir, fmt.Sprintf("%064x", i))
	}
	clk := clocktesting.NewFakeClock(start)
	pub, err := nodeagent.NewPublisher(c, nodeagent.PublisherOptions{NodeName: name, HeartbeatInterval: time.Hour, Clock: clk})
	if err != nil {
		b.Fatal(err)
	}
	agent, err := nodeagent.NewAgent(d, pub, nodeagent.AgentOptions{ModelCacheDir: dir, Clock: clk, Log: logr.Discard()})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	if err := agent.Sync(ctx); err != nil { // creates the GPUNode, writes status and labels
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if err := agent.Sync(ctx); err != nil {
			b.Fatal(err)
		}
	}
	reportCPUShare(b)
}

// reportCPUShare reports the CPU share of one operation per default poll
// interval, in percent of one core.
func reportCPUShare(b *testing.B) {
	perOp := b.Elapsed().Seconds() / float64(b.N)
	b.ReportMetric(100*perOp/nodeagent.DefaultPollInterval.Seconds(), "%core@10s")
}

// BenchmarkCacheSync200Models measures one steady-state cache sync as the
// agent runs it: 200 Models selected for the node and already cached,
// listed from a watch-fed cache, the Node read from the API server, a
// stat per Model, and a garbage collection that finds the cache within its
// limit. It reports the CPU share at the default sync interval.
func BenchmarkCacheSync200Models(b *testing.B) {
	const name = "gpu-bench-cache"
	ctx := context.Background()
	c := plainClient(b)
	createNode(b, name, map[string]string{"pool": "bench"})
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "bench-"}}
	if err := c.Create(ctx, ns); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = c.Delete(context.Background(), ns) })
	dir := b.TempDir()
	for i := range 200 {
		d := fmt.Sprintf("%064x", i)
		writeCacheFile(b, dir, d)
		m := testutil.MakeModel(ns.Name, fmt.Sprintf("m-%03d", i), "https://models.example/w.gguf", d).
			GPUMemory("1Gi").Prefetch(map[string]string{"pool": "bench"}).Obj()
		if err := c.Create(ctx, m); err != nil {
			b.Fatal(err)
		}
	}
	models, err := cache.New(cfg, cache.Options{Scheme: testenv.Scheme()})
	if err != nil {
		b.Fatal(err)
	}
	cctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- models.Start(cctx) }()
	defer func() { cancel(); <-done }()
	if _, err := models.GetInformer(ctx, &aivmv1alpha1.Model{}); err != nil {
		b.Fatal(err)
	}
	if !models.WaitForCacheSync(ctx) {
		b.Fatal("model cache did not sync")
	}
	store, err := artifact.OpenCache(dir)
	if err != nil {
		b.Fatal(err)
	}
	f, err := artifact.NewFetcher(store)
	if err != nil {
		b.Fatal(err)
	}
	cm, err := nodeagent.NewCacheManager(nodeagent.CacheManagerOptions{
		NodeName: name, Models: models, APIReader: c, Fetcher: f, Prefetch: true, MaxBytes: 1 << 40,
		Clock: clocktesting.NewFakeClock(start), Log: logr.Discard(),
	})
	if err != nil {
		b.Fatal(err)
	}
	var list aivmv1alpha1.ModelList
	eventuallyB(b, func() bool {
		return models.List(ctx, &list, client.InNamespace(ns.Name)) == nil && len(list.Items) == 200
	})
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if err := cm.Sync(ctx); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	cm.Wait()
	if len(cm.ModelCacheErrors()) != 0 {
		b.Fatalf("errors: %v", cm.ModelCacheErrors())
	}
	perOp := b.Elapsed().Seconds() / float64(b.N)
	b.ReportMetric(100*perOp/nodeagent.DefaultCacheSyncInterval.Seconds(), "%core@1m")
}

// eventuallyB polls ok for at most 30 s.
func eventuallyB(b *testing.B, ok func() bool) {
	b.Helper()
	deadline := time.Now().Add(30 * time.Second)
	tick := time.NewTicker(25 * time.Millisecond)
	defer tick.Stop()
	for !ok() {
		if time.Now().After(deadline) {
			b.Fatal("condition not met within 30s")
		}
		<-tick.C
	}
}
