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
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aivm-dev/aivm-operator/internal/testutil"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/testr"
	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	clocktesting "k8s.io/utils/clock/testing"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	aivmv1alpha1 "github.com/aivm-dev/aivm-operator/api/v1alpha1"
	"github.com/aivm-dev/aivm-operator/artifact"
	"github.com/aivm-dev/aivm-operator/controllers"
	"github.com/aivm-dev/aivm-operator/controllers/indexer"
	"github.com/aivm-dev/aivm-operator/internal/testenv"
	"github.com/aivm-dev/aivm-operator/nodeagent"
	"github.com/aivm-dev/aivm-operator/nodeagent/discovery"
	"github.com/aivm-dev/aivm-operator/nodeagent/discovery/discoverytest"
)

// weightsServer serves random weights and counts GET requests (the Model
// controller's HEAD checks are not counted). It can serve tampered bytes,
// require a bearer token, or hold GETs until released.
type weightsServer struct {
	*httptest.Server
	data     []byte
	digest   string
	token    string
	tampered atomic.Bool
	gets     atomic.Int32
	started  chan struct{} // receives when a GET arrives, if held
	hold     chan struct{} // when set, GETs wait until it is closed
	release  func()
}

func newWeightsServer(t *testing.T, token string, held bool) *weightsServer {
	t.Helper()
	s := &weightsServer{data: make([]byte, 8192), token: token}
	_, _ = rand.Read(s.data)
	sum := sha256.Sum256(s.data)
	s.digest = hex.EncodeToString(sum[:])
	s.release = func() {}
	if held {
		s.started = make(chan struct{}, 16)
		s.hold = make(chan struct{})
		var once sync.Once
		s.release = func() { once.Do(func() { close(s.hold) }) }
	}
	s.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.token != "" && r.Header.Get("Authorization") != "Bearer "+s.token {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		if r.Method == http.MethodGet {
			s.gets.Add(1)
			if s.hold != nil {
				s.started <- struct{}{}
				select {
				case <-s.hold:
				case <-r.Context().Done():
					return
				}
			}
		}
		body := s.data
		if s.tampered.Load() {
			body = bytes.Clone(s.data)
			body[len(body)/2] ^= 0xff
		}
		http.ServeContent(w, r, "weights", time.Unix(1700000000, 0), bytes.NewReader(body))
	}))
	if token != "" {
		s.StartTLS() // a bearer token travels over https only
	} else {
		s.Start()
	}
	t.Cleanup(s.Close)
	t.Cleanup(s.release) // runs before Close
	return s
}

func newNamespace(t *testing.T) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "prefetch-"}}
	c := plainClient(t)
	if err := c.Create(context.Background(), ns); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Delete(context.Background(), ns) })
	return ns.Name
}

func mustCreate(t *testing.T, obj client.Object) {
	t.Helper()
	if err := plainClient(t).Create(context.Background(), obj); err != nil {
		t.Fatalf("create %T %s: %v", obj, obj.GetName(), err)
	}
}

// newCacheManager returns a cache manager for the node whose cache is dir.
func newCacheManager(t *testing.T, nodeName, dir string, clk *clocktesting.FakeClock, edit func(*nodeagent.CacheManagerOptions)) *nodeagent.CacheManager {
	t.Helper()
	cache, err := artifact.OpenCache(dir)
	if err != nil {
		t.Fatal(err)
	}
	f, err := artifact.NewFetcher(cache)
	if err != nil {
		t.Fatal(err)
	}
	opts := nodeagent.CacheManagerOptions{
		NodeName:  nodeName,
		Models:    plainClient(t),
		APIReader: plainClient(t),
		Fetcher:   f,
		Prefetch:  true,
		// Enough for every test Model to start in one sync.
		Concurrency: 4,
		Clock:       clk,
		Log:         testr.New(t),
	}
	if edit != nil {
		edit(&opts)
	}
	m, err := nodeagent.NewCacheManager(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Wait)
	return m
}

// syncAndWait runs one cache sync and waits for the fetches it started.
func syncAndWait(t *testing.T, m *nodeagent.CacheManager) {
	t.Helper()
	if err := m.Sync(context.Background()); err != nil {
		t.Fatalf("cache sync: %v", err)
	}
	m.Wait()
}

