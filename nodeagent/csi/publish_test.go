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
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	csipb "github.com/container-storage-interface/spec/lib/go/csi"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"

	"github.com/aivm-dev/aivm-operator/api/v1alpha1"
	"github.com/aivm-dev/aivm-operator/artifact"
)

// TestPublishServesModelReadOnly: publish bind-mounts the snapshot read-only
// with the Model's file under its base name and pins it; unpublish unmounts,
// releases the pin and the record, and removes the target.
func TestPublishServesModelReadOnly(t *testing.T) {
	requireMount(t)
	src := newSource(t)
	weights := []byte("gguf weights of a tiny model")
	ns := newNamespace(t)
	m := newModel(t, ns, "tiny", src.serve("/models/tiny.gguf", weights), digestOf(weights))
	n := newNode(t)
	v := newVolume(t, m)

	if err := n.publish(v); err != nil {
		t.Fatalf("publish: %v", err)
	}
	if got := mounts(t, v.target); got != 1 {
		t.Fatalf("%d mounts at the target, want 1", got)
	}
	got, err := os.ReadFile(filepath.Join(v.target, "tiny.gguf"))
	if err != nil || !bytes.Equal(got, weights) {
		t.Fatalf("model file in the volume: %q, %v", got, err)
	}
	des, err := os.ReadDir(v.target)
	if err != nil || len(des) != 1 {
		t.Errorf("volume lists %v (%v), want only tiny.gguf", des, err)
	}
	if err := os.WriteFile(filepath.Join(v.target, "new"), []byte("x"), 0o644); !errors.Is(err, unix.EROFS) {
		t.Errorf("creating a file in the volume: %v, want EROFS", err)
	}
	if f, err := os.OpenFile(filepath.Join(v.target, "tiny.gguf"), os.O_WRONLY, 0); !errors.Is(err, unix.EROFS) {
		if f != nil {
			_ = f.Close()
		}
		t.Errorf("opening the model file for writing: %v, want EROFS", err)
	}
	if !n.inUse(m.Spec.SHA256) || !hasRecord(t, n, v.id) {
		t.Errorf("published volume: pinned %v, recorded %v; want both", n.inUse(m.Spec.SHA256), hasRecord(t, n, v.id))
	}

	if err := n.unpublish(v); err != nil {
		t.Fatalf("unpublish: %v", err)
	}
	if got := mounts(t, v.target); got != 0 {
		t.Errorf("%d mounts left at the target", got)
	}
	if _, err := os.Stat(v.target); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("target path after unpublish: %v, want it removed", err)
	}
	if n.inUse(m.Spec.SHA256) || hasRecord(t, n, v.id) {
		t.Errorf("after unpublish: pinned %v, recorded %v; want neither", n.inUse(m.Spec.SHA256), hasRecord(t, n, v.id))
	}
	if err := n.unpublish(v); err != nil {
		t.Errorf("unpublishing again: %v, want success", err)
	}
	if got, _ := os.ReadFile(filepath.Join(n.snapshots.Dir(m.Spec.SHA256), "tiny.gguf")); !bytes.Equal(got, weights) {
		t.Errorf("snapshot after unpublish: %q, want it kept in the cache", got)
	}
}

// TestPublishIdempotent: the same volume at the same target is one mount;
// at another target it is refused while the first stays.
func TestPublishIdempotent(t *testing.T) {
	requireMount(t)
	src := newSource(t)
	weights := []byte("weights")
	m := newModel(t, newNamespace(t), "m", src.serve("/m.safetensors", weights), digestOf(weights))
	n := newNode(t)
	v := newVolume(t, m)
	for i := range 3 {
		if err := n.publish(v); err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
	}
	if got := mounts(t, v.target); got != 1 {
		t.Errorf("%d mounts after three publishes, want 1", got)
	}
	if hits := src.hits.Load(); hits != 1 {
		t.Errorf("%d downloads, want 1", hits)
	}
	other := v
	other.target = filepath.Join(t.TempDir(), "other")
	wantCode(t, n.publish(other), codes.FailedPrecondition, v.id, v.target)
	if mounts(t, other.target) != 0 || mounts(t, v.target) != 1 {
		t.Errorf("refused publish changed mounts: other %d, first %d", mounts(t, other.target), mounts(t, v.target))
	}
	changed := v
	changed.attrs = maps(v.attrs, AttrModelName, "another")
	wantCode(t, n.publish(changed), codes.AlreadyExists, v.id, m.Namespace+"/m")

	if err := n.unpublish(v); err != nil {
		t.Fatal(err)
	}
	if got := mounts(t, v.target); got != 0 || n.inUse(m.Spec.SHA256) {
		t.Errorf("after unpublish: %d mounts, pinned %v", got, n.inUse(m.Spec.SHA256))
	}
}

