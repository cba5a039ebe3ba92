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
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/testr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	clocktesting "k8s.io/utils/clock/testing"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	aivmv1alpha1 "github.com/aivm-dev/aivm-operator/api/v1alpha1"
	"github.com/aivm-dev/aivm-operator/internal/testenv"
	"github.com/aivm-dev/aivm-operator/nodeagent"
	"github.com/aivm-dev/aivm-operator/nodeagent/discovery"
	"github.com/aivm-dev/aivm-operator/nodeagent/discovery/discoverytest"
	"github.com/aivm-dev/aivm-operator/nodeagent/simulate"
)

var cfg *rest.Config

func TestMain(m *testing.M) {
	ctrl.SetLogger(logr.Discard())
	env, c, err := testenv.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, "start envtest:", err)
		os.Exit(1)
	}
	cfg = c
	code := m.Run()
	if err := env.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "stop envtest:", err)
	}
	os.Exit(code)
}

// writeLog counts the API calls an agent makes.
type writeLog struct {
	mu     sync.Mutex
	reads  int
	writes []string
}

func (w *writeLog) read() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.reads++
}

func (w *writeLog) write(s string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.writes = append(w.writes, s)
}

// reset returns the calls so far and forgets them.
func (w *writeLog) reset() (reads int, writes []string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	reads, writes = w.reads, w.writes
	w.reads, w.writes = 0, nil
	return reads, writes
}

// countingClient is a real client of the test API server that records every
// call it makes.
func countingClient(t *testing.T) (client.Client, *writeLog) {
	t.Helper()
	base, err := client.NewWithWatch(cfg, client.Options{Scheme: testenv.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	log := &writeLog{}
	kind := func(o any) string { return strings.TrimPrefix(fmt.Sprintf("%T", o), "*") }
	return interceptor.NewClient(base, interceptor.Funcs{
		Get: func(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
			log.read()
			return c.Get(ctx, key, obj, opts...)
		},
		Create: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
			log.write("create " + kind(obj))
			return c.Create(ctx, obj, opts...)
		},
		Update: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.UpdateOption) error {
			log.write("update " + kind(obj))
			return c.Update(ctx, obj, opts...)
		},
		Patch: func(ctx context.Context, c client.WithWatch, obj client.Object, patch client.Patch, opts ...client.PatchOption) error {
			data, _ := patch.Data(obj)
			log.write("patch " + kind(obj) + " " + string(data))
			return c.Patch(ctx, obj, patch, opts...)
		},
		Delete: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.DeleteOption) error {
			log.write("delete " + kind(obj))
			return c.Delete(ctx, obj, opts...)
		},
		SubResourceUpdate: func(ctx context.Context, c client.Client, sub string, obj client.Object, opts ...client.SubResourceUpdateOption) error {
			log.write("update " + kind(obj) + "/" + sub)
			return c.SubResource(sub).Update(ctx, obj, opts...)
		},
		SubResourcePatch: func(ctx context.Context, c client.Client, sub string, obj client.Object, patch client.Patch, opts ...client.SubResourcePatchOption) error {
			data, _ := patch.Data(obj)
			log.write("patch " + kind(obj) + "/" + sub + " " + string(data))
			return c.SubResource(sub).Patch(ctx, obj, patch, opts...)
		},
	}), log
}

