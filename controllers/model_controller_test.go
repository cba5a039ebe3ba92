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

package controllers

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aivm-dev/aivm-operator/internal/testutil"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/aivm-dev/aivm-operator/api/v1alpha1"
	"github.com/aivm-dev/aivm-operator/artifact"
	"github.com/aivm-dev/aivm-operator/controllers/indexer"
)

// modelServer serves random weights at /weights and counts requests by
// method. Its behaviour can be switched while a test runs.
type modelServer struct {
	*httptest.Server
	data   []byte
	digest string
	status atomic.Int32 // 0: serve the bytes; else answer with this status
	token  string       // when set, required as a bearer token
	gets   atomic.Int32
	heads  atomic.Int32
}

func newModelServer(t *testing.T, token string) *modelServer {
	t.Helper()
	return startModelServer(t, token, httptest.NewServer)
}

// newTLSModelServer is newModelServer over https; its Client trusts it.
// Credentials are only sent to https sources.
func newTLSModelServer(t *testing.T, token string) *modelServer {
	t.Helper()
	return startModelServer(t, token, httptest.NewTLSServer)
}

func startModelServer(t *testing.T, token string, start func(http.Handler) *httptest.Server) *modelServer {
	t.Helper()
	s := &modelServer{data: make([]byte, 4096), token: token}
	_, _ = rand.Read(s.data)
	sum := sha256.Sum256(s.data)
	s.digest = hex.EncodeToString(sum[:])
	s.Server = start(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodHead {
			s.heads.Add(1)
		} else {
			s.gets.Add(1)
		}
		if code := s.status.Load(); code != 0 {
			http.Error(w, "unavailable", int(code))
			return
		}
		if s.token != "" && r.Header.Get("Authorization") != "Bearer "+s.token {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		http.ServeContent(w, r, "weights", time.Unix(1700000000, 0), bytes.NewReader(s.data))
	}))
	t.Cleanup(s.Close)
	return s
}

func randomDigest() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// startModelController starts a manager running the Model reconciler with
// a short retry for failed source checks.
func startModelController(t *testing.T, extra ...func(ctrl.Manager) error) {
	t.Helper()
	startModelControllerWith(t, nil, nil, extra...)
}

// startModelControllerWith is startModelController with a source checker
// (nil: artifact.NewChecker()) and more reconciler options.
func startModelControllerWith(t *testing.T, checker SourceChecker, opts []ModelReconcilerOption, extra ...func(ctrl.Manager) error) {
	t.Helper()
	if checker == nil {
		c, err := artifact.NewChecker()
		if err != nil {
			t.Fatal(err)
		}
		checker = c
	}
	opts = append([]ModelReconcilerOption{WithSourceRecheck(DefaultSourceRecheckInterval, 100*time.Millisecond)}, opts...)
	setup := func(mgr ctrl.Manager) error {
		if err := indexer.Setup(context.Background(), mgr.GetFieldIndexer()); err != nil {
			return err
		}
		return NewModelReconciler(mgr.GetClient(), mgr.GetAPIReader(), mgr.GetEventRecorder("model-controller"), checker,
			opts...).SetupWithManager(mgr)
	}
	startManager(t, append([]func(ctrl.Manager) error{setup}, extra...)...)
}

// setGPUNodeCache creates (or updates) the GPUNode name with the given
// cached digests and cache errors, as a node agent would.
func setGPUNodeCache(t *testing.T, name string, cached []string, errs ...v1alpha1.ModelCacheError) {
	t.Helper()
	ctx := context.Background()
	node := &v1alpha1.GPUNode{}
	err := k8sClient.Get(ctx, client.ObjectKey{Name: name}, node)
	if apierrors.IsNotFound(err) {
		node = testutil.MakeGPUNode(name).Obj()
		if err := k8sClient.Create(ctx, node); err != nil {
			t.Fatalf("create gpunode: %v", err)
		}
		t.Cleanup(func() { _ = k8sClient.Delete(context.Background(), node) })
	} else if err != nil {
		t.Fatal(err)
	}
	node.Status.CachedModels = cached
	node.Status.ModelCacheErrors = errs
	if err := k8sClient.Status().Update(ctx, node); err != nil {
		t.Fatalf("update gpunode status: %v", err)
	}
}

