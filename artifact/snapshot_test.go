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

package artifact

import (
	"context"
	"errors"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/aivm-dev/aivm-operator/api/v1alpha1"
	"github.com/aivm-dev/aivm-operator/internal/modeldigest"
)

// repoServer serves files by path under /repo/, counting GETs per path.
type repoServer struct {
	*server
	mu    sync.Mutex
	files map[string][]byte
	gets  map[string]int
}

func newRepoServer(t *testing.T, files map[string][]byte) *repoServer {
	t.Helper()
	rs := &repoServer{files: files, gets: map[string]int{}}
	rs.server = newServer(t, func(_ int32, w http.ResponseWriter, r *http.Request) {
		p := strings.TrimPrefix(r.URL.Path, "/repo/")
		rs.mu.Lock()
		data, ok := rs.files[p]
		if r.Method == http.MethodGet {
			rs.gets[p]++
		}
		rs.mu.Unlock()
		if !ok {
			http.NotFound(w, r)
			return
		}
		serveData(data)(0, w, r)
	})
	return rs
}

func (rs *repoServer) getsOf(p string) int {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	return rs.gets[p]
}

// threeFiles is a small Hugging Face style model.
func threeFiles() (map[string][]byte, []v1alpha1.ModelFile) {
	cfg, cfgD := blob(300, 1)
	w, wD := blob(200_000, 2)
	tok, tokD := blob(5_000, 3)
	files := map[string][]byte{"config.json": cfg, "model.safetensors": w, "tokenizer/tokenizer.json": tok}
	size := int64(len(w))
	return files, []v1alpha1.ModelFile{
		{Path: "model.safetensors", SHA256: wD, SizeBytes: &size},
		{Path: "config.json", SHA256: cfgD},
		{Path: "tokenizer/tokenizer.json", SHA256: tokD},
	}
}

func fileSetModel(name, base string, files []v1alpha1.ModelFile) *v1alpha1.Model {
	return &v1alpha1.Model{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name},
		Spec:       v1alpha1.ModelSpec{BaseURI: base, Files: files, GPUMemory: resource.MustParse("1Gi")},
	}
}

func ensureModel(t *testing.T, f *Fetcher, m *v1alpha1.Model, token Token) (string, error) {
	t.Helper()
	spec, err := ModelSnapshotSpec(m, token)
	if err != nil {
		t.Fatal(err)
	}
	return f.EnsureSnapshot(context.Background(), spec)
}

