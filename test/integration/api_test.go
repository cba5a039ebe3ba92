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

package integration

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	aivmv1alpha1 "github.com/aivm-dev/aivm-operator/api/v1alpha1"
	"github.com/aivm-dev/aivm-operator/internal/testenv"
)

func createNamespace(t *testing.T, name string) {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if err := k8sClient.Create(context.Background(), ns); err != nil {
		t.Fatalf("create namespace %s: %v", name, err)
	}
}

func parse(t *testing.T, manifest string) *unstructured.Unstructured {
	t.Helper()
	obj := &unstructured.Unstructured{}
	if err := yaml.Unmarshal([]byte(manifest), &obj.Object); err != nil {
		t.Fatalf("parse manifest: %v\n%s", err, manifest)
	}
	return obj
}

// TestSamplesAccepted applies every manifest in config/samples and checks the
// server kept what it was given and filled the defaults.
func TestSamplesAccepted(t *testing.T) {
	ctx := context.Background()
	createNamespace(t, "samples")
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob(filepath.Join(root, "config", "samples", "aivm_*.yaml"))
	if err != nil || len(files) < 4 {
		t.Fatalf("want samples for every kind in config/samples, got %v (%v)", files, err)
	}
	kinds := map[string]bool{}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		obj := parse(t, string(data))
		if obj.GetKind() != "GPUNode" {
			obj.SetNamespace("samples")
		}
		if err := k8sClient.Create(ctx, obj); err != nil {
			t.Errorf("%s rejected: %v", filepath.Base(f), err)
			continue
		}
		kinds[obj.GetKind()] = true
	}
	for _, k := range []string{"Model", "Kernel", "InferenceJob", "GPUNode"} {
		if !kinds[k] {
			t.Errorf("no accepted sample of kind %s", k)
		}
	}

	// Defaults land where users expect them.
	var job aivmv1alpha1.InferenceJob
	if err := k8sClient.Get(ctx, client.ObjectKey{Namespace: "samples", Name: "hello"}, &job); err != nil {
		t.Fatal(err)
	}
	if job.Spec.BackoffLimit == nil || *job.Spec.BackoffLimit != 3 {
		t.Errorf("backoffLimit default: got %v, want 3", job.Spec.BackoffLimit)
	}
	if job.Spec.Report == nil || !*job.Spec.Report {
		t.Errorf("report default: got %v, want true", job.Spec.Report)
	}
	if job.Spec.Suspend == nil || *job.Spec.Suspend {
		t.Errorf("suspend default: got %v, want false", job.Spec.Suspend)
	}
	var kernel aivmv1alpha1.Kernel
	if err := k8sClient.Get(ctx, client.ObjectKey{Namespace: "samples", Name: "tinyllama-builtin"}, &kernel); err != nil {
		t.Fatal(err)
	}
	if kernel.Spec.Committee.Aggregation != aivmv1alpha1.AggregationMajority {
		t.Errorf("aggregation default: got %q, want majority", kernel.Spec.Committee.Aggregation)
	}
	if kernel.Spec.Timeouts.StartupSeconds != 900 || kernel.Spec.Timeouts.InferenceSeconds != 300 {
		t.Errorf("timeouts defaults: got %+v", kernel.Spec.Timeouts)
	}
	var model aivmv1alpha1.Model
	if err := k8sClient.Get(ctx, client.ObjectKey{Namespace: "samples", Name: "llama-3-8b-instruct"}, &model); err != nil {
		t.Fatal(err)
	}
	if model.Spec.CredentialsSecretRef == nil || model.Spec.CredentialsSecretRef.Key != "token" {
		t.Errorf("credentialsSecretRef.key default: got %+v, want token", model.Spec.CredentialsSecretRef)
	}
}

const (
	validModel = `
apiVersion: aivm.dev/v1alpha1
kind: Model
metadata: {name: m}
spec:
  uri: https://models.example.com/m.safetensors
  sha256: 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
  gpuMemory: 1Gi
`
	validKernel = `
apiVersion: aivm.dev/v1alpha1
kind: Kernel
metadata: {name: k}
spec:
  modelRef: {name: m}
  runtime: {image: ghcr.io/aivm-dev/aivm-runtime:v0.1.0}
`
	validJob = `
apiVersion: aivm.dev/v1alpha1
kind: InferenceJob
metadata: {name: j}
spec:
  kernelRef: {name: k}
  input: {text: hello}
`
	validGPUNode = `
apiVersion: aivm.dev/v1alpha1
kind: GPUNode
metadata: {name: gn}
`
)