// setGPUNodeReady sets the GPUNode's Ready condition, as the GPUNode GC
// controller does when a node agent stops sending heartbeats.
func setGPUNodeReady(t *testing.T, name string, status metav1.ConditionStatus, reason string) {
	t.Helper()
	ctx := context.Background()
	node := &v1alpha1.GPUNode{}
	if err := k8sClient.Get(ctx, client.ObjectKey{Name: name}, node); err != nil {
		t.Fatal(err)
	}
	meta.SetStatusCondition(&node.Status.Conditions, metav1.Condition{
		Type: v1alpha1.ConditionReady, Status: status, Reason: reason, Message: "set by the test",
		ObservedGeneration: node.Generation,
	})
	if err := k8sClient.Status().Update(ctx, node); err != nil {
		t.Fatalf("update gpunode status: %v", err)
	}
}

// waitModel waits until the Model's status, computed for its current
// generation, satisfies check.
func waitModel(t *testing.T, ns, name string, check func(m *v1alpha1.Model) error) *v1alpha1.Model {
	t.Helper()
	m := &v1alpha1.Model{}
	eventually(t, func() error {
		if err := k8sClient.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, m); err != nil {
			return err
		}
		if m.Status.ObservedGeneration != m.Generation {
			return fmt.Errorf("status is for generation %d, object is at %d", m.Status.ObservedGeneration, m.Generation)
		}
		return check(m)
	})
	return m
}

func modelIs(verified, ready func([]metav1.Condition) error, cachedNodes int32) func(*v1alpha1.Model) error {
	return func(m *v1alpha1.Model) error {
		for _, check := range []func([]metav1.Condition) error{verified, ready} {
			if check == nil {
				continue
			}
			if err := check(m.Status.Conditions); err != nil {
				return err
			}
		}
		if m.Status.CachedNodes != cachedNodes {
			return fmt.Errorf("cachedNodes = %d, want %d", m.Status.CachedNodes, cachedNodes)
		}
		return nil
	}
}

func TestModelReadinessFollowsSourceAndNodes(t *testing.T) {
	startModelController(t)
	ns := newNamespace(t)
	srv := newModelServer(t, "")
	mustCreate(t, testutil.MakeModel(ns, "llama", srv.URL+"/weights", srv.digest).Obj())

	pending := hasCondition(v1alpha1.ConditionVerified, metav1.ConditionUnknown, v1alpha1.ReasonPendingVerification)
	m := waitModel(t, ns, "llama", modelIs(pending,
		hasCondition(v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonSourceReachable), 0))
	for _, c := range m.Status.Conditions {
		if c.ObservedGeneration != m.Generation {
			t.Errorf("condition %s observedGeneration = %d, want %d", c.Type, c.ObservedGeneration, m.Generation)
		}
	}
	if srv.gets.Load() != 0 || srv.heads.Load() == 0 {
		t.Errorf("controller made %d GET and %d HEAD requests; want HEAD only", srv.gets.Load(), srv.heads.Load())
	}

	// A node agent reports the verified bytes in its cache.
	nodeA, nodeB := "model-a-"+ns, "model-b-"+ns
	setGPUNodeCache(t, nodeA, []string{srv.digest, randomDigest()})
	verified := hasCondition(v1alpha1.ConditionVerified, metav1.ConditionTrue, v1alpha1.ReasonVerified)
	waitModel(t, ns, "llama", modelIs(verified, hasCondition(v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonVerified), 1))
	setGPUNodeCache(t, nodeB, []string{srv.digest})
	waitModel(t, ns, "llama", modelIs(verified, nil, 2))

	// Node B evicts it: the count follows.
	setGPUNodeCache(t, nodeB, nil)
	waitModel(t, ns, "llama", modelIs(verified, nil, 1))

	// Node B fetches bytes that do not match: not ready, though A's bytes
	// are verified.
	setGPUNodeCache(t, nodeB, nil, v1alpha1.ModelCacheError{Digest: srv.digest, Reason: v1alpha1.ReasonDigestMismatch,
		Message: "sha256 mismatch: expected " + srv.digest + ", got " + strings.Repeat("0", 64)})
	mismatch := hasCondition(v1alpha1.ConditionReady, metav1.ConditionFalse, v1alpha1.ReasonDigestMismatch)
	m = waitModel(t, ns, "llama", modelIs(verified, mismatch, 1))
	if msg := meta.FindStatusCondition(m.Status.Conditions, v1alpha1.ConditionReady).Message; !strings.Contains(msg, nodeB) {
		t.Errorf("mismatch message does not name the node: %q", msg)
	}

	// Node A evicts too: nothing verified, and the mismatch stands.
	setGPUNodeCache(t, nodeA, nil)
	waitModel(t, ns, "llama", modelIs(hasCondition(v1alpha1.ConditionVerified, metav1.ConditionFalse, v1alpha1.ReasonDigestMismatch), mismatch, 0))
	waitEvent(t, ns, "llama", corev1.EventTypeWarning, v1alpha1.ReasonDigestMismatch)

	// The node's error clears (a good fetch): ready again.
	setGPUNodeCache(t, nodeB, []string{srv.digest})
	waitModel(t, ns, "llama", modelIs(verified, hasCondition(v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonVerified), 1))
	waitEvent(t, ns, "llama", corev1.EventTypeNormal, v1alpha1.ReasonVerified)
}