// startModelController runs the manager's Model reconciler on the test API
// server until the test ends.
func startModelController(t *testing.T) {
	t.Helper()
	checker, err := artifact.NewChecker()
	if err != nil {
		t.Fatal(err)
	}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                 testenv.Scheme(),
		Logger:                 logr.Discard(),
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Controller:             config.Controller{SkipNameValidation: ptr(true)},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := indexer.Setup(context.Background(), mgr.GetFieldIndexer()); err != nil {
		t.Fatal(err)
	}
	if err := controllers.NewModelReconciler(mgr.GetClient(), mgr.GetAPIReader(), mgr.GetEventRecorder("model-controller"), checker).SetupWithManager(mgr); err != nil {
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
}

func waitModelCondition(t *testing.T, ns, name, typ string, status metav1.ConditionStatus, reason string) {
	t.Helper()
	eventually(t, func() error {
		m := &aivmv1alpha1.Model{}
		if err := plainClient(t).Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, m); err != nil {
			return err
		}
		c := meta.FindStatusCondition(m.Status.Conditions, typ)
		if c == nil || c.Status != status || c.Reason != reason {
			return fmt.Errorf("model %s condition %s = %+v, want %s/%s", name, typ, c, status, reason)
		}
		return nil
	})
}

func cachedBlobs(t *testing.T, dir string) []string {
	t.Helper()
	des, err := os.ReadDir(filepath.Join(dir, "sha256"))
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var out []string
	for _, de := range des {
		out = append(out, de.Name())
	}
	slices.Sort(out)
	return out
}

func TestPrefetchVerifiesModel(t *testing.T) {
	ns := newNamespace(t)
	good := newWeightsServer(t, "", false)
	bad := newWeightsServer(t, "", false)
	bad.tampered.Store(true)
	createNode(t, "prefetch-a", map[string]string{"pool": "a"})
	createNode(t, "prefetch-b", map[string]string{"pool": "b"})
	startModelController(t)
	sel := map[string]string{"pool": "a"}
	mustCreate(t, testutil.MakeModel(ns, "good", good.URL+"/good.gguf", good.digest).Prefetch(sel).Obj())
	mustCreate(t, testutil.MakeModel(ns, "bad", bad.URL+"/bad.gguf", bad.digest).Prefetch(sel).Obj())
	clk := clocktesting.NewFakeClock(start)

	// A node the selector does not match fetches nothing.
	dirB := t.TempDir()
	cmB := newCacheManager(t, "prefetch-b", dirB, clk, nil)
	syncAndWait(t, cmB)
	if n := good.gets.Load() + bad.gets.Load(); n != 0 {
		t.Errorf("a non-matching node made %d GET requests", n)
	}
	if blobs := cachedBlobs(t, dirB); len(blobs) != 0 || len(cmB.ModelCacheErrors()) != 0 {
		t.Errorf("non-matching node cached %v, errors %v", blobs, cmB.ModelCacheErrors())
	}

	// The matching node fetches both: the good bytes land in its cache, the
	// tampered ones are refused.
	dirA := t.TempDir()
	cmA := newCacheManager(t, "prefetch-a", dirA, clk, nil)
	a := newTestAgent(t, "prefetch-a", agentConfig{cacheDir: dirA, clock: clk, cacheErrors: cmA})
	syncAndWait(t, cmA)
	if got, err := os.ReadFile(filepath.Join(dirA, "sha256", good.digest)); err != nil || !bytes.Equal(got, good.data) {
		t.Fatalf("cached good model: %v (equal %t)", err, bytes.Equal(got, good.data))
	}
	if blobs := cachedBlobs(t, dirA); !slices.Equal(blobs, []string{good.digest}) {
		t.Errorf("cache holds %v, want only the good model", blobs)
	}
	select {
	case <-cmA.Changed():
	default:
		t.Error("the cache manager did not signal a change")
	}
	a.sync(t)
	st := getGPUNode(t, "prefetch-a").Status
	if !slices.Equal(st.CachedModels, []string{good.digest}) {
		t.Errorf("cachedModels = %v, want [%s]", st.CachedModels, good.digest)
	}
	if len(st.ModelCacheErrors) != 1 {
		t.Fatalf("modelCacheErrors = %+v, want one", st.ModelCacheErrors)
	}
	e := st.ModelCacheErrors[0]
	if e.Digest != bad.digest || e.Reason != aivmv1alpha1.ReasonDigestMismatch || e.Time == nil ||
		!strings.Contains(e.Message, ns+"/bad") || !strings.Contains(e.Message, "sha256 mismatch") {
		t.Errorf("modelCacheErrors[0] = %+v", e)
	}
	waitModelCondition(t, ns, "good", aivmv1alpha1.ConditionVerified, metav1.ConditionTrue, aivmv1alpha1.ReasonVerified)
	waitModelCondition(t, ns, "bad", aivmv1alpha1.ConditionVerified, metav1.ConditionFalse, aivmv1alpha1.ReasonDigestMismatch)

	// Before the retry backoff has passed nothing is fetched again, and the
	// cached model is not fetched twice.
	gets := good.gets.Load() + bad.gets.Load()
	syncAndWait(t, cmA)
	if n := good.gets.Load() + bad.gets.Load(); n != gets {
		t.Errorf("a sync within the backoff made %d GET requests", n-gets)
	}
	a.poll(t)
	if errs := getGPUNode(t, "prefetch-a").Status.ModelCacheErrors; len(errs) != 1 || !errs[0].Time.Equal(e.Time) {
		t.Errorf("the failure changed while waiting to retry: %+v", errs)
	}

	// Once the source serves the right bytes, the retry caches them and the
	// failure is cleared.
	bad.tampered.Store(false)
	clk.Step(time.Minute)
	syncAndWait(t, cmA)
	if n := bad.gets.Load(); n != 2 {
		t.Errorf("bad model fetched %d times, want 2", n)
	}
	if errs := cmA.ModelCacheErrors(); len(errs) != 0 {
		t.Errorf("cache manager still reports %+v", errs)
	}
	a.sync(t)
	st = getGPUNode(t, "prefetch-a").Status
	want := []string{bad.digest, good.digest}
	slices.Sort(want)
	if !slices.Equal(st.CachedModels, want) || len(st.ModelCacheErrors) != 0 {
		t.Errorf("cachedModels = %v, modelCacheErrors = %+v; want both models and no errors", st.CachedModels, st.ModelCacheErrors)
	}
	waitModelCondition(t, ns, "bad", aivmv1alpha1.ConditionVerified, metav1.ConditionTrue, aivmv1alpha1.ReasonVerified)
}

