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

// Package kerneldigest computes a Kernel's AIVM identity: a sha256 over a
// canonical encoding of everything in the Kernel and its Model that decides
// what the kernel outputs. The same content gives the same digest on any
// cluster; a change to any of those fields gives a new digest.
//
// # Encoding (version 1)
//
// The encoding is a sequence of lines, each ending in "\n". The first line is
// the version tag:
//
//	aivm.dev/kernel-digest/v1
//
// Every following line is a field, in the fixed order of the table below:
// the field name, one space, and the value. A value is one of:
//
//	string   <decimal byte length>:<bytes>     e.g. 7:builtin
//	absent   -                                 an unset optional field
//	list     #<decimal item count>             followed by one line per item,
//	                                           each a space and the item's
//	                                           strings separated by spaces
//
// Integers are written as strings of their decimal form, booleans as the
// strings "true" and "false". Length prefixes make the encoding unambiguous
// whatever bytes the strings hold (newlines included). The fields are:
//
//	model.sha256                        the Model's modelDigest, lowercase hex:
//	                                    spec.sha256 for a single file, the
//	                                    sha256 of the canonical manifest for a
//	                                    file set (internal/modeldigest)
//	model.format                        Model spec.format ("safetensors" when empty)
//	runtime.image                       spec.runtime.image, exactly as written
//	runtime.engine                      spec.runtime.engine ("builtin" when empty)
//	runtime.args                        list, in order; one string per item
//	runtime.env                         list sorted by name (byte order); items
//	                                    of three strings: name, source, detail.
//	                                    source is "value" (detail: the value),
//	                                    "configMapKeyRef" or "secretKeyRef"
//	                                    (detail: the key), "fieldRef" (detail:
//	                                    the field path) or "resourceFieldRef"
//	                                    (detail: the resource)
//	gpu.count                           spec.gpu.count (1 when 0)
//	gpu.products                        list, sorted and deduplicated; one string per item
//	gpu.minComputeCapability            string, empty when unset
//	gpu.migProfile                      string, empty when unset
//	determinism.seed                    decimal string, or absent
//	determinism.dtype                   string, empty when unset
//	determinism.batchInvariant          "true" or "false" ("true" when unset)
//	determinism.deterministicAlgorithms "true" or "false"
//	committee.replicas                  spec.committee.replicas (1 when 0)
//	committee.aggregation               spec.committee.aggregation ("majority" when empty)
//
// The digest is "sha256:" followed by the lowercase hex SHA-256 of the
// encoding.
//
// Fields whose zero value the API schema forbids (engine, GPU count,
// replicas, aggregation, model format) and an unset batchInvariant are
// replaced by their API defaults, so a spec reads the same before and after
// the API server defaults it.
//
// Left out, because they do not decide the output: object names,
// namespaces, UIDs and labels; the Model's URIs, credentials, cache and
// prefetch settings (the modelDigest fixes the bytes); runtime port and
// image pull policy; GPU memory, CPU and memory requests; timeouts. The
// values behind configMapKeyRef and secretKeyRef environment variables are
// not read: the identity records where they come from, not what they hold.
package kerneldigest

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/aivm-dev/aivm-operator/api/v1alpha1"
	"github.com/aivm-dev/aivm-operator/internal/modeldigest"
	"github.com/aivm-dev/aivm-operator/internal/sha256hex"
)

// Version is the first line of the encoding; a new encoding gets a new one.
const Version = "aivm.dev/kernel-digest/v1"

// Prefix starts every digest.
const Prefix = sha256hex.Prefix

// Digest returns "sha256:<hex>" over Encode(kernel, model).
func Digest(kernel *v1alpha1.KernelSpec, model *v1alpha1.ModelSpec) (string, error) {
	enc, err := Encode(kernel, model)
	if err != nil {
		return "", err
	}
	return Prefix + sha256hex.Of(enc), nil
}

