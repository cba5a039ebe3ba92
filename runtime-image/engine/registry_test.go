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
	"slices"
	"testing"
)

func TestRegisterLookupAndDuplicates(t *testing.T) {
	f := func(string) (Engine, error) { return nil, nil }
	Register("registry-test", f)
	if _, ok := Lookup("registry-test"); !ok {
		t.Fatal("registered engine not found")
	}
	if _, ok := Lookup("absent"); ok {
		t.Error("Lookup found an engine nobody registered")
	}
	if !slices.Contains(Names(), "registry-test") || !slices.IsSorted(Names()) {
		t.Errorf("Names() = %v", Names())
	}
	defer func() {
		if recover() == nil {
			t.Error("a second Register under the same name did not panic")
		}
	}()
	Register("registry-test", f)
}
