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
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aivm-dev/aivm-operator/internal/modeldigest"
)

// benchSize is the artifact size of BenchmarkFetchVerify.
const benchSize = 1 << 30

var (
	benchOnce   sync.Once
	benchDir    string
	benchFile   string
	benchDigest string
	benchErr    error
)

// TestMain removes the benchmark artifact, generated on first use in a
// temporary directory and never kept.
func TestMain(m *testing.M) {
	code := m.Run()
	if benchDir != "" {
		_ = os.RemoveAll(benchDir)
	}
	os.Exit(code)
}

// benchArtifact writes a 1 GiB pseudo-random file once per test binary.
func benchArtifact(b *testing.B) (path, digest string) {
	b.Helper()
	benchOnce.Do(func() {
		benchDir, benchErr = os.MkdirTemp("", "artifact-bench-")
		if benchErr != nil {
			return
		}
		benchFile = filepath.Join(benchDir, "model.bin")
		f, err := os.Create(benchFile)
		if err != nil {
			benchErr = err
			return
		}
		h := sha256.New()
		r := rand.NewChaCha8([32]byte{42})
		if _, err := io.CopyN(io.MultiWriter(f, h), r, benchSize); err != nil {
			benchErr = err
		}
		if err := f.Close(); err != nil && benchErr == nil {
			benchErr = err
		}
		benchDigest = hex.EncodeToString(h.Sum(nil))
	})
	if benchErr != nil {
		b.Fatal(benchErr)
	}
	return benchFile, benchDigest
}

// sha256sum runs the coreutils tool on path and returns the digest.
func sha256sum(b *testing.B, path string) string {
	out, err := exec.Command("sha256sum", path).Output()
	if err != nil {
		b.Skipf("sha256sum unavailable: %v", err)
	}
	return strings.Fields(string(out))[0]
}

// BenchmarkFetchVerify compares fetching and verifying a 1 GiB artifact
// from a local HTTP server into the cache with sha256sum reading the same
// file, and with hashing the file in process (read+sha256). The "fetch" case also reports its time as a ratio to a sha256sum run
// made in the same iteration ("x-sha256sum").
//
//	go test ./artifact -run '^$' -bench FetchVerify -benchtime 3x
func BenchmarkFetchVerify(b *testing.B) {
	path, digest := benchArtifact(b)

	b.Run("sha256sum", func(b *testing.B) {
		b.SetBytes(benchSize)
		for b.Loop() {
			if got := sha256sum(b, path); got != digest {
				b.Fatalf("sha256sum = %s, want %s", got, digest)
			}
		}
	})

	// The floor of any verified fetch: reading the file and hashing it in
	// this process, with no network and no write.
	b.Run("read+sha256", func(b *testing.B) {
		b.SetBytes(benchSize)
		buf := make([]byte, copyBufferSize)
		for b.Loop() {
			f, err := os.Open(path)
			if err != nil {
				b.Fatal(err)
			}
			h := sha256.New()
			if _, err := io.CopyBuffer(h, f, buf); err != nil {
				b.Fatal(err)
			}
			_ = f.Close()
			if got := hex.EncodeToString(h.Sum(nil)); got != digest {
				b.Fatalf("digest = %s, want %s", got, digest)
			}
		}
	})

	b.Run("fetch", func(b *testing.B) {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.ServeFile(w, r, path)
		}))
		defer srv.Close()
		b.SetBytes(benchSize)
		var fetchTime, sumTime time.Duration
		for i := 0; b.Loop(); i++ {
			b.StopTimer()
			dir := b.TempDir()
			c, err := OpenCache(filepath.Join(dir, fmt.Sprint(i)))
			if err != nil {
				b.Fatal(err)
			}
			f, err := NewFetcher(c)
			if err != nil {
				b.Fatal(err)
			}
			start := time.Now()
			sha256sum(b, path)
			sumTime += time.Since(start)
			b.StartTimer()

			start = time.Now()
			res, err := f.Fetch(context.Background(), Request{Source: srv.URL + "/model.bin", Digest: digest, Size: benchSize})
			fetchTime += time.Since(start)
			if err != nil || !res.Downloaded {
				b.Fatalf("Fetch = %+v, %v", res, err)
			}

			b.StopTimer()
			_ = os.RemoveAll(c.Dir())
			b.StartTimer()
		}
		b.ReportMetric(float64(fetchTime)/float64(sumTime), "x-sha256sum")
	})
}

