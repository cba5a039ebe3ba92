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

package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// EngineBackend is how a kernel's runtime produces output.
// +kubebuilder:validation:Enum=builtin;openai
type EngineBackend string

// Engine backends.
const (
	// EngineBuiltin is the deterministic pure-Go reference engine inside aivm-runtime.
	EngineBuiltin EngineBackend = "builtin"
	// EngineOpenAI is an OpenAI-compatible server (vLLM, llama.cpp, ...) that
	// aivm-runtime drives over HTTP on runtime.port.
	EngineOpenAI EngineBackend = "openai"
)

// DType is the numeric type the engine computes in.
// +kubebuilder:validation:Enum=float32;float16;bfloat16;int8;int4
type DType string

// Numeric types.
const (
	DTypeFloat32  DType = "float32"
	DTypeFloat16  DType = "float16"
	DTypeBFloat16 DType = "bfloat16"
	DTypeInt8     DType = "int8"
	DTypeInt4     DType = "int4"
)

// AggregationPolicy decides how a committee's outputs become one result.
// +kubebuilder:validation:Enum=majority;unanimous;first
type AggregationPolicy string

// Aggregation policies.
const (
	// AggregationMajority accepts the output digest that more than half the replicas produced.
	AggregationMajority AggregationPolicy = "majority"
	// AggregationUnanimous accepts an output only when every replica produced it.
	AggregationUnanimous AggregationPolicy = "unanimous"
	// AggregationFirst accepts the first replica's output.
	AggregationFirst AggregationPolicy = "first"
)

// LocalObjectReference names an object in the referring object's namespace.
type LocalObjectReference struct {
	// name is the object's name.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
}

// KernelSpec is a model plus everything needed to run it reproducibly.
// +kubebuilder:validation:XValidation:rule="!has(self.gpu.migProfile) || self.gpu.count == 1",fieldPath=".gpu.migProfile",reason="FieldValueInvalid",message="migProfile requires gpu.count 1"
// +kubebuilder:validation:XValidation:rule="self.committee.aggregation != 'unanimous' || self.committee.replicas >= 2",fieldPath=".committee.replicas",reason="FieldValueInvalid",message="committee.aggregation unanimous needs committee.replicas of at least 2"
type KernelSpec struct {
	// modelRef names the Model in the Kernel's namespace.
	// +required
	ModelRef LocalObjectReference `json:"modelRef"`

	// runtime is the container that runs the model.
	// +required
	Runtime KernelRuntime `json:"runtime"`

	// gpu is what each replica needs from GPUs.
	// +optional
	// +kubebuilder:default={count: 1}
	GPU KernelGPU `json:"gpu,omitempty"`

	// nodeSelector restricts the kernel's replicas to nodes with these
	// labels, e.g. a GPU pool's label.
	// +optional
	// +kubebuilder:validation:MaxProperties=32
	NodeSelector map[string]string `json:"nodeSelector,omitempty"`

	// tolerations let the kernel's replicas run on nodes with matching
	// taints (GPU pools are commonly tainted); the job pods carry them too.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=32
	Tolerations []corev1.Toleration `json:"tolerations,omitempty"`

	// resources are the CPU and memory each replica's pod requests.
	// +optional
	Resources *KernelResources `json:"resources,omitempty"`

	// determinism fixes what makes outputs reproducible across nodes.
	// +optional
	// +kubebuilder:default={}
	Determinism Determinism `json:"determinism,omitempty"`

	// committee runs each job on several nodes and compares their outputs.
	// +optional
	// +kubebuilder:default={replicas: 1}
	Committee Committee `json:"committee,omitempty"`

	// timeouts bound the phases of a job.
	// +optional
	// +kubebuilder:default={}
	Timeouts KernelTimeouts `json:"timeouts,omitempty"`
}

// KernelRuntime is the container image and engine of a kernel.
// +kubebuilder:validation:XValidation:rule="self.engine != 'openai' || has(self.port)",fieldPath=".port",reason="FieldValueRequired",message="port is required for the openai engine"
type KernelRuntime struct {
	// image is the runtime container image; pin it by digest
	// (repo@sha256:...) so every node runs the same bytes.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=512
	// +kubebuilder:validation:XValidation:rule="!self.contains(' ')",message="image must not contain spaces"
	Image string `json:"image"`

	// engine is the backend that produces output.
	// +optional
	// +kubebuilder:default=builtin
	Engine EngineBackend `json:"engine,omitempty"`

	// args are passed to the engine.
	// +optional
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=1024
	Args []string `json:"args,omitempty"`

	// env sets environment variables in the runtime container.
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=64
	Env []corev1.EnvVar `json:"env,omitempty"`

	// port is the engine's HTTP port inside the pod (openai engine).
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	Port *int32 `json:"port,omitempty"`

	// imagePullPolicy is the pull policy of the runtime image.
	// +optional
	// +kubebuilder:validation:Enum=Always;IfNotPresent;Never
	ImagePullPolicy corev1.PullPolicy `json:"imagePullPolicy,omitempty"`
}