// TestPublishTamperedSource: bytes that do not hash to the Model's digest
// fail the publish with the cause named, and leave nothing behind.
func TestPublishTamperedSource(t *testing.T) {
	requireMount(t)
	src := newSource(t)
	good := []byte("the real weights")
	ns := newNamespace(t)
	m := newModel(t, ns, "tampered", src.serve("/w.gguf", []byte("tampered weights")), digestOf(good))
	n := newNode(t)
	v := newVolume(t, m)

	wantCode(t, n.publish(v), codes.FailedPrecondition, "DigestMismatch", ns+"/tampered", digestOf(good), digestOf([]byte("tampered weights")))
	if mounts(t, v.target) != 0 || hasRecord(t, n, v.id) || n.inUse(m.Spec.SHA256) {
		t.Errorf("failed publish left: %d mounts, record %v, pin %v", mounts(t, v.target), hasRecord(t, n, v.id), n.inUse(m.Spec.SHA256))
	}
	if _, err := os.Stat(n.snapshots.Dir(m.Spec.SHA256)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("snapshot of tampered bytes: %v, want none", err)
	}
	if ok, _ := n.cache.Has(m.Spec.SHA256); ok {
		t.Error("tampered bytes landed in the cache")
	}
	// The GPUNode will list the refusal, so the Model turns Verified=False.
	errs := n.refused.ModelCacheErrors()
	if len(errs) != 1 || errs[0].Digest != m.Spec.SHA256 || errs[0].Reason != "DigestMismatch" ||
		!strings.Contains(errs[0].Message, ns+"/tampered") || errs[0].Time == nil {
		t.Errorf("refusals recorded %+v, want one DigestMismatch of %s naming the Model", errs, m.Spec.SHA256)
	}

	// Once the source serves the right bytes, the refusal is forgotten.
	src.serve("/w.gguf", good)
	if err := n.publish(v); err != nil {
		t.Fatalf("publish of the right bytes: %v", err)
	}
	if errs := n.refused.ModelCacheErrors(); len(errs) != 0 {
		t.Errorf("refusals after a served publish: %+v", errs)
	}
	if err := n.unpublish(v); err != nil {
		t.Fatal(err)
	}
}

// TestPinSurvivesRestart: a published volume's pin is on disk, so it
// outlives the driver's process; the restarted driver keeps it for the
// still-mounted volume, garbage collection keeps the snapshot and its blob,
// and the restarted driver's unpublish releases it.
func TestPinSurvivesRestart(t *testing.T) {
	requireMount(t)
	src := newSource(t)
	weights := []byte("pinned weights")
	m := newModel(t, newNamespace(t), "pinned", src.serve("/p.gguf", weights), digestOf(weights))
	n := newNode(t)
	v := newVolume(t, m)
	if err := n.publish(v); err != nil {
		t.Fatal(err)
	}
	n.stop()
	if !n.inUse(m.Spec.SHA256) {
		t.Fatal("the published volume's pin did not outlive the stopped driver")
	}
	res, err := n.cache.GC(context.Background(), artifact.GCOptions{MaxBytes: 0})
	if err != nil || len(res.Evicted) != 0 || len(res.EvictedSnapshots) != 0 || !slices.Contains(res.SkippedInUse, m.Spec.SHA256) {
		t.Errorf("GC while the driver is down: %+v, %v; want the snapshot skipped as in use", res, err)
	}
	n.start()
	if !n.inUse(m.Spec.SHA256) {
		t.Fatal("restarted driver dropped the published volume's pin")
	}
	res, err = n.cache.GC(context.Background(), artifact.GCOptions{MaxBytes: 0})
	if err != nil || len(res.Evicted) != 0 || len(res.EvictedSnapshots) != 0 || !slices.Contains(res.SkippedInUse, m.Spec.SHA256) {
		t.Errorf("GC while published: %+v, %v; want the snapshot skipped as in use", res, err)
	}
	if err := n.unpublish(v); err != nil {
		t.Fatal(err)
	}
	if n.inUse(m.Spec.SHA256) || mounts(t, v.target) != 0 {
		t.Errorf("after unpublish by the restarted driver: pinned %v, %d mounts", n.inUse(m.Spec.SHA256), mounts(t, v.target))
	}
}