// notifyingSource reports each poll on a buffered channel.
type notifyingSource struct {
	inner nodeagent.InventorySource
	polls chan struct{}
}

func (s *notifyingSource) Poll() nodeagent.Inventory {
	inv := s.inner.Poll()
	s.polls <- struct{}{}
	return inv
}

func TestPrefetchDoesNotBlockPolls(t *testing.T) {
	const name = "prefetch-run"
	ns := newNamespace(t)
	slow := newWeightsServer(t, "", true)
	createNode(t, name, map[string]string{"pool": "run"})
	mustCreate(t, testutil.MakeModel(ns, "slow", slow.URL+"/slow.gguf", slow.digest).Prefetch(map[string]string{"pool": "run"}).Obj())

	clk := clocktesting.NewFakeClock(start)
	dir := t.TempDir()
	cm := newCacheManager(t, name, dir, clk, nil)
	src := &notifyingSource{inner: discoverytest.Open(t, discoverytest.NewNode(t, "dgxa100"), discovery.Options{}), polls: make(chan struct{}, 64)}
	pub, err := nodeagent.NewPublisher(plainClient(t), nodeagent.PublisherOptions{NodeName: name, HeartbeatInterval: time.Minute, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	agent, err := nodeagent.NewAgent(src, pub, nodeagent.AgentOptions{
		ModelCacheDir: dir, Clock: clk, CacheErrors: cm, Wake: cm.Changed(), Log: testr.New(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	agentDone, cmDone := make(chan error, 1), make(chan error, 1)
	go func() { agentDone <- agent.Run(ctx) }()
	<-src.polls // the agent's ticker exists once it has polled
	go func() { cmDone <- cm.Run(ctx) }()

	// While the download hangs, the agent keeps polling at every tick.
	<-slow.started
	for range 3 {
		clk.Step(nodeagent.DefaultPollInterval)
		<-src.polls
	}
	if blobs := cachedBlobs(t, dir); len(blobs) != 0 {
		t.Fatalf("cache holds %v before the download ended", blobs)
	}

	// When it ends, the agent publishes the model at once, with no tick.
	slow.release()
	eventually(t, func() error {
		st := getGPUNode(t, name).Status
		if !slices.Contains(st.CachedModels, slow.digest) {
			return fmt.Errorf("cachedModels = %v", st.CachedModels)
		}
		return nil
	})
	cancel()
	if err := <-agentDone; err != nil {
		t.Errorf("agent Run: %v", err)
	}
	if err := <-cmDone; err != nil {
		t.Errorf("cache manager Run: %v", err)
	}
}

func TestPrefetchConcurrencyBounded(t *testing.T) {
	const name = "prefetch-bounded"
	ns := newNamespace(t)
	first := newWeightsServer(t, "", true)
	second := newWeightsServer(t, "", true)
	createNode(t, name, map[string]string{"pool": "bounded"})
	sel := map[string]string{"pool": "bounded"}
	mustCreate(t, testutil.MakeModel(ns, "a-first", first.URL+"/w.gguf", first.digest).Prefetch(sel).Obj())
	mustCreate(t, testutil.MakeModel(ns, "b-second", second.URL+"/w.gguf", second.digest).Prefetch(sel).Obj())
	dir := t.TempDir()
	cm := newCacheManager(t, name, dir, clocktesting.NewFakeClock(start), func(o *nodeagent.CacheManagerOptions) { o.Concurrency = 1 })
	ctx := context.Background()

	// One slot: the first Model's download holds it, and syncs meanwhile
	// start nothing else.
	if err := cm.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	<-first.started
	if err := cm.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if n := second.gets.Load(); n != 0 {
		t.Fatalf("second model fetched %d times while the only slot was busy", n)
	}
	first.release()
	cm.Wait()
	if err := cm.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	<-second.started
	second.release()
	cm.Wait()
	want := []string{first.digest, second.digest}
	slices.Sort(want)
	if got := cachedBlobs(t, dir); !slices.Equal(got, want) || first.gets.Load() != 1 || second.gets.Load() != 1 {
		t.Errorf("cache %v after %d and %d GETs, want both models fetched once", got, first.gets.Load(), second.gets.Load())
	}
}

func TestPrefetchCredentials(t *testing.T) {
	const name = "prefetch-cred"
	const token = "s3cret-bearer-token"
	ns := newNamespace(t)
	private := newWeightsServer(t, token, false)
	other := newWeightsServer(t, token, false)
	createNode(t, name, map[string]string{"pool": "cred"})
	sel := map[string]string{"pool": "cred"}
	mustCreate(t, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "hub"},
		Data:       map[string][]byte{"token": []byte(token + "\n")},
	})
	withSecret := testutil.MakeModel(ns, "private", private.URL+"/w.gguf", private.digest).Prefetch(sel).Obj()
	withSecret.Spec.CredentialsSecretRef = &aivmv1alpha1.SecretKeyReference{Name: "hub"}
	mustCreate(t, withSecret)
	noSecret := testutil.MakeModel(ns, "nosecret", other.URL+"/w.gguf", other.digest).Prefetch(sel).Obj()
	noSecret.Spec.CredentialsSecretRef = &aivmv1alpha1.SecretKeyReference{Name: "missing", Key: "token"}
	mustCreate(t, noSecret)
	wrongKey := testutil.MakeModel(ns, "wrongkey", other.URL+"/w.gguf", strings.Repeat("ab", 32)).Prefetch(sel).Obj()
	wrongKey.Spec.CredentialsSecretRef = &aivmv1alpha1.SecretKeyReference{Name: "hub", Key: "password"}
	mustCreate(t, wrongKey)

	reg := prometheus.NewRegistry()
	metrics, err := nodeagent.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cm := newCacheManager(t, name, dir, clocktesting.NewFakeClock(start), func(o *nodeagent.CacheManagerOptions) {
		o.Metrics = metrics
		// Trust the servers' test certificate (every httptest TLS server has the same one).
		f, err := artifact.NewFetcher(o.Fetcher.Cache(), artifact.WithHTTPClient(private.Client()))
		if err != nil {
			t.Fatal(err)
		}
		o.Fetcher = f
	})
	syncAndWait(t, cm)
	if blobs := cachedBlobs(t, dir); !slices.Equal(blobs, []string{private.digest}) {
		t.Errorf("cache holds %v, want the private model", blobs)
	}
	errs := cm.ModelCacheErrors()
	byDigest := map[string]aivmv1alpha1.ModelCacheError{}
	for _, e := range errs {
		byDigest[e.Digest] = e
		if strings.Contains(e.Message, token) {
			t.Errorf("error message reveals the token: %q", e.Message)
		}
	}
	if e := byDigest[other.digest]; e.Reason != aivmv1alpha1.ReasonCredentialsNotFound || !strings.Contains(e.Message, "missing") {
		t.Errorf("missing secret: %+v", e)
	}
	if e := byDigest[wrongKey.Spec.SHA256]; e.Reason != aivmv1alpha1.ReasonCredentialsNotFound || !strings.Contains(e.Message, `"password"`) {
		t.Errorf("missing key: %+v", e)
	}
	if len(errs) != 2 {
		t.Errorf("errors = %+v, want two", errs)
	}
	if other.gets.Load() != 0 {
		t.Errorf("fetched without credentials %d times", other.gets.Load())
	}
	if got := counterValue(t, reg, "aivm_node_agent_model_prefetches_total", "result", "Fetched"); got != 1 {
		t.Errorf("Fetched prefetches = %v, want 1", got)
	}
}

// nodeAgentUser is the user the node agent's service account authenticates as.
const nodeAgentUser = "system:serviceaccount:aivm-system:aivm-node-agent"

// impersonatingClient is a client of the test API server acting as user,
// so that the API server's RBAC decides what it may read.
func impersonatingClient(t *testing.T, user string) client.Client {
	t.Helper()
	c := rest.CopyConfig(cfg)
	c.Impersonate = rest.ImpersonationConfig{UserName: user}
	cl, err := client.New(c, client.Options{Scheme: testenv.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	return cl
}

// grantNodeRead lets user read Nodes, as the chart's node agent ClusterRole
// does, and nothing else; it waits until the API server honours the grant.
func grantNodeRead(t *testing.T, user, nodeName string) {
	t.Helper()
	ctx := context.Background()
	c := plainClient(t)
	role := &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "node-agent-nodes-"},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"nodes"}, Verbs: []string{"get"}}},
	}
	if err := c.Create(ctx, role); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Delete(ctx, role) })
	binding := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: role.Name},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role.Name},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: user}},
	}
	if err := c.Create(ctx, binding); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Delete(ctx, binding) })
	as := impersonatingClient(t, user)
	eventually(t, func() error {
		return as.Get(ctx, client.ObjectKey{Name: nodeName}, &corev1.Node{})
	})
}

