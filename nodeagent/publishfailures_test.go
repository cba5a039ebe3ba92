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

package nodeagent

import (
	"errors"
	"strings"
	"testing"
	"time"

	clocktesting "k8s.io/utils/clock/testing"
)

// TestMergeCacheErrorsSkipsNil: the node agent merges the CSI driver's
// refusals with the cache manager's failures, and runs without a cache
// manager when no model cache is configured.
func TestMergeCacheErrorsSkipsNil(t *testing.T) {
	refused := NewPublishFailures(clocktesting.NewFakePassiveClock(time.Unix(1700000000, 0)))
	digest := strings.Repeat("a", 64)
	refused.PublishFailed("ns/m", digest, "DigestMismatch", "", errors.New("bytes differ"))
	got := MergeCacheErrors(nil, refused).ModelCacheErrors()
	if len(got) != 1 || got[0].Digest != digest || got[0].Reason != "DigestMismatch" {
		t.Errorf("merged %+v, want the one refusal", got)
	}
}

// TestAccessRefusalsAreKeptPerModel: two Models of one digest refused for
// AccessNotProven are listed apart, each naming its own Model, beside a
// content failure of the digest; serving the digest to one Model clears the
// content failure and that Model's refusal, never another Model's.
func TestAccessRefusalsAreKeptPerModel(t *testing.T) {
	refused := NewPublishFailures(clocktesting.NewFakePassiveClock(time.Unix(1700000000, 0)))
	digest := strings.Repeat("b", 64)
	refused.PublishFailed("tenant-b/copy", digest, "AccessNotProven", "w.safetensors", errors.New("no proof"))
	refused.PublishFailed("tenant-c/copy", digest, "AccessNotProven", "w.safetensors", errors.New("no proof"))
	refused.PublishFailed("tenant-d/m", digest, "DigestMismatch", "w.safetensors", errors.New("bytes differ"))
	got := MergeCacheErrors(refused).ModelCacheErrors()
	models := map[string]string{}
	for _, e := range got {
		models[e.Model] = e.Reason
		if !strings.HasPrefix(e.Message, "model "+e.Model+": ") {
			t.Errorf("message %q does not name its own Model %s", e.Message, e.Model)
		}
	}
	want := map[string]string{"tenant-b/copy": "AccessNotProven", "tenant-c/copy": "AccessNotProven", "tenant-d/m": "DigestMismatch"}
	if len(got) != 3 || len(models) != 3 || models["tenant-b/copy"] != want["tenant-b/copy"] || models["tenant-c/copy"] != want["tenant-c/copy"] || models["tenant-d/m"] != want["tenant-d/m"] {
		t.Errorf("listed %+v, want one entry per refused Model: %v", got, want)
	}
	refused.Served("tenant-b/copy", digest)
	if got := refused.ModelCacheErrors(); len(got) != 1 || got[0].Model != "tenant-c/copy" {
		t.Errorf("after the digest was served to tenant-b/copy: %+v, want tenant-c/copy's refusal only", got)
	}
	refused.Served("tenant-c/copy", digest)
	if got := refused.ModelCacheErrors(); len(got) != 0 {
		t.Errorf("after the digest was served to both: %+v", got)
	}
}
