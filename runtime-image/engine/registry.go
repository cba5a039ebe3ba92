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

package engine

import (
	"context"
	"fmt"
	"sort"
	"sync"
)

// Factory opens an engine on a model snapshot directory. The directory is
// read-only and already verified by the node agent; a factory never fetches.
type Factory func(modelDir string) (Engine, error)

// Starter is implemented by engines that must wait for something before the
// first Generate (the openai engine waits for its sidecar server). The
// runtime calls Start once, bounded by the Kernel's startup timeout, and maps
// a failure to EngineStartTimeout or the error's Kind.
type Starter interface {
	Start(ctx context.Context) error
}

var (
	registryMu sync.RWMutex
	registry   = map[string]Factory{}
)

// Register makes an engine available under name (the Kernel's
// runtime.engine, AIVM_ENGINE in the pod). Engines register from an init in
// their own package, so aivm-runtime picks up whichever it links; it panics on
// a duplicate name, as database/sql does, because that is a build mistake.
func Register(name string, f Factory) {
	registryMu.Lock()
	defer registryMu.Unlock()
	if name == "" || f == nil {
		panic("engine: Register needs a name and a factory")
	}
	if _, dup := registry[name]; dup {
		panic(fmt.Sprintf("engine: Register called twice for %q", name))
	}
	registry[name] = f
}

// Lookup returns the factory registered under name.
func Lookup(name string) (Factory, bool) {
	registryMu.RLock()
	defer registryMu.RUnlock()
	f, ok := registry[name]
	return f, ok
}

// Names lists the registered engines, sorted.
func Names() []string {
	registryMu.RLock()
	defer registryMu.RUnlock()
	names := make([]string, 0, len(registry))
	for n := range registry {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