func TestModelSourceUnreachableThenRecovers(t *testing.T) {
	startModelController(t)
	ns := newNamespace(t)
	srv := newModelServer(t, "")
	srv.status.Store(http.StatusNotFound)
	mustCreate(t, testutil.MakeModel(ns, "m", srv.URL+"/weights", srv.digest).Obj())
	unreachable := hasCondition(v1alpha1.ConditionReady, metav1.ConditionFalse, v1alpha1.ReasonSourceUnreachable)
	m := waitModel(t, ns, "m", modelIs(nil, unreachable, 0))
	if msg := meta.FindStatusCondition(m.Status.Conditions, v1alpha1.ConditionReady).Message; !strings.Contains(msg, "404") {
		t.Errorf("message does not give the status: %q", msg)
	}
	waitEvent(t, ns, "m", corev1.EventTypeWarning, v1alpha1.ReasonSourceUnreachable)

	// The source comes back; the failed check is retried.
	srv.status.Store(0)
	waitModel(t, ns, "m", modelIs(nil, hasCondition(v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonSourceReachable), 0))

	// Down again, but a node holds the bytes: still ready, and the message says why.
	setGPUNodeCache(t, "model-unreach-"+ns, []string{srv.digest})
	srv.status.Store(http.StatusBadGateway)
	// A spec change forces a new check.
	patchSpec(t, &v1alpha1.Model{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "m"}}, func(m *v1alpha1.Model) {
		m.Spec.SizeBytes = ptr.To(int64(len(srv.data)))
	})
	m = waitModel(t, ns, "m", modelIs(nil, hasCondition(v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonVerified), 1))
	if msg := meta.FindStatusCondition(m.Status.Conditions, v1alpha1.ConditionReady).Message; !strings.Contains(msg, "source unreachable") {
		t.Errorf("message hides the unreachable source: %q", msg)
	}
}

