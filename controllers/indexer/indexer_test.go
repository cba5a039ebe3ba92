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

package indexer

import (
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestPodJob(t *testing.T) {
	cases := []struct {
		name    string
		labels  map[string]string
		wantUID []string
		wantKey []string
	}{
		{"a job pod", map[string]string{labelJobUID: "job-uid", labelJobNamespace: "team-a", labelJobName: "story"}, []string{"job-uid"}, []string{"team-a/story"}},
		{"no job namespace", map[string]string{labelJobUID: "job-uid", labelJobName: "story"}, []string{"job-uid"}, nil},
		{"no labels", nil, nil, nil},
	}
	for _, c := range cases {
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Labels: c.labels}}
		if got := podJob(pod); !slices.Equal(got, c.wantUID) {
			t.Errorf("%s: podJob %v, want %v", c.name, got, c.wantUID)
		}
		if got := podJobKey(pod); !slices.Equal(got, c.wantKey) {
			t.Errorf("%s: podJobKey %v, want %v", c.name, got, c.wantKey)
		}
	}
}