// Encode returns the canonical encoding described in the package
// documentation. It fails when the model's sha256 is not 64 lowercase
// hexadecimal characters or an environment variable has no recognized
// source.
func Encode(kernel *v1alpha1.KernelSpec, model *v1alpha1.ModelSpec) ([]byte, error) {
	if kernel == nil || model == nil {
		return nil, fmt.Errorf("kernel and model specs are required")
	}
	modelDigest, err := modeldigest.Of(model)
	if err != nil {
		return nil, err
	}
	env, err := envItems(kernel.Runtime.Env)
	if err != nil {
		return nil, err
	}
	var e encoder
	e.b.WriteString(Version)
	e.b.WriteByte('\n')

	// The field keeps its v1 name: for a single-file Model the modelDigest
	// is its sha256, so those digests did not change with file sets.
	e.str("model.sha256", modelDigest)
	e.str("model.format", orDefault(string(model.Format), string(v1alpha1.ModelFormatSafetensors)))

	rt := kernel.Runtime
	e.str("runtime.image", rt.Image)
	e.str("runtime.engine", orDefault(string(rt.Engine), string(v1alpha1.EngineBuiltin)))
	args := make([][]string, len(rt.Args))
	for i, a := range rt.Args {
		args[i] = []string{a}
	}
	e.list("runtime.args", args)
	e.list("runtime.env", env)

	gpu := kernel.GPU
	e.str("gpu.count", strconv.FormatInt(int64(max(gpu.Count, 1)), 10))
	e.list("gpu.products", sortedSet(gpu.Products))
	e.str("gpu.minComputeCapability", gpu.MinComputeCapability)
	e.str("gpu.migProfile", gpu.MIGProfile)

	d := kernel.Determinism
	if d.Seed != nil {
		e.str("determinism.seed", strconv.FormatInt(*d.Seed, 10))
	} else {
		e.absent("determinism.seed")
	}
	e.str("determinism.dtype", string(d.DType))
	e.str("determinism.batchInvariant", strconv.FormatBool(d.BatchInvariant == nil || *d.BatchInvariant))
	e.str("determinism.deterministicAlgorithms", strconv.FormatBool(d.DeterministicAlgorithms))

	c := kernel.Committee
	e.str("committee.replicas", strconv.FormatInt(int64(max(c.Replicas, 1)), 10))
	e.str("committee.aggregation", orDefault(string(c.Aggregation), string(v1alpha1.AggregationMajority)))
	return []byte(e.b.String()), nil
}

// envItems encodes environment variables as (name, source, detail), sorted
// by name. Object names behind references are left out: they differ
// between clusters without changing what the variable means.
func envItems(env []corev1.EnvVar) ([][]string, error) {
	items := make([][]string, 0, len(env))
	for _, v := range env {
		var src, detail string
		switch f := v.ValueFrom; {
		case f == nil:
			src, detail = "value", v.Value
		case f.ConfigMapKeyRef != nil:
			src, detail = "configMapKeyRef", f.ConfigMapKeyRef.Key
		case f.SecretKeyRef != nil:
			src, detail = "secretKeyRef", f.SecretKeyRef.Key
		case f.FieldRef != nil:
			src, detail = "fieldRef", f.FieldRef.FieldPath
		case f.ResourceFieldRef != nil:
			src, detail = "resourceFieldRef", f.ResourceFieldRef.Resource
		default:
			return nil, fmt.Errorf("runtime.env %q: valueFrom names no source this digest version knows", v.Name)
		}
		items = append(items, []string{v.Name, src, detail})
	}
	sort.SliceStable(items, func(i, j int) bool { return items[i][0] < items[j][0] })
	return items, nil
}

type encoder struct {
	b strings.Builder
}

func (e *encoder) str(name, v string) {
	e.b.WriteString(name)
	e.b.WriteByte(' ')
	e.value(v)
	e.b.WriteByte('\n')
}

func (e *encoder) absent(name string) {
	e.b.WriteString(name)
	e.b.WriteString(" -\n")
}

func (e *encoder) list(name string, items [][]string) {
	e.b.WriteString(name)
	e.b.WriteString(" #")
	e.b.WriteString(strconv.Itoa(len(items)))
	e.b.WriteByte('\n')
	for _, it := range items {
		for _, s := range it {
			e.b.WriteByte(' ')
			e.value(s)
		}
		e.b.WriteByte('\n')
	}
}

func (e *encoder) value(v string) {
	e.b.WriteString(strconv.Itoa(len(v)))
	e.b.WriteByte(':')
	e.b.WriteString(v)
}

func orDefault(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

func sortedSet(in []string) [][]string {
	s := append([]string(nil), in...)
	sort.Strings(s)
	out := make([][]string, 0, len(s))
	for i, v := range s {
		if i > 0 && v == s[i-1] {
			continue
		}
		out = append(out, []string{v})
	}
	return out
}