// TestRestartReleasesGoneMounts: a record whose mount disappeared while the
// driver was down (a reboot, a kubelet cleanup) is released at start.
func TestRestartReleasesGoneMounts(t *testing.T) {
	requireMount(t)
	src := newSource(t)
	weights := []byte("gone weights")
	m := newModel(t, newNamespace(t), "gone", src.serve("/g.gguf", weights), digestOf(weights))
	n := newNode(t)
	v := newVolume(t, m)
	if err := n.publish(v); err != nil {
		t.Fatal(err)
	}
	n.stop()
	if err := unix.Unmount(v.target, 0); err != nil {
		t.Fatal(err)
	}
	if !hasRecord(t, n, v.id) {
		t.Fatal("no record before the restart")
	}
	n.start()
	if hasRecord(t, n, v.id) || n.inUse(m.Spec.SHA256) {
		t.Errorf("after restart: record %v, pinned %v; want the gone volume released", hasRecord(t, n, v.id), n.inUse(m.Spec.SHA256))
	}
}

// TestPublishRefusals: each refused publish gets its code and a message
// naming the Model and cause, mounts nothing and keeps no pin.
func TestPublishRefusals(t *testing.T) {
	requireMount(t)
	src := newSource(t)
	weights := []byte("weights")
	ns, other := newNamespace(t), newNamespace(t)
	const token = "hf_secret_token_value"
	good := newModel(t, ns, "good", src.serve("/good.gguf", weights), digestOf(weights))
	foreign := newModel(t, other, "foreign", src.serve("/foreign.gguf", weights), digestOf(weights))
	missing := newModel(t, ns, "missing-file", src.srv.URL+"/nothing-here", digestOf(weights))
	noSecret := newModel(t, ns, "no-secret", "https://127.0.0.1:1/w.gguf", digestOf(weights), func(m *v1alpha1.Model) {
		m.Spec.CredentialsSecretRef = &v1alpha1.SecretKeyReference{Name: "absent"}
	})
	tls := newTLSSource(t, token)
	forbidden := newModel(t, ns, "forbidden", tls.URL+"/w.gguf", digestOf(weights), func(m *v1alpha1.Model) {
		m.Spec.CredentialsSecretRef = &v1alpha1.SecretKeyReference{Name: "hf"}
	})
	newSecret(t, ns, "hf", token)
	n := newNode(t, artifact.WithHTTPClient(tls.Client()))

	cases := []struct {
		name  string
		v     volume
		code  codes.Code
		parts []string
	}{
		{"model in another namespace", withAttrs(newVolume(t, foreign), attrPodNamespace, ns), codes.PermissionDenied, []string{other + "/foreign", ns}},
		{"model not found", withAttrs(newVolume(t, good), AttrModelName, "nope"), codes.NotFound, []string{ns + "/nope", "ModelNotFound"}},
		{"digest changed", withAttrs(newVolume(t, good), AttrModelDigest, digestOf([]byte("old"))), codes.FailedPrecondition, []string{ns + "/good", "DigestChanged", digestOf(weights)}},
		{"source unreachable", newVolume(t, missing), codes.Unavailable, []string{ns + "/missing-file", "SourceUnreachable", "404"}},
		{"credentials not found", newVolume(t, noSecret), codes.FailedPrecondition, []string{ns + "/no-secret", "CredentialsNotFound", ns + "/absent"}},
		{"source refuses the token", newVolume(t, forbidden), codes.Unavailable, []string{ns + "/forbidden", "SourceUnreachable", "403"}},
		{"persistent volume", withAttrs(newVolume(t, good), attrEphemeral, ""), codes.InvalidArgument, []string{"ephemeral"}},
		{"no pod info", withAttrs(newVolume(t, good), attrPodNamespace, ""), codes.InvalidArgument, []string{"podInfoOnMount"}},
		{"bad digest", withAttrs(newVolume(t, good), AttrModelDigest, "sha256:ABC"), codes.InvalidArgument, []string{AttrModelDigest}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			hits := src.hits.Load()
			err := n.publish(tc.v)
			wantCode(t, err, tc.code, tc.parts...)
			if strings.Contains(err.Error(), token) {
				t.Errorf("error carries the token: %v", err)
			}
			if mounts(t, tc.v.target) != 0 || hasRecord(t, n, tc.v.id) || n.inUse(digestOf(weights)) {
				t.Errorf("refused publish left: %d mounts, record %v, pin %v", mounts(t, tc.v.target), hasRecord(t, n, tc.v.id), n.inUse(digestOf(weights)))
			}
			if tc.code == codes.PermissionDenied && src.hits.Load() != hits {
				t.Error("a refused foreign Model was fetched")
			}
		})
	}
	t.Run("block access", func(t *testing.T) {
		v := newVolume(t, good)
		_, err := n.node.NodePublishVolume(context.Background(), &csipb.NodePublishVolumeRequest{
			VolumeId: v.id, TargetPath: v.target, VolumeContext: v.attrs,
			VolumeCapability: &csipb.VolumeCapability{AccessType: &csipb.VolumeCapability_Block{Block: &csipb.VolumeCapability_BlockVolume{}}},
		})
		wantCode(t, err, codes.InvalidArgument, "block")
	})
}