func modelDigest(t *testing.T, m *v1alpha1.Model) string {
	t.Helper()
	d, err := modeldigest.Of(&m.Spec)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestSnapshotThreeFiles: a three-file model lands as a read-only
// directory of hard links to verified blobs, named by its modelDigest.
func TestSnapshotThreeFiles(t *testing.T) {
	data, files := threeFiles()
	srv := newRepoServer(t, data)
	f := newTestFetcher(t)
	m := fileSetModel("tiny", srv.URL+"/repo/", files)
	dir, err := ensureModel(t, f, m, Token{})
	if err != nil {
		t.Fatalf("EnsureSnapshot: %v", err)
	}
	c := f.Cache()
	if want := filepath.Join(c.Dir(), "snapshots", modelDigest(t, m)); dir != want {
		t.Errorf("snapshot dir = %s, want %s", dir, want)
	}
	var got []string
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if info.Mode().Perm()&0o222 != 0 {
			t.Errorf("%s is writable: %v", p, info.Mode())
		}
		if d.Type().IsRegular() {
			rel, _ := filepath.Rel(dir, p)
			got = append(got, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"config.json", "model.safetensors", "tokenizer/tokenizer.json"}; !slices.Equal(got, want) {
		t.Errorf("snapshot files = %q, want %q", got, want)
	}
	for _, mf := range files {
		p := filepath.Join(dir, mf.Path)
		b, err := os.ReadFile(p)
		if err != nil || string(b) != string(data[mf.Path]) {
			t.Errorf("%s: content differs from the source (%v)", mf.Path, err)
		}
		fi, _ := os.Stat(p)
		bi, _ := os.Stat(c.Path(mf.SHA256))
		if !os.SameFile(fi, bi) {
			t.Errorf("%s is not a hard link to its blob", mf.Path)
		}
	}
	if err := unix.Access(filepath.Join(dir, "config.json"), unix.W_OK); err == nil && os.Geteuid() != 0 {
		t.Error("a snapshot file is writable")
	}
	// A second call finds the snapshot in place and fetches nothing.
	before := srv.requests.Load()
	if again, err := ensureModel(t, f, m, Token{}); err != nil || again != dir {
		t.Fatalf("second EnsureSnapshot = %s, %v", again, err)
	}
	if n := srv.requests.Load(); n != before {
		t.Errorf("second EnsureSnapshot made %d requests", n-before)
	}
	snaps, err := c.ListSnapshots()
	if err != nil || len(snaps) != 1 || snaps[0].Digest != modelDigest(t, m) || len(snaps[0].Files) != 3 || snaps[0].OwnBytes != 0 {
		t.Fatalf("ListSnapshots = %+v, %v; want the one snapshot of 3 linked files", snaps, err)
	}
	assertNoPartials(t, c)
}

// TestSnapshotTamperedFile: one file whose bytes do not match fails the
// whole snapshot with an error naming that file and both digests, and
// leaves no snapshot.
func TestSnapshotTamperedFile(t *testing.T) {
	data, files := threeFiles()
	tampered, tamperedD := blob(5_000, 99)
	data["tokenizer/tokenizer.json"] = tampered
	srv := newRepoServer(t, data)
	f := newTestFetcher(t)
	m := fileSetModel("tiny", srv.URL+"/repo/", files)
	_, err := ensureModel(t, f, m, Token{})
	var fe *FileError
	var dm *DigestMismatchError
	if !errors.As(err, &fe) || fe.Path != "tokenizer/tokenizer.json" || !errors.As(err, &dm) {
		t.Fatalf("EnsureSnapshot error = %v, want a FileError for tokenizer/tokenizer.json wrapping a DigestMismatchError", err)
	}
	for _, want := range []string{"tokenizer/tokenizer.json", files[2].SHA256, tamperedD} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %s", err, want)
		}
	}
	if ErrorReason(err) != v1alpha1.ReasonDigestMismatch {
		t.Errorf("ErrorReason = %s", ErrorReason(err))
	}
	c := f.Cache()
	if ok, _ := c.HasSnapshot(modelDigest(t, m)); ok {
		t.Error("a snapshot exists after a mismatch")
	}
	if _, err := os.Lstat(c.SnapshotPath(modelDigest(t, m))); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("snapshot directory: %v, want none", err)
	}
	assertNotCached(t, c, files[2].SHA256)
}

// TestSnapshotSharedFileFetchedOnce: two Models sharing a tokenizer
// download it once; each gets its own snapshot.
func TestSnapshotSharedFileFetchedOnce(t *testing.T) {
	data, files := threeFiles()
	other, otherD := blob(150_000, 7)
	data["other.safetensors"] = other
	srv := newRepoServer(t, data)
	f := newTestFetcher(t)
	a := fileSetModel("a", srv.URL+"/repo/", files)
	b := fileSetModel("b", srv.URL+"/repo/", []v1alpha1.ModelFile{files[2], {Path: "other.safetensors", SHA256: otherD}})
	dirA, err := ensureModel(t, f, a, Token{})
	if err != nil {
		t.Fatal(err)
	}
	dirB, err := ensureModel(t, f, b, Token{})
	if err != nil {
		t.Fatal(err)
	}
	if dirA == dirB {
		t.Fatal("two Models share one snapshot")
	}
	if n := srv.getsOf("tokenizer/tokenizer.json"); n != 1 {
		t.Errorf("the shared tokenizer was downloaded %d times, want 1", n)
	}
	ia, _ := os.Stat(filepath.Join(dirA, "tokenizer/tokenizer.json"))
	ib, _ := os.Stat(filepath.Join(dirB, "tokenizer/tokenizer.json"))
	if !os.SameFile(ia, ib) {
		t.Error("the two snapshots do not share the tokenizer's blob")
	}
}

