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

package integration

import (
	"context"
	"fmt"
	"testing"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/aivm-dev/aivm-operator/internal/testenv"
)

// access is one request a service account makes, and whether the chart's
// RBAC must allow it.
type access struct {
	verb, group, resource, subresource, namespace, name string
	allowed                                             bool
}

func (a access) String() string {
	r := a.resource
	if a.group != "" {
		r += "." + a.group
	}
	if a.subresource != "" {
		r += "/" + a.subresource
	}
	where := "cluster-wide"
	if a.namespace != "" {
		where = "in " + a.namespace
	}
	return fmt.Sprintf("%s %s %s", a.verb, r, where)
}

// TestChartRBAC installs the chart's service accounts, roles and bindings
// (for real: the API server's authorizer reads them) and asks the API server,
// with a SubjectAccessReview each, what the manager and the node agent may
// do: exactly what they need, and no Secret reads beyond it.
func TestChartRBAC(t *testing.T) {
	const models, team = "rbac-models", "rbac-team"
	chartCluster(t, models, team)
	ctx := context.Background()
	objs, err := testenv.RenderChart(t, "nodeAgent.modelCredentialNamespaces={"+models+"}")
	if err != nil {
		t.Fatalf("helm template: %v", err)
	}
	installed := 0
	for k, obj := range objs {
		switch obj.GetKind() {
		case "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding":
		default:
			continue
		}
		if obj.GetNamespace() == "" && (obj.GetKind() == "ServiceAccount" || obj.GetKind() == "Role" || obj.GetKind() == "RoleBinding") {
			obj.SetNamespace(chartNamespace)
		}
		if err := k8sClient.Apply(ctx, client.ApplyConfigurationFromUnstructured(obj), client.ForceOwnership, client.FieldOwner("helm")); err != nil {
			t.Fatalf("apply %s: %v", k, err)
		}
		installed++
	}
	if installed < 8 {
		t.Fatalf("the chart renders %d RBAC objects; want the manager's and the node agent's", installed)
	}

	const ns = chartNamespace
	manager := []access{
		// Its own API.
		{"list", "aivm.dev", "inferencejobs", "", team, "", true},
		{"watch", "aivm.dev", "inferencejobs", "", "", "", true},
		{"patch", "aivm.dev", "inferencejobs", "status", team, "", true},
		{"update", "aivm.dev", "inferencejobs", "finalizers", team, "", true},
		{"delete", "aivm.dev", "inferencejobs", "", team, "", true},
		{"create", "aivm.dev", "inferencejobs", "", team, "", false},
		{"update", "aivm.dev", "inferencejobs", "", team, "", false},
		{"patch", "aivm.dev", "models", "status", team, "", true},
		{"patch", "aivm.dev", "kernels", "status", team, "", true},
		{"update", "aivm.dev", "models", "", team, "", false},
		{"patch", "aivm.dev", "gpunodes", "status", "", "", true},
		{"delete", "aivm.dev", "gpunodes", "", "", "", true},
		{"create", "aivm.dev", "gpunodes", "", "", "", false},
		// Job pods, their ConfigMaps and service accounts.
		{"create", "", "pods", "", team, "", true},
		{"delete", "", "pods", "", team, "", true},
		{"update", "", "pods", "", team, "", false},
		{"create", "", "pods", "exec", team, "", false},
		{"create", "", "configmaps", "", team, "", true},
		{"create", "", "serviceaccounts", "", team, "", true},
		{"create", "", "serviceaccounts", "token", team, "", false},
		{"list", "", "nodes", "", "", "", true},
		{"patch", "", "nodes", "", "", "", false},
		// Secrets: Models' credentials by name, and its own certificate
		// Secret in its namespace; never a listing, never a write elsewhere.
		{"get", "", "secrets", "", team, "", true},
		{"list", "", "secrets", "", team, "", false},
		{"list", "", "secrets", "", "", "", false},
		{"watch", "", "secrets", "", ns, "", false},
		{"create", "", "secrets", "", ns, "", true},
		{"update", "", "secrets", "", ns, "", true},
		{"delete", "", "secrets", "", ns, "", false},
		{"create", "", "secrets", "", team, "", false},
		{"update", "", "secrets", "", "kube-system", "", false},
		// Leader election in its namespace only.
		{"get", "coordination.k8s.io", "leases", "", ns, "", true},
		{"create", "coordination.k8s.io", "leases", "", ns, "", true},
		{"update", "coordination.k8s.io", "leases", "", ns, "", true},
		{"delete", "coordination.k8s.io", "leases", "", ns, "", false},
		{"update", "coordination.k8s.io", "leases", "", "kube-system", "", false},
		{"create", "events.k8s.io", "events", "", team, "", true},
		{"create", "authentication.k8s.io", "tokenreviews", "", "", "", true},
		// Nothing that widens its own rights.
		{"create", "rbac.authorization.k8s.io", "rolebindings", "", team, "", false},
		{"escalate", "rbac.authorization.k8s.io", "clusterroles", "", "", "", false},
		{"create", "", "namespaces", "", "", "", false},
	}
	agent := []access{
		{"get", "", "nodes", "", "", "", true},
		{"patch", "", "nodes", "", "", "", true},
		{"delete", "", "nodes", "", "", "", false},
		{"list", "", "nodes", "", "", "", false},
		{"create", "aivm.dev", "gpunodes", "", "", "", true},
		{"patch", "aivm.dev", "gpunodes", "status", "", "", true},
		{"delete", "aivm.dev", "gpunodes", "", "", "", false},
		{"watch", "aivm.dev", "models", "", "", "", true},
		{"patch", "aivm.dev", "models", "status", team, "", false},
		{"list", "aivm.dev", "inferencejobs", "", "", "", false},
		{"list", "", "pods", "", "", "", false},
		{"create", "", "pods", "", team, "", false},
		// Secrets only in the listed credential namespaces, by name.
		{"get", "", "secrets", "", models, "", true},
		{"list", "", "secrets", "", models, "", false},
		{"get", "", "secrets", "", ns, "", false},
		{"get", "", "secrets", "", team, "", false},
		{"get", "", "secrets", "", "kube-system", "", false},
		{"get", "", "secrets", "", "", "", false},
		{"get", "coordination.k8s.io", "leases", "", ns, "", false},
	}
	// The API server's authorizer learns the chart's bindings from its
	// informers, a moment after they are created: every allowed row is
	// asked until it is allowed (or 30 s pass), and only then is each
	// denied row asked, once, when a denial can no longer be that lag.
	for _, wantAllowed := range []bool{true, false} {
		for sa, table := range map[string][]access{"aivm-aivm-operator-manager": manager, "aivm-aivm-operator-node-agent": agent} {
			user := "system:serviceaccount:" + ns + ":" + sa
			for _, a := range table {
				if a.allowed != wantAllowed {
					continue
				}
				deadline := time.Now().Add(30 * time.Second)
				for {
					sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
						User:   user,
						Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + ns, "system:authenticated"},
						ResourceAttributes: &authorizationv1.ResourceAttributes{
							Verb: a.verb, Group: a.group, Resource: a.resource, Subresource: a.subresource,
							Namespace: a.namespace, Name: a.name,
						},
					}}
					if err := k8sClient.Create(ctx, sar); err != nil {
						t.Fatalf("SubjectAccessReview %s for %s: %v", a, sa, err)
					}
					if sar.Status.Allowed == a.allowed {
						break
					}
					if !a.allowed || time.Now().After(deadline) {
						t.Errorf("%s may %s: %v, want %v (%s)", sa, a, sar.Status.Allowed, a.allowed, sar.Status.Reason)
						break
					}
					time.Sleep(100 * time.Millisecond)
				}
			}
		}
	}
}
