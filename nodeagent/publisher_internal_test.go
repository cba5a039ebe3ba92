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
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	aivmv1alpha1 "github.com/aivm-dev/aivm-operator/api/v1alpha1"
)

func TestMergeCacheErrors(t *testing.T) {
	at := func(s int) *metav1.Time { return &metav1.Time{Time: time.Unix(1700000000+int64(s), 0)} }
	d := func(c string) string { return strings.Repeat(c, 64) }
	e := func(digest, reason string, s int) aivmv1alpha1.ModelCacheError {
		return aivmv1alpha1.ModelCacheError{Digest: digest, Reason: reason, Message: reason + " of " + digest[:4], Time: at(s)}
	}
	refusal := func(digest, model string, s int) aivmv1alpha1.ModelCacheError {
		return aivmv1alpha1.ModelCacheError{Digest: digest, Model: model, Reason: aivmv1alpha1.ReasonAccessNotProven, Message: "model " + model, Time: at(s)}
	}
	var many, lastMax []aivmv1alpha1.ModelCacheError
	for i := range MaxModelCacheErrors + 3 {
		many = append(many, e(fmt.Sprintf("%064x", i), "FetchFailed", i))
	}
	lastMax = many[3:]

	tests := []struct {
		name             string
		listed, reported []aivmv1alpha1.ModelCacheError
		cached           []string
		want             []aivmv1alpha1.ModelCacheError
	}{
		{name: "nothing"},
		{
			name:     "new error appended after others' entries",
			listed:   []aivmv1alpha1.ModelCacheError{e(d("a"), "DigestMismatch", 1)},
			reported: []aivmv1alpha1.ModelCacheError{e(d("b"), "SourceUnreachable", 2)},
			want:     []aivmv1alpha1.ModelCacheError{e(d("a"), "DigestMismatch", 1), e(d("b"), "SourceUnreachable", 2)},
		},
		{
			name:     "identical entry stays in place",
			listed:   []aivmv1alpha1.ModelCacheError{e(d("b"), "SourceUnreachable", 2), e(d("a"), "DigestMismatch", 1)},
			reported: []aivmv1alpha1.ModelCacheError{e(d("a"), "DigestMismatch", 1), e(d("b"), "SourceUnreachable", 2)},
			want:     []aivmv1alpha1.ModelCacheError{e(d("b"), "SourceUnreachable", 2), e(d("a"), "DigestMismatch", 1)},
		},
		{
			name:     "a newer failure of a digest replaces the old one and goes last",
			listed:   []aivmv1alpha1.ModelCacheError{e(d("a"), "SourceUnreachable", 1), e(d("c"), "FetchFailed", 2)},
			reported: []aivmv1alpha1.ModelCacheError{e(d("a"), "DigestMismatch", 5)},
			want:     []aivmv1alpha1.ModelCacheError{e(d("c"), "FetchFailed", 2), e(d("a"), "DigestMismatch", 5)},
		},
		{
			name:     "errors of cached digests are cleared",
			listed:   []aivmv1alpha1.ModelCacheError{e(d("a"), "DigestMismatch", 1), e(d("c"), "FetchFailed", 2)},
			reported: []aivmv1alpha1.ModelCacheError{e(d("a"), "DigestMismatch", 1)},
			cached:   []string{d("a"), d("c")},
		},
		{
			// The access refusals of two Models of a cached digest are
			// listed apart and kept, beside the digest's bytes being fine.
			name:     "access refusals are per Model and outlive the cached digest",
			listed:   []aivmv1alpha1.ModelCacheError{refusal(d("a"), "b/copy", 1)},
			reported: []aivmv1alpha1.ModelCacheError{refusal(d("a"), "b/copy", 1), refusal(d("a"), "c/copy", 2)},
			cached:   []string{d("a")},
			want:     []aivmv1alpha1.ModelCacheError{refusal(d("a"), "b/copy", 1), refusal(d("a"), "c/copy", 2)},
		},
		{
			name:     "an access refusal no longer reported is over",
			listed:   []aivmv1alpha1.ModelCacheError{refusal(d("a"), "b/copy", 1), refusal(d("a"), "c/copy", 2)},
			reported: []aivmv1alpha1.ModelCacheError{refusal(d("a"), "c/copy", 2)},
			cached:   []string{d("a")},
			want:     []aivmv1alpha1.ModelCacheError{refusal(d("a"), "c/copy", 2)},
		},
		{
			name:     "bounded, oldest dropped",
			reported: many,
			want:     lastMax,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := mergeCacheErrors(tt.listed, tt.reported, tt.cached)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("mergeCacheErrors (-want +got):\n%s", diff)
			}
		})
	}
}