// TestSnapshotHFBaseRedirect: an hf:// base resolves each path as the hub
// serves resolve/<revision>/<path>; the hub redirects to its CDN on another
// host, which never sees the token.
func TestSnapshotHFBaseRedirect(t *testing.T) {
	data, files := threeFiles()
	cdn := newTLSServer(t, func(_ int32, w http.ResponseWriter, r *http.Request) {
		p := strings.TrimPrefix(r.URL.Path, "/lfs/")
		d, ok := data[p]
		if !ok {
			http.NotFound(w, r)
			return
		}
		serveData(d)(0, w, r)
	})
	hub := newTLSServer(t, func(_ int32, w http.ResponseWriter, r *http.Request) {
		p, ok := strings.CutPrefix(r.URL.Path, "/acme/tiny/resolve/abc123/")
		if !ok {
			http.NotFound(w, r)
			return
		}
		http.Redirect(w, r, cdn.URL+"/lfs/"+p+"?X-Amz-Signature=secret", http.StatusFound)
	})
	for _, tc := range []struct {
		name  string
		token Token
	}{{"without token", Token{}}, {"with token", NewToken("hf_SECRET")}} {
		t.Run(tc.name, func(t *testing.T) {
			hub.mu.Lock()
			hub.paths, hub.auths = nil, nil
			hub.mu.Unlock()
			cdn.mu.Lock()
			cdn.auths = nil
			cdn.mu.Unlock()
			f := newTestFetcher(t, WithHFBaseURL(hub.URL), WithHTTPClient(hub.Client()))
			m := fileSetModel("hf", "hf://acme/tiny@abc123", files)
			if !tc.token.IsZero() {
				// A token with a named credential earns access records,
				// so the files are fetched once and not proved again.
				m.Spec.CredentialsSecretRef = &v1alpha1.SecretKeyReference{Name: "hf-token"}
			}
			dir, err := ensureModel(t, f, m, tc.token)
			if err != nil {
				t.Fatalf("EnsureSnapshot: %v", err)
			}
			b, err := os.ReadFile(filepath.Join(dir, "tokenizer", "tokenizer.json"))
			if err != nil || string(b) != string(data["tokenizer/tokenizer.json"]) {
				t.Errorf("tokenizer in the snapshot: %v", err)
			}
			hub.mu.Lock()
			paths := slices.Sorted(slices.Values(hub.paths))
			auths := slices.Clone(hub.auths)
			hub.mu.Unlock()
			want := []string{"/acme/tiny/resolve/abc123/config.json", "/acme/tiny/resolve/abc123/model.safetensors", "/acme/tiny/resolve/abc123/tokenizer/tokenizer.json"}
			if !slices.Equal(paths, want) {
				t.Errorf("hub paths = %q, want %q", paths, want)
			}
			for _, a := range auths {
				if want := tc.token; (want.IsZero() && a != "") || (!want.IsZero() && a != "Bearer hf_SECRET") {
					t.Errorf("hub saw Authorization %q", a)
				}
			}
			cdn.mu.Lock()
			defer cdn.mu.Unlock()
			if len(cdn.auths) < 3 {
				t.Fatalf("CDN saw %d requests, want 3", len(cdn.auths))
			}
			for _, a := range cdn.auths {
				if a != "" {
					t.Errorf("the CDN (another host) saw Authorization %q", a)
				}
			}
		})
	}
}

// TestSnapshotSingleFile: a single-file Model gets a snapshot named by its
// sha256, holding the file under its base name.
func TestSnapshotSingleFile(t *testing.T) {
	data, d := blob(10_000, 11)
	srv := newServer(t, serveData(data))
	f := newTestFetcher(t)
	m := &v1alpha1.Model{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "gguf"},
		Spec: v1alpha1.ModelSpec{URI: srv.URL + "/models/tiny.Q4_K_M.gguf?download=1", SHA256: d}}
	dir, err := ensureModel(t, f, m, Token{})
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Base(dir) != d {
		t.Errorf("snapshot %s, want it named by the sha256 %s", dir, d)
	}
	b, err := os.ReadFile(filepath.Join(dir, "tiny.Q4_K_M.gguf"))
	if err != nil || string(b) != string(data) {
		t.Fatalf("file under its base name: %v", err)
	}
}

