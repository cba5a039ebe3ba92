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
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ModelFormat is the serialization format of a model's weights.
// +kubebuilder:validation:Enum=safetensors;gguf;onnx;other
type ModelFormat string

// Model formats.
const (
	ModelFormatSafetensors ModelFormat = "safetensors"
	ModelFormatGGUF        ModelFormat = "gguf"
	ModelFormatONNX        ModelFormat = "onnx"
	ModelFormatOther       ModelFormat = "other"
)

// CachePolicy says whether node caches may evict a model.
// +kubebuilder:validation:Enum=Evictable;Pinned
type CachePolicy string

// Cache policies.
const (
	// CachePolicyEvictable lets least-recently-used eviction remove the model
	// from a node cache when no running job uses it.
	CachePolicyEvictable CachePolicy = "Evictable"
	// CachePolicyPinned keeps the model in every node cache that holds it.
	CachePolicyPinned CachePolicy = "Pinned"
)

// MaxModelFiles is the most files a Model's file set may list.
const MaxModelFiles = 512

// ModelSpec describes a model's weights: where they are and what they must
// hash to. A Model is one file (uri and sha256) or a file set (files,
// resolved against baseURI unless a file names its own uri), never both.
// +kubebuilder:validation:XValidation:rule="!(has(self.uri) && has(self.files))",fieldPath=".files",reason="FieldValueForbidden",message="files and uri are mutually exclusive: set uri and sha256 for one file, or files for a file set"
// +kubebuilder:validation:XValidation:rule="has(self.uri) || has(self.files)",fieldPath=".uri",reason="FieldValueRequired",message="one of uri (with sha256) or files is required"
// +kubebuilder:validation:XValidation:rule="!has(self.uri) || has(self.sha256)",fieldPath=".sha256",reason="FieldValueRequired",message="sha256 is required with uri"
// +kubebuilder:validation:XValidation:rule="!has(self.sha256) || has(self.uri)",fieldPath=".sha256",reason="FieldValueForbidden",message="sha256 goes with uri; a file set gives each file's sha256 in files"
// +kubebuilder:validation:XValidation:rule="!has(self.sizeBytes) || has(self.uri)",fieldPath=".sizeBytes",reason="FieldValueForbidden",message="sizeBytes goes with uri; a file set gives each file's sizeBytes in files"
// +kubebuilder:validation:XValidation:rule="!has(self.baseURI) || has(self.files)",fieldPath=".baseURI",reason="FieldValueForbidden",message="baseURI applies only to files"
// +kubebuilder:validation:XValidation:rule="!has(self.files) || has(self.baseURI) || self.files.all(f, has(f.uri))",fieldPath=".files",reason="FieldValueRequired",message="every file needs its own uri when baseURI is not set"
// +kubebuilder:validation:XValidation:rule="!has(self.credentialsSecretRef) || ((!has(self.uri) || self.uri.startsWith('https://') || self.uri.startsWith('hf://')) && (!has(self.baseURI) || self.baseURI.startsWith('https://') || self.baseURI.startsWith('hf://')) && (!has(self.files) || self.files.all(f, !has(f.uri) || f.uri.startsWith('https://') || f.uri.startsWith('hf://'))))",fieldPath=".credentialsSecretRef",reason="FieldValueForbidden",message="credentialsSecretRef applies only to https:// and hf:// sources: a bearer token is never sent over plain http"
type ModelSpec struct {
	// uri is where the weights of a single-file Model are: https://host/path,
	// http://host/path, file:///absolute/path (a path on every node), or
	// hf://<org>/<repo>/<file>@<revision> (resolved against the Hugging Face
	// compatible endpoint the operator is configured with). Exclusive with files.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="self.startsWith('https://') || self.startsWith('http://') || self.startsWith('file:///') || self.startsWith('hf://')",message="uri must start with https://, http://, file:/// or hf://"
	// +kubebuilder:validation:XValidation:rule="!self.startsWith('hf://') || self.matches('^hf://[A-Za-z0-9._-]+/[A-Za-z0-9._-]+/[^@]+@[A-Za-z0-9._/-]+$')",message="hf:// uri must be hf://<org>/<repo>/<file>@<revision>"
	URI string `json:"uri,omitempty"`

	// sha256 is the lowercase hex SHA-256 digest of the single weights file
	// named by uri. Nothing runs on bytes that do not hash to it. Immutable.
	// +optional
	// +kubebuilder:validation:MinLength=64
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:Pattern=`^[a-f0-9]{64}$`
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="sha256 is immutable"
	SHA256 string `json:"sha256,omitempty"`

	// baseURI is what the paths of files without a uri of their own resolve
	// against: https://host/dir/, http://host/dir/, file:///dir/, or
	// hf://<org>/<repo>@<revision> (each path is fetched as the hub serves
	// resolve/<revision>/<path>). Only with files.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="self.startsWith('https://') || self.startsWith('http://') || self.startsWith('file:///') || self.startsWith('hf://')",message="baseURI must start with https://, http://, file:/// or hf://"
	// +kubebuilder:validation:XValidation:rule="!self.startsWith('hf://') || self.matches('^hf://[A-Za-z0-9._-]+/[A-Za-z0-9._-]+@[A-Za-z0-9._/-]+$')",message="hf:// baseURI must be hf://<org>/<repo>@<revision>"
	BaseURI string `json:"baseURI,omitempty"`

	// files is a file set, such as a Hugging Face snapshot directory
	// (config.json, *.safetensors shards, tokenizer.json, ...): each file's
	// path in the model directory and its digest. Exclusive with uri. The
	// Model's identity is status.modelDigest, a digest over this list.
	// +optional
	// +listType=map
	// +listMapKey=path
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=512
	Files []ModelFile `json:"files,omitempty"`

	// format is the serialization format of the weights.
	// +optional
	// +kubebuilder:default=safetensors
	Format ModelFormat `json:"format,omitempty"`

	// sizeBytes is the size of the single weights file named by uri. When
	// set, a download of any other size is rejected before hashing completes.
	// +optional
	// +kubebuilder:validation:Minimum=1
	SizeBytes *int64 `json:"sizeBytes,omitempty"`

	// gpuMemory is the GPU memory the model needs once loaded (weights plus
	// runtime overhead), across all GPUs a kernel gives it.
	// +required
	// +kubebuilder:validation:XValidation:rule="!isQuantity(string(self)) || quantity(string(self)).isGreaterThan(quantity('0'))",message="gpuMemory must be greater than zero"
	GPUMemory resource.Quantity `json:"gpuMemory"`

	// credentialsSecretRef names a Secret in the Model's namespace whose key
	// holds a bearer token for the source. Only https:// and hf:// sources
	// take one: the token is never sent over plain http.
	// +optional
	CredentialsSecretRef *SecretKeyReference `json:"credentialsSecretRef,omitempty"`

	// cachePolicy says whether node caches may evict the model when no job uses it.
	// +optional
	// +kubebuilder:default=Evictable
	CachePolicy CachePolicy `json:"cachePolicy,omitempty"`

	// prefetch makes node agents on matching nodes fetch the model ahead of jobs.
	// +optional
	Prefetch *ModelPrefetch `json:"prefetch,omitempty"`
}

