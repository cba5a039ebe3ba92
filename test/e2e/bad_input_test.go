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

package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/aivm-dev/aivm-operator/internal/testenv"
)

// TestBadManifestsRefused applies the samples with kubectl (they must be
// accepted), then invalid manifests, each of which the API server must
// refuse naming the offending field, leaving nothing created or changed.
func TestBadManifestsRefused(t *testing.T) {
	enabled(t)
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		t.Skip("kubectl is not installed; the manifests' validation is covered by the API tests (api/v1alpha1)")
	}
	env, _ := startEnvWith(t, quiet, "dgxa100")
	ctx := t.Context()
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	kc := func(args ...string) (string, error) {
		cmd := exec.CommandContext(ctx, kubectl, append([]string{"--kubeconfig", env.Kubeconfig, "-n", "default"}, args...)...)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	apply := func(manifest string) (string, error) { return kc("apply", "-f", manifest) }
	// config/samples holds a kustomization listing the samples.
	if out, err := kc("apply", "-k", filepath.Join(root, "config", "samples")); err != nil {
		t.Fatalf("kubectl apply -k config/samples: %v: %s", err, out)
	}

	dir := t.TempDir()
	for _, tc := range []struct {
		name, manifest, field string
	}{
		{"maxTokens zero", `
apiVersion: aivm.dev/v1alpha1
kind: InferenceJob
metadata: {name: bad-max-tokens}
spec:
  kernelRef: {name: k}
  input: {text: hi}
  parameters: {maxTokens: 0, temperature: "0"}
`, "spec.parameters.maxTokens"},
		{"temperature above 2", `
apiVersion: aivm.dev/v1alpha1
kind: InferenceJob
metadata: {name: bad-temperature}
spec:
  kernelRef: {name: k}
  input: {text: hi}
  parameters: {maxTokens: 4, temperature: "3"}
`, "spec.parameters.temperature"},
		{"two inputs", `
apiVersion: aivm.dev/v1alpha1
kind: InferenceJob
metadata: {name: bad-input}
spec:
  kernelRef: {name: k}
  input: {text: hi, configMapKeyRef: {name: cm, key: prompt}}
  parameters: {maxTokens: 4, temperature: "0"}
`, "spec.input"},
		{"uri without sha256", `
apiVersion: aivm.dev/v1alpha1
kind: Model
metadata: {name: bad-model}
spec:
  uri: https://example.com/model.gguf
  format: gguf
  gpuMemory: 1Gi
`, "spec.sha256"},
		{"immutable input changed", `
apiVersion: aivm.dev/v1alpha1
kind: InferenceJob
metadata: {name: hello}
spec:
  kernelRef: {name: tinyllama-builtin}
  input: {text: "Something else entirely."}
  parameters: {maxTokens: 64, temperature: "0", seed: 1}
  priority: 10
  activeDeadlineSeconds: 600
`, "spec.input"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-")+".yaml")
			if err := os.WriteFile(path, []byte(tc.manifest), 0o600); err != nil {
				t.Fatal(err)
			}
			var obj unstructured.Unstructured
			if err := yaml.Unmarshal([]byte(tc.manifest), &obj.Object); err != nil {
				t.Fatal(err)
			}
			obj.SetNamespace("default")
			before := unstructured.Unstructured{}
			before.SetGroupVersionKind(obj.GroupVersionKind())
			existed := env.Client.Get(ctx, client.ObjectKeyFromObject(&obj), &before) == nil

			out, err := apply(path)
			if err == nil {
				t.Fatalf("kubectl apply accepted the manifest: %s", out)
			}
			if !strings.Contains(out, tc.field) {
				t.Errorf("kubectl apply refused it without naming %s: %s", tc.field, out)
			}
			t.Logf("refused: %s", strings.TrimSpace(out))

			after := unstructured.Unstructured{}
			after.SetGroupVersionKind(obj.GroupVersionKind())
			err = env.Client.Get(ctx, client.ObjectKeyFromObject(&obj), &after)
			switch {
			case !existed && !apierrors.IsNotFound(err):
				t.Errorf("the refused %s %s exists (get: %v)", obj.GetKind(), obj.GetName(), err)
			case existed && err != nil:
				t.Errorf("get %s: %v", obj.GetName(), err)
			case existed && (after.GetGeneration() != before.GetGeneration() || !equality.Semantic.DeepEqual(after.Object["spec"], before.Object["spec"])):
				t.Errorf("the refused apply changed %s %s: generation %d -> %d, spec %v -> %v", obj.GetKind(), obj.GetName(),
					before.GetGeneration(), after.GetGeneration(), before.Object["spec"], after.Object["spec"])
			}
		})
	}
}