// edit changes one field of a parsed manifest: set a value at a dotted path,
// or remove it when value is nil.
type edit struct {
	path  string
	value any
}

func apply(t *testing.T, obj *unstructured.Unstructured, edits []edit) {
	t.Helper()
	for _, e := range edits {
		fields := strings.Split(e.path, ".")
		if e.value == nil {
			unstructured.RemoveNestedField(obj.Object, fields...)
			continue
		}
		if err := unstructured.SetNestedField(obj.Object, e.value, fields...); err != nil {
			t.Fatalf("set %s: %v", e.path, err)
		}
	}
}

// TestInvalidManifestsRejected creates each invalid manifest and wants an
// Invalid error whose message names the field.
func TestInvalidManifestsRejected(t *testing.T) {
	ctx := context.Background()
	createNamespace(t, "invalid")
	cases := []struct {
		name  string
		base  string
		edits []edit
		want  []string // substrings of the error message
	}{
		{"model without sha256", validModel, []edit{{"spec.sha256", nil}}, []string{"spec.sha256", "Required"}},
		{"model with short sha256", validModel, []edit{{"spec.sha256", "abc123"}}, []string{"spec.sha256", "at least 64 chars long"}},
		{"model with uppercase sha256", validModel, []edit{{"spec.sha256", strings.Repeat("AB", 32)}}, []string{"spec.sha256", "should match"}},
		{"model without uri", validModel, []edit{{"spec.uri", nil}}, []string{"spec.uri", "Required"}},
		{"model with ftp uri", validModel, []edit{{"spec.uri", "ftp://example.com/m"}}, []string{"spec.uri", "must start with https://, http://, file:/// or hf://"}},
		{"model with hf uri without revision", validModel, []edit{{"spec.uri", "hf://org/repo/model.gguf"}}, []string{"spec.uri", "hf://<org>/<repo>/<file>@<revision>"}},
		{"model with relative file uri", validModel, []edit{{"spec.uri", "file://models/m.gguf"}}, []string{"spec.uri", "must start with https://, http://, file:/// or hf://"}},
		{"model with unknown format", validModel, []edit{{"spec.format", "pickle"}}, []string{"spec.format", "Unsupported value"}},
		{"model without gpuMemory", validModel, []edit{{"spec.gpuMemory", nil}}, []string{"spec.gpuMemory", "Required"}},
		{"model with zero gpuMemory", validModel, []edit{{"spec.gpuMemory", "0"}}, []string{"spec.gpuMemory", "greater than zero"}},
		{"model with zero sizeBytes", validModel, []edit{{"spec.sizeBytes", int64(0)}}, []string{"spec.sizeBytes", "greater than or equal to 1"}},
		{"model with unknown cache policy", validModel, []edit{{"spec.cachePolicy", "Forever"}}, []string{"spec.cachePolicy", "Unsupported value"}},
		{"model with credentials on a file uri", validModel, []edit{{"spec.uri", "file:///models/m.gguf"}, {"spec.credentialsSecretRef", map[string]any{"name": "token"}}}, []string{"credentialsSecretRef applies only to"}},
		{"model with credentials on an http uri", validModel, []edit{{"spec.uri", "http://models.example.com/m.safetensors"}, {"spec.credentialsSecretRef", map[string]any{"name": "token"}}}, []string{"credentialsSecretRef applies only to https:// and hf:// sources", "never sent over plain http"}},
		{"model with gpuMemory 20GB", validModel, []edit{{"spec.gpuMemory", "20GB"}}, []string{"spec.gpuMemory", "should match"}},
		{"model with uri and files", validModel, []edit{{"spec.files", []any{map[string]any{"path": "a.bin", "sha256": strings.Repeat("a", 64), "uri": "https://models.example.com/a.bin"}}}}, []string{"spec.files: Forbidden", "files and uri are mutually exclusive"}},
		{"model with sha256 on a file set", validModel, []edit{{"spec.uri", nil}, {"spec.files", []any{modelFile("a.bin")}}, {"spec.baseURI", "https://models.example.com/m/"}}, []string{"spec.sha256: Forbidden", "sha256 goes with uri"}},
		{"model with sizeBytes on a file set", validModel, []edit{{"spec.uri", nil}, {"spec.sha256", nil}, {"spec.sizeBytes", int64(5)}, {"spec.files", []any{modelFile("a.bin")}}, {"spec.baseURI", "https://models.example.com/m/"}}, []string{"spec.sizeBytes: Forbidden", "sizeBytes goes with uri"}},
		{"model with baseURI and no files", validModel, []edit{{"spec.baseURI", "https://models.example.com/m/"}}, []string{"spec.baseURI: Forbidden", "baseURI applies only to files"}},
		{"model with a file set without uris", validModel, []edit{{"spec.uri", nil}, {"spec.sha256", nil}, {"spec.files", []any{modelFile("a.bin")}}}, []string{"spec.files: Required value", "every file needs its own uri when baseURI is not set"}},
		{"model with ftp baseURI", validModel, fileSet("ftp://models.example.com/m/", "a.bin"), []string{"spec.baseURI", "baseURI must start with https://, http://, file:/// or hf://"}},
		{"model with hf baseURI without revision", validModel, fileSet("hf://org/repo", "a.bin"), []string{"spec.baseURI", "hf:// baseURI must be hf://<org>/<repo>@<revision>"}},
		{"model with an absolute file path", validModel, fileSet("https://models.example.com/m/", "/etc/passwd"), []string{"spec.files[0].path", "path must be relative"}},
		{"model with a backslash in a file path", validModel, fileSet("https://models.example.com/m/", "a\\b.bin"), []string{"spec.files[0].path", "not a backslash"}},
		{"model with an empty file path segment", validModel, fileSet("https://models.example.com/m/", "a//b.bin"), []string{"spec.files[0].path", "must not contain '//'"}},
		{"model with a directory as file path", validModel, fileSet("https://models.example.com/m/", "a/"), []string{"spec.files[0].path", "must name a file"}},
		{"model with a dot-dot file path", validModel, fileSet("https://models.example.com/m/", "a/../../b.bin"), []string{"spec.files[0].path", "must not contain a '..' segment"}},
		{"model with a dot file path segment", validModel, fileSet("https://models.example.com/m/", "./b.bin"), []string{"spec.files[0].path", "must not contain a '.' segment"}},
		{"model with a NUL in a file path", validModel, fileSet("https://models.example.com/m/", "a\x00b.bin"), []string{"spec.files[0].path", "must not contain a NUL character"}},
		{"model with an ftp file uri", validModel, []edit{{"spec.uri", nil}, {"spec.sha256", nil}, {"spec.files", []any{map[string]any{"path": "a.bin", "sha256": strings.Repeat("a", 64), "uri": "ftp://example.com/a.bin"}}}}, []string{"spec.files[0].uri", "uri must start with https://, http://, file:/// or hf://"}},
		{"model with unknown field", validModel, []edit{{"spec.checksum", "x"}}, []string{"spec.checksum", "unknown field"}},

		{"kernel without modelRef", validKernel, []edit{{"spec.modelRef", nil}}, []string{"spec.modelRef", "Required"}},
		{"kernel without image", validKernel, []edit{{"spec.runtime.image", nil}}, []string{"spec.runtime.image", "Required"}},
		{"kernel with unknown engine", validKernel, []edit{{"spec.runtime.engine", "tensorrt"}}, []string{"spec.runtime.engine", "Unsupported value"}},
		{"kernel with negative gpu count", validKernel, []edit{{"spec.gpu.count", int64(-1)}}, []string{"spec.gpu.count", "greater than or equal to 1"}},
		{"kernel with 17 gpus", validKernel, []edit{{"spec.gpu.count", int64(17)}}, []string{"spec.gpu.count", "less than or equal to 16"}},
		{"kernel with bad compute capability", validKernel, []edit{{"spec.gpu.minComputeCapability", "sm_80"}}, []string{"spec.gpu.minComputeCapability", "should match"}},
		{"kernel with mig profile on two gpus", validKernel, []edit{{"spec.gpu.count", int64(2)}, {"spec.gpu.migProfile", "1g.10gb"}}, []string{"spec.gpu.migProfile: Invalid value", "migProfile requires gpu.count 1"}},
		{"kernel with openai engine without port", validKernel, []edit{{"spec.runtime.engine", "openai"}}, []string{"spec.runtime.port: Required value", "port is required for the openai engine"}},
		{"kernel with port out of range", validKernel, []edit{{"spec.runtime.port", int64(70000)}}, []string{"spec.runtime.port", "less than or equal to 65535"}},
		{"kernel with unknown aggregation", validKernel, []edit{{"spec.committee.aggregation", "average"}}, []string{"spec.committee.aggregation", "Unsupported value"}},
		{"kernel with unanimous single replica", validKernel, []edit{{"spec.committee.aggregation", "unanimous"}}, []string{"spec.committee.replicas: Invalid value", "unanimous needs committee.replicas of at least 2"}},
		{"kernel with ten replicas", validKernel, []edit{{"spec.committee.replicas", int64(10)}}, []string{"spec.committee.replicas", "less than or equal to 9"}},
		{"kernel with unknown dtype", validKernel, []edit{{"spec.determinism.dtype", "float8"}}, []string{"spec.determinism.dtype", "Unsupported value"}},
		{"kernel with negative seed", validKernel, []edit{{"spec.determinism.seed", int64(-5)}}, []string{"spec.determinism.seed", "greater than or equal to 0"}},
		{"kernel with zero gpu memory", validKernel, []edit{{"spec.gpu.memory", "0"}}, []string{"spec.gpu.memory", "greater than zero"}},

		{"kernel with image containing a space", validKernel, []edit{{"spec.runtime.image", "ghcr.io/aivm-dev/aivm-runtime v0.1.0"}}, []string{"spec.runtime.image", "image must not contain spaces"}},
		{"kernel with negative cpu", validKernel, []edit{{"spec.resources.cpu", "-2"}}, []string{"spec.resources.cpu", "resources.cpu must be greater than zero"}},
		{"kernel with zero cpu", validKernel, []edit{{"spec.resources.cpu", int64(0)}}, []string{"spec.resources.cpu", "resources.cpu must be greater than zero"}},
		{"kernel with negative memory", validKernel, []edit{{"spec.resources.memory", "-32Gi"}}, []string{"spec.resources.memory", "resources.memory must be greater than zero"}},
		{"kernel with zero memory", validKernel, []edit{{"spec.resources.memory", "0Gi"}}, []string{"spec.resources.memory", "resources.memory must be greater than zero"}},
		{"kernel with gpu memory 20GB", validKernel, []edit{{"spec.gpu.memory", "20GB"}}, []string{"spec.gpu.memory", "should match"}},

		{"job without kernelRef", validJob, []edit{{"spec.kernelRef", nil}}, []string{"spec.kernelRef", "Required"}},
		{"job with both input forms", validJob, []edit{{"spec.input.configMapKeyRef", map[string]any{"name": "p", "key": "prompt"}}}, []string{"spec.input", "exactly one of text, configMapKeyRef or secretKeyRef"}},
		{"job with no input form", validJob, []edit{{"spec.input", map[string]any{}}}, []string{"spec.input", "exactly one of"}},
		{"job with oversize inline input", validJob, []edit{{"spec.input.text", strings.Repeat("x", aivmv1alpha1.MaxInlineInputBytes+1)}}, []string{"spec.input.text", "Too long"}},
		// 40000 two-byte characters: within maxLength, 80000 bytes.
		{"job with oversize multi-byte inline input", validJob, []edit{{"spec.input.text", strings.Repeat("é", 40000)}}, []string{"spec.input.text", "at most 65536 bytes of UTF-8"}},
		{"job with configmap ref without key", validJob, []edit{{"spec.input", map[string]any{"configMapKeyRef": map[string]any{"name": "p"}}}}, []string{"spec.input.configMapKeyRef.key", "Required"}},
		{"job with zero maxTokens", validJob, []edit{{"spec.parameters.maxTokens", int64(0)}}, []string{"spec.parameters.maxTokens", "greater than or equal to 1"}},
		{"job with temperature 3", validJob, []edit{{"spec.parameters.temperature", "3"}}, []string{"spec.parameters.temperature", "between 0 and 2"}},
		{"job with non-numeric temperature", validJob, []edit{{"spec.parameters.temperature", "hot"}}, []string{"spec.parameters.temperature", "should match"}},
		{"job with topP 0", validJob, []edit{{"spec.parameters.topP", "0"}}, []string{"spec.parameters.topP", "above 0 and at most 1"}},
		{"job with too many stop sequences", validJob, []edit{{"spec.parameters.stop", []any{"a", "b", "c", "d", "e", "f", "g", "h", "i"}}}, []string{"spec.parameters.stop", "must have at most 8 items"}},
		{"job with priority above 1000", validJob, []edit{{"spec.priority", int64(1001)}}, []string{"spec.priority", "less than or equal to 1000"}},
		{"job with negative backoffLimit", validJob, []edit{{"spec.backoffLimit", int64(-1)}}, []string{"spec.backoffLimit", "greater than or equal to 0"}},
		{"job with zero deadline", validJob, []edit{{"spec.activeDeadlineSeconds", int64(0)}}, []string{"spec.activeDeadlineSeconds", "greater than or equal to 1"}},

		{"gpunode with non-boolean unschedulable", validGPUNode, []edit{{"spec.unschedulable", "yes"}}, []string{"spec.unschedulable", "must be of type boolean"}},
	}
	if len(cases) < 25 {
		t.Fatalf("the table needs at least 25 invalid manifests, has %d", len(cases))
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			obj := parse(t, tc.base)
			obj.SetName(fmt.Sprintf("%s-%d", obj.GetName(), i))
			if obj.GetKind() != "GPUNode" {
				obj.SetNamespace("invalid")
			}
			apply(t, obj, tc.edits)
			err := k8sClient.Create(ctx, obj)
			if err == nil {
				t.Fatalf("accepted, want rejection mentioning %q", tc.want)
			}
			if !apierrors.IsInvalid(err) && !apierrors.IsBadRequest(err) {
				t.Fatalf("got %v, want an Invalid error", err)
			}
			t.Logf("rejected: %v", err)
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not mention %q:\n%v", w, err)
				}
			}
			checkShortRejection(t, err)
		})
	}
}