func plainClient(t testing.TB) client.Client {
	t.Helper()
	c, err := client.New(cfg, client.Options{Scheme: testenv.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// createNode creates a Node and removes it and its GPUNode when the test ends.
func createNode(t testing.TB, name string, labels map[string]string) *corev1.Node {
	t.Helper()
	c := plainClient(t)
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
	if err := c.Create(context.Background(), node); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx := context.Background()
		_ = c.Delete(ctx, &aivmv1alpha1.GPUNode{ObjectMeta: metav1.ObjectMeta{Name: name}})
		_ = c.Delete(ctx, node)
	})
	return node
}

var start = time.Date(2026, 11, 25, 8, 0, 0, 0, time.UTC)

type testAgent struct {
	agent *nodeagent.Agent
	sim   *simulate.Node
	clock *clocktesting.FakeClock
	calls *writeLog
}

type agentConfig struct {
	profile   string
	heartbeat time.Duration
	cacheDir  string
	metrics   *nodeagent.Metrics
	log       logr.Logger
	// clock, when set, is the agent's clock (shared with a cache manager).
	clock *clocktesting.FakeClock
	// cacheErrors, when set, supplies the agent's model cache failures.
	cacheErrors nodeagent.CacheErrorSource
}

func newTestAgent(t *testing.T, nodeName string, ac agentConfig) *testAgent {
	t.Helper()
	if ac.profile == "" {
		ac.profile = "dgxa100"
	}
	if ac.heartbeat == 0 {
		ac.heartbeat = nodeagent.DefaultHeartbeatInterval
	}
	if ac.log.GetSink() == nil {
		ac.log = testr.New(t)
	}
	sim := discoverytest.NewNode(t, ac.profile, simulate.WithSeed(nodeName))
	disc := discoverytest.Open(t, sim, discovery.Options{Log: ac.log})
	clk := ac.clock
	if clk == nil {
		clk = clocktesting.NewFakeClock(start)
	}
	c, calls := countingClient(t)
	pub, err := nodeagent.NewPublisher(c, nodeagent.PublisherOptions{
		NodeName: nodeName, HeartbeatInterval: ac.heartbeat, Clock: clk, Log: ac.log,
	})
	if err != nil {
		t.Fatal(err)
	}
	agent, err := nodeagent.NewAgent(disc, pub, nodeagent.AgentOptions{
		ModelCacheDir: ac.cacheDir, Clock: clk, Metrics: ac.metrics, Log: ac.log, CacheErrors: ac.cacheErrors,
	})
	if err != nil {
		t.Fatal(err)
	}
	return &testAgent{agent: agent, sim: sim, clock: clk, calls: calls}
}

// poll advances the fake clock by one poll interval and syncs.
func (a *testAgent) poll(t *testing.T) {
	t.Helper()
	a.clock.Step(nodeagent.DefaultPollInterval)
	a.sync(t)
}

func (a *testAgent) sync(t *testing.T) {
	t.Helper()
	if err := a.agent.Sync(context.Background()); err != nil {
		t.Fatalf("Sync: %v", err)
	}
}

func getGPUNode(t *testing.T, name string) *aivmv1alpha1.GPUNode {
	t.Helper()
	gn := &aivmv1alpha1.GPUNode{}
	if err := plainClient(t).Get(context.Background(), client.ObjectKey{Name: name}, gn); err != nil {
		t.Fatalf("get GPUNode %s: %v", name, err)
	}
	return gn
}

func gpuLabels(t *testing.T, name string) map[string]string {
	t.Helper()
	node := &corev1.Node{}
	if err := plainClient(t).Get(context.Background(), client.ObjectKey{Name: name}, node); err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for k, v := range node.Labels {
		if strings.HasPrefix(k, "aivm.dev/") {
			out[k] = v
		}
	}
	return out
}

func TestTwoAgentsPublishTwoGPUNodes(t *testing.T) {
	nodes := []struct {
		name, profile, product, label, memMiB, cc string
	}{
		{"gpu-a100-0", "dgxa100", "Mock NVIDIA A100-SXM4-40GB", "Mock-NVIDIA-A100-SXM4-40GB", "40960", "8.0"},
		{"gpu-h100-0", "dgxh100", "NVIDIA H100 80GB HBM3", "NVIDIA-H100-80GB-HBM3", "81920", "9.0"},
	}
	for _, n := range nodes {
		node := createNode(t, n.name, map[string]string{"kubernetes.io/hostname": n.name})
		a := newTestAgent(t, n.name, agentConfig{profile: n.profile})
		a.sync(t)

		gn := getGPUNode(t, n.name)
		if len(gn.OwnerReferences) != 1 || gn.OwnerReferences[0].Kind != "Node" ||
			gn.OwnerReferences[0].Name != n.name || gn.OwnerReferences[0].UID != node.UID {
			t.Errorf("%s: owner references %+v, want the Node (uid %s)", n.name, gn.OwnerReferences, node.UID)
		}
		st := gn.Status
		if st.GPUCount != 8 || st.HealthyGPUCount != 8 || len(st.GPUs) != 8 {
			t.Fatalf("%s: gpuCount %d healthy %d listed %d, want 8", n.name, st.GPUCount, st.HealthyGPUCount, len(st.GPUs))
		}
		for i, g := range st.GPUs {
			if g.UUID != a.sim.UUID(i) || g.Product != n.product || g.Health != aivmv1alpha1.GPUHealthy ||
				g.MemoryTotal.Value() != int64(a.sim.Device(i).MemoryInfo.Total) || g.ComputeCapability != n.cc {
				t.Errorf("%s GPU %d = %+v", n.name, i, g)
			}
		}
		if st.DriverVersion != "550.54.15" || st.CUDADriverVersion != "12.4" || st.HeartbeatTime == nil || !st.HeartbeatTime.Time.Equal(start) {
			t.Errorf("%s: driver %q cuda %q heartbeat %v", n.name, st.DriverVersion, st.CUDADriverVersion, st.HeartbeatTime)
		}
		ready := findCondition(st.Conditions, aivmv1alpha1.ConditionReady)
		if ready == nil || ready.Status != metav1.ConditionTrue || ready.Reason != aivmv1alpha1.ReasonHeartbeat {
			t.Errorf("%s: Ready condition %+v", n.name, ready)
		}
		want := map[string]string{
			aivmv1alpha1.LabelGPUPresent:           "true",
			aivmv1alpha1.LabelGPUProduct:           n.label,
			aivmv1alpha1.LabelGPUCount:             "8",
			aivmv1alpha1.LabelGPUMemory:            n.memMiB,
			aivmv1alpha1.LabelGPUComputeCapability: n.cc,
			aivmv1alpha1.LabelGPUHealthyCount:      "8",
		}
		if diff := cmpDiff(want, gpuLabels(t, n.name)); diff != "" {
			t.Errorf("%s labels (-want +got):\n%s", n.name, diff)
		}
	}
	// Two nodes, two GPUNodes, no UUID shared.
	var list aivmv1alpha1.GPUNodeList
	if err := plainClient(t).List(context.Background(), &list); err != nil {
		t.Fatal(err)
	}
	uuids := map[string]string{}
	for _, gn := range list.Items {
		for _, g := range gn.Status.GPUs {
			if other, dup := uuids[g.UUID]; dup {
				t.Errorf("UUID %s on both %s and %s", g.UUID, other, gn.Name)
			}
			uuids[g.UUID] = gn.Name
		}
	}
	if len(uuids) != 16 {
		t.Errorf("%d distinct GPU UUIDs across the GPUNodes, want 16", len(uuids))
	}
}

func findCondition(cs []metav1.Condition, typ string) *metav1.Condition {
	for i := range cs {
		if cs[i].Type == typ {
			return &cs[i]
		}
	}
	return nil
}

func TestGPUFaultShowsWithinOnePoll(t *testing.T) {
	const name = "gpu-fault-0"
	createNode(t, name, nil)
	a := newTestAgent(t, name, agentConfig{profile: "dgxh200"})
	a.sync(t)

	a.sim.InjectXID(2, 48)
	a.poll(t)

	st := getGPUNode(t, name).Status
	if g := st.GPUs[2]; g.Health != aivmv1alpha1.GPUUnhealthy || !strings.Contains(g.HealthReason, "XID 48") {
		t.Errorf("GPU 2 = %s %q, want Unhealthy with XID 48", g.Health, g.HealthReason)
	}
	for i, g := range st.GPUs {
		if i != 2 && g.Health != aivmv1alpha1.GPUHealthy {
			t.Errorf("GPU %d = %s, want Healthy", i, g.Health)
		}
	}
	if st.HealthyGPUCount != 7 {
		t.Errorf("healthyGPUCount = %d, want 7", st.HealthyGPUCount)
	}
	if got := gpuLabels(t, name)[aivmv1alpha1.LabelGPUHealthyCount]; got != "7" {
		t.Errorf("healthy-count label = %q, want 7", got)
	}

	// A GPU that falls off the bus stays listed, unhealthy.
	a.sim.Detach(5)
	a.poll(t)
	st = getGPUNode(t, name).Status
	if g := st.GPUs[5]; len(st.GPUs) != 8 || g.UUID != a.sim.UUID(5) || g.Health != aivmv1alpha1.GPUUnhealthy || !strings.Contains(g.HealthReason, "GPU lost") {
		t.Errorf("after detach: %d GPUs, GPU 5 = %s %s %q", len(st.GPUs), g.UUID, g.Health, g.HealthReason)
	}
}

func TestQuietMinuteWritesOnlyHeartbeats(t *testing.T) {
	const name = "gpu-quiet-0"
	createNode(t, name, nil)
	a := newTestAgent(t, name, agentConfig{})
	a.sync(t)
	_, first := a.calls.reset()
	if len(first) != 3 {
		t.Errorf("first sync wrote %d times, want 3 (create, status, labels): %q", len(first), first)
	}

	// Six polls over a quiet minute, with temperature noise in the first two.
	for i := range 6 {
		if i < 2 {
			a.sim.SetTemperature(i, 36)
		}
		a.poll(t)
	}
	reads, writes := a.calls.reset()
	if len(writes) != 2 {
		t.Fatalf("a quiet minute wrote %d times, want 2 heartbeats: %q", len(writes), writes)
	}
	for _, w := range writes {
		if !strings.HasPrefix(w, "patch v1alpha1.GPUNode/status ") {
			t.Errorf("write %q is not a status patch", w)
		}
	}
	// The noise was not worth a write of its own; the first heartbeat
	// (30 s) carries it, the second (60 s) nothing but the heartbeat.
	if !strings.Contains(writes[0], `"heartbeatTime":"2026-11-25T08:00:30Z"`) || !strings.Contains(writes[1], `"heartbeatTime":"2026-11-25T08:01:00Z"`) {
		t.Errorf("heartbeats at the wrong times: %q", writes)
	}
	if !strings.Contains(writes[0], `"temperatureCelsius":36`) {
		t.Errorf("first heartbeat does not carry the current temperature: %s", writes[0])
	}
	if strings.Contains(writes[1], `"gpus"`) || strings.Contains(writes[1], "conditions") {
		t.Errorf("second heartbeat changed more than the heartbeat: %s", writes[1])
	}
	if reads != 4 {
		t.Errorf("%d reads over the minute, want 4 (Node and GPUNode at each heartbeat)", reads)
	}
}

func TestNoWritesWithoutChangesBetweenHeartbeats(t *testing.T) {
	const name = "gpu-quiet-1"
	createNode(t, name, nil)
	a := newTestAgent(t, name, agentConfig{heartbeat: 5 * time.Minute})
	a.sync(t)
	a.calls.reset()
	for range 6 {
		a.poll(t)
	}
	if reads, writes := a.calls.reset(); len(writes) != 0 || reads != 0 {
		t.Fatalf("a quiet minute made %d reads and wrote %q, want nothing", reads, writes)
	}

	// A small temperature change is noise; a large one is written.
	a.sim.SetTemperature(0, 36)
	a.poll(t)
	if _, writes := a.calls.reset(); len(writes) != 0 {
		t.Fatalf("a 2°C change wrote %q", writes)
	}
	a.sim.SetTemperature(0, 80)
	a.poll(t)
	if _, writes := a.calls.reset(); len(writes) != 1 {
		t.Fatalf("a 46°C change wrote %d times, want 1", len(writes))
	}
	if got := *getGPUNode(t, name).Status.GPUs[0].TemperatureCelsius; got != 80 {
		t.Errorf("temperature = %d, want 80", got)
	}

	// Memory taken by a job is written at once.
	a.sim.SetMemoryUsed(3, 20<<30)
	a.poll(t)
	if _, writes := a.calls.reset(); len(writes) != 1 {
		t.Fatalf("memory use wrote %d times, want 1", len(writes))
	}
	if got := getGPUNode(t, name).Status.GPUs[3].MemoryFree.Value(); got != 20<<30 {
		t.Errorf("GPU 3 memoryFree = %d, want %d", got, 20<<30)
	}
}

func TestLabelsRemovedWhenGPUsAreGone(t *testing.T) {
	const name = "gpu-gone-0"
	createNode(t, name, map[string]string{
		aivmv1alpha1.LabelGPUPresent:      "true",
		aivmv1alpha1.LabelGPUCount:        "8",
		aivmv1alpha1.LabelGPUProduct:      "NVIDIA-H100-80GB-HBM3",
		aivmv1alpha1.LabelGPUHealthyCount: "8",
		"team":                            "inference",
	})
	sim := discoverytest.NewNode(t, "dgxh100")
	sim.Server.Devices = nil // the GPUs were taken out of the machine
	disc := discoverytest.Open(t, sim, discovery.Options{})
	c, _ := countingClient(t)
	pub, err := nodeagent.NewPublisher(c, nodeagent.PublisherOptions{NodeName: name, HeartbeatInterval: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	agent, err := nodeagent.NewAgent(disc, pub, nodeagent.AgentOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := agent.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := gpuLabels(t, name); len(got) != 0 {
		t.Errorf("GPU labels left on a node without GPUs: %v", got)
	}
	node := &corev1.Node{}
	if err := plainClient(t).Get(context.Background(), client.ObjectKey{Name: name}, node); err != nil {
		t.Fatal(err)
	}
	if node.Labels["team"] != "inference" {
		t.Errorf("the agent removed a label it does not own: %v", node.Labels)
	}
	if st := getGPUNode(t, name).Status; st.GPUCount != 0 || len(st.GPUs) != 0 {
		t.Errorf("status lists %d GPUs, want 0", st.GPUCount)
	}
}

func TestCachedModelsReported(t *testing.T) {
	const name = "gpu-cache-0"
	createNode(t, name, nil)
	dir := t.TempDir()
	a := newTestAgent(t, name, agentConfig{cacheDir: dir, heartbeat: time.Hour})
	a.sync(t)
	if got := getGPUNode(t, name).Status.CachedModels; len(got) != 0 {
		t.Fatalf("cachedModels = %v before any model", got)
	}
	digest := strings.Repeat("ab", 32)
	writeCacheFile(t, dir, digest)
	writeCacheFile(t, dir, digest+".partial")
	a.poll(t)
	if diff := cmpDiff([]string{digest}, getGPUNode(t, name).Status.CachedModels); diff != "" {
		t.Errorf("cachedModels (-want +got):\n%s", diff)
	}
}

func TestGPUNodeRecreatedAndOwnerFixed(t *testing.T) {
	const name = "gpu-recreate-0"
	node := createNode(t, name, nil)
	a := newTestAgent(t, name, agentConfig{})
	a.sync(t)
	c := plainClient(t)
	ctx := context.Background()

	// Someone deletes the GPUNode: the agent recreates it at its next read.
	if err := c.Delete(ctx, getGPUNode(t, name)); err != nil {
		t.Fatal(err)
	}
	a.clock.Step(nodeagent.DefaultHeartbeatInterval)
	a.sync(t)
	if gn := getGPUNode(t, name); gn.Status.GPUCount != 8 || !ownedByNode(gn, node) {
		t.Errorf("recreated GPUNode: %d GPUs, owners %+v", gn.Status.GPUCount, gn.OwnerReferences)
	}

	// An owner reference that names another Node UID is replaced.
	gn := getGPUNode(t, name)
	orig := gn.DeepCopy()
	gn.OwnerReferences[0].UID = "00000000-0000-0000-0000-000000000000"
	if err := c.Patch(ctx, gn, client.MergeFrom(orig)); err != nil {
		t.Fatal(err)
	}
	a.clock.Step(nodeagent.DefaultHeartbeatInterval)
	a.sync(t)
	if gn := getGPUNode(t, name); !ownedByNode(gn, node) || len(gn.OwnerReferences) != 1 {
		t.Errorf("owner references not fixed: %+v", gn.OwnerReferences)
	}
}

func ownedByNode(gn *aivmv1alpha1.GPUNode, node *corev1.Node) bool {
	for _, r := range gn.OwnerReferences {
		if r.Kind == "Node" && r.APIVersion == "v1" && r.UID == node.UID && r.Name == node.Name {
			return true
		}
	}
	return false
}

func TestPublishKeepsOthersFields(t *testing.T) {
	const name = "gpu-others-0"
	createNode(t, name, nil)
	a := newTestAgent(t, name, agentConfig{})
	a.sync(t)
	c := plainClient(t)
	ctx := context.Background()
	gn := getGPUNode(t, name)
	orig := gn.DeepCopy()
	gn.Status.ModelCacheErrors = []aivmv1alpha1.ModelCacheError{{Digest: strings.Repeat("cd", 32), Reason: "DigestMismatch"}}
	if err := c.Status().Patch(ctx, gn, client.MergeFrom(orig)); err != nil {
		t.Fatal(err)
	}
	a.sim.InjectXID(0, 79)
	a.poll(t)
	st := getGPUNode(t, name).Status
	if len(st.ModelCacheErrors) != 1 || st.GPUs[0].Health != aivmv1alpha1.GPUUnhealthy {
		t.Errorf("modelCacheErrors %v, GPU 0 %s", st.ModelCacheErrors, st.GPUs[0].Health)
	}
}

func TestPublishFailsClearlyWithoutNode(t *testing.T) {
	c, calls := countingClient(t)
	pub, err := nodeagent.NewPublisher(c, nodeagent.PublisherOptions{NodeName: "no-such-node", HeartbeatInterval: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	err = pub.Publish(context.Background(), aivmv1alpha1.GPUNodeStatus{}, nil)
	if !apierrors.IsNotFound(err) || !strings.Contains(err.Error(), "get node no-such-node") {
		t.Fatalf("Publish error = %v, want node not found", err)
	}
	if _, writes := calls.reset(); len(writes) != 0 {
		t.Errorf("wrote %q for a missing node", writes)
	}
}

func TestNewPublisherValidates(t *testing.T) {
	c := plainClient(t)
	for _, o := range []nodeagent.PublisherOptions{
		{NodeName: "", HeartbeatInterval: time.Second},
		{NodeName: "Bad_Name", HeartbeatInterval: time.Second},
		{NodeName: "ok", HeartbeatInterval: 0},
	} {
		if _, err := nodeagent.NewPublisher(c, o); err == nil {
			t.Errorf("NewPublisher(%+v) succeeded", o)
		}
	}
}

// countingSource counts polls and reports each on a channel.
type countingSource struct {
	inner nodeagent.InventorySource
	polls chan struct{}
}

func (s *countingSource) Poll() nodeagent.Inventory {
	inv := s.inner.Poll()
	s.polls <- struct{}{}
	return inv
}

func TestRunPollsEveryInterval(t *testing.T) {
	const name = "gpu-run-0"
	createNode(t, name, nil)
	sim := discoverytest.NewNode(t, "dgxa100")
	src := &countingSource{inner: discoverytest.Open(t, sim, discovery.Options{}), polls: make(chan struct{})}
	clk := clocktesting.NewFakeClock(start)
	pub, err := nodeagent.NewPublisher(plainClient(t), nodeagent.PublisherOptions{NodeName: name, HeartbeatInterval: time.Minute, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	agent, err := nodeagent.NewAgent(src, pub, nodeagent.AgentOptions{Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- agent.Run(ctx) }()
	<-src.polls // the first poll runs at once
	for range 3 {
		clk.Step(nodeagent.DefaultPollInterval)
		<-src.polls
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
}

// TestPublishAfterAnotherWriter: the manager marks the GPUNode not ready
// (a missed heartbeat) after the agent last read it. The agent's next write
// must bring Ready back, not only its own change.
func TestPublishAfterAnotherWriter(t *testing.T) {
	const name = "gpu-other-writer-0"
	createNode(t, name, nil)
	a := newTestAgent(t, name, agentConfig{})
	a.sync(t)
	gn := getGPUNode(t, name)
	orig := gn.DeepCopy()
	meta.SetStatusCondition(&gn.Status.Conditions, metav1.Condition{
		Type: aivmv1alpha1.ConditionReady, Status: metav1.ConditionFalse,
		Reason: aivmv1alpha1.ReasonHeartbeatMissed, Message: "No heartbeat",
	})
	if err := plainClient(t).Status().Patch(context.Background(), gn, client.MergeFrom(orig)); err != nil {
		t.Fatal(err)
	}
	// Before the agent's own re-read is due, a GPU fault makes it write.
	a.sim.InjectXID(0, 79)
	a.poll(t)
	got := getGPUNode(t, name)
	if got.Status.GPUs[0].Health != aivmv1alpha1.GPUUnhealthy {
		t.Errorf("GPU 0 is %s after XID 79", got.Status.GPUs[0].Health)
	}
	ready := findCondition(got.Status.Conditions, aivmv1alpha1.ConditionReady)
	if ready == nil || ready.Status != metav1.ConditionTrue || ready.Reason != aivmv1alpha1.ReasonHeartbeat {
		t.Fatalf("Ready after the agent's write = %+v, want True/%s", ready, aivmv1alpha1.ReasonHeartbeat)
	}
}

// pollCounter counts polls.
type pollCounter struct {
	inner nodeagent.InventorySource
	polls atomic.Int32
}

func (s *pollCounter) Poll() nodeagent.Inventory {
	s.polls.Add(1)
	return s.inner.Poll()
}

// TestGPUFaultPublishedWithoutPoll: with the health watcher running, a GPU
// fault reaches the GPUNode at once, on a fake clock whose poll (an hour)
// never ticks.
func TestGPUFaultPublishedWithoutPoll(t *testing.T) {
	const name = "gpu-push-0"
	createNode(t, name, nil)
	sim := discoverytest.NewNode(t, "dgxh200", simulate.WithSeed(name))
	disc := discoverytest.Open(t, sim, discovery.Options{Log: testr.New(t)})
	src := &pollCounter{inner: disc}
	clk := clocktesting.NewFakeClock(start)
	pub, err := nodeagent.NewPublisher(plainClient(t), nodeagent.PublisherOptions{NodeName: name, HeartbeatInterval: time.Hour, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	agent, err := nodeagent.NewAgent(src, pub, nodeagent.AgentOptions{
		PollInterval: time.Hour, Clock: clk, HealthChanged: disc.HealthChanged(), Log: testr.New(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	watchDone, runDone := make(chan struct{}), make(chan struct{})
	var watchErr, runErr error
	go func() {
		defer close(watchDone)
		watchErr = disc.WatchHealth(ctx)
	}()
	go func() {
		defer close(runDone)
		runErr = agent.Run(ctx)
	}()
	t.Cleanup(func() { cancel(); <-watchDone; <-runDone })

	gpu := func(i int) (aivmv1alpha1.GPUStatus, int32, error) {
		gn := &aivmv1alpha1.GPUNode{}
		if err := plainClient(t).Get(ctx, client.ObjectKey{Name: name}, gn); err != nil {
			return aivmv1alpha1.GPUStatus{}, 0, err
		}
		if len(gn.Status.GPUs) != 8 {
			return aivmv1alpha1.GPUStatus{}, 0, fmt.Errorf("%d GPUs listed", len(gn.Status.GPUs))
		}
		return gn.Status.GPUs[i], gn.Status.HealthyGPUCount, nil
	}
	eventually(t, func() error {
		_, healthy, err := gpu(2)
		if err == nil && healthy != 8 {
			err = fmt.Errorf("%d healthy GPUs, want 8", healthy)
		}
		return err
	})
	waitHandled(t, sim) // the watcher waits for events

	// An application XID wakes nothing.
	sim.InjectXID(2, 13)
	waitHandled(t, sim)
	if n := src.polls.Load(); n != 1 {
		t.Errorf("%d polls after XID 13, want 1 (the first)", n)
	}

	sim.InjectXID(2, 79)
	eventually(t, func() error {
		g, healthy, err := gpu(2)
		if err != nil {
			return err
		}
		if g.Health != aivmv1alpha1.GPUUnhealthy || g.HealthReason != "XID 79: GPU has fallen off the bus" || healthy != 7 {
			return fmt.Errorf("GPU 2 = %s %q, %d healthy GPUs", g.Health, g.HealthReason, healthy)
		}
		return nil
	})
	if n := src.polls.Load(); n != 2 {
		t.Errorf("%d polls, want 2 (the first and the one the fault woke)", n)
	}
	if got := gpuLabels(t, name)[aivmv1alpha1.LabelGPUHealthyCount]; got != "7" {
		t.Errorf("healthy-count label = %q, want 7", got)
	}

	// Cancelling the context stops the watcher before NVML is closed.
	cancel()
	select {
	case <-watchDone:
	case <-time.After(30 * time.Second):
		t.Fatal("the health watcher still runs 30s after its context was cancelled")
	}
	<-runDone
	if watchErr != nil || runErr != nil {
		t.Errorf("WatchHealth: %v, Run: %v", watchErr, runErr)
	}
	if w := sim.EventWaiters(); w != 0 {
		t.Errorf("%d callers still wait on the event set", w)
	}
}
