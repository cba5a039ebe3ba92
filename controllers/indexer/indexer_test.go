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
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/aivm-dev/aivm-operator/api/v1alpha1"
)

func TestPodJob(t *testing.T) {
	ref := func(apiVersion, kind string, controller bool) metav1.OwnerReference {
		return metav1.OwnerReference{APIVersion: apiVersion, Kind: kind, Name: "j", UID: "job-uid", Controller: ptr.To(controller)}
	}
	cases := []struct {
		name string
		refs []metav1.OwnerReference
		want []string
	}{
		{"controlled by an InferenceJob", []metav1.OwnerReference{ref(v1alpha1.GroupVersion.String(), "InferenceJob", true)}, []string{"job-uid"}},
		{"owned, not controlled", []metav1.OwnerReference{ref(v1alpha1.GroupVersion.String(), "InferenceJob", false)}, nil},
		{"controlled by a batch Job", []metav1.OwnerReference{ref("batch/v1", "Job", true)}, nil},
		{"another group's InferenceJob", []metav1.OwnerReference{ref("example.com/v1", "InferenceJob", true)}, nil},
		{"no owner", nil, nil},
	}
	for _, c := range cases {
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", OwnerReferences: c.refs}}
		got := podJob(pod)
		if len(got) != len(c.want) || (len(got) == 1 && got[0] != c.want[0]) {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}
