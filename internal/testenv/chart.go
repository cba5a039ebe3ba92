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

package testenv

import (
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
)

// Chart is a rendering of the Helm chart: its objects by "Kind/name", or
// "Kind/namespace/name" for objects the chart puts in a namespace of its own
// choosing.
type Chart map[string]*unstructured.Unstructured

// RenderChart renders charts/aivm-operator (release "aivm", namespace
// aivm-system) with the helm binary named by $HELM (`make test` sets it to
// the pinned helm it installs) and the given --set values. It returns
// helm's error output as the error when rendering fails, and skips the test
// when $HELM is not set.
func RenderChart(t testing.TB, set ...string) (Chart, error) {
	t.Helper()
	helm := os.Getenv("HELM")
	if helm == "" {
		t.Skip("HELM is not set; `make test` sets it to the pinned helm")
	}
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	args := []string{"template", "aivm", filepath.Join(root, "charts", "aivm-operator"), "--namespace", "aivm-system"}
	for _, s := range set {
		args = append(args, "--set", s)
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(helm, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, errors.New(stderr.String())
	}
	objs := Chart{}
	dec := utilyaml.NewYAMLOrJSONDecoder(&stdout, 4096)
	for {
		u := &unstructured.Unstructured{}
		if err := dec.Decode(&u.Object); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			t.Fatalf("decode the rendered chart: %v", err)
		}
		if len(u.Object) == 0 {
			continue
		}
		key := u.GetKind() + "/" + u.GetName()
		if ns := u.GetNamespace(); ns != "" {
			key = u.GetKind() + "/" + ns + "/" + u.GetName()
		}
		objs[key] = u
	}
	return objs, nil
}

// Object converts the rendered object key ("Kind/name" or
// "Kind/namespace/name") into into, failing
// the test when the chart has no such object.
func (c Chart) Object(t testing.TB, key string, into any) {
	t.Helper()
	u, ok := c[key]
	if !ok {
		keys := make([]string, 0, len(c))
		for k := range c {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		t.Fatalf("the chart renders no %s; it renders %s", key, strings.Join(keys, ", "))
	}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, into); err != nil {
		t.Fatalf("convert %s: %v", key, err)
	}
}

// ConfigObjects decodes the objects of one file under config/ (a kustomize
// base, before kustomize names and places them) by "Kind/name".
func ConfigObjects(t testing.TB, elem ...string) Chart {
	t.Helper()
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	name := filepath.Join(elem...)
	data, err := os.ReadFile(filepath.Join(root, "config", name))
	if err != nil {
		t.Fatal(err)
	}
	objs := Chart{}
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	for {
		u := &unstructured.Unstructured{}
		if err := dec.Decode(&u.Object); err != nil {
			if errors.Is(err, io.EOF) {
				return objs
			}
			t.Fatalf("decode config/%s: %v", name, err)
		}
		if len(u.Object) > 0 {
			objs[u.GetKind()+"/"+u.GetName()] = u
		}
	}
}