func TestPrefetchCredentialsForbidden(t *testing.T) {
	const name = "prefetch-forbidden"
	const token = "forbidden-bearer-token"
	ns := newNamespace(t)
	srv := newWeightsServer(t, token, false)
	createNode(t, name, map[string]string{"pool": "forbidden"})
	mustCreate(t, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "hub"},
		Data:       map[string][]byte{"token": []byte(token)},
	})
	mod := testutil.MakeModel(ns, "private", srv.URL+"/w.gguf", srv.digest).Prefetch(map[string]string{"pool": "forbidden"}).Obj()
	mod.Spec.CredentialsSecretRef = &aivmv1alpha1.SecretKeyReference{Name: "hub", Key: "token"}
	mustCreate(t, mod)

	// The agent may read its Node but no Secret: the Model's namespace is
	// not among those granted to it.
	grantNodeRead(t, nodeAgentUser, name)
	agentReader := impersonatingClient(t, nodeAgentUser)
	err := agentReader.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "hub"}, &corev1.Secret{})
	if !apierrors.IsForbidden(err) {
		t.Fatalf("reading the secret as %s: %v, want Forbidden", nodeAgentUser, err)
	}

	reg := prometheus.NewRegistry()
	metrics, err := nodeagent.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cm := newCacheManager(t, name, dir, clocktesting.NewFakeClock(start), func(o *nodeagent.CacheManagerOptions) {
		o.APIReader = agentReader
		o.Metrics = metrics
		f, err := artifact.NewFetcher(o.Fetcher.Cache(), artifact.WithHTTPClient(srv.Client()))
		if err != nil {
			t.Fatal(err)
		}
		o.Fetcher = f
	})
	syncAndWait(t, cm)

	errs := cm.ModelCacheErrors()
	if len(errs) != 1 {
		t.Fatalf("model cache errors = %+v, want one", errs)
	}
	e := errs[0]
	if e.Digest != srv.digest || e.Reason != aivmv1alpha1.ReasonCredentialsNotFound {
		t.Errorf("error %+v, want digest %s and reason %s", e, srv.digest, aivmv1alpha1.ReasonCredentialsNotFound)
	}
	for _, want := range []string{ns + "/hub", "nodeAgent.modelCredentialNamespaces"} {
		if !strings.Contains(e.Message, want) {
			t.Errorf("message %q does not name %q", e.Message, want)
		}
	}
	if strings.Contains(e.Message, token) {
		t.Errorf("message reveals the token: %q", e.Message)
	}
	if got := srv.gets.Load(); got != 0 {
		t.Errorf("fetched without credentials %d times", got)
	}
	if blobs := cachedBlobs(t, dir); len(blobs) != 0 {
		t.Errorf("cache holds %v, want nothing", blobs)
	}
	if got := counterValue(t, reg, "aivm_node_agent_model_prefetches_total", "result", aivmv1alpha1.ReasonCredentialsNotFound); got != 1 {
		t.Errorf("CredentialsNotFound prefetches = %v, want 1", got)
	}
}