func withAttrs(v volume, key, value string) volume {
	v.attrs = maps(v.attrs, key, value)
	return v
}

func maps(in map[string]string, key, value string) map[string]string {
	out := make(map[string]string, len(in))
	for k, v := range in {
		out[k] = v
	}
	out[key] = value
	return out
}

// TestFetchOutlivesCall: a call that times out while the Model downloads
// (the kubelet gives up after two minutes) leaves the download running, and
// the retry is served from it without a second download.
func TestFetchOutlivesCall(t *testing.T) {
	requireMount(t)
	weights := []byte("large weights, slowly")
	started, release := make(chan struct{}), make(chan struct{})
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if hits.Add(1) == 1 {
			close(started)
		}
		<-release
		_, _ = w.Write(weights)
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() {
		select {
		case <-release:
		default:
			close(release)
		}
	})
	m := newModel(t, newNamespace(t), "slow", srv.URL+"/slow.gguf", digestOf(weights))
	n := newNode(t)
	v := newVolume(t, m)

	ctx, cancel := context.WithCancel(context.Background())
	go func() { <-started; cancel() }() // the call ends while the download runs
	_, err := n.snapshots.Ensure(ctx, v.model())
	if code, reason := classify(err); code != codes.DeadlineExceeded || reason != reasonFetchTimeout {
		t.Fatalf("ensure cut short: %v (%s %s), want DeadlineExceeded %s", err, code, reason, reasonFetchTimeout)
	}
	close(release)
	if err := n.publish(v); err != nil {
		t.Fatalf("retried publish: %v", err)
	}
	if got, _ := os.ReadFile(filepath.Join(v.target, "slow.gguf")); !bytes.Equal(got, weights) {
		t.Errorf("model file: %q", got)
	}
	if h := hits.Load(); h != 1 {
		t.Errorf("%d downloads, want the retry to join the first", h)
	}
	if err := n.unpublish(v); err != nil {
		t.Fatal(err)
	}
}
