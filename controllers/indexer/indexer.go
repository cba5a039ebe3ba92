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

// Package indexer declares the manager cache's field indexes in one place.
// Call Setup once per manager, before the controllers that list by them.
package indexer

import (
	"context"
	"fmt"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/aivm-dev/aivm-operator/api/v1alpha1"
)

// InferenceJobKernelRef indexes InferenceJobs by spec.kernelRef.name.
const InferenceJobKernelRef = "spec.kernelRef.name"

// Setup registers every index with fi (the manager's field indexer).
func Setup(ctx context.Context, fi client.FieldIndexer) error {
	if err := fi.IndexField(ctx, &v1alpha1.InferenceJob{}, InferenceJobKernelRef, func(o client.Object) []string {
		return []string{o.(*v1alpha1.InferenceJob).Spec.KernelRef.Name}
	}); err != nil {
		return fmt.Errorf("index inferencejobs by %s: %w", InferenceJobKernelRef, err)
	}
	return nil
}