// counterValue returns a counter's value, failing the test when it is absent.
func counterValue(t *testing.T, reg *prometheus.Registry, family, label, value string) float64 {
	t.Helper()
	v, ok := sample(t, reg, family, label, value)
	if !ok {
		t.Fatalf("no counter %s{%s=%q}", family, label, value)
	}
	return v
}

func TestCacheGCKeepsPinnedInUseAndPrefetched(t *testing.T) {
	const name = "prefetch-gc"
	ns := newNamespace(t)
	createNode(t, name, map[string]string{"pool": "gc"})
	dir := t.TempDir()
	cache, err := artifact.OpenCache(dir)
	if err != nil {
		t.Fatal(err)
	}
	f, err := artifact.NewFetcher(cache)
	if err != nil {
		t.Fatal(err)
	}
	// Five cached blobs, fetched from files on the node.
	src := t.TempDir()
	var digests []string
	for i := range 5 {
		data := make([]byte, 4096)
		_, _ = rand.Read(data)
		sum := sha256.Sum256(data)
		d := hex.EncodeToString(sum[:])
		p := filepath.Join(src, fmt.Sprintf("w%d", i))
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := f.Fetch(context.Background(), artifact.Request{Source: "file://" + p, Digest: d}); err != nil {
			t.Fatal(err)
		}
		digests = append(digests, d)
	}
	pinnedD, prefetchedD, evictableD, inUseD, orphanD := digests[0], digests[1], digests[2], digests[3], digests[4]
	pinned := testutil.MakeModel(ns, "pinned", "file://"+filepath.Join(src, "w0"), pinnedD).Obj()
	pinned.Spec.CachePolicy = aivmv1alpha1.CachePolicyPinned
	mustCreate(t, pinned)
	mustCreate(t, testutil.MakeModel(ns, "prefetched", "file://"+filepath.Join(src, "w1"), prefetchedD).Prefetch(map[string]string{"pool": "gc"}).Obj())
	mustCreate(t, testutil.MakeModel(ns, "evictable", "file://"+filepath.Join(src, "w2"), evictableD).Obj())
	pin, err := cache.Pin(inUseD) // a running job
	if err != nil {
		t.Fatal(err)
	}

	reg := prometheus.NewRegistry()
	metrics, err := nodeagent.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	cm := newCacheManager(t, name, dir, clocktesting.NewFakeClock(start), func(o *nodeagent.CacheManagerOptions) {
		o.MaxBytes, o.Metrics = 1, metrics
	})
	syncAndWait(t, cm)
	want := []string{pinnedD, prefetchedD, inUseD}
	slices.Sort(want)
	if got := cachedBlobs(t, dir); !slices.Equal(got, want) {
		t.Errorf("after GC the cache holds %v, want the pinned, prefetched and in-use models %v", got, want)
	}
	select {
	case <-cm.Changed():
	default:
		t.Error("evictions were not signalled")
	}

	// The job ends: its model goes at the next sync.
	if err := pin.Release(); err != nil {
		t.Fatal(err)
	}
	syncAndWait(t, cm)
	want = []string{pinnedD, prefetchedD}
	slices.Sort(want)
	if got := cachedBlobs(t, dir); !slices.Equal(got, want) {
		t.Errorf("after the job ended the cache holds %v, want %v", got, want)
	}
	if got := counterValue(t, reg, "aivm_node_agent_model_cache_evictions_total", "", ""); got != 3 {
		t.Errorf("evictions = %v, want 3 (%s, %s, %s)", got, evictableD[:8], orphanD[:8], inUseD[:8])
	}
}