// maxRejectionBytes bounds a rejection's message: it names fields and rules,
// it does not echo large values.
const maxRejectionBytes = 2048

// checkShortRejection wants err's message short: it names fields and rules,
// it does not echo large values.
func checkShortRejection(t *testing.T, err error) {
	t.Helper()
	if n := len(err.Error()); n > maxRejectionBytes {
		t.Errorf("rejection message is %d bytes, want at most %d", n, maxRejectionBytes)
	}
}

// TestRejectionsSingleAndShort wants one short error for a bad value, not
// the value echoed whole or a second error from a rule that cannot
// evaluate it.
func TestRejectionsSingleAndShort(t *testing.T) {
	ctx := context.Background()
	createNamespace(t, "single")
	cases := []struct {
		name  string
		base  string
		edits []edit
		want  string
	}{
		{"gpu.memory 20GB", validKernel, []edit{{"spec.gpu.memory", "20GB"}}, "spec.gpu.memory"},
		{"resources.memory 20GB", validKernel, []edit{{"spec.resources.memory", "20GB"}}, "spec.resources.memory"},
		{"gpuMemory 20GB", validModel, []edit{{"spec.gpuMemory", "20GB"}}, "spec.gpuMemory"},
		{"prompt over 65536 bytes", validJob, []edit{{"spec.input.text", strings.Repeat("x", 2*aivmv1alpha1.MaxInlineInputBytes)}}, "spec.input.text"},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			obj := parse(t, tc.base)
			obj.SetName(fmt.Sprintf("%s-single-%d", obj.GetName(), i))
			obj.SetNamespace("single")
			apply(t, obj, tc.edits)
			err := k8sClient.Create(ctx, obj)
			if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want Invalid naming %s", err, tc.want)
			}
			checkShortRejection(t, err)
			checkSingleCause(t, err)
		})
	}
}