// ModelFile is one file of a Model's file set.
type ModelFile struct {
	// path is where the file lies in the model directory: relative, with
	// '/' between segments, and no empty, '.' or '..' segment.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=1024
	// +kubebuilder:validation:XValidation:rule="!self.startsWith('/')",message="path must be relative, not start with '/'"
	// +kubebuilder:validation:XValidation:rule="!self.contains('\\\\')",message="path must use '/', not a backslash"
	// +kubebuilder:validation:XValidation:rule="!self.contains('//')",message="path must not contain '//'"
	// +kubebuilder:validation:XValidation:rule="!self.endsWith('/')",message="path must name a file, not end with '/'"
	// +kubebuilder:validation:XValidation:rule="self != '..' && !self.startsWith('../') && !self.endsWith('/..') && !self.contains('/../')",message="path must not contain a '..' segment"
	// +kubebuilder:validation:XValidation:rule="self != '.' && !self.startsWith('./') && !self.endsWith('/.') && !self.contains('/./')",message="path must not contain a '.' segment"
	// +kubebuilder:validation:XValidation:rule="!self.contains('\\u0000')",message="path must not contain a NUL character"
	Path string `json:"path"`

	// sha256 is the lowercase hex SHA-256 digest of the file. For a file
	// stored with Git LFS on the Hugging Face hub it is the LFS oid the hub
	// shows.
	// +required
	// +kubebuilder:validation:MinLength=64
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:Pattern=`^[a-f0-9]{64}$`
	SHA256 string `json:"sha256"`

	// sizeBytes is the file's size. When set, a download of any other size is
	// rejected, and the size enters status.modelDigest.
	// +optional
	// +kubebuilder:validation:Minimum=0
	SizeBytes *int64 `json:"sizeBytes,omitempty"`

	// uri is where this file is, when it is not at path under baseURI:
	// https://, http://, file:/// or hf://<org>/<repo>/<file>@<revision>.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="self.startsWith('https://') || self.startsWith('http://') || self.startsWith('file:///') || self.startsWith('hf://')",message="uri must start with https://, http://, file:/// or hf://"
	// +kubebuilder:validation:XValidation:rule="!self.startsWith('hf://') || self.matches('^hf://[A-Za-z0-9._-]+/[A-Za-z0-9._-]+/[^@]+@[A-Za-z0-9._/-]+$')",message="hf:// uri must be hf://<org>/<repo>/<file>@<revision>"
	URI string `json:"uri,omitempty"`
}