func TestNewCacheManagerValidates(t *testing.T) {
	cache, err := artifact.OpenCache(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	f, err := artifact.NewFetcher(cache)
	if err != nil {
		t.Fatal(err)
	}
	c := plainClient(t)
	ok := nodeagent.CacheManagerOptions{NodeName: "n", Models: c, APIReader: c, Fetcher: f, Prefetch: true}
	tests := []struct {
		name string
		edit func(*nodeagent.CacheManagerOptions)
		want string
	}{
		{"no readers", func(o *nodeagent.CacheManagerOptions) { o.Models = nil }, "Model reader"},
		{"no fetcher", func(o *nodeagent.CacheManagerOptions) { o.Fetcher = nil }, "fetcher"},
		{"no node", func(o *nodeagent.CacheManagerOptions) { o.NodeName = "" }, "node name"},
		{"negative size", func(o *nodeagent.CacheManagerOptions) { o.MaxBytes = -1 }, "negative"},
		{"negative concurrency", func(o *nodeagent.CacheManagerOptions) { o.Concurrency = -1 }, "concurrency"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := ok
			tt.edit(&o)
			if _, err := nodeagent.NewCacheManager(o); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("NewCacheManager error = %v, want one naming %s", err, tt.want)
			}
		})
	}
	if _, err := nodeagent.NewCacheManager(ok); err != nil {
		t.Errorf("valid options: %v", err)
	}
}