// checkSingleCause wants err to carry exactly one cause about a field (the
// API server's note that it skipped rules on an invalid object is not one).
func checkSingleCause(t *testing.T, err error) {
	t.Helper()
	var status apierrors.APIStatus
	if !errors.As(err, &status) || status.Status().Details == nil {
		t.Errorf("no causes in %v", err)
		return
	}
	n := 0
	for _, c := range status.Status().Details.Causes {
		if c.Field != "" && c.Field != "<nil>" {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d errors, want 1:\n%v", n, err)
	}
}

// modelFile is a valid file set entry at path.
func modelFile(path string) map[string]any {
	return map[string]any{"path": path, "sha256": strings.Repeat("a", 64)}
}

// fileSet turns the valid Model into a file set of paths under baseURI.
func fileSet(baseURI string, paths ...string) []edit {
	files := make([]any, 0, len(paths))
	for _, p := range paths {
		files = append(files, modelFile(p))
	}
	return []edit{{"spec.uri", nil}, {"spec.sha256", nil}, {"spec.baseURI", baseURI}, {"spec.files", files}}
}

// TestImmutableFields creates valid objects and changes fields that must not change.
func TestImmutableFields(t *testing.T) {
	ctx := context.Background()
	createNamespace(t, "immutable")
	cases := []struct {
		name  string
		base  string
		edits []edit
		want  string
	}{
		{"model sha256", validModel, []edit{{"spec.sha256", strings.Repeat("f", 64)}}, "sha256 is immutable"},
		{"job kernelRef", validJob, []edit{{"spec.kernelRef.name", "other"}}, "kernelRef is immutable"},
		{"job input", validJob, []edit{{"spec.input.text", "changed"}}, "input is immutable"},
		{"job parameters", validJob, []edit{{"spec.parameters.maxTokens", int64(9)}}, "parameters are immutable"},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			obj := parse(t, tc.base)
			obj.SetName(fmt.Sprintf("%s-imm-%d", obj.GetName(), i))
			obj.SetNamespace("immutable")
			if err := k8sClient.Create(ctx, obj); err != nil {
				t.Fatalf("create: %v", err)
			}
			apply(t, obj, tc.edits)
			err := k8sClient.Update(ctx, obj)
			if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("update: got %v, want Invalid mentioning %q", err, tc.want)
			}
		})
	}

	// What may change does change: suspend on a job, a model's format.
	obj := parse(t, validJob)
	obj.SetName("j-mutable")
	obj.SetNamespace("immutable")
	if err := k8sClient.Create(ctx, obj); err != nil {
		t.Fatal(err)
	}
	apply(t, obj, []edit{{"spec.suspend", true}, {"spec.priority", int64(5)}})
	if err := k8sClient.Update(ctx, obj); err != nil {
		t.Fatalf("suspend and priority must be mutable: %v", err)
	}
}

