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

package csi

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aivm-dev/aivm-operator/internal/testutil"

	csipb "github.com/container-storage-interface/spec/lib/go/csi"
	"github.com/go-logr/logr/testr"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/aivm-dev/aivm-operator/api/v1alpha1"
	"github.com/aivm-dev/aivm-operator/artifact"
	"github.com/aivm-dev/aivm-operator/internal/modeldigest"
	"github.com/aivm-dev/aivm-operator/internal/testenv"
	"github.com/aivm-dev/aivm-operator/nodeagent"
)

// k8s is a client of the package's envtest API server (TestMain).
var k8s client.Client

func TestMain(m *testing.M) {
	env, cfg, err := testenv.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, "envtest:", err)
		os.Exit(1)
	}
	k8s, err = client.New(cfg, client.Options{Scheme: testenv.Scheme()})
	code := 1
	if err == nil {
		code = m.Run()
	} else {
		fmt.Fprintln(os.Stderr, "client:", err)
	}
	if err := env.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "stop envtest:", err)
	}
	os.Exit(code)
}

// requireMount skips the test, saying why, where this process may not
// bind-mount (not root, or no CAP_SYS_ADMIN in its mount namespace).
func requireMount(t *testing.T) {
	t.Helper()
	src, dst := t.TempDir(), t.TempDir()
	if err := unix.Mount(src, dst, "", unix.MS_BIND, ""); err != nil {
		t.Skipf("bind mounts are refused here (%v): the CSI mount tests need root with CAP_SYS_ADMIN", err)
	}
	if err := unix.Unmount(dst, 0); err != nil {
		t.Fatalf("unmount probe: %v", err)
	}
}

// source serves model files over HTTP and counts requests.
type source struct {
	srv   *httptest.Server
	mu    sync.Mutex
	files map[string][]byte
	hits  atomic.Int64
}

func newSource(t *testing.T) *source {
	s := &source{files: map[string][]byte{}}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.hits.Add(1)
		s.mu.Lock()
		b, ok := s.files[r.URL.Path]
		s.mu.Unlock()
		if !ok {
			http.NotFound(w, r)
			return
		}
		_, _ = w.Write(b)
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *source) serve(path string, b []byte) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.files[path] = b
	return s.srv.URL + path
}

func digestOf(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// newNamespace creates a namespace of its own for a test.
func newNamespace(t *testing.T) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "csi-"}}
	if err := k8s.Create(context.Background(), ns); err != nil {
		t.Fatal(err)
	}
	return ns.Name
}

