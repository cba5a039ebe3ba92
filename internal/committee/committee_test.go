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

package committee

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/aivm-dev/aivm-operator/api/v1alpha1"
)

func res(member int32, digest string) v1alpha1.MemberResult {
	return v1alpha1.MemberResult{Attempt: 1, Member: member, Pod: "p", OutputDigest: digest}
}

func TestDecide(t *testing.T) {
	cases := []struct {
		name     string
		policy   v1alpha1.AggregationPolicy
		replicas int
		results  []v1alpha1.MemberResult
		failed   int
		want     Decision
	}{
		{"single member decides at once", v1alpha1.AggregationMajority, 1, []v1alpha1.MemberResult{res(0, "a")}, 0,
			Decision{Decided: true, Agreed: "a", Members: []int32{0}}},
		{"nothing posted yet", v1alpha1.AggregationMajority, 3, nil, 0, Decision{}},
		{"majority of 3 after two agree", v1alpha1.AggregationMajority, 3, []v1alpha1.MemberResult{res(2, "a"), res(0, "a")}, 0,
			Decision{Decided: true, Agreed: "a", Members: []int32{0, 2}}},
		{"majority waits on a split", v1alpha1.AggregationMajority, 3, []v1alpha1.MemberResult{res(0, "a"), res(1, "b")}, 0, Decision{}},
		{"majority with a dissenter", v1alpha1.AggregationMajority, 3, []v1alpha1.MemberResult{res(0, "a"), res(1, "b"), res(2, "a")}, 0,
			Decision{Decided: true, Agreed: "a", Members: []int32{0, 2}, Dissenters: []int32{1}}},
		{"majority impossible: three digests", v1alpha1.AggregationMajority, 3, []v1alpha1.MemberResult{res(0, "a"), res(1, "b"), res(2, "c")}, 0,
			Decision{Decided: true, Disagreement: true, Dissenters: []int32{0, 1, 2}}},
		{"majority impossible: a member failed", v1alpha1.AggregationMajority, 3, []v1alpha1.MemberResult{res(0, "a"), res(1, "b")}, 1,
			Decision{Decided: true, Disagreement: true, Dissenters: []int32{0, 1}}},
		{"unanimous waits for all", v1alpha1.AggregationUnanimous, 3, []v1alpha1.MemberResult{res(0, "a"), res(1, "a")}, 0, Decision{}},
		{"unanimous agrees", v1alpha1.AggregationUnanimous, 3, []v1alpha1.MemberResult{res(0, "a"), res(1, "a"), res(2, "a")}, 0,
			Decision{Decided: true, Agreed: "a", Members: []int32{0, 1, 2}}},
		{"unanimous fails on the first dissent", v1alpha1.AggregationUnanimous, 3, []v1alpha1.MemberResult{res(0, "a"), res(1, "b")}, 0,
			Decision{Decided: true, Disagreement: true, Dissenters: []int32{0, 1}}},
		{"unanimous fails when a member failed", v1alpha1.AggregationUnanimous, 2, []v1alpha1.MemberResult{res(0, "a")}, 1,
			Decision{Decided: true, Disagreement: true, Dissenters: []int32{0}}},
		{"first takes the first arrival", v1alpha1.AggregationFirst, 3, []v1alpha1.MemberResult{res(2, "b"), res(0, "a")}, 0,
			Decision{Decided: true, Agreed: "b", Members: []int32{2}, Dissenters: []int32{0}}},
		{"a member counted once", v1alpha1.AggregationMajority, 3, []v1alpha1.MemberResult{res(0, "a"), res(0, "a")}, 0, Decision{}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := Decide(c.policy, c.replicas, c.results, c.failed)
			if diff := cmp.Diff(c.want, got); diff != "" {
				t.Errorf("Decide (-want +got):\n%s", diff)
			}
		})
	}
}