// TestStatusSubresource checks that status is written only through the
// status subresource and that conditions are a map keyed by type.
func TestStatusSubresource(t *testing.T) {
	ctx := context.Background()
	createNamespace(t, "status")
	m := parse(t, validModel)
	m.SetNamespace("status")
	if err := k8sClient.Create(ctx, m); err != nil {
		t.Fatal(err)
	}
	var model aivmv1alpha1.Model
	if err := k8sClient.Get(ctx, client.ObjectKeyFromObject(m), &model); err != nil {
		t.Fatal(err)
	}
	model.Status.CachedNodes = 3
	if err := k8sClient.Update(ctx, &model); err != nil {
		t.Fatal(err)
	}
	if err := k8sClient.Get(ctx, client.ObjectKeyFromObject(m), &model); err != nil {
		t.Fatal(err)
	}
	if model.Status.CachedNodes != 0 {
		t.Fatalf("status changed through the main resource: %+v", model.Status)
	}
	model.Status.CachedNodes = 3
	now := metav1.Now()
	model.Status.Conditions = []metav1.Condition{
		{Type: aivmv1alpha1.ConditionReady, Status: metav1.ConditionFalse, Reason: aivmv1alpha1.ReasonSourceUnreachable, Message: "x", LastTransitionTime: now},
		{Type: aivmv1alpha1.ConditionReady, Status: metav1.ConditionTrue, Reason: aivmv1alpha1.ReasonReady, Message: "y", LastTransitionTime: now},
	}
	if err := k8sClient.Status().Update(ctx, &model); !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "Duplicate value") {
		t.Fatalf("duplicate condition types: got %v, want Invalid Duplicate value", err)
	}
	model.Status.Conditions = model.Status.Conditions[1:]
	if err := k8sClient.Status().Update(ctx, &model); err != nil {
		t.Fatalf("status update: %v", err)
	}
	if err := k8sClient.Get(ctx, client.ObjectKeyFromObject(m), &model); err != nil {
		t.Fatal(err)
	}
	if model.Status.CachedNodes != 3 || len(model.Status.Conditions) != 1 {
		t.Fatalf("status not saved: %+v", model.Status)
	}
}

