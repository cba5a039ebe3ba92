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
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aivm-dev/aivm-operator/runtime-image/engine"
	"github.com/aivm-dev/aivm-operator/runtime-image/engine/builtin"
	"github.com/aivm-dev/aivm-operator/runtime-image/engine/builtin/testmodel"
	"github.com/aivm-dev/aivm-operator/runtime-image/envelope"
	"github.com/aivm-dev/aivm-operator/runtime-image/runner"
	"github.com/aivm-dev/aivm-operator/runtime-image/runner/runnertest"
)

// TestRunWithTheOpenAIEngine runs `aivm-runtime run` as a job pod would:
// everything from the environment, the openai engine against a local server
// that speaks the API, the envelope posted over TLS.
func TestRunWithTheOpenAIEngine(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v1/models":
			io.WriteString(w, `{"data":[{"id":"llama-3-8b"}]}`)
		case "/v1/completions":
			io.WriteString(w, `{"choices":[{"text":" the end.","finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":4}}`)
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	ep := runnertest.NewEndpoint(t, "pod-token")
	dir := t.TempDir()
	write := func(name, s string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	if err := os.Mkdir(filepath.Join(dir, "model"), 0o755); err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]string{
		runner.EnvJobNamespace: "ns", runner.EnvJobName: "j", runner.EnvJobUID: "uid-1",
		runner.EnvAttempt: "1", runner.EnvMember: "0",
		runner.EnvKernelDigest: "sha256:" + strings.Repeat("a", 64), runner.EnvModelDigest: strings.Repeat("b", 64),
		runner.EnvEngine: "openai", runner.EnvEngineURL: srv.URL, runner.EnvParameters: `{"maxTokens":4}`,
		runner.EnvResultURL: ep.URL, runner.EnvCAFile: ep.CAFile,
		runner.EnvModelDir: filepath.Join(dir, "model"), runner.EnvInputFile: write("input", "And so,"),
		runner.EnvTokenFile: write("token", "pod-token"), runner.EnvTerminationPath: filepath.Join(dir, "termination"),
	} {
		t.Setenv(k, v)
	}
	if code := runCmd(nil); code != 0 {
		b, _ := os.ReadFile(filepath.Join(dir, "termination"))
		t.Fatalf("exit %d: %s", code, b)
	}
	envs := ep.Envelopes()
	if len(envs) != 1 || envs[0].Output != " the end." || envs[0].Engine != "openai/llama-3-8b" ||
		envs[0].Digests.Input != envelope.Digest([]byte("And so,")) || envs[0].OutputTokens != 4 {
		t.Errorf("envelopes %+v", envs)
	}
}

func TestRunTakesNoArguments(t *testing.T) {
	if code := runCmd([]string{"--model-dir", "x"}); code != 2 {
		t.Errorf("exit %d, want 2", code)
	}
}

// TestRunWithTheBuiltinEngine runs `aivm-runtime run` on a generated GPT-2
// snapshot with the builtin engine, as a job pod of a builtin Kernel does:
// the posted output must be what `generate` computes for the same prompt,
// parameters and seed (one engine, two front doors), and its digests must
// name the input and output bytes.
func TestRunWithTheBuiltinEngine(t *testing.T) {
	ep := runnertest.NewEndpoint(t, "pod-token")
	dir := t.TempDir()
	modelDir := filepath.Join(dir, "model")
	if _, err := testmodel.Write(modelDir, testmodel.Default); err != nil {
		t.Fatal(err)
	}
	input := filepath.Join(dir, "input")
	token := filepath.Join(dir, "token")
	for p, s := range map[string]string{input: "Hello world", token: "pod-token"} {
		if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for k, v := range map[string]string{
		runner.EnvJobNamespace: "ns", runner.EnvJobName: "j", runner.EnvJobUID: "uid-2",
		runner.EnvAttempt: "1", runner.EnvMember: "0",
		runner.EnvKernelDigest: "sha256:" + strings.Repeat("a", 64), runner.EnvModelDigest: strings.Repeat("b", 64),
		runner.EnvEngine: builtin.EngineName, runner.EnvParameters: `{"maxTokens":12,"temperature":0.8,"topP":0.9,"seed":7}`,
		runner.EnvResultURL: ep.URL, runner.EnvCAFile: ep.CAFile,
		runner.EnvModelDir: modelDir, runner.EnvInputFile: input,
		runner.EnvTokenFile: token, runner.EnvTerminationPath: filepath.Join(dir, "termination"),
	} {
		t.Setenv(k, v)
	}
	if code := runCmd(nil); code != 0 {
		b, _ := os.ReadFile(filepath.Join(dir, "termination"))
		t.Fatalf("exit %d: %s", code, b)
	}
	envs := ep.Envelopes()
	if len(envs) != 1 {
		t.Fatalf("%d envelopes posted, want 1", len(envs))
	}
	got := envs[0]
	eng, err := builtin.Open(modelDir, builtin.Options{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = eng.Close() }()
	want, err := eng.Generate(t.Context(), engine.Request{Prompt: "Hello world", MaxTokens: 12, Temperature: 0.8, TopP: 0.9, Seed: 7})
	if err != nil {
		t.Fatal(err)
	}
	if got.Output != want.Output || got.OutputTokens != int64(want.OutputTokens) || got.Engine != builtin.Name ||
		got.Digests.Output != envelope.Digest([]byte(want.Output)) || got.Digests.Input != envelope.Digest([]byte("Hello world")) {
		t.Errorf("posted %+v; the engine alone gives %+v", got, want)
	}
}