// KernelGPU is what a kernel replica needs from GPUs.
type KernelGPU struct {
	// count is the number of GPUs per replica, all on one node.
	// +optional
	// +kubebuilder:default=1
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=16
	Count int32 `json:"count,omitempty"`

	// memory is the free memory each GPU must have; defaults to the model's
	// gpuMemory divided by count.
	// +optional
	// +kubebuilder:validation:XValidation:rule="!isQuantity(string(self)) || quantity(string(self)).isGreaterThan(quantity('0'))",message="gpu.memory must be greater than zero"
	Memory *resource.Quantity `json:"memory,omitempty"`

	// products restricts placement to GPUs whose NVML product name is one of
	// these (for example "NVIDIA H100 80GB HBM3"). Empty means any.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=128
	Products []string `json:"products,omitempty"`

	// minComputeCapability is the lowest CUDA compute capability accepted, as "major.minor".
	// +optional
	// +kubebuilder:validation:Pattern=`^[0-9]{1,2}\.[0-9]{1,2}$`
	MinComputeCapability string `json:"minComputeCapability,omitempty"`

	// migProfile asks for a MIG instance of this profile (for example
	// "1g.10gb") instead of a whole GPU.
	// +optional
	// +kubebuilder:validation:Pattern=`^[1-9][0-9]?g\.[1-9][0-9]*gb(\+me)?$`
	MIGProfile string `json:"migProfile,omitempty"`
}

// KernelResources are the CPU and memory requests of a replica's pod.
type KernelResources struct {
	// cpu is the CPU request; above zero.
	// +optional
	// +kubebuilder:validation:XValidation:rule="!isQuantity(string(self)) || quantity(string(self)).isGreaterThan(quantity('0'))",message="resources.cpu must be greater than zero"
	CPU *resource.Quantity `json:"cpu,omitempty"`
	// memory is the memory request; above zero.
	// +optional
	// +kubebuilder:validation:XValidation:rule="!isQuantity(string(self)) || quantity(string(self)).isGreaterThan(quantity('0'))",message="resources.memory must be greater than zero"
	Memory *resource.Quantity `json:"memory,omitempty"`
}

// Determinism fixes the settings that make outputs reproducible.
type Determinism struct {
	// seed seeds every random choice of the engine; a job's parameters.seed overrides it.
	// +optional
	// +kubebuilder:validation:Minimum=0
	Seed *int64 `json:"seed,omitempty"`

	// dtype is the numeric type the engine computes in.
	// +optional
	DType DType `json:"dtype,omitempty"`

	// batchInvariant makes results independent of how requests are batched.
	// Defaults to true, also when other determinism fields are set.
	// +optional
	// +kubebuilder:default=true
	BatchInvariant *bool `json:"batchInvariant,omitempty"`

	// deterministicAlgorithms forces deterministic GPU kernels where the engine offers them.
	// +optional
	DeterministicAlgorithms bool `json:"deterministicAlgorithms,omitempty"`
}

// Committee says how many replicas run each job and how their outputs combine.
type Committee struct {
	// replicas is the number of nodes that run each job.
	// +optional
	// +kubebuilder:default=1
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=9
	Replicas int32 `json:"replicas,omitempty"`

	// aggregation decides the result from the replicas' outputs.
	// +optional
	// +kubebuilder:default=majority
	Aggregation AggregationPolicy `json:"aggregation,omitempty"`
}

// KernelTimeouts bound the phases of a job.
type KernelTimeouts struct {
	// startupSeconds bounds model fetch plus engine start.
	// +optional
	// +kubebuilder:default=900
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=86400
	StartupSeconds int32 `json:"startupSeconds,omitempty"`

	// inferenceSeconds bounds one inference.
	// +optional
	// +kubebuilder:default=300
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=86400
	InferenceSeconds int32 `json:"inferenceSeconds,omitempty"`
}

// KernelStatus is the observed state of a Kernel.
type KernelStatus struct {
	// conditions: Ready (the Model is ready and the runtime is valid).
	// +optional
	// +listType=map
	// +listMapKey=type
	// +kubebuilder:validation:MaxItems=8
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// observedGeneration is the generation the status was computed for.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// kernelDigest is "sha256:<hex>" over the canonical encoding of everything
	// that decides the output (see docs/kernel-digest.md): the kernel's AIVM identity.
	// +optional
	// +kubebuilder:validation:MaxLength=71
	KernelDigest string `json:"kernelDigest,omitempty"`

	// modelDigest is the sha256 of the Model the digest was computed with.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	ModelDigest string `json:"modelDigest,omitempty"`
}

// Kernel is a model plus its runtime, GPU needs and determinism settings.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=krn,categories=aivm
// +kubebuilder:printcolumn:name="Model",type=string,JSONPath=`.spec.modelRef.name`
// +kubebuilder:printcolumn:name="Engine",type=string,JSONPath=`.spec.runtime.engine`
// +kubebuilder:printcolumn:name="GPUs",type=integer,JSONPath=`.spec.gpu.count`
// +kubebuilder:printcolumn:name="Replicas",type=integer,JSONPath=`.spec.committee.replicas`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`
// +kubebuilder:printcolumn:name="Digest",type=string,JSONPath=`.status.kernelDigest`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type Kernel struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec describes the kernel.
	// +required
	Spec KernelSpec `json:"spec"`
	// status is the observed state.
	// +optional
	Status KernelStatus `json:"status,omitempty"`
}

// KernelList is a list of Kernels.
// +kubebuilder:object:root=true
type KernelList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	// items are the Kernels.
	Items []Kernel `json:"items"`
}

func init() { register(&Kernel{}, &KernelList{}) }
