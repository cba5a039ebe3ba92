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

package kerneldigest

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/aivm-dev/aivm-operator/api/v1alpha1"
)

const modelSHA = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"

func ptr[T any](v T) *T { return &v }

// baseKernel is a fully populated spec; tests change one field at a time.
func baseKernel() *v1alpha1.KernelSpec {
	return &v1alpha1.KernelSpec{
		ModelRef: v1alpha1.LocalObjectReference{Name: "llama"},
		Runtime: v1alpha1.KernelRuntime{
			Image:  "ghcr.io/aivm-dev/aivm-runtime@sha256:" + strings.Repeat("a", 64),
			Engine: v1alpha1.EngineOpenAI,
			Args:   []string{"--max-tokens", "128"},
			Env: []corev1.EnvVar{
				{Name: "TEMPERATURE", Value: "0"},
				{Name: "API_KEY", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
					LocalObjectReference: corev1.LocalObjectReference{Name: "engine-secret"}, Key: "key"}}},
			},
			Port:            ptr(int32(8000)),
			ImagePullPolicy: corev1.PullIfNotPresent,
		},
		GPU: v1alpha1.KernelGPU{
			Count:                2,
			Memory:               ptr(resource.MustParse("40Gi")),
			Products:             []string{"NVIDIA H100 80GB HBM3", "NVIDIA A100-SXM4-80GB"},
			MinComputeCapability: "8.0",
		},
		Resources:   &v1alpha1.KernelResources{CPU: ptr(resource.MustParse("4"))},
		Determinism: v1alpha1.Determinism{Seed: ptr(int64(42)), DType: v1alpha1.DTypeBFloat16, BatchInvariant: ptr(true), DeterministicAlgorithms: true},
		Committee:   v1alpha1.Committee{Replicas: 3, Aggregation: v1alpha1.AggregationMajority},
		Timeouts:    v1alpha1.KernelTimeouts{StartupSeconds: 900, InferenceSeconds: 300},
	}
}

func baseModel() *v1alpha1.ModelSpec {
	return &v1alpha1.ModelSpec{
		URI:       "hf://acme/llama/model.gguf@main",
		SHA256:    modelSHA,
		Format:    v1alpha1.ModelFormatGGUF,
		SizeBytes: ptr(int64(1000)),
		GPUMemory: resource.MustParse("60Gi"),
	}
}

