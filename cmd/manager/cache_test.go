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

package main

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	toolscache "k8s.io/client-go/tools/cache"

	"github.com/aivm-dev/aivm-operator/api/v1alpha1"
)

// TestCacheTransformsDropUnreadFields: what the cache keeps of an object
// loses managedFields, kubectl's last-applied copy and a Node's image
// list, and keeps everything else the controllers read.
func TestCacheTransformsDropUnreadFields(t *testing.T) {
	managed := []metav1.ManagedFieldsEntry{{Manager: "kubectl", Operation: metav1.ManagedFieldsOperationUpdate}}
	job := &v1alpha1.InferenceJob{
		ObjectMeta: metav1.ObjectMeta{
			Name: "j", ManagedFields: managed,
			Annotations: map[string]string{lastAppliedAnnotation: `{"big":"copy"}`, "team": "nlp"},
			Labels:      map[string]string{"app": "x"},
		},
		Spec: v1alpha1.InferenceJobSpec{KernelRef: v1alpha1.LocalObjectReference{Name: "k"}},
	}
	out, err := stripTransform(false)(job)
	if err != nil {
		t.Fatal(err)
	}
	got := out.(*v1alpha1.InferenceJob)
	if got.ManagedFields != nil {
		t.Errorf("managedFields kept: %v", got.ManagedFields)
	}
	if _, ok := got.Annotations[lastAppliedAnnotation]; ok || got.Annotations["team"] != "nlp" {
		t.Errorf("annotations = %v, want only team=nlp", got.Annotations)
	}
	if got.Labels["app"] != "x" || got.Spec.KernelRef.Name != "k" {
		t.Errorf("labels or spec changed: %+v", got)
	}

	onlyApplied := &v1alpha1.Kernel{ObjectMeta: metav1.ObjectMeta{Name: "k", Annotations: map[string]string{lastAppliedAnnotation: "{}"}}}
	if _, err := stripTransform(false)(onlyApplied); err != nil {
		t.Fatal(err)
	}
	if onlyApplied.Annotations != nil {
		t.Errorf("annotations = %v, want none", onlyApplied.Annotations)
	}

	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: "n", ManagedFields: managed},
		Status: corev1.NodeStatus{
			Images:     []corev1.ContainerImage{{Names: []string{"registry.example/big:1"}, SizeBytes: 1 << 30}},
			Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}},
		},
	}
	if _, err := stripTransform(true)(node); err != nil {
		t.Fatal(err)
	}
	if node.Status.Images != nil || node.ManagedFields != nil {
		t.Errorf("node keeps images %v, managedFields %v", node.Status.Images, node.ManagedFields)
	}
	if len(node.Status.Conditions) != 1 {
		t.Errorf("node conditions dropped: %v", node.Status.Conditions)
	}

	// A tombstone of a deleted object passes through unchanged.
	tomb := toolscache.DeletedFinalStateUnknown{Key: "ns/j", Obj: job}
	if out, err := stripTransform(false)(tomb); err != nil || out != any(tomb) {
		t.Errorf("tombstone: %v, %v", out, err)
	}

	// Every kind the manager caches has a transform.
	opts := cacheOptions("aivm-system")
	if opts.DefaultTransform == nil {
		t.Error("no default transform")
	}
	for obj, by := range opts.ByObject {
		if by.Transform == nil {
			t.Errorf("%T: no transform", obj)
		}
	}
}