// TestInlineInputByteBound checks spec.input.text is bounded in bytes of
// UTF-8, not in characters: text at the limit is accepted, one byte over
// is refused although it has fewer characters than the limit.
func TestInlineInputByteBound(t *testing.T) {
	ctx := context.Background()
	createNamespace(t, "inline-input")
	cases := []struct {
		name string
		text string
		ok   bool
	}{
		{"ascii at the limit", strings.Repeat("x", aivmv1alpha1.MaxInlineInputBytes), true},
		{"two-byte characters at the limit", strings.Repeat("é", aivmv1alpha1.MaxInlineInputBytes/2), true},
		{"four-byte characters at the limit", strings.Repeat("🙂", aivmv1alpha1.MaxInlineInputBytes/4), true},
		{"one byte over with fewer characters", strings.Repeat("x", aivmv1alpha1.MaxInlineInputBytes-1) + "é", false},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			obj := parse(t, validJob)
			obj.SetName(fmt.Sprintf("j-inline-%d", i))
			obj.SetNamespace("inline-input")
			apply(t, obj, []edit{{"spec.input.text", tc.text}})
			err := k8sClient.Create(ctx, obj)
			switch {
			case tc.ok && err != nil:
				t.Fatalf("%d bytes refused: %v", len(tc.text), err)
			case !tc.ok && (!apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "at most 65536 bytes of UTF-8")):
				t.Fatalf("%d bytes: got %v, want Invalid naming the byte limit", len(tc.text), err)
			}
		})
	}
}