// snapshotBenchFiles is the file set of BenchmarkSnapshotFourFiles: four
// files of 1 GiB together, made by splitting the benchmark artifact.
const snapshotBenchFiles = 4

// splitArtifact writes the benchmark artifact as snapshotBenchFiles files
// of equal size under dir and returns their paths and digests.
func splitArtifact(b *testing.B, path, dir string) (paths, digests []string) {
	b.Helper()
	in, err := os.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = in.Close() }()
	for i := range snapshotBenchFiles {
		p := filepath.Join(dir, fmt.Sprintf("model-%05d-of-%05d.safetensors", i+1, snapshotBenchFiles))
		out, err := os.Create(p)
		if err != nil {
			b.Fatal(err)
		}
		h := sha256.New()
		if _, err := io.CopyN(io.MultiWriter(out, h), in, benchSize/snapshotBenchFiles); err != nil {
			b.Fatal(err)
		}
		if err := out.Close(); err != nil {
			b.Fatal(err)
		}
		paths, digests = append(paths, p), append(digests, hex.EncodeToString(h.Sum(nil)))
	}
	return paths, digests
}

// BenchmarkSnapshotFourFiles fetches, verifies and materializes the
// snapshot of a four-file, 1 GiB Model from a local HTTP server
// (EnsureSnapshot at the default file concurrency), and reports its time as
// a ratio to one sha256sum run over the same four files made in the same
// iteration ("x-sha256sum").
//
//	go test ./artifact -run '^$' -bench SnapshotFourFiles -benchtime 3x
func BenchmarkSnapshotFourFiles(b *testing.B) {
	path, _ := benchArtifact(b)
	dir := filepath.Join(benchDir, "set")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	paths, digests := splitArtifact(b, path, dir)
	srv := httptest.NewServer(http.FileServer(http.Dir(dir)))
	defer srv.Close()
	spec := SnapshotSpec{BaseURI: srv.URL + "/"}
	var entries []modeldigest.File
	for i, p := range paths {
		name := filepath.Base(p)
		spec.Files = append(spec.Files, SnapshotFile{Path: name, Digest: digests[i], Size: benchSize / snapshotBenchFiles, ManifestSize: benchSize / snapshotBenchFiles})
		entries = append(entries, modeldigest.File{Path: name, SHA256: digests[i], Size: benchSize / snapshotBenchFiles})
	}
	manifest, err := modeldigest.Manifest(entries)
	if err != nil {
		b.Fatal(err)
	}
	sum := sha256.Sum256(manifest)
	spec.Digest = hex.EncodeToString(sum[:])

	b.SetBytes(benchSize)
	var snapTime, sumTime time.Duration
	for i := 0; b.Loop(); i++ {
		b.StopTimer()
		c, err := OpenCache(filepath.Join(b.TempDir(), fmt.Sprint(i)))
		if err != nil {
			b.Fatal(err)
		}
		f, err := NewFetcher(c)
		if err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		out, err := exec.Command("sha256sum", paths...).Output()
		if err != nil {
			b.Skipf("sha256sum unavailable: %v", err)
		}
		sumTime += time.Since(start)
		if got := strings.Count(string(out), "\n"); got != snapshotBenchFiles {
			b.Fatalf("sha256sum printed %d lines, want %d", got, snapshotBenchFiles)
		}
		b.StartTimer()

		start = time.Now()
		snap, err := f.EnsureSnapshot(context.Background(), spec)
		snapTime += time.Since(start)
		if err != nil {
			b.Fatalf("EnsureSnapshot: %v", err)
		}

		b.StopTimer()
		if _, err := os.Stat(filepath.Join(snap, filepath.Base(paths[0]))); err != nil {
			b.Fatal(err)
		}
		_ = removeReadOnlyTree(c.Dir())
		b.StartTimer()
	}
	b.ReportMetric(float64(snapTime)/float64(sumTime), "x-sha256sum")
}
