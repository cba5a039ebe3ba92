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

// Package discoverytest opens NVML discovery over go-nvml's mock servers
// (through nodeagent/simulate) for the tests of the node agent's packages.
package discoverytest

import (
	"testing"

	"github.com/NVIDIA/go-nvml/pkg/nvml"

	"github.com/aivm-dev/aivm-operator/nodeagent/discovery"
	"github.com/aivm-dev/aivm-operator/nodeagent/simulate"
)

// NewNode returns a simulated node of the named profile ("dgxa100", ...).
func NewNode(t testing.TB, profile string, opts ...simulate.Option) *simulate.Node {
	t.Helper()
	n, err := simulate.New(profile, opts...)
	if err != nil {
		t.Fatalf("simulate.New(%q): %v", profile, err)
	}
	return n
}

// Open opens NVML discovery over lib and closes it when the test ends.
func Open(t testing.TB, lib nvml.Interface, opts discovery.Options) *discovery.Discoverer {
	t.Helper()
	d, err := discovery.Open(lib, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = d.Close() })
	return d
}