func TestModelCredentials(t *testing.T) {
	const token = "hf_tokenSECRET123"
	srv := newTLSModelServer(t, token)
	checker, err := artifact.NewChecker(artifact.WithHTTPClient(srv.Client()))
	if err != nil {
		t.Fatal(err)
	}
	startModelControllerWith(t, checker, nil)
	ns := newNamespace(t)
	m := testutil.MakeModel(ns, "private", srv.URL+"/weights", srv.digest).Obj()
	m.Spec.CredentialsSecretRef = &v1alpha1.SecretKeyReference{Name: "hf", Key: "token"}
	mustCreate(t, m)
	creds := hasCondition(v1alpha1.ConditionReady, metav1.ConditionFalse, v1alpha1.ReasonCredentialsNotFound)
	got := waitModel(t, ns, "private", modelIs(nil, creds, 0))
	if msg := meta.FindStatusCondition(got.Status.Conditions, v1alpha1.ConditionReady).Message; !strings.Contains(msg, "secret "+ns+"/hf not found") {
		t.Errorf("message = %q", msg)
	}

	// The Secret appears with the wrong key, then gets the right one.
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "hf"}, Data: map[string][]byte{"other": []byte(token)}}
	mustCreate(t, secret)
	waitModel(t, ns, "private", modelIs(nil, func(c []metav1.Condition) error {
		if err := creds(c); err != nil {
			return err
		}
		if msg := meta.FindStatusCondition(c, v1alpha1.ConditionReady).Message; !strings.Contains(msg, `has no key "token"`) {
			return fmt.Errorf("message = %q", msg)
		}
		return nil
	}, 0))
	secret.Data = map[string][]byte{"token": []byte(token + "\n")}
	if err := k8sClient.Update(context.Background(), secret); err != nil {
		t.Fatal(err)
	}
	waitModel(t, ns, "private", modelIs(nil, hasCondition(v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonSourceReachable), 0))

	// A wrong token: the 401 is reported, the token is not. A successful
	// check is trusted for the recheck interval; the spec change makes the
	// controller check again now.
	secret.Data = map[string][]byte{"token": []byte("wrong-" + token)}
	if err := k8sClient.Update(context.Background(), secret); err != nil {
		t.Fatal(err)
	}
	patchSpec(t, &v1alpha1.Model{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "private"}}, func(m *v1alpha1.Model) {
		m.Spec.SizeBytes = ptr.To(int64(len(srv.data)))
	})
	got = waitModel(t, ns, "private", modelIs(nil, hasCondition(v1alpha1.ConditionReady, metav1.ConditionFalse, v1alpha1.ReasonSourceUnreachable), 0))
	if msg := meta.FindStatusCondition(got.Status.Conditions, v1alpha1.ConditionReady).Message; !strings.Contains(msg, "401") {
		t.Errorf("message does not give the status: %q", msg)
	}
	for _, c := range got.Status.Conditions {
		if strings.Contains(c.Message, token) {
			t.Errorf("condition %s leaks the token: %q", c.Type, c.Message)
		}
	}
	var evs eventsv1.EventList
	if err := k8sClient.List(context.Background(), &evs, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	for _, e := range evs.Items {
		if strings.Contains(e.Note, token) {
			t.Errorf("event %s leaks the token: %q", e.Reason, e.Note)
		}
	}
}

func TestModelFileSourceAndSizeMismatch(t *testing.T) {
	startModelController(t)
	ns := newNamespace(t)
	mustCreate(t, testutil.MakeModel(ns, "local", "file:///var/lib/models/llama.gguf", randomDigest()).Obj())
	m := waitModel(t, ns, "local", modelIs(
		hasCondition(v1alpha1.ConditionVerified, metav1.ConditionUnknown, v1alpha1.ReasonPendingVerification),
		hasCondition(v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonReady), 0))
	if msg := meta.FindStatusCondition(m.Status.Conditions, v1alpha1.ConditionReady).Message; !strings.Contains(msg, "checked on the nodes") {
		t.Errorf("file source message = %q", msg)
	}

	srv := newModelServer(t, "")
	sized := testutil.MakeModel(ns, "sized", srv.URL+"/weights", srv.digest).Obj()
	sized.Spec.SizeBytes = ptr.To(int64(len(srv.data) + 1))
	mustCreate(t, sized)
	m = waitModel(t, ns, "sized", modelIs(nil, hasCondition(v1alpha1.ConditionReady, metav1.ConditionFalse, artifact.ReasonSizeMismatch), 0))
	want := fmt.Sprintf("announces %d bytes but spec.sizeBytes is %d", len(srv.data), len(srv.data)+1)
	if msg := meta.FindStatusCondition(m.Status.Conditions, v1alpha1.ConditionReady).Message; !strings.Contains(msg, want) {
		t.Errorf("size message = %q, want containing %q", msg, want)
	}

	bad := testutil.MakeModel(ns, "creds-in-uri", "https://user:pass@example.invalid/w", randomDigest()).Obj()
	mustCreate(t, bad)
	m = waitModel(t, ns, "creds-in-uri", modelIs(nil, hasCondition(v1alpha1.ConditionReady, metav1.ConditionFalse, v1alpha1.ReasonInvalidSource), 0))
	if msg := meta.FindStatusCondition(m.Status.Conditions, v1alpha1.ConditionReady).Message; strings.Contains(msg, "pass") {
		t.Errorf("message leaks the password: %q", msg)
	}
}