func mustDigest(t *testing.T, k *v1alpha1.KernelSpec, m *v1alpha1.ModelSpec) string {
	t.Helper()
	d, err := Digest(k, m)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestGolden pins the encoding and the digest of baseKernel: changing
// either breaks every recorded kernel identity, so it needs a new Version.
// The digest was cross-checked with the independent Python encoder in
// docs/kernel-digest.md.
func TestGolden(t *testing.T) {
	enc, err := Encode(baseKernel(), baseModel())
	if err != nil {
		t.Fatal(err)
	}
	want := "aivm.dev/kernel-digest/v1\n" +
		"model.sha256 64:" + modelSHA + "\n" +
		"model.format 4:gguf\n" +
		"runtime.image 101:ghcr.io/aivm-dev/aivm-runtime@sha256:" + strings.Repeat("a", 64) + "\n" +
		"runtime.engine 6:openai\n" +
		"runtime.args #2\n 12:--max-tokens\n 3:128\n" +
		"runtime.env #2\n 7:API_KEY 12:secretKeyRef 3:key\n 11:TEMPERATURE 5:value 1:0\n" +
		"gpu.count 1:2\n" +
		"gpu.products #2\n 21:NVIDIA A100-SXM4-80GB\n 21:NVIDIA H100 80GB HBM3\n" +
		"gpu.minComputeCapability 3:8.0\n" +
		"gpu.migProfile 0:\n" +
		"determinism.seed 2:42\n" +
		"determinism.dtype 8:bfloat16\n" +
		"determinism.batchInvariant 4:true\n" +
		"determinism.deterministicAlgorithms 4:true\n" +
		"committee.replicas 1:3\n" +
		"committee.aggregation 8:majority\n"
	if diff := cmp.Diff(want, string(enc)); diff != "" {
		t.Fatalf("encoding (-want +got):\n%s", diff)
	}
	const golden = "sha256:b4aef1ce11cef735b4d382a8266ce1a841422e910e4a1e395d903d7f3cf88f16"
	if got := mustDigest(t, baseKernel(), baseModel()); got != golden {
		t.Errorf("digest = %s, want %s", got, golden)
	}
}

// TestEachFieldChangesDigest changes every output-deciding field once.
func TestEachFieldChangesDigest(t *testing.T) {
	base := mustDigest(t, baseKernel(), baseModel())
	tests := map[string]func(k *v1alpha1.KernelSpec, m *v1alpha1.ModelSpec){
		"model.sha256": func(_ *v1alpha1.KernelSpec, m *v1alpha1.ModelSpec) { m.SHA256 = strings.Repeat("0", 64) },
		"model.format": func(_ *v1alpha1.KernelSpec, m *v1alpha1.ModelSpec) { m.Format = v1alpha1.ModelFormatSafetensors },
		"runtime.image": func(k *v1alpha1.KernelSpec, _ *v1alpha1.ModelSpec) {
			k.Runtime.Image = "ghcr.io/aivm-dev/aivm-runtime:v2"
		},
		"runtime.engine":          func(k *v1alpha1.KernelSpec, _ *v1alpha1.ModelSpec) { k.Runtime.Engine = v1alpha1.EngineBuiltin },
		"runtime.args value":      func(k *v1alpha1.KernelSpec, _ *v1alpha1.ModelSpec) { k.Runtime.Args[1] = "256" },
		"runtime.args order":      func(k *v1alpha1.KernelSpec, _ *v1alpha1.ModelSpec) { k.Runtime.Args = []string{"128", "--max-tokens"} },
		"runtime.args split":      func(k *v1alpha1.KernelSpec, _ *v1alpha1.ModelSpec) { k.Runtime.Args = []string{"--max-tokens 128"} },
		"runtime.args empty item": func(k *v1alpha1.KernelSpec, _ *v1alpha1.ModelSpec) { k.Runtime.Args = append(k.Runtime.Args, "") },
		"runtime.env value":       func(k *v1alpha1.KernelSpec, _ *v1alpha1.ModelSpec) { k.Runtime.Env[0].Value = "0.7" },
		"runtime.env added": func(k *v1alpha1.KernelSpec, _ *v1alpha1.ModelSpec) {
			k.Runtime.Env = append(k.Runtime.Env, corev1.EnvVar{Name: "TOP_P"})
		},
		"runtime.env key": func(k *v1alpha1.KernelSpec, _ *v1alpha1.ModelSpec) {
			k.Runtime.Env[1].ValueFrom.SecretKeyRef.Key = "other"
		},
		"runtime.env source": func(k *v1alpha1.KernelSpec, _ *v1alpha1.ModelSpec) {
			k.Runtime.Env[1] = corev1.EnvVar{Name: "API_KEY", Value: "key"}
		},
		"gpu.count":                func(k *v1alpha1.KernelSpec, _ *v1alpha1.ModelSpec) { k.GPU.Count = 4 },
		"gpu.products":             func(k *v1alpha1.KernelSpec, _ *v1alpha1.ModelSpec) { k.GPU.Products = k.GPU.Products[:1] },
		"gpu.minComputeCapability": func(k *v1alpha1.KernelSpec, _ *v1alpha1.ModelSpec) { k.GPU.MinComputeCapability = "9.0" },
		"gpu.migProfile":           func(k *v1alpha1.KernelSpec, _ *v1alpha1.ModelSpec) { k.GPU.MIGProfile = "1g.10gb" },
		"determinism.seed":         func(k *v1alpha1.KernelSpec, _ *v1alpha1.ModelSpec) { k.Determinism.Seed = ptr(int64(43)) },
		"determinism.seed unset":   func(k *v1alpha1.KernelSpec, _ *v1alpha1.ModelSpec) { k.Determinism.Seed = nil },
		"determinism.dtype":        func(k *v1alpha1.KernelSpec, _ *v1alpha1.ModelSpec) { k.Determinism.DType = v1alpha1.DTypeFloat16 },
		"determinism.batchInvariant": func(k *v1alpha1.KernelSpec, _ *v1alpha1.ModelSpec) {
			k.Determinism.BatchInvariant = ptr(false)
		},
		"determinism.deterministicAlgorithms": func(k *v1alpha1.KernelSpec, _ *v1alpha1.ModelSpec) {
			k.Determinism.DeterministicAlgorithms = false
		},
		"committee.replicas": func(k *v1alpha1.KernelSpec, _ *v1alpha1.ModelSpec) { k.Committee.Replicas = 5 },
		"committee.aggregation": func(k *v1alpha1.KernelSpec, _ *v1alpha1.ModelSpec) {
			k.Committee.Aggregation = v1alpha1.AggregationUnanimous
		},
	}
	seen := map[string]string{base: "base"}
	for name, change := range tests {
		k, m := baseKernel(), baseModel()
		change(k, m)
		d := mustDigest(t, k, m)
		if prev, ok := seen[d]; ok {
			t.Errorf("%s: digest %s equals that of %s", name, d, prev)
		}
		seen[d] = name
	}
}

// TestIrrelevantFieldsKeepDigest changes fields that do not decide the
// output, and spellings that mean the same.
func TestIrrelevantFieldsKeepDigest(t *testing.T) {
	base := mustDigest(t, baseKernel(), baseModel())
	tests := map[string]func(k *v1alpha1.KernelSpec, m *v1alpha1.ModelSpec){
		"modelRef name":   func(k *v1alpha1.KernelSpec, _ *v1alpha1.ModelSpec) { k.ModelRef.Name = "other" },
		"model uri":       func(_ *v1alpha1.KernelSpec, m *v1alpha1.ModelSpec) { m.URI = "https://mirror.example/model.gguf" },
		"model size":      func(_ *v1alpha1.KernelSpec, m *v1alpha1.ModelSpec) { m.SizeBytes = nil },
		"model gpuMemory": func(_ *v1alpha1.KernelSpec, m *v1alpha1.ModelSpec) { m.GPUMemory = resource.MustParse("80Gi") },
		"model credentials": func(_ *v1alpha1.KernelSpec, m *v1alpha1.ModelSpec) {
			m.CredentialsSecretRef = &v1alpha1.SecretKeyReference{Name: "s"}
		},
		"model cachePolicy": func(_ *v1alpha1.KernelSpec, m *v1alpha1.ModelSpec) { m.CachePolicy = v1alpha1.CachePolicyPinned },
		"runtime port":      func(k *v1alpha1.KernelSpec, _ *v1alpha1.ModelSpec) { k.Runtime.Port = ptr(int32(9000)) },
		"pull policy":       func(k *v1alpha1.KernelSpec, _ *v1alpha1.ModelSpec) { k.Runtime.ImagePullPolicy = corev1.PullAlways },
		"gpu memory":        func(k *v1alpha1.KernelSpec, _ *v1alpha1.ModelSpec) { k.GPU.Memory = nil },
		"resources":         func(k *v1alpha1.KernelSpec, _ *v1alpha1.ModelSpec) { k.Resources = nil },
		"timeouts":          func(k *v1alpha1.KernelSpec, _ *v1alpha1.ModelSpec) { k.Timeouts.StartupSeconds = 60 },
		"env order": func(k *v1alpha1.KernelSpec, _ *v1alpha1.ModelSpec) {
			k.Runtime.Env[0], k.Runtime.Env[1] = k.Runtime.Env[1], k.Runtime.Env[0]
		},
		"env secret name": func(k *v1alpha1.KernelSpec, _ *v1alpha1.ModelSpec) {
			k.Runtime.Env[1].ValueFrom.SecretKeyRef.Name = "renamed-secret"
		},
		"products order and duplicates": func(k *v1alpha1.KernelSpec, _ *v1alpha1.ModelSpec) {
			k.GPU.Products = []string{k.GPU.Products[1], k.GPU.Products[0], k.GPU.Products[1]}
		},
	}
	for name, change := range tests {
		k, m := baseKernel(), baseModel()
		change(k, m)
		if d := mustDigest(t, k, m); d != base {
			t.Errorf("%s changed the digest: %s != %s", name, d, base)
		}
	}
}

// TestDefaultsReadTheSame checks a spec and its API-defaulted form agree.
func TestDefaultsReadTheSame(t *testing.T) {
	bare := &v1alpha1.KernelSpec{Runtime: v1alpha1.KernelRuntime{Image: "r:1"}}
	defaulted := &v1alpha1.KernelSpec{
		Runtime:     v1alpha1.KernelRuntime{Image: "r:1", Engine: v1alpha1.EngineBuiltin},
		GPU:         v1alpha1.KernelGPU{Count: 1},
		Determinism: v1alpha1.Determinism{BatchInvariant: ptr(true)},
		Committee:   v1alpha1.Committee{Replicas: 1, Aggregation: v1alpha1.AggregationMajority},
	}
	m1 := &v1alpha1.ModelSpec{SHA256: modelSHA}
	m2 := &v1alpha1.ModelSpec{SHA256: modelSHA, Format: v1alpha1.ModelFormatSafetensors}
	if a, b := mustDigest(t, bare, m1), mustDigest(t, defaulted, m2); a != b {
		t.Errorf("bare %s != defaulted %s", a, b)
	}
}

func TestEncodeRejectsBadInput(t *testing.T) {
	m := baseModel()
	m.SHA256 = strings.ToUpper(modelSHA)
	if _, err := Digest(baseKernel(), m); err == nil || !strings.Contains(err.Error(), "lowercase") {
		t.Errorf("uppercase sha256: %v", err)
	}
	if _, err := Digest(nil, baseModel()); err == nil {
		t.Error("nil kernel accepted")
	}
	k := baseKernel()
	k.Runtime.Env = []corev1.EnvVar{{Name: "X", ValueFrom: &corev1.EnvVarSource{}}}
	if _, err := Digest(k, baseModel()); err == nil || !strings.Contains(err.Error(), `runtime.env "X"`) {
		t.Errorf("empty valueFrom: %v", err)
	}
}

// FuzzArgsAreUnambiguous checks that two different argument lists never
// encode the same, whatever bytes they hold.
func FuzzArgsAreUnambiguous(f *testing.F) {
	f.Add("a", "b\n 1:c", "a b", "")
	f.Add("", "", "", "")
	f.Add("1:x", "y", "1:x y", "")
	f.Fuzz(func(t *testing.T, a, b, c, d string) {
		k1, k2 := baseKernel(), baseKernel()
		k1.Runtime.Args = []string{a, b}
		k2.Runtime.Args = []string{c, d}
		e1, err1 := Encode(k1, baseModel())
		e2, err2 := Encode(k2, baseModel())
		if err1 != nil || err2 != nil {
			t.Fatal(err1, err2)
		}
		if (a == c && b == d) != (string(e1) == string(e2)) {
			t.Fatalf("args %q and %q: encodings equal=%v", []string{a, b}, []string{c, d}, string(e1) == string(e2))
		}
	})
}

// TestFileSetModelDigest: with a file-set Model, the Kernel digest changes
// when any file's digest, size or path changes, and not when the files are
// listed in another order or fetched from elsewhere.
func TestFileSetModelDigest(t *testing.T) {
	fileSet := func() *v1alpha1.ModelSpec {
		return &v1alpha1.ModelSpec{
			BaseURI:   "hf://acme/tiny@main",
			GPUMemory: resource.MustParse("8Gi"),
			Files: []v1alpha1.ModelFile{
				{Path: "config.json", SHA256: strings.Repeat("1", 64), SizeBytes: ptr(int64(2))},
				{Path: "model.safetensors", SHA256: strings.Repeat("2", 64)},
				{Path: "tokenizer.json", SHA256: strings.Repeat("3", 64)},
			},
		}
	}
	base := mustDigest(t, baseKernel(), fileSet())
	if single := mustDigest(t, baseKernel(), baseModel()); single == base {
		t.Fatal("a file-set Model and a single-file Model give one Kernel digest")
	}
	for i := range 3 {
		m := fileSet()
		m.Files[i].SHA256 = strings.Repeat("f", 64)
		if mustDigest(t, baseKernel(), m) == base {
			t.Errorf("changing file %d's sha256 kept the Kernel digest", i)
		}
	}
	for name, edit := range map[string]func(*v1alpha1.ModelSpec){
		"size": func(m *v1alpha1.ModelSpec) { m.Files[0].SizeBytes = ptr(int64(3)) },
		"path": func(m *v1alpha1.ModelSpec) { m.Files[2].Path = "tokenizer/tokenizer.json" },
	} {
		m := fileSet()
		edit(m)
		if mustDigest(t, baseKernel(), m) == base {
			t.Errorf("changing a file's %s kept the Kernel digest", name)
		}
	}
	for name, edit := range map[string]func(*v1alpha1.ModelSpec){
		"file order": func(m *v1alpha1.ModelSpec) { m.Files[0], m.Files[2] = m.Files[2], m.Files[0] },
		"base uri":   func(m *v1alpha1.ModelSpec) { m.BaseURI = "https://mirror.example.com/tiny/" },
		"own uri":    func(m *v1alpha1.ModelSpec) { m.Files[1].URI = "https://cdn.example.com/w.safetensors" },
	} {
		m := fileSet()
		edit(m)
		if got := mustDigest(t, baseKernel(), m); got != base {
			t.Errorf("changing the %s changed the Kernel digest", name)
		}
	}
}
