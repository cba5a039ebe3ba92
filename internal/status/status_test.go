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

package status

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
)

func cond(t string, s metav1.ConditionStatus, reason string) metav1.Condition {
	return metav1.Condition{Type: t, Status: s, Reason: reason, Message: "m"}
}

func TestRecordTransitions(t *testing.T) {
	const (
		T = metav1.ConditionTrue
		F = metav1.ConditionFalse
		U = metav1.ConditionUnknown
	)
	ready := EventRule{Types: []string{"Ready"}}
	tests := []struct {
		name          string
		rule          EventRule
		before, after []metav1.Condition
		want          []string
	}{
		{"first True", ready, nil, []metav1.Condition{cond("Ready", T, "Up")}, []string{"Normal Up m"}},
		{"unchanged", ready, []metav1.Condition{cond("Ready", T, "Up")}, []metav1.Condition{cond("Ready", T, "Up")}, nil},
		{"reason changed", ready, []metav1.Condition{cond("Ready", F, "A")}, []metav1.Condition{cond("Ready", F, "B")}, []string{"Warning B m"}},
		{"type not in rule", ready, nil, []metav1.Condition{cond("Other", F, "X")}, nil},
		{"NormalWhenFalse", EventRule{Types: []string{"Ready"}, NormalWhenFalse: []string{"Ready"}},
			nil, []metav1.Condition{cond("Ready", F, "Queued")}, []string{"Normal Queued m"}},
		{"OnlyTrue becomes True", EventRule{Types: []string{"V"}, OnlyTrue: []string{"V"}},
			[]metav1.Condition{cond("V", U, "Pending")}, []metav1.Condition{cond("V", T, "Verified")}, []string{"Normal Verified m"}},
		{"OnlyTrue becomes False", EventRule{Types: []string{"V"}, OnlyTrue: []string{"V"}},
			[]metav1.Condition{cond("V", T, "Verified")}, []metav1.Condition{cond("V", F, "Mismatch")}, nil},
		{"OnlyTrue reason within True", EventRule{Types: []string{"V"}, OnlyTrue: []string{"V"}},
			[]metav1.Condition{cond("V", T, "A")}, []metav1.Condition{cond("V", T, "B")}, nil},
		{"TrueOnRecovery first True", EventRule{Types: []string{"Ready"}, TrueOnRecovery: []string{"Ready"}},
			nil, []metav1.Condition{cond("Ready", T, "Up")}, nil},
		{"TrueOnRecovery reason within True", EventRule{Types: []string{"Ready"}, TrueOnRecovery: []string{"Ready"}},
			[]metav1.Condition{cond("Ready", T, "A")}, []metav1.Condition{cond("Ready", T, "B")}, nil},
		{"TrueOnRecovery recovers", EventRule{Types: []string{"Ready"}, TrueOnRecovery: []string{"Ready"}, TrueReason: "Ready"},
			[]metav1.Condition{cond("Ready", F, "Down")}, []metav1.Condition{cond("Ready", T, "Up")}, []string{"Normal Ready m"}},
		{"TrueOnRecovery goes False", EventRule{Types: []string{"Ready"}, TrueOnRecovery: []string{"Ready"}, TrueReason: "Ready"},
			nil, []metav1.Condition{cond("Ready", F, "Down")}, []string{"Warning Down m"}},
	}
	for _, tt := range tests {
		rec := events.NewFakeRecorder(10)
		RecordTransitions(rec, &corev1.ConfigMap{}, tt.before, tt.after, tt.rule)
		close(rec.Events)
		var got []string
		for e := range rec.Events {
			got = append(got, e)
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("%s: events (-want +got):\n%s", tt.name, diff)
		}
	}
}
