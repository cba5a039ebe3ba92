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
	"net/http"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/aivm-dev/aivm-operator/controllers"
	"github.com/aivm-dev/aivm-operator/runtime-image/envelope"
)

// TestForgedFromTenantNamespace: everything a tenant with the built-in
// edit role can do in its own namespace, done: a service account named
// aivm-runtime, a pod with the placement pod's exact name, labels and
// service account, a token minted for it with the result audience, and an
// invented output with its own correct digest. The endpoint refuses it
// (403), writes nothing and signs nothing: only tokens of the workload
// namespace's runtime service account count, and tenants have no rights
// there (test/integration TestTenantRolesGrantNothingInWorkloadNamespace).
func TestForgedFromTenantNamespace(t *testing.T) {
	f := newFixture(t, nil)
	mustCreate(t, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: controllers.RuntimeServiceAccount}})
	copycat := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: f.pod.Name, Labels: f.pod.Labels},
		Spec: corev1.PodSpec{
			ServiceAccountName: controllers.RuntimeServiceAccount, AutomountServiceAccountToken: ptr.To(false),
			Containers: []corev1.Container{{Name: "runtime", Image: "attacker.example/forger:1"}},
		},
	}
	mustCreate(t, copycat)
	minted := requestToken(t, f.ns, copycat)
	forged := f.envelope(1, 0, " an output nobody computed")
	forged.Digests.Output = envelope.Digest([]byte(forged.Output))
	post(t, minted, forged).want(t, http.StatusForbidden, ReasonNotCurrentPod, "workload namespace")
	f.nothingWritten()
	// The real pod's token still works: the refusal was about the forger.
	post(t, f.token(f.pod), f.envelope(1, 0, " world")).want(t, http.StatusOK, ReasonAccepted, "")
}
