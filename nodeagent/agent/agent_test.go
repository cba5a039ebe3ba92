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

package agent

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/aivm-dev/aivm-operator/nodeagent"
)

func TestUnusableCacheFailsClearly(t *testing.T) {
	// A path under a regular file cannot become a directory, even for root.
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := openWritableCache(filepath.Join(file, "models"), logr.Discard())
	if err == nil || !strings.Contains(err.Error(), "read-write") || !strings.Contains(err.Error(), "--prefetch=false") {
		t.Errorf("error = %v, want one saying to mount the cache read-write or disable prefetch", err)
	}
}

func TestReadOnlyCacheFailsClearly(t *testing.T) {
	dir := t.TempDir()
	// The cache's directories exist (runtime pods made them); only writing fails.
	for _, sub := range []string{"sha256", "tmp", "locks"} {
		if err := os.Mkdir(filepath.Join(dir, sub), 0o555); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(dir, 0o555); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = os.Chmod(dir, 0o755)
		_ = os.Chmod(filepath.Join(dir, "tmp"), 0o755)
	})
	if f, err := os.Create(filepath.Join(dir, "tmp", "probe")); err == nil {
		_ = f.Close()
		t.Skip("running as a user who can write to a read-only directory")
	}
	_, err := openWritableCache(dir, logr.Discard())
	if err == nil || !strings.Contains(err.Error(), "read-write") || !strings.Contains(err.Error(), "--prefetch=false") {
		t.Errorf("error = %v, want one saying to mount the cache read-write or disable prefetch", err)
	}
}

func TestMetricsAndHealthEndpoints(t *testing.T) {
	reg := prometheus.NewRegistry()
	if _, err := nodeagent.NewMetrics(reg); err != nil {
		t.Fatal(err)
	}
	addr, stop, err := serveMetrics("127.0.0.1:0", reg, logr.Discard())
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	for path, want := range map[string]string{
		"/healthz": "ok",
		"/readyz":  "ok",
		"/metrics": "aivm_node_agent_model_cache_evictions_total",
	} {
		resp, err := http.Get("http://" + addr.String() + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), want) {
			t.Errorf("GET %s = %d %q, want 200 with %q", path, resp.StatusCode, truncateBody(body), want)
		}
	}
}

func truncateBody(b []byte) string {
	if len(b) > 200 {
		return string(b[:200]) + "..."
	}
	return string(b)
}
