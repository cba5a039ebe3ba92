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

package builtin

import (
	"context"
	"encoding/json"
	"flag"
	"os"
	"runtime"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/aivm-dev/aivm-operator/runtime-image/engine"
	"github.com/aivm-dev/aivm-operator/runtime-image/engine/builtin/testmodel"
	"github.com/aivm-dev/aivm-operator/runtime-image/envelope"
)

var update = flag.Bool("update", false, "rewrite testdata/golden-digests.json")

// goldenFile is committed and checked on amd64 and (make test-arm64) on
// arm64: the same model bytes and the same outputs on both.
const goldenFile = "testdata/golden-digests.json"

type goldenCase struct {
	Name         string         `json:"name"`
	Request      engine.Request `json:"request"`
	OutputDigest string         `json:"outputDigest"`
	OutputIDs    []int          `json:"outputIDs"`
	FinishReason string         `json:"finishReason"`
}

type golden struct {
	ModelFiles map[string]string `json:"modelFiles"`
	Cases      []goldenCase      `json:"cases"`
}

// goldenRequests cover greedy decoding, sampling with and without top-p,
// a stop sequence and the byte bound.
var goldenRequests = []goldenCase{
	{Name: "greedy", Request: engine.Request{Prompt: "Hello world, the", MaxTokens: 48}},
	{Name: "sampled", Request: engine.Request{Prompt: "Hello world, the", MaxTokens: 48, Temperature: 0.9, TopP: 1, Seed: 42}},
	{Name: "top-p", Request: engine.Request{Prompt: "The weather today is", MaxTokens: 48, Temperature: 1.2, TopP: 0.8, Seed: -7}},
	{Name: "non-ascii prompt", Request: engine.Request{Prompt: "Grüße, 世界 🎉", MaxTokens: 32, Temperature: 0.7, TopP: 0.95, Seed: 1}},
	{Name: "empty prompt", Request: engine.Request{Prompt: "", MaxTokens: 16, Temperature: 1, Seed: 5}},
	{Name: "max bytes", Request: engine.Request{Prompt: "and then", MaxTokens: 64, MaxOutputBytes: 20, Temperature: 1, Seed: 9}},
}

func writeDefault(t testing.TB) (string, map[string]string) {
	t.Helper()
	dir := t.TempDir()
	files, err := testmodel.Write(dir, testmodel.Default)
	if err != nil {
		t.Fatal(err)
	}
	return dir, files
}

func runCases(t testing.TB, e *Engine, cases []goldenCase) []goldenCase {
	t.Helper()
	out := make([]goldenCase, len(cases))
	for i, c := range cases {
		r, err := e.GenerateIDs(context.Background(), c.Request)
		if err != nil {
			t.Fatalf("%s: %v", c.Name, err)
		}
		c.OutputDigest = envelope.Digest([]byte(r.Output))
		c.OutputIDs = r.OutputIDs
		c.FinishReason = r.FinishReason
		out[i] = c
	}
	return out
}

// TestGoldenDigests checks the generated model's file digests and the
// outputs of goldenRequests against the committed golden file. Every
// architecture that runs it (amd64 here, arm64 under qemu) must match.
func TestGoldenDigests(t *testing.T) {
	dir, files := writeDefault(t)
	e, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	got := golden{ModelFiles: files, Cases: runCases(t, e, goldenRequests)}
	if *update {
		b, _ := json.MarshalIndent(got, "", "  ")
		if err := os.WriteFile(goldenFile, append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	b, err := os.ReadFile(goldenFile)
	if err != nil {
		t.Fatal(err)
	}
	var want golden
	if err := json.Unmarshal(b, &want); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("%s/%s differs from %s (-want +got):\n%s", runtime.GOOS, runtime.GOARCH, goldenFile, diff)
	}
	for _, c := range got.Cases {
		t.Logf("%s/%s %-16s %s %d tokens, %s", runtime.GOOS, runtime.GOARCH, c.Name, c.OutputDigest, len(c.OutputIDs), c.FinishReason)
	}
}

// TestSameOutputAtAnyGOMAXPROCS runs the golden requests with GOMAXPROCS
// (and so the kernels' goroutine count) at 1, 2, 3, 8 and 13, on a model
// whose dimensions do not split evenly, and requires identical results.
func TestSameOutputAtAnyGOMAXPROCS(t *testing.T) {
	dir := t.TempDir()
	if _, err := testmodel.Write(dir, testmodel.Config{NLayer: 3, NHead: 6, NEmbd: 72, NPositions: 160, Seed: 3, Scale: 0.25}); err != nil {
		t.Fatal(err)
	}
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	var first []goldenCase
	for _, procs := range []int{1, 2, 3, 8, 13} {
		runtime.GOMAXPROCS(procs)
		e, err := Open(dir, Options{})
		if err != nil {
			t.Fatal(err)
		}
		if e.m.threads != procs {
			t.Fatalf("engine uses %d threads at GOMAXPROCS %d", e.m.threads, procs)
		}
		got := runCases(t, e, goldenRequests)
		e.Close()
		if first == nil {
			first = got
			continue
		}
		if diff := cmp.Diff(first, got); diff != "" {
			t.Fatalf("GOMAXPROCS %d differs from GOMAXPROCS 1 (-1 +%d):\n%s", procs, procs, diff)
		}
	}
}
