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

package builtin

import "github.com/aivm-dev/aivm-operator/runtime-image/engine"

// EngineName is the name a Kernel's spec.runtime.engine gives this engine
// (AIVM_ENGINE in the pod); Name adds the version for results.
const EngineName = "builtin"

func init() {
	engine.Register(EngineName, func(modelDir string) (engine.Engine, error) {
		// Threads 0: GOMAXPROCS, which the Go runtime sets from the
		// container's CPU limit; the output does not depend on it.
		return Open(modelDir, Options{})
	})
}
