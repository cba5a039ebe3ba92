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

package resultendpoint

import (
	"context"
	"errors"
	"net/http"
	"testing"

	"sigs.k8s.io/controller-runtime/pkg/client"

	aivmv1alpha1 "github.com/aivm-dev/aivm-operator/api/v1alpha1"
	"github.com/aivm-dev/aivm-operator/controllers"
)

// staleJobClient hands back one old copy of an InferenceJob, as an
// informer cache that has not seen the latest writes does.
type staleJobClient struct {
	client.Client
	old *aivmv1alpha1.InferenceJob
}

func (c staleJobClient) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	if j, ok := obj.(*aivmv1alpha1.InferenceJob); ok && key == client.ObjectKeyFromObject(c.old) {
		c.old.DeepCopyInto(j)
		return nil
	}
	return c.Client.Get(ctx, key, obj, opts...)
}

// TestStaleCacheCannotAcceptSupersededPod: the cached copy still shows
// attempt 1 with the old pod recorded, but attempt 2 is current. The post
// passes authorize on the stale copy; the status write, made with the
// stale copy's resourceVersion, conflicts, and the fresh copy refuses it.
// Nothing is recorded.
func TestStaleCacheCannotAcceptSupersededPod(t *testing.T) {
	f := newFixture(t, nil)
	stale := f.get()
	f.place(2, 0)
	f.record(f.newPod(2, 0))

	s := NewServer(staleJobClient{Client: k8sClient, old: stale}, k8sClient, nil, "127.0.0.1:0", WithLogger(testLogger()))
	ctx := context.Background()
	id := identity{namespace: workloadNS, serviceAccount: controllers.RuntimeServiceAccount, podName: f.pod.Name, podUID: string(f.pod.UID)}
	env := f.envelope(1, 0, " world")
	job, p, err := s.authorize(ctx, id, env)
	if err != nil {
		t.Fatalf("authorize on the stale copy: %v (the test needs it to pass there)", err)
	}
	c, err := s.check(ctx, job, p, env)
	if err != nil {
		t.Fatalf("check: %v", err)
	}
	err = s.accept(ctx, job, id, c)
	var rf *refusal
	if !errors.As(err, &rf) || rf.code != http.StatusForbidden || rf.reason != ReasonStaleAttempt {
		t.Fatalf("accept on a stale copy: %v, want a 403 %s refusal", err, ReasonStaleAttempt)
	}
	if j := f.get(); len(j.Status.MemberResults) != 0 || j.Status.Result != nil {
		t.Errorf("a superseded pod's result was recorded: %+v", j.Status.MemberResults)
	}
}

// TestStaleCacheFallsBackBeforeRefusing: the cached copy does not show the
// pod recorded yet; authorize reads the job again through the API reader
// and the post is accepted rather than told to retry.
func TestStaleCacheFallsBackBeforeRefusing(t *testing.T) {
	f := newFixture(t, nil)
	stale := f.get()
	stale.Status.Placements[0].Pod, stale.Status.Placements[0].PodUID = "", ""

	s := NewServer(staleJobClient{Client: k8sClient, old: stale}, k8sClient, nil, "127.0.0.1:0", WithLogger(testLogger()))
	id := identity{namespace: workloadNS, serviceAccount: controllers.RuntimeServiceAccount, podName: f.pod.Name, podUID: string(f.pod.UID)}
	job, _, err := s.authorize(context.Background(), id, f.envelope(1, 0, " world"))
	if err != nil {
		t.Fatalf("authorize with a lagging cache: %v", err)
	}
	if job.Status.Placements[0].PodUID != string(f.pod.UID) {
		t.Errorf("authorize returned the stale copy")
	}
}