// TestModelHeartbeatsDoNotRecheck checks that GPUNode updates that do not
// touch the cache lists cause no source requests.
func TestModelHeartbeatsDoNotRecheck(t *testing.T) {
	startModelController(t)
	ns := newNamespace(t)
	srv := newModelServer(t, "")
	mustCreate(t, testutil.MakeModel(ns, "m", srv.URL+"/weights", srv.digest).Obj())
	node := "model-hb-" + ns
	setGPUNodeCache(t, node, []string{srv.digest})
	waitModel(t, ns, "m", modelIs(nil, hasCondition(v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonVerified), 1))
	heads := srv.heads.Load()
	for i := range 5 {
		gn := &v1alpha1.GPUNode{}
		if err := k8sClient.Get(context.Background(), client.ObjectKey{Name: node}, gn); err != nil {
			t.Fatal(err)
		}
		gn.Status.HeartbeatTime = ptr.To(metav1.NewTime(time.Unix(int64(1700000000+i), 0)))
		if err := k8sClient.Status().Update(context.Background(), gn); err != nil {
			t.Fatal(err)
		}
	}
	// A cache change after the heartbeats is seen; by then the heartbeats
	// have been processed, in order, by the same watch.
	setGPUNodeCache(t, node, nil)
	waitModel(t, ns, "m", modelIs(nil, nil, 0))
	if got := srv.heads.Load(); got != heads {
		t.Errorf("source checked %d more times after node updates; want 0", got-heads)
	}
}

// TestModelIgnoresNodesThatAreDown checks that a GPUNode marked Ready=False
// (its agent stopped sending heartbeats) no longer counts as holding the
// verified bytes, and counts again once it is Ready.
func TestModelIgnoresNodesThatAreDown(t *testing.T) {
	startModelController(t)
	ns := newNamespace(t)
	srv := newModelServer(t, "")
	mustCreate(t, testutil.MakeModel(ns, "m", srv.URL+"/weights", srv.digest).Obj())
	node := "model-down-" + ns
	setGPUNodeCache(t, node, []string{srv.digest})
	verified := hasCondition(v1alpha1.ConditionVerified, metav1.ConditionTrue, v1alpha1.ReasonVerified)
	readyHeld := hasCondition(v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonVerified)
	waitModel(t, ns, "m", modelIs(verified, readyHeld, 1))

	setGPUNodeReady(t, node, metav1.ConditionFalse, v1alpha1.ReasonHeartbeatMissed)
	m := waitModel(t, ns, "m", modelIs(
		hasCondition(v1alpha1.ConditionVerified, metav1.ConditionUnknown, v1alpha1.ReasonPendingVerification),
		hasCondition(v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonSourceReachable), 0))
	if msg := meta.FindStatusCondition(m.Status.Conditions, v1alpha1.ConditionVerified).Message; !strings.Contains(msg, "node "+node+" holding them is not Ready") {
		t.Errorf("Verified message does not name the node that is down: %q", msg)
	}

	setGPUNodeReady(t, node, metav1.ConditionTrue, v1alpha1.ReasonHeartbeat)
	waitModel(t, ns, "m", modelIs(verified, readyHeld, 1))
}