// newModel creates a single-file Model.
func newModel(t *testing.T, ns, name, uri, digest string, mutate ...func(*v1alpha1.Model)) *v1alpha1.Model {
	t.Helper()
	m := testutil.MakeModel(ns, name, uri, digest).GPUMemory("1Gi").Obj()
	for _, f := range mutate {
		f(m)
	}
	if err := k8s.Create(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	return m
}

// node is a driver served on a unix socket over a node cache, as the node
// agent runs it; restart stops it as a process exit would (its pins go)
// and starts another on the same cache and state directory.
type node struct {
	t         *testing.T
	cacheDir  string
	stateDir  string
	socket    string
	cache     *artifact.Cache
	snapshots *CacheSnapshots
	node      csipb.NodeClient
	identity  csipb.IdentityClient
	stop      func()
	fetchOpts []artifact.Option
	// refused hears the Models the driver refused for their content.
	refused *nodeagent.PublishFailures
}

func newNode(t *testing.T, opts ...artifact.Option) *node {
	t.Helper()
	dir := t.TempDir()
	n := &node{t: t, cacheDir: filepath.Join(dir, "cache"), stateDir: filepath.Join(dir, "state"), socket: filepath.Join(dir, "csi.sock"),
		fetchOpts: opts, refused: nodeagent.NewPublishFailures(nil)}
	n.start()
	t.Cleanup(func() { n.stop() })
	return n
}

func (n *node) start() {
	t := n.t
	t.Helper()
	cache, err := artifact.OpenCache(n.cacheDir)
	if err != nil {
		t.Fatal(err)
	}
	fetcher, err := artifact.NewFetcher(cache,
		append([]artifact.Option{artifact.WithRetryBackoff(time.Millisecond, 4*time.Millisecond, 2)}, n.fetchOpts...)...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	n.cache, n.snapshots = cache, NewCacheSnapshots(ctx, fetcher, k8s)
	done := make(chan error, 1)
	go func() {
		done <- Serve(ctx, Options{
			DriverOptions: DriverOptions{NodeID: "node-a", StateDir: n.stateDir, Snapshots: n.snapshots, Failures: n.refused, Log: testr.New(t)},
			Endpoint:      "unix://" + n.socket,
		})
	}()
	conn, err := grpc.NewClient("unix://"+n.socket, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.WaitForReady(true)))
	if err != nil {
		t.Fatal(err)
	}
	n.node, n.identity = csipb.NewNodeClient(conn), csipb.NewIdentityClient(conn)
	// Serve listens only after reconciling: a ready Probe answer means
	// the recorded volumes have been reconciled.
	pctx, pcancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer pcancel()
	if p, err := n.identity.Probe(pctx, &csipb.ProbeRequest{}); err != nil || !p.GetReady().GetValue() {
		t.Fatalf("probe: %v, %v", p, err)
	}
	n.stop = func() {
		cancel()
		_ = conn.Close()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
		if err := n.snapshots.Close(); err != nil {
			t.Errorf("release pins: %v", err)
		}
		n.stop = func() {}
	}
}

// volume is one pod's inline volume.
type volume struct {
	id, target string
	attrs      map[string]string
}

func newVolume(t *testing.T, m *v1alpha1.Model) volume {
	id := "csi-" + digestOf([]byte(t.Name() + m.Name))[:32]
	digest, err := modeldigest.Of(&m.Spec)
	if err != nil {
		t.Fatal(err)
	}
	return volume{
		id:     id,
		target: filepath.Join(t.TempDir(), "pods", "uid", "volumes", "kubernetes.io~csi", "model", "mount"),
		attrs: map[string]string{
			AttrModelNamespace: m.Namespace, AttrModelName: m.Name, AttrModelDigest: digest,
			attrPodNamespace: m.Namespace, attrPodName: "job-1", attrPodUID: "uid-1", attrEphemeral: "true",
		},
	}
}

var readOnlyMount = &csipb.VolumeCapability{
	AccessType: &csipb.VolumeCapability_Mount{Mount: &csipb.VolumeCapability_MountVolume{}},
	AccessMode: &csipb.VolumeCapability_AccessMode{Mode: csipb.VolumeCapability_AccessMode_SINGLE_NODE_READER_ONLY},
}

func (n *node) publish(v volume) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// The parent of the target exists, as the kubelet makes sure.
	if err := os.MkdirAll(filepath.Dir(v.target), 0o750); err != nil {
		n.t.Fatal(err)
	}
	_, err := n.node.NodePublishVolume(ctx, &csipb.NodePublishVolumeRequest{
		VolumeId: v.id, TargetPath: v.target, VolumeCapability: readOnlyMount, Readonly: true, VolumeContext: v.attrs,
	})
	return err
}

func (n *node) unpublish(v volume) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := n.node.NodeUnpublishVolume(ctx, &csipb.NodeUnpublishVolumeRequest{VolumeId: v.id, TargetPath: v.target})
	return err
}

// inUse reports whether a volume's pin on the snapshot of digest is
// recorded in the cache (artifact.Cache.PinSnapshot).
func (n *node) inUse(digest string) bool {
	n.t.Helper()
	holders, err := n.cache.SnapshotHolders(digest)
	if err != nil {
		n.t.Fatal(err)
	}
	return len(holders) > 0
}

// mounts counts the mounts at path in this process's mount namespace.
func mounts(t *testing.T, path string) int {
	t.Helper()
	b, err := os.ReadFile(defaultMountInfo)
	if err != nil {
		t.Fatal(err)
	}
	count := 0
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 4 && unescapeOctal(f[4]) == canonical(path) {
			count++
		}
	}
	return count
}

func hasRecord(t *testing.T, n *node, id string) bool {
	t.Helper()
	_, err := os.Stat(filepath.Join(n.stateDir, volumesDir, id+".json"))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	return err == nil
}

// wantCode checks a call's gRPC code and that its message names each of parts.
func wantCode(t *testing.T, err error, code codes.Code, parts ...string) {
	t.Helper()
	st, _ := status.FromError(err)
	if st.Code() != code {
		t.Fatalf("code %s (%v), want %s", st.Code(), err, code)
	}
	for _, p := range parts {
		if !strings.Contains(st.Message(), p) {
			t.Errorf("message %q does not name %q", st.Message(), p)
		}
	}
}

// newTLSSource is an https source that answers 403 to the bearer token
// (a gated model the token may not read) and 401 without it.
func newTLSSource(t *testing.T, token string) *httptest.Server {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") == "Bearer "+token {
			http.Error(w, "forbidden", http.StatusForbidden)
			return
		}
		http.Error(w, "unauthorized", http.StatusUnauthorized)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func newSecret(t *testing.T, ns, name, token string) {
	t.Helper()
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, StringData: map[string]string{"token": token}}
	if err := k8s.Create(context.Background(), s); err != nil {
		t.Fatal(err)
	}
}

func (v volume) model() ModelRef {
	return ModelRef{Namespace: v.attrs[AttrModelNamespace], Name: v.attrs[AttrModelName], Digest: v.attrs[AttrModelDigest]}
}