// SecretKeyReference names a key of a Secret in the referring object's namespace.
type SecretKeyReference struct {
	// name is the Secret's name.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
	// key is the key within the Secret.
	// +optional
	// +kubebuilder:default=token
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Key string `json:"key,omitempty"`
}

// ModelPrefetch selects nodes that fetch a model before any job needs it.
type ModelPrefetch struct {
	// nodeSelector selects the nodes whose agents prefetch the model.
	// +required
	NodeSelector metav1.LabelSelector `json:"nodeSelector"`
}

// ModelStatus is the observed state of a Model.
type ModelStatus struct {
	// conditions: Verified (a node checked the bytes against sha256) and
	// Ready (the source is reachable and nothing contradicts the digest).
	// +optional
	// +listType=map
	// +listMapKey=type
	// +kubebuilder:validation:MaxItems=8
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// observedGeneration is the generation the status was computed for.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// cachedNodes is the number of nodes holding the verified bytes in their cache.
	// +optional
	CachedNodes int32 `json:"cachedNodes,omitempty"`

	// modelDigest is the Model's identity, "sha256" hex without prefix: for
	// a single file its sha256; for a file set the sha256 of the canonical
	// manifest (docs/models.md). Node caches, Kernel digests and job pods
	// name the Model by it.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	ModelDigest string `json:"modelDigest,omitempty"`

	// fileCount is the number of files in the Model: 1 for a single file.
	// +optional
	FileCount int32 `json:"fileCount,omitempty"`

	// totalSizeBytes is the size of all files, when every size is known
	// (from the spec or the source).
	// +optional
	TotalSizeBytes *int64 `json:"totalSizeBytes,omitempty"`
}

// Model is a set of weights (one file or a file set) identified by SHA-256 digests.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=mdl,categories=aivm
// +kubebuilder:printcolumn:name="Format",type=string,JSONPath=`.spec.format`
// +kubebuilder:printcolumn:name="GPU-Memory",type=string,JSONPath=`.spec.gpuMemory`
// +kubebuilder:printcolumn:name="Verified",type=string,JSONPath=`.status.conditions[?(@.type=="Verified")].status`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`
// +kubebuilder:printcolumn:name="Files",type=integer,JSONPath=`.status.fileCount`
// +kubebuilder:printcolumn:name="Size",type=integer,format=int64,JSONPath=`.status.totalSizeBytes`
// +kubebuilder:printcolumn:name="Cached",type=integer,JSONPath=`.status.cachedNodes`
// +kubebuilder:printcolumn:name="Digest",type=string,JSONPath=`.status.modelDigest`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type Model struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec describes the weights.
	// +required
	Spec ModelSpec `json:"spec"`
	// status is the observed state.
	// +optional
	Status ModelStatus `json:"status,omitempty"`
}

// ModelList is a list of Models.
// +kubebuilder:object:root=true
type ModelList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	// items are the Models.
	Items []Model `json:"items"`
}

func init() { register(&Model{}, &ModelList{}) }
