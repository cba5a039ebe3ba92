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

package nodeagent_test

import (
	"fmt"
	"testing"

	"github.com/aivm-dev/aivm-operator/internal/testutil"
	"github.com/aivm-dev/aivm-operator/nodeagent/simulate"
)

// waitHandled waits until every injected event was handled: none is
// pending and the one consumer waits for the next.
func waitHandled(t *testing.T, n *simulate.Node) {
	t.Helper()
	eventually(t, func() error {
		if p, w := n.PendingEvents(), n.EventWaiters(); p != 0 || w != 1 {
			return fmt.Errorf("%d events pending, %d waiters, want 0 and 1", p, w)
		}
		return nil
	})
}

func ptr[T any](v T) *T { return &v }

// eventually is testutil.Eventually.
func eventually(t testing.TB, fn func() error) {
	t.Helper()
	testutil.Eventually(t, fn)
}