// TestBatchInvariantDefault checks determinism.batchInvariant defaults to
// true on its own, also when other determinism fields are set, and that an
// explicit false is kept.
func TestBatchInvariantDefault(t *testing.T) {
	ctx := context.Background()
	createNamespace(t, "batch-invariant")
	cases := []struct {
		name        string
		determinism any // nil: no determinism block
		want        bool
	}{
		{"no determinism block", nil, true},
		{"seed only", map[string]any{"seed": int64(1)}, true},
		{"dtype only", map[string]any{"dtype": "float16"}, true},
		{"explicit false", map[string]any{"seed": int64(1), "batchInvariant": false}, false},
		{"explicit true", map[string]any{"batchInvariant": true}, true},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			obj := parse(t, validKernel)
			obj.SetName(fmt.Sprintf("k-bi-%d", i))
			obj.SetNamespace("batch-invariant")
			if tc.determinism != nil {
				apply(t, obj, []edit{{"spec.determinism", tc.determinism}})
			}
			if err := k8sClient.Create(ctx, obj); err != nil {
				t.Fatalf("create: %v", err)
			}
			var k aivmv1alpha1.Kernel
			if err := k8sClient.Get(ctx, client.ObjectKeyFromObject(obj), &k); err != nil {
				t.Fatal(err)
			}
			if got := k.Spec.Determinism.BatchInvariant; got == nil || *got != tc.want {
				t.Errorf("batchInvariant = %v, want %v", fmtBoolPtr(got), tc.want)
			}
		})
	}

	// A Go client's explicit false reaches the server and stays false.
	k := &aivmv1alpha1.Kernel{
		ObjectMeta: metav1.ObjectMeta{Namespace: "batch-invariant", Name: "k-bi-go"},
		Spec: aivmv1alpha1.KernelSpec{
			ModelRef:    aivmv1alpha1.LocalObjectReference{Name: "m"},
			Runtime:     aivmv1alpha1.KernelRuntime{Image: "ghcr.io/aivm-dev/aivm-runtime:v0.1.0"},
			Determinism: aivmv1alpha1.Determinism{BatchInvariant: new(bool)},
		},
	}
	if err := k8sClient.Create(ctx, k); err != nil {
		t.Fatal(err)
	}
	if err := k8sClient.Get(ctx, client.ObjectKeyFromObject(k), k); err != nil {
		t.Fatal(err)
	}
	if got := k.Spec.Determinism.BatchInvariant; got == nil || *got {
		t.Errorf("Go client false: batchInvariant = %v, want false", fmtBoolPtr(got))
	}
}

func fmtBoolPtr(b *bool) string {
	if b == nil {
		return "unset"
	}
	return fmt.Sprint(*b)
}
