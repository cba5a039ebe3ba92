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
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/aivm-dev/aivm-operator/api/v1alpha1"
)

// lastAppliedAnnotation is what kubectl apply keeps on an object: a copy
// of its whole last applied manifest, often the largest part of it.
const lastAppliedAnnotation = corev1.LastAppliedConfigAnnotation

// cacheOptions are the informer cache's settings. The cache holds every
// InferenceJob, GPUNode, Node and job pod of the cluster, so what it keeps
// per object is the manager's memory: transforms drop what no controller
// reads before objects are stored.
//
//   - managedFields, on every kind: server-side apply bookkeeping, several
//     entries per object, never read (writes are patches of diffs);
//   - the last-applied-configuration annotation on the kinds the manager
//     only patches or does not write at all (a diff never carries it, so
//     no write drops it); ConfigMaps and Secrets, which it updates whole,
//     keep theirs;
//   - a Node's status.images: the node's image list (up to 50 entries with
//     every tag and digest), which nothing here reads.
func cacheOptions(workloadNamespace string) cache.Options {
	stripped := cache.ByObject{Transform: stripTransform(false)}
	return cache.Options{
		DefaultTransform: cache.TransformStripManagedFields(),
		ByObject: map[client.Object]cache.ByObject{
			&corev1.Pod{}: {
				Label: jobPods, Transform: stripTransform(false),
				Namespaces: map[string]cache.Config{workloadNamespace: {}},
			},
			// Only the workload namespace's runtime service account and
			// result CA ConfigMap, whose deletion the job controller
			// repairs; every other ConfigMap is read from the API server.
			&corev1.ConfigMap{}: {
				Label: managedByAIVM, Transform: stripTransform(false),
				Namespaces: map[string]cache.Config{workloadNamespace: {}},
			},
			&corev1.ServiceAccount{}: {
				Label: managedByAIVM, Transform: stripTransform(false),
				Namespaces: map[string]cache.Config{workloadNamespace: {}},
			},
			&corev1.Node{}:           {Transform: stripTransform(true)},
			&v1alpha1.InferenceJob{}: stripped,
			&v1alpha1.GPUNode{}:      stripped,
			&v1alpha1.Kernel{}:       stripped,
			&v1alpha1.Model{}:        stripped,
		},
	}
}

// stripTransform drops managedFields and the last-applied-configuration
// annotation, and with nodeImages a Node's status.images.
func stripTransform(nodeImages bool) toolscache.TransformFunc {
	return func(in any) (any, error) {
		// Tombstones of deleted objects pass through as they are.
		obj, err := meta.Accessor(in)
		if err != nil {
			return in, nil
		}
		obj.SetManagedFields(nil)
		if a := obj.GetAnnotations(); a != nil {
			if _, ok := a[lastAppliedAnnotation]; ok {
				delete(a, lastAppliedAnnotation)
				if len(a) == 0 {
					a = nil
				}
				obj.SetAnnotations(a)
			}
		}
		if node, ok := in.(*corev1.Node); ok && nodeImages {
			node.Status.Images = nil
		}
		return in, nil
	}
}
