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
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/aivm-dev/aivm-operator/nodeagent"
)

func cmpDiff(want, got any) string { return cmp.Diff(want, got) }

func writeCacheFile(t testing.TB, dir, name string) {
	t.Helper()
	p := filepath.Join(dir, "sha256", name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte("weights"), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestScanModelCache(t *testing.T) {
	dir := t.TempDir()
	a, b := strings.Repeat("0a", 32), strings.Repeat("f1", 32)
	writeCacheFile(t, dir, b)
	writeCacheFile(t, dir, a)
	writeCacheFile(t, dir, a+".tmp")                 // a download in progress
	writeCacheFile(t, dir, strings.Repeat("AB", 32)) // not lowercase
	writeCacheFile(t, dir, strings.Repeat("a", 63))  // too short
	writeCacheFile(t, dir, ".incoming-"+a)           // temp name
	if err := os.MkdirAll(filepath.Join(dir, "sha256", strings.Repeat("cc", 32)), 0o755); err != nil {
		t.Fatal(err) // a directory is no verified blob: it counts for nothing
	}
	got, truncated, err := nodeagent.ScanModelCache(dir)
	if err != nil || truncated {
		t.Fatalf("ScanModelCache: %v truncated=%v", err, truncated)
	}
	if diff := cmp.Diff([]string{a, b}, got); diff != "" {
		t.Errorf("digests (-want +got):\n%s", diff)
	}

	for _, d := range []string{"", filepath.Join(dir, "missing")} {
		if got, _, err := nodeagent.ScanModelCache(d); err != nil || len(got) != 0 {
			t.Errorf("ScanModelCache(%q) = %v, %v; want nothing", d, got, err)
		}
	}
	notDir := filepath.Join(t.TempDir(), "file")
	if err := os.MkdirAll(notDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(notDir, "sha256"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := nodeagent.ScanModelCache(notDir); err == nil {
		t.Errorf("ScanModelCache over a file named sha256 succeeded")
	}
}

func TestLabelValue(t *testing.T) {
	tests := map[string]string{
		"NVIDIA H100 80GB HBM3":      "NVIDIA-H100-80GB-HBM3",
		"Mock NVIDIA A100-SXM4-40GB": "Mock-NVIDIA-A100-SXM4-40GB",
		"  (weird) name!! ":          "weird-name",
		"8.0":                        "8.0",
		"":                           "",
		strings.Repeat("x", 80):      strings.Repeat("x", 63),
	}
	for in, want := range tests {
		if got := nodeagent.LabelValue(in); got != want {
			t.Errorf("LabelValue(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestLabelsForMixedNode(t *testing.T) {
	inv := nodeagent.Inventory{GPUs: []nodeagent.GPU{
		{Index: 0, Product: "NVIDIA H100 80GB HBM3", MemoryTotal: 81920 << 20, ComputeCapability: "9.0", Health: nodeagent.HealthHealthy},
		{Index: 1, Product: "NVIDIA A100-SXM4-40GB", MemoryTotal: 40960 << 20, ComputeCapability: "8.0", Health: nodeagent.HealthUnhealthy},
		{Index: 2, Product: "NVIDIA B200", MemoryTotal: 184320 << 20, ComputeCapability: "10.0", Health: nodeagent.HealthHealthy},
	}}
	want := map[string]string{
		"aivm.dev/gpu.present":            "true",
		"aivm.dev/gpu.product":            "NVIDIA-H100-80GB-HBM3",
		"aivm.dev/gpu.count":              "3",
		"aivm.dev/gpu.memory":             "40960",
		"aivm.dev/gpu.compute-capability": "8.0",
		"aivm.dev/gpu.healthy-count":      "2",
	}
	if diff := cmp.Diff(want, nodeagent.LabelsFor(inv)); diff != "" {
		t.Errorf("labels (-want +got):\n%s", diff)
	}
	if got := nodeagent.LabelsFor(nodeagent.Inventory{}); len(got) != 0 {
		t.Errorf("labels of a node without GPUs: %v", got)
	}
}
