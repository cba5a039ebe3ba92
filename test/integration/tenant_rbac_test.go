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
	"testing"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/aivm-dev/aivm-operator/controllers"
)

// TestTenantRolesGrantNothingInWorkloadNamespace: the built-in edit and
// admin roles, bound in a tenant's namespace, let the tenant create pods,
// mint service-account tokens and exec into pods there (the rights behind
// the pod-squatting and minted-token forgeries), and none of it in the
// workload namespace, where job pods run with the runtime service account
// whose tokens the result endpoint accepts. (The chart binds its roles to
// its own service accounts only and aggregates nothing into edit or
// admin; TestChartRBAC checks what those accounts may do.)
func TestTenantRolesGrantNothingInWorkloadNamespace(t *testing.T) {
	ctx := context.Background()
	const tenant = "tenant-rbac"
	workload := chartNamespace // the chart's default workload namespace
	for _, ns := range []string{tenant, workload} {
		if err := k8sClient.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); client.IgnoreAlreadyExists(err) != nil {
			t.Fatal(err)
		}
	}
	// envtest runs no kube-controller-manager, whose aggregation
	// controller fills edit and admin from the roles labelled to aggregate
	// into them: do what it does, so the roles are the real ones.
	for _, role := range []string{"view", "edit", "admin"} {
		aggregateClusterRole(t, role)
	}
	users := map[string]string{"alice-edit": "edit", "bob-admin": "admin"}
	for user, role := range users {
		rb := &rbacv1.RoleBinding{
			ObjectMeta: metav1.ObjectMeta{Namespace: tenant, Name: user},
			Subjects:   []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: user}},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role},
		}
		if err := k8sClient.Create(ctx, rb); err != nil {
			t.Fatal(err)
		}
	}
	type ask struct {
		verb, resource, subresource, name string
	}
	asks := []ask{
		{"create", "pods", "", ""},
		{"update", "pods", "", ""},
		{"patch", "pods", "", ""},
		{"delete", "pods", "", ""},
		{"create", "pods", "exec", ""},
		{"create", "pods", "attach", ""},
		{"create", "serviceaccounts", "token", controllers.RuntimeServiceAccount},
		{"create", "serviceaccounts", "", ""},
		{"update", "configmaps", "", controllers.ResultCAConfigMap},
		{"get", "secrets", "", ""},
		{"create", "secrets", "", ""},
	}
	review := func(user, ns string, a ask) *authorizationv1.SubjectAccessReview {
		t.Helper()
		sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
			User: user, Groups: []string{"system:authenticated"},
			ResourceAttributes: &authorizationv1.ResourceAttributes{
				Verb: a.verb, Resource: a.resource, Subresource: a.subresource, Namespace: ns, Name: a.name,
			},
		}}
		if err := k8sClient.Create(ctx, sar); err != nil {
			t.Fatalf("SubjectAccessReview: %v", err)
		}
		return sar
	}
	// In the tenant's own namespace every right is there (asked until the
	// authorizer has seen the bindings): the denials below are about the
	// namespace, not a user the authorizer does not know.
	for user := range users {
		for _, a := range asks {
			deadline := time.Now().Add(30 * time.Second)
			for !review(user, tenant, a).Status.Allowed {
				if time.Now().After(deadline) {
					t.Fatalf("%s (%s) may not %s %s/%s in its own namespace; the test's premise fails", user, users[user], a.verb, a.resource, a.subresource)
				}
				time.Sleep(100 * time.Millisecond)
			}
		}
	}
	for user := range users {
		for _, a := range asks {
			if sar := review(user, workload, a); sar.Status.Allowed {
				t.Errorf("%s (%s in %s) may %s %s/%s %s in the workload namespace %s: %s",
					user, users[user], tenant, a.verb, a.resource, a.subresource, a.name, workload, sar.Status.Reason)
			}
		}
	}
}

// aggregateClusterRole writes into the ClusterRole name the rules of the
// ClusterRoles its aggregationRule selects, those aggregated themselves
// first, as the clusterrole-aggregation controller does.
func aggregateClusterRole(t *testing.T, name string) {
	t.Helper()
	ctx := context.Background()
	var rules func(name string, seen map[string]bool) []rbacv1.PolicyRule
	rules = func(name string, seen map[string]bool) []rbacv1.PolicyRule {
		if seen[name] {
			return nil
		}
		seen[name] = true
		role := &rbacv1.ClusterRole{}
		if err := k8sClient.Get(ctx, client.ObjectKey{Name: name}, role); err != nil {
			t.Fatalf("ClusterRole %s: %v", name, err)
		}
		if role.AggregationRule == nil {
			return role.Rules
		}
		var out []rbacv1.PolicyRule
		for _, sel := range role.AggregationRule.ClusterRoleSelectors {
			selector, err := metav1.LabelSelectorAsSelector(&sel)
			if err != nil {
				t.Fatal(err)
			}
			var list rbacv1.ClusterRoleList
			if err := k8sClient.List(ctx, &list, client.MatchingLabelsSelector{Selector: selector}); err != nil {
				t.Fatal(err)
			}
			for _, m := range list.Items {
				out = append(out, rules(m.Name, seen)...)
			}
		}
		return out
	}
	role := &rbacv1.ClusterRole{}
	if err := k8sClient.Get(ctx, client.ObjectKey{Name: name}, role); err != nil {
		t.Fatal(err)
	}
	role.Rules = rules(name, map[string]bool{})
	if len(role.Rules) == 0 {
		t.Fatalf("ClusterRole %s aggregates no rules", name)
	}
	if err := k8sClient.Update(ctx, role); err != nil {
		t.Fatalf("aggregate ClusterRole %s: %v", name, err)
	}
}