// TestModelRecreatedIsCheckedAgain deletes a Model whose source check
// succeeded and recreates it at once under the same name, with a source
// that does not answer. The recreated Model is generation 1 like the old
// one; the reconciler must not reuse the old object's check. The
// reconciler is driven directly, so it never sees the deletion.
func TestModelRecreatedIsCheckedAgain(t *testing.T) {
	checker, err := artifact.NewChecker()
	if err != nil {
		t.Fatal(err)
	}
	var r *ModelReconciler
	mgr := startManager(t, func(mgr ctrl.Manager) error {
		r = NewModelReconciler(mgr.GetClient(), mgr.GetAPIReader(), nil, checker)
		return indexer.Setup(context.Background(), mgr.GetFieldIndexer())
	})
	ctx := context.Background()
	ns := newNamespace(t)
	srv := newModelServer(t, "")
	req := ctrl.Request{NamespacedName: client.ObjectKey{Namespace: ns, Name: "m"}}
	// reconcileUntil reconciles until the Model's stored status satisfies check.
	reconcileUntil := func(check func(*v1alpha1.Model) error) *v1alpha1.Model {
		t.Helper()
		m := &v1alpha1.Model{}
		eventually(t, func() error {
			if _, err := r.Reconcile(ctx, req); err != nil {
				return err
			}
			if err := k8sClient.Get(ctx, req.NamespacedName, m); err != nil {
				return err
			}
			if m.Status.ObservedGeneration != m.Generation {
				return fmt.Errorf("status is for generation %d, object is at %d", m.Status.ObservedGeneration, m.Generation)
			}
			return check(m)
		})
		return m
	}

	old := testutil.MakeModel(ns, "m", srv.URL+"/weights", srv.digest).Obj()
	mustCreate(t, old)
	reconcileUntil(modelIs(nil, hasCondition(v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonSourceReachable), 0))
	heads := srv.heads.Load()

	dead := httptest.NewServer(http.NotFoundHandler())
	deadURL := dead.URL + "/weights"
	dead.Close() // nothing listens there any more
	if err := k8sClient.Delete(ctx, old); err != nil {
		t.Fatal(err)
	}
	recreated := testutil.MakeModel(ns, "m", deadURL, srv.digest).Obj()
	mustCreate(t, recreated)
	if recreated.Generation != old.Generation || recreated.UID == old.UID {
		t.Fatalf("recreated model: generation %d, uid %s; old: generation %d, uid %s",
			recreated.Generation, recreated.UID, old.Generation, old.UID)
	}
	// The reconciler's cache must hold the new object before it reconciles.
	eventually(t, func() error {
		m := &v1alpha1.Model{}
		if err := mgr.GetClient().Get(ctx, req.NamespacedName, m); err != nil {
			return err
		}
		if m.UID != recreated.UID {
			return fmt.Errorf("cache holds uid %s, want %s", m.UID, recreated.UID)
		}
		return nil
	})
	m := reconcileUntil(modelIs(nil, hasCondition(v1alpha1.ConditionReady, metav1.ConditionFalse, v1alpha1.ReasonSourceUnreachable), 0))
	if msg := meta.FindStatusCondition(m.Status.Conditions, v1alpha1.ConditionReady).Message; !strings.Contains(msg, strings.TrimPrefix(deadURL, "http://")) {
		t.Errorf("message does not name the new source: %q", msg)
	}
	if got := srv.heads.Load(); got != heads {
		t.Errorf("the old source was checked %d more times", got-heads)
	}
}

// TestModelHangingSourceDoesNotStallOthers checks that a source that never
// answers holds up only its own Model: another Model becomes Ready while
// the first one's check is still waiting.
func TestModelHangingSourceDoesNotStallOthers(t *testing.T) {
	// The check of the hanging source outlasts the test, so only a second
	// worker can reconcile the other Model.
	startModelControllerWith(t, nil, []ModelReconcilerOption{WithSourceCheckTimeout(10 * time.Minute)})
	ns := newNamespace(t)

	started := make(chan struct{})
	var once sync.Once
	release := make(chan struct{})
	hanging := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		once.Do(func() { close(started) })
		select {
		case <-release:
		case <-r.Context().Done():
		}
		http.Error(w, "gave up", http.StatusServiceUnavailable)
	}))
	t.Cleanup(hanging.Close)
	t.Cleanup(func() { close(release) }) // runs before hanging.Close
	mustCreate(t, testutil.MakeModel(ns, "slow", hanging.URL+"/weights", randomDigest()).Obj())
	select {
	case <-started:
	case <-time.After(eventuallyTimeout):
		t.Fatal("the hanging source was never checked")
	}

	srv := newModelServer(t, "")
	mustCreate(t, testutil.MakeModel(ns, "fast", srv.URL+"/weights", srv.digest).Obj())
	waitModel(t, ns, "fast", modelIs(nil, hasCondition(v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonSourceReachable), 0))
	select {
	case <-release:
		t.Fatal("the hanging source was released early")
	default:
	}
	slow := getModel(t, ns, "slow")
	if c := meta.FindStatusCondition(slow.Status.Conditions, v1alpha1.ConditionReady); c != nil {
		t.Errorf("slow model has Ready %s/%s before its check ended", c.Status, c.Reason)
	}
}
