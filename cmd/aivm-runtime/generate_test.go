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

package main

import (
	"bytes"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aivm-dev/aivm-operator/runtime-image/engine/builtin/testmodel"
	"github.com/aivm-dev/aivm-operator/runtime-image/envelope"
)

// TestGenerateBinary builds aivm-runtime and runs `generate --json` on a
// generated snapshot: the same digest twice, consistent counts, and a
// digest that is the output's.
func TestGenerateBinary(t *testing.T) {
	dir := t.TempDir()
	if _, err := testmodel.Write(filepath.Join(dir, "model"), testmodel.Default); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "aivm-runtime")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	run := func(args ...string) (generateResult, string) {
		cmd := exec.Command(bin, append([]string{"generate", "--model-dir", filepath.Join(dir, "model")}, args...)...)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("generate %v: %v\n%s", args, err, stderr.String())
		}
		var r generateResult
		if strings.Contains(strings.Join(args, " "), "--json") {
			if err := json.Unmarshal(stdout.Bytes(), &r); err != nil {
				t.Fatalf("generate --json printed %q: %v", stdout.String(), err)
			}
		}
		return r, stdout.String()
	}
	args := []string{"--prompt", "Hello world", "--max-tokens", "20", "--temperature", "0.8", "--top-p", "0.9", "--seed", "7", "--json"}
	a, _ := run(args...)
	b, _ := run(append(args, "--threads", "1")...)
	if a.OutputDigest != b.OutputDigest || a.OutputDigest != envelope.Digest([]byte(a.Output)) {
		t.Fatalf("digests %s and %s, output digest %s", a.OutputDigest, b.OutputDigest, envelope.Digest([]byte(a.Output)))
	}
	if a.InputTokens != len(a.PromptTokenIDs) || a.OutputTokens != len(a.OutputTokenIDs) || a.OutputTokens == 0 || a.Engine == "" {
		t.Fatalf("inconsistent result %+v", a)
	}
	c, _ := run(append(args[:len(args)-3], "--seed", "8", "--json")...)
	if c.OutputDigest == a.OutputDigest {
		t.Fatalf("seeds 7 and 8 gave the same output %q", a.Output)
	}
	_, text := run("--prompt", "Hello world", "--max-tokens", "5")
	if text == "" {
		t.Fatal("plain generate printed nothing")
	}
}

func TestGenerateErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := testmodel.Write(dir, testmodel.Default); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no model dir", []string{"--prompt", "x"}, 2, "usage"},
		{"missing model", []string{"--model-dir", filepath.Join(dir, "nope"), "--prompt", "x"}, 12, "ModelInvalid"},
		{"context length", []string{"--model-dir", dir, "--prompt", "x", "--max-tokens", "1000"}, 10, "ContextLength"},
		{"bad top-p", []string{"--model-dir", dir, "--prompt", "x", "--top-p", "2"}, 10, "top_p"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := generate(c.args, &stdout, &stderr); code != c.code || !strings.Contains(stderr.String(), c.want) {
				t.Fatalf("exit %d, stderr %q; want %d and %q", code, stderr.String(), c.code, c.want)
			}
		})
	}
}
