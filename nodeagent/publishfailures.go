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
	"cmp"
	"fmt"
	"slices"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/clock"

	aivmv1alpha1 "github.com/aivm-dev/aivm-operator/api/v1alpha1"
	"github.com/aivm-dev/aivm-operator/internal/text"
)

// PublishFailures remembers the Models whose bytes the CSI driver refused
// to serve to a pod because they failed their digest or size check, so the
// GPUNode lists them in status.modelCacheErrors as it lists a failed
// prefetch: the Model controller then marks the Model Verified=False and
// no job waits on it unexplained. An entry is dropped once the same digest
// is served. It is safe for concurrent use.
type PublishFailures struct {
	clock   clock.PassiveClock
	mu      sync.Mutex
	byHash  map[string]aivmv1alpha1.ModelCacheError
	changed chan struct{}
}

// NewPublishFailures returns an empty record; clk nil is the real clock.
func NewPublishFailures(clk clock.PassiveClock) *PublishFailures {
	if clk == nil {
		clk = clock.RealClock{}
	}
	return &PublishFailures{clock: clk, byHash: map[string]aivmv1alpha1.ModelCacheError{}, changed: make(chan struct{}, 1)}
}

// PublishFailed records that model (namespace/name) with digest could not
// be served for reason, file naming the failing file of a file set.
func (p *PublishFailures) PublishFailed(model, digest, reason, file string, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if prev, ok := p.byHash[digest]; ok && prev.Reason == reason && prev.File == file {
		return
	}
	p.byHash[digest] = aivmv1alpha1.ModelCacheError{
		Digest:  digest,
		File:    text.Truncate(file, 1024),
		Reason:  reason,
		Message: text.Truncate(fmt.Sprintf("model %s: %v", model, err), maxCacheErrorMessage),
		Time:    &metav1.Time{Time: p.clock.Now().Truncate(time.Second)},
	}
	notify(p.changed)
}

// Served forgets a failure of digest: its bytes were served.
func (p *PublishFailures) Served(digest string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.byHash[digest]; ok {
		delete(p.byHash, digest)
		notify(p.changed)
	}
}

// Changed receives a value after the record changed.
func (p *PublishFailures) Changed() <-chan struct{} { return p.changed }

// ModelCacheErrors returns the failures, oldest first, at most
// MaxModelCacheErrors.
func (p *PublishFailures) ModelCacheErrors() []aivmv1alpha1.ModelCacheError {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]aivmv1alpha1.ModelCacheError, 0, len(p.byHash))
	for _, e := range p.byHash {
		out = append(out, *e.DeepCopy())
	}
	return newestLast(out)
}

// MergeCacheErrors lists the failures of every source, one per digest (the
// first source that names a digest wins), oldest first, at most
// MaxModelCacheErrors. Nil sources are left out.
func MergeCacheErrors(sources ...CacheErrorSource) CacheErrorSource {
	return mergedCacheErrors(slices.DeleteFunc(sources, func(s CacheErrorSource) bool { return s == nil }))
}

type mergedCacheErrors []CacheErrorSource

func (m mergedCacheErrors) ModelCacheErrors() []aivmv1alpha1.ModelCacheError {
	seen := map[string]bool{}
	var out []aivmv1alpha1.ModelCacheError
	for _, s := range m {
		for _, e := range s.ModelCacheErrors() {
			if !seen[e.Digest] {
				seen[e.Digest] = true
				out = append(out, e)
			}
		}
	}
	return newestLast(out)
}

// newestLast sorts failures oldest first and keeps the newest
// MaxModelCacheErrors.
func newestLast(out []aivmv1alpha1.ModelCacheError) []aivmv1alpha1.ModelCacheError {
	slices.SortFunc(out, func(a, b aivmv1alpha1.ModelCacheError) int {
		return cmp.Or(a.Time.Compare(b.Time.Time), cmp.Compare(a.Digest, b.Digest))
	})
	if len(out) > MaxModelCacheErrors {
		out = out[len(out)-MaxModelCacheErrors:]
	}
	return out
}