func TestPrefetchFailureReasons(t *testing.T) {
	const name = "prefetch-reasons"
	const signature = "sig-that-must-not-leak"
	ns := newNamespace(t)
	srv := newWeightsServer(t, "", false)
	gone := httptest.NewServer(http.NotFoundHandler())
	t.Cleanup(gone.Close)
	createNode(t, name, map[string]string{"pool": "reasons"})
	sel := map[string]string{"pool": "reasons"}

	wrongSize := testutil.MakeModel(ns, "wrong-size", srv.URL+"/w.gguf", srv.digest).Prefetch(sel).Obj()
	wrongSize.Spec.SizeBytes = ptr(int64(len(srv.data) + 1))
	mustCreate(t, wrongSize)
	missing := testutil.MakeModel(ns, "missing", gone.URL+"/w.gguf?X-Amz-Signature="+signature, strings.Repeat("cd", 32)).Prefetch(sel).Obj()
	mustCreate(t, missing)

	cm := newCacheManager(t, name, t.TempDir(), clocktesting.NewFakeClock(start), nil)
	syncAndWait(t, cm)
	got := map[string]string{}
	for _, e := range cm.ModelCacheErrors() {
		got[e.Digest] = e.Reason
		if strings.Contains(e.Message, signature) {
			t.Errorf("message reveals the signed query: %q", e.Message)
		}
		if len(e.Message) > 1024 || e.Time == nil {
			t.Errorf("entry %+v: message too long or no time", e)
		}
	}
	want := map[string]string{
		srv.digest:          artifact.ReasonSizeMismatch,
		missing.Spec.SHA256: aivmv1alpha1.ReasonSourceUnreachable,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("failure reasons (-want +got):\n%s", diff)
	}
}
