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

package controllers

import (
	"time"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// optimisticMergeFrom is a merge patch from base that carries base's
// resourceVersion. A reconciler computes its patch from the informer cache,
// which can lag its own last write; without the resourceVersion a patch
// from a stale base leaves out the fields that base and the new status
// happen to share, and the object keeps the newer, wrong values for them.
// With it, the API server answers Conflict and the reconciler runs again
// on a fresher copy.
func optimisticMergeFrom(base client.Object) client.Patch {
	return client.MergeFromWithOptions(base, client.MergeFromWithOptimisticLock{})
}

// requeueStale is what a reconciler returns when its status patch hit a
// Conflict: run again shortly, once the cache has caught up. Status-only
// updates do not trigger the reconcilers (they filter on generation), so
// the requeue is needed.
var requeueStale = ctrl.Result{RequeueAfter: 50 * time.Millisecond}