// TestSnapshotCopiesWhenLinkRefused: where the filesystem refuses hard
// links the snapshot holds read-only copies.
func TestSnapshotCopiesWhenLinkRefused(t *testing.T) {
	data, files := threeFiles()
	srv := newRepoServer(t, data)
	f := newTestFetcher(t)
	c := f.Cache()
	c.link = func(string, string) error { return &os.LinkError{Op: "link", Err: unix.EXDEV} }
	m := fileSetModel("tiny", srv.URL+"/repo/", files)
	dir, err := ensureModel(t, f, m, Token{})
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range files {
		fi, err := os.Stat(filepath.Join(dir, mf.Path))
		if err != nil {
			t.Fatal(err)
		}
		bi, _ := os.Stat(c.Path(mf.SHA256))
		if os.SameFile(fi, bi) || fi.Mode().Perm() != 0o444 {
			t.Errorf("%s: want a read-only copy, got mode %v (same file %v)", mf.Path, fi.Mode(), os.SameFile(fi, bi))
		}
	}
	snaps, _ := c.ListSnapshots()
	if len(snaps) != 1 || snaps[0].OwnBytes != snaps[0].Bytes || snaps[0].Bytes == 0 {
		t.Errorf("ListSnapshots = %+v, want one snapshot whose bytes are all its own", snaps)
	}
}

