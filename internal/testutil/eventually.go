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

// Package testutil holds what the tests of every package share: builders
// for the project's objects (see builders.go) and one polling helper.
package testutil

import (
	"testing"
	"time"
)

// Bounds of Eventually.
const (
	// EventuallyTimeout is how long Eventually polls before it fails the test.
	EventuallyTimeout = 30 * time.Second
	// EventuallyPoll is the time between two polls.
	EventuallyPoll = 25 * time.Millisecond
)

// Eventually polls fn every EventuallyPoll until it returns nil, and fails
// the test with fn's last error if that does not happen within
// EventuallyTimeout.
func Eventually(t testing.TB, fn func() error) {
	t.Helper()
	deadline := time.Now().Add(EventuallyTimeout)
	tick := time.NewTicker(EventuallyPoll)
	defer tick.Stop()
	for {
		err := fn()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %s: %v", EventuallyTimeout, err)
		}
		<-tick.C
	}
}
