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
// be served for reason, file naming the failing file of a file set. A
// refusal for AccessNotProven concerns that Model alone, so it is kept
// beside the refusals of other Models of the digest (cacheErrorKey).
func (p *PublishFailures) PublishFailed(model, digest, reason, file string, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	e := aivmv1alpha1.ModelCacheError{
		Digest:  digest,
		File:    text.Truncate(file, 1024),
		Model:   text.Truncate(model, 317),
		Reason:  reason,
		Message: text.Truncate(fmt.Sprintf("model %s: %v", model, err), maxCacheErrorMessage),
		Time:    &metav1.Time{Time: p.clock.Now().Truncate(time.Second)},
	}
	key := cacheErrorKey(e)
	if prev, ok := p.byHash[key]; ok && prev.Reason == reason && prev.File == file && prev.Model == e.Model {
		return
	}
	p.byHash[key] = e
	notify(p.changed)
}

// Served forgets the failures of digest's bytes (they were served) and
// model's own AccessNotProven refusal of it; another Model's refusal stays,
// since serving model proves nothing of that Model's access.
func (p *PublishFailures) Served(model, digest string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for k, e := range p.byHash {
		if e.Digest == digest && (e.Reason != aivmv1alpha1.ReasonAccessNotProven || e.Model == model) {
			delete(p.byHash, k)
			notify(p.changed)
		}
	}
}

// cacheErrorKey is what a GPUNode lists one failure per: the digest, and
// for AccessNotProven the Model too, since that failure is the Model's
// own and not its bytes'.
func cacheErrorKey(e aivmv1alpha1.ModelCacheError) string {
	if e.Reason == aivmv1alpha1.ReasonAccessNotProven {
		return e.Digest + "\x00" + e.Model
	}
	return e.Digest
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

// MergeCacheErrors lists the failures of every source, one per digest and
// for AccessNotProven one per digest and Model (the first source that names
// one wins), oldest first, at most
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
			if k := cacheErrorKey(e); !seen[k] {
				seen[k] = true
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
