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

// Package committee decides a job's result from its members' output digests
// under the Kernel's aggregation policy. It is pure, so the result endpoint
// (when a member posts) and the job controller (after a restart, or when a
// member fails for good) reach the same decision from the same status.
package committee

import (
	"sort"

	"github.com/aivm-dev/aivm-operator/api/v1alpha1"
)

// Decision is the outcome for one attempt.
type Decision struct {
	// Decided is true once the policy has an answer: agreement or disagreement.
	Decided bool
	// Agreed is the accepted output digest when Decided and not Disagreement.
	Agreed string
	// Members are the member indexes that produced Agreed, ascending.
	Members []int32
	// Dissenters are the members whose posted digest differs from Agreed
	// (on disagreement: every member that posted), ascending.
	Dissenters []int32
	// Disagreement is true when the policy can no longer be met.
	Disagreement bool
}

// Decide applies policy to the results of the members of one attempt.
// replicas is the committee size; failed counts members that ended without a
// result and will not post (they can no longer help reach agreement).
// results for other attempts must be filtered out by the caller; a member
// that appears twice counts once (its first entry).
func Decide(policy v1alpha1.AggregationPolicy, replicas int, results []v1alpha1.MemberResult, failed int) Decision {
	if replicas < 1 {
		replicas = 1
	}
	seen := map[int32]bool{}
	var uniq []v1alpha1.MemberResult
	for _, r := range results {
		if !seen[r.Member] {
			seen[r.Member] = true
			uniq = append(uniq, r)
		}
	}
	byDigest := map[string][]int32{}
	for _, r := range uniq {
		byDigest[r.OutputDigest] = append(byDigest[r.OutputDigest], r.Member)
	}
	outstanding := replicas - len(uniq) - failed
	if outstanding < 0 {
		outstanding = 0
	}
	// The digest with the most votes; ties broken by the lowest member index
	// so the choice never depends on map order.
	best, bestN := "", 0
	for d, ms := range byDigest {
		sort.Slice(ms, func(i, j int) bool { return ms[i] < ms[j] })
		if len(ms) > bestN || (len(ms) == bestN && ms[0] < byDigest[best][0]) {
			best, bestN = d, len(ms)
		}
	}
	agree := func(d string) Decision {
		dec := Decision{Decided: true, Agreed: d, Members: byDigest[d]}
		for _, r := range uniq {
			if r.OutputDigest != d {
				dec.Dissenters = append(dec.Dissenters, r.Member)
			}
		}
		sort.Slice(dec.Dissenters, func(i, j int) bool { return dec.Dissenters[i] < dec.Dissenters[j] })
		return dec
	}
	disagree := func() Decision {
		dec := Decision{Decided: true, Disagreement: true}
		for _, r := range uniq {
			dec.Dissenters = append(dec.Dissenters, r.Member)
		}
		sort.Slice(dec.Dissenters, func(i, j int) bool { return dec.Dissenters[i] < dec.Dissenters[j] })
		return dec
	}
	switch policy {
	case v1alpha1.AggregationFirst:
		// The first result received wins (results are kept in arrival order).
		if len(uniq) > 0 {
			return agree(uniq[0].OutputDigest)
		}
		if outstanding == 0 {
			return disagree()
		}
		return Decision{}
	case v1alpha1.AggregationUnanimous:
		if len(byDigest) > 1 || (outstanding == 0 && bestN < replicas) {
			return disagree()
		}
		if bestN == replicas {
			return agree(best)
		}
		return Decision{}
	default: // majority
		need := replicas/2 + 1
		if bestN >= need {
			return agree(best)
		}
		if bestN+outstanding < need {
			return disagree()
		}
		return Decision{}
	}
}