// TestListSnapshotsIgnoresStrays: only complete snapshots count.
func TestListSnapshotsIgnoresStrays(t *testing.T) {
	f := newTestFetcher(t)
	c := f.Cache()
	root := filepath.Join(c.Dir(), "snapshots")
	stray := strings.Repeat("a", 64)
	if err := os.Mkdir(filepath.Join(root, stray), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc", filepath.Join(root, strings.Repeat("b", 64))); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, strings.Repeat("c", 64)), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	// A manifest for the symlinked name does not make it a snapshot either.
	man, _ := modeldigest.Manifest([]modeldigest.File{{Path: "x", SHA256: strings.Repeat("b", 64), Size: -1}})
	if err := os.WriteFile(c.manifestPath(strings.Repeat("b", 64)), man, 0o444); err != nil {
		t.Fatal(err)
	}
	snaps, err := c.ListSnapshots()
	if err != nil || len(snaps) != 0 {
		t.Fatalf("ListSnapshots = %+v, %v; want none", snaps, err)
	}
}

// twoSnapshots builds snapshot a (older) and b (newer) that share the
// tokenizer and returns their digests.
func twoSnapshots(t *testing.T) (f *Fetcher, a, b *v1alpha1.Model, shared string) {
	t.Helper()
	data, files := threeFiles()
	other, otherD := blob(150_000, 7)
	data["other.safetensors"] = other
	srv := newRepoServer(t, data)
	f, clk := newClockedFetcher(t)
	a = fileSetModel("a", srv.URL+"/repo/", files)
	b = fileSetModel("b", srv.URL+"/repo/", []v1alpha1.ModelFile{files[2], {Path: "other.safetensors", SHA256: otherD}})
	if _, err := ensureModel(t, f, a, Token{}); err != nil {
		t.Fatal(err)
	}
	clk.Step(time.Hour)
	if _, err := ensureModel(t, f, b, Token{}); err != nil {
		t.Fatal(err)
	}
	return f, a, b, files[2].SHA256
}

// TestGCEvictingSnapshotKeepsSharedBlobs: evicting the older snapshot
// frees the blobs only it used and keeps the one the other still uses.
func TestGCEvictingSnapshotKeepsSharedBlobs(t *testing.T) {
	f, a, b, shared := twoSnapshots(t)
	c := f.Cache()
	// Room for b's files only.
	res, err := c.GC(context.Background(), GCOptions{MaxBytes: 155_000 + 5_000})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(res.EvictedSnapshots, []string{modelDigest(t, a)}) {
		t.Errorf("evicted snapshots %q, want only a's", res.EvictedSnapshots)
	}
	if ok, _ := c.HasSnapshot(modelDigest(t, b)); !ok {
		t.Fatal("b's snapshot was evicted")
	}
	if ok, _ := c.Has(shared); !ok {
		t.Fatal("the tokenizer blob b still uses was evicted")
	}
	for _, mf := range a.Spec.Files {
		if mf.SHA256 == shared {
			continue
		}
		if ok, _ := c.Has(mf.SHA256); ok {
			t.Errorf("a's own blob %s was kept", mf.Path)
		}
	}
	got, err := os.ReadFile(filepath.Join(c.SnapshotPath(modelDigest(t, b)), "tokenizer/tokenizer.json"))
	if err != nil || sha256Hex(got) != shared {
		t.Errorf("b's tokenizer after GC: %v", err)
	}
}

// TestGCKeepsPinnedSnapshot: a snapshot pinned by a holder (a published
// volume) or a process survives a collection down to zero bytes, with its
// blobs; unpinned, it goes.
func TestGCKeepsPinnedSnapshot(t *testing.T) {
	f, a, b, _ := twoSnapshots(t)
	c := f.Cache()
	da, db := modelDigest(t, a), modelDigest(t, b)
	if err := c.PinSnapshot(da, "csi-volume-1"); err != nil {
		t.Fatal(err)
	}
	pin, err := c.Pin(db)
	if err != nil {
		t.Fatal(err)
	}
	res, err := c.GC(context.Background(), GCOptions{MaxBytes: 0})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.EvictedSnapshots) != 0 || len(res.Evicted) != 0 {
		t.Fatalf("GC evicted %q and blobs %v from pinned snapshots", res.EvictedSnapshots, res.Evicted)
	}
	if !slices.Contains(res.SkippedInUse, da) || !slices.Contains(res.SkippedInUse, db) {
		t.Errorf("SkippedInUse = %q, want both snapshots", res.SkippedInUse)
	}
	if h, _ := c.SnapshotHolders(da); !slices.Equal(h, []string{"csi-volume-1"}) {
		t.Errorf("holders = %q", h)
	}
	if err := c.RemoveSnapshot(da); !errors.Is(err, ErrInUse) {
		t.Errorf("RemoveSnapshot of a pinned snapshot = %v, want ErrInUse", err)
	}
	for _, mf := range a.Spec.Files {
		if ok, _ := c.Has(mf.SHA256); !ok {
			t.Errorf("blob of pinned snapshot file %s was evicted", mf.Path)
		}
	}
	if err := c.UnpinSnapshot(da, "csi-volume-1"); err != nil {
		t.Fatal(err)
	}
	if err := pin.Release(); err != nil {
		t.Fatal(err)
	}
	res, err = c.GC(context.Background(), GCOptions{MaxBytes: 0})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.EvictedSnapshots) != 2 {
		t.Errorf("after unpinning GC evicted %q, want both snapshots", res.EvictedSnapshots)
	}
	if entries, _ := c.List(); len(entries) != 0 {
		t.Errorf("blobs left after evicting every snapshot: %v", entries)
	}
}

// TestEnsureSnapshotRefusesWrongDigest: a spec whose files do not give its
// digest is refused before anything is fetched.
func TestEnsureSnapshotRefusesWrongDigest(t *testing.T) {
	_, files := threeFiles()
	f := newTestFetcher(t)
	spec, err := ModelSnapshotSpec(fileSetModel("x", "https://example.invalid/", files), Token{})
	if err != nil {
		t.Fatal(err)
	}
	spec.Digest = strings.Repeat("0", 64)
	if _, err := f.EnsureSnapshot(context.Background(), spec); err == nil || !strings.Contains(err.Error(), "neither") {
		t.Fatalf("EnsureSnapshot = %v, want a refusal of the digest", err)
	}
	spec.Digest = files[0].SHA256 // a file's digest names a single-file Model only
	if _, err := f.EnsureSnapshot(context.Background(), spec); err == nil {
		t.Fatal("accepted a file's digest as the digest of a file set")
	}
}
