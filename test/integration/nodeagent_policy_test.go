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
	"bytes"
	"context"
	"errors"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/google/go-cmp/cmp"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	aivmv1alpha1 "github.com/aivm-dev/aivm-operator/api/v1alpha1"
	"github.com/aivm-dev/aivm-operator/internal/testenv"
	"github.com/aivm-dev/aivm-operator/nodeagent"
)

const (
	// policyName is the name of the policy and its binding in
	// config/node-agent/admission-policy.yaml.
	policyName = "node-agent-restriction"
	// defaultAgentUser is the node agent's service-account username the
	// config file is written for (config/default: namespace aivm-system,
	// name prefix aivm-).
	defaultAgentUser = "system:serviceaccount:aivm-system:aivm-node-agent"
	// nodeNameExtra is the user-info extra key that carries the node name
	// of a pod-bound service-account token.
	nodeNameExtra = "authentication.kubernetes.io/node-name"

	policyNamespace = "node-agent-policy"
	agentSA         = "node-agent"
	nodeA           = "policy-gpu-a"
	nodeB           = "policy-gpu-b"
)

// TestNodeAgentPolicy applies the node agent's ValidatingAdmissionPolicy and
// ClusterRole from config/node-agent and drives the API server with a real
// pod-bound service-account token: the agent may write its own Node's GPU
// labels and its own GPUNode, and nothing of another node's.
func TestNodeAgentPolicy(t *testing.T) {
	ctx := context.Background()
	cfg, admin := testConfig, k8sClient

	user := "system:serviceaccount:" + policyNamespace + ":" + agentSA
	applyAgentPolicy(ctx, t, admin, user)
	grantAgentRole(ctx, t, admin)

	mustCreate(ctx, t, admin, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: policyNamespace}})
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: policyNamespace, Name: agentSA}}
	mustCreate(ctx, t, admin, sa)
	for _, name := range []string{nodeA, nodeB} {
		mustCreate(ctx, t, admin, &corev1.Node{ObjectMeta: metav1.ObjectMeta{
			Name:   name,
			Labels: map[string]string{"topology.kubernetes.io/zone": "zone-1"},
		}})
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: policyNamespace, Name: "node-agent-a"},
		Spec: corev1.PodSpec{
			ServiceAccountName: agentSA,
			NodeName:           nodeA,
			Containers:         []corev1.Container{{Name: "node-agent", Image: "ghcr.io/aivm-dev/aivm-node-agent:dev"}},
		},
	}
	mustCreate(ctx, t, admin, pod)

	agent := tokenClient(ctx, t, admin, cfg, sa, &authenticationv1.BoundObjectReference{
		Kind: "Pod", APIVersion: "v1", Name: pod.Name, UID: pod.UID,
	})
	unbound := tokenClient(ctx, t, admin, cfg, sa, nil)

	// The pod-bound token names node A; the unbound one names no node.
	if got := whoAmI(ctx, t, agent); got.Username != user || !slices.Equal(got.Extra[nodeNameExtra], []string{nodeA}) {
		t.Fatalf("pod-bound token: got user %q, extra %v; want %q with %s=[%s]", got.Username, got.Extra, user, nodeNameExtra, nodeA)
	}
	if got := whoAmI(ctx, t, unbound); got.Username != user || len(got.Extra[nodeNameExtra]) != 0 {
		t.Fatalf("unbound token: got user %q, extra %v; want %q without %s", got.Username, got.Extra, user, nodeNameExtra)
	}

	// The binding takes effect once the API server has loaded and compiled
	// the policy and the RBAC binding: probe with a dry run until the
	// policy answers.
	probe := &aivmv1alpha1.GPUNode{ObjectMeta: metav1.ObjectMeta{Name: nodeB}}
	err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		err := agent.Create(ctx, probe.DeepCopy(), client.DryRunAll)
		return err != nil && strings.Contains(err.Error(), policyName), nil
	})
	if err != nil {
		t.Fatalf("the policy never denied the agent's dry-run create of GPUNode %s: %v", nodeB, err)
	}

	nodeAUID := getNode(ctx, t, admin, nodeA).UID

	t.Run("own GPUNode and its status", func(t *testing.T) {
		gn := &aivmv1alpha1.GPUNode{ObjectMeta: metav1.ObjectMeta{
			Name:            nodeA,
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "v1", Kind: "Node", Name: nodeA, UID: nodeAUID}},
		}}
		if err := agent.Create(ctx, gn); err != nil {
			t.Fatalf("create own GPUNode: %v", err)
		}
		if err := agent.Status().Patch(ctx, &aivmv1alpha1.GPUNode{ObjectMeta: metav1.ObjectMeta{Name: nodeA}},
			mergePatch(`{"status":{"gpuCount":8,"healthyGPUCount":8,"driverVersion":"550.54.15"}}`)); err != nil {
			t.Fatalf("patch own GPUNode status: %v", err)
		}
		if err := agent.Patch(ctx, &aivmv1alpha1.GPUNode{ObjectMeta: metav1.ObjectMeta{Name: nodeA}},
			mergePatch(`{"metadata":{"annotations":{"aivm.dev/agent-version":"dev"}}}`)); err != nil {
			t.Fatalf("patch own GPUNode: %v", err)
		}
		got := &aivmv1alpha1.GPUNode{}
		if err := admin.Get(ctx, client.ObjectKey{Name: nodeA}, got); err != nil {
			t.Fatal(err)
		}
		if got.Status.GPUCount != 8 || got.Status.DriverVersion != "550.54.15" || got.Annotations["aivm.dev/agent-version"] != "dev" {
			t.Errorf("own GPUNode after the agent's writes: status %+v, annotations %v", got.Status, got.Annotations)
		}
	})

	t.Run("own Node GPU labels", func(t *testing.T) {
		if err := agent.Patch(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: nodeA}},
			mergePatch(`{"metadata":{"labels":{"aivm.dev/gpu.present":"true","aivm.dev/gpu.count":"8","aivm.dev/gpu.product":"NVIDIA-A100-SXM4-40GB"}}}`)); err != nil {
			t.Fatalf("add GPU labels to own Node: %v", err)
		}
		if err := agent.Patch(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: nodeA}},
			mergePatch(`{"metadata":{"labels":{"aivm.dev/gpu.count":"7","aivm.dev/gpu.product":null}}}`)); err != nil {
			t.Fatalf("change and remove GPU labels on own Node: %v", err)
		}
		want := map[string]string{
			"topology.kubernetes.io/zone": "zone-1",
			"aivm.dev/gpu.present":        "true",
			"aivm.dev/gpu.count":          "7",
		}
		if got := getNode(ctx, t, admin, nodeA).Labels; !maps.Equal(got, want) {
			t.Errorf("node %s labels: got %v, want %v", nodeA, got, want)
		}
	})

	// Each denial names what was refused and why, and changes nothing.
	gnB := &aivmv1alpha1.GPUNode{ObjectMeta: metav1.ObjectMeta{Name: nodeB}}
	mustCreate(ctx, t, admin, gnB)
	nodeABefore := getNode(ctx, t, admin, nodeA)
	nodeBBefore := getNode(ctx, t, admin, nodeB)
	denials := []struct {
		name string
		do   func(client.Client) error
		want string
	}{{
		name: "create another node's GPUNode",
		do: func(c client.Client) error {
			return c.Create(ctx, &aivmv1alpha1.GPUNode{ObjectMeta: metav1.ObjectMeta{Name: "policy-gpu-c"}})
		},
		want: "the node agent on node " + nodeA + " may not write GPUNode policy-gpu-c",
	}, {
		name: "patch another node's GPUNode status",
		do: func(c client.Client) error {
			return c.Status().Patch(ctx, &aivmv1alpha1.GPUNode{ObjectMeta: metav1.ObjectMeta{Name: nodeB}},
				mergePatch(`{"status":{"gpuCount":1}}`))
		},
		want: "the node agent on node " + nodeA + " may not write GPUNode " + nodeB,
	}, {
		name: "patch another node's GPUNode",
		do: func(c client.Client) error {
			return c.Patch(ctx, &aivmv1alpha1.GPUNode{ObjectMeta: metav1.ObjectMeta{Name: nodeB}},
				mergePatch(`{"metadata":{"labels":{"stolen":"yes"}}}`))
		},
		want: "the node agent on node " + nodeA + " may not write GPUNode " + nodeB,
	}, {
		name: "GPU labels on another Node",
		do: func(c client.Client) error {
			return c.Patch(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: nodeB}},
				mergePatch(`{"metadata":{"labels":{"aivm.dev/gpu.count":"64"}}}`))
		},
		want: "the node agent on node " + nodeA + " may not write Node " + nodeB,
	}, {
		name: "non-GPU label on own Node",
		do: func(c client.Client) error {
			return c.Patch(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: nodeA}},
				mergePatch(`{"metadata":{"labels":{"aivm.dev/gpu.count":"8","topology.kubernetes.io/zone":"zone-2"}}}`))
		},
		want: "the node agent may change only aivm.dev/gpu.* labels on its Node, not topology.kubernetes.io/zone",
	}, {
		name: "removing a non-GPU label on own Node",
		do: func(c client.Client) error {
			return c.Patch(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: nodeA}},
				mergePatch(`{"metadata":{"labels":{"topology.kubernetes.io/zone":null}}}`))
		},
		want: "not topology.kubernetes.io/zone",
	}, {
		name: "annotation on own Node",
		do: func(c client.Client) error {
			return c.Patch(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: nodeA}},
				mergePatch(`{"metadata":{"annotations":{"aivm.dev/gpu.count":"8"}}}`))
		},
		want: "spec, status, annotations, owner references and finalizers are not the agent's to change",
	}, {
		name: "spec of own Node",
		do: func(c client.Client) error {
			return c.Patch(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: nodeA}},
				mergePatch(`{"spec":{"unschedulable":true}}`))
		},
		want: "spec, status, annotations, owner references and finalizers are not the agent's to change",
	}}
	for _, d := range denials {
		t.Run("denied: "+d.name, func(t *testing.T) {
			expectDenied(t, d.do(agent), d.want)
		})
	}
	t.Run("denied: token without a node name", func(t *testing.T) {
		want := "the node agent's credentials name no node"
		expectDenied(t, unbound.Patch(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: nodeA}},
			mergePatch(`{"metadata":{"labels":{"aivm.dev/gpu.count":"1"}}}`)), want)
		expectDenied(t, unbound.Status().Patch(ctx, &aivmv1alpha1.GPUNode{ObjectMeta: metav1.ObjectMeta{Name: nodeA}},
			mergePatch(`{"status":{"gpuCount":1}}`)), want)
		expectDenied(t, unbound.Create(ctx, &aivmv1alpha1.GPUNode{ObjectMeta: metav1.ObjectMeta{Name: "policy-gpu-d"}}), want)
	})

	t.Run("denials changed nothing", func(t *testing.T) {
		for _, before := range []*corev1.Node{nodeABefore, nodeBBefore} {
			after := getNode(ctx, t, admin, before.Name)
			if after.ResourceVersion != before.ResourceVersion {
				t.Errorf("node %s changed: labels %v, annotations %v, unschedulable %v", before.Name, after.Labels, after.Annotations, after.Spec.Unschedulable)
			}
		}
		got := &aivmv1alpha1.GPUNode{}
		if err := admin.Get(ctx, client.ObjectKey{Name: nodeB}, got); err != nil {
			t.Fatal(err)
		}
		if got.ResourceVersion != gnB.ResourceVersion {
			t.Errorf("GPUNode %s changed: labels %v, status %+v", nodeB, got.Labels, got.Status)
		}
		for _, name := range []string{"policy-gpu-c", "policy-gpu-d"} {
			err := admin.Get(ctx, client.ObjectKey{Name: name}, &aivmv1alpha1.GPUNode{})
			if !apierrors.IsNotFound(err) {
				t.Errorf("GPUNode %s: got %v, want not found", name, err)
			}
		}
	})

	// The policy binds only the node agent: other users keep their rights.
	t.Run("other users unaffected", func(t *testing.T) {
		if err := admin.Patch(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: nodeB}},
			mergePatch(`{"metadata":{"labels":{"topology.kubernetes.io/zone":"zone-3","aivm.dev/gpu.count":"2"}}}`)); err != nil {
			t.Errorf("admin relabels node %s: %v", nodeB, err)
		}
	})

	// The agent's own publisher works under the policy on its node and is
	// refused on another.
	t.Run("node agent publisher", func(t *testing.T) {
		st := aivmv1alpha1.GPUNodeStatus{GPUCount: 8, HealthyGPUCount: 7, DriverVersion: "550.54.15"}
		labels := map[string]string{
			aivmv1alpha1.LabelGPUPresent:      "true",
			aivmv1alpha1.LabelGPUCount:        "8",
			aivmv1alpha1.LabelGPUHealthyCount: "7",
		}
		own, err := nodeagent.NewPublisher(agent, nodeagent.PublisherOptions{NodeName: nodeA, HeartbeatInterval: time.Minute, Log: logr.Discard()})
		if err != nil {
			t.Fatal(err)
		}
		if err := own.Publish(ctx, st, labels); err != nil {
			t.Fatalf("publish on own node: %v", err)
		}
		got := getNode(ctx, t, admin, nodeA).Labels
		if got[aivmv1alpha1.LabelGPUHealthyCount] != "7" || got["topology.kubernetes.io/zone"] != "zone-1" {
			t.Errorf("node %s labels after publish: %v", nodeA, got)
		}
		other, err := nodeagent.NewPublisher(agent, nodeagent.PublisherOptions{NodeName: nodeB, HeartbeatInterval: time.Minute, Log: logr.Discard()})
		if err != nil {
			t.Fatal(err)
		}
		expectDenied(t, other.Publish(ctx, st, labels), "may not write GPUNode "+nodeB)
	})

	// Model credentials: no Secret is readable cluster-wide; the chart's
	// nodeAgent.modelCredentialNamespaces grants the listed namespaces only.
	t.Run("model credentials only where granted", func(t *testing.T) {
		const granted, other = "creds-granted", "creds-other"
		for _, ns := range []string{granted, other} {
			mustCreate(ctx, t, admin, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})
			mustCreate(ctx, t, admin, &corev1.Secret{
				ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "hf-token"},
				StringData: map[string]string{"token": "hf_not_a_real_token"},
			})
		}
		mustCreate(ctx, t, admin, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: policyNamespace, Name: "provider-key"},
			StringData: map[string]string{"private-key": strings.Repeat("ab", 32)},
		})
		getSecret := func(ns, name string) error {
			return agent.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &corev1.Secret{})
		}
		for _, key := range [][2]string{{granted, "hf-token"}, {other, "hf-token"}, {policyNamespace, "provider-key"}} {
			if err := getSecret(key[0], key[1]); !apierrors.IsForbidden(err) {
				t.Fatalf("the agent read secret %s/%s without a grant: %v", key[0], key[1], err)
			}
		}

		chart, err := testenv.RenderChart(t, "nodeAgent.modelCredentialNamespaces={"+granted+"}")
		if err != nil {
			t.Fatalf("helm template: %v", err)
		}
		role, binding := &rbacv1.Role{}, &rbacv1.RoleBinding{}
		chart.Object(t, "Role/"+granted+"/aivm-aivm-operator-node-agent-model-credentials", role)
		chart.Object(t, "RoleBinding/"+granted+"/aivm-aivm-operator-node-agent-model-credentials", binding)
		if role.Namespace != granted || binding.Namespace != granted {
			t.Fatalf("the chart grants in namespaces %q and %q, want %q", role.Namespace, binding.Namespace, granted)
		}
		if want := (rbacv1.Subject{Kind: "ServiceAccount", Name: "aivm-aivm-operator-node-agent", Namespace: "aivm-system"}); len(binding.Subjects) != 1 || binding.Subjects[0] != want {
			t.Fatalf("the chart binds %v, want the agent's service account %v", binding.Subjects, want)
		}
		// Bind the chart's Role to this test's agent service account.
		binding.Subjects[0].Name, binding.Subjects[0].Namespace = agentSA, policyNamespace
		mustCreate(ctx, t, admin, role)
		mustCreate(ctx, t, admin, binding)

		err = wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
			return getSecret(granted, "hf-token") == nil, nil
		})
		if err != nil {
			t.Fatalf("the agent cannot read a secret in the granted namespace %s: %v", granted, getSecret(granted, "hf-token"))
		}
		for _, key := range [][2]string{{other, "hf-token"}, {policyNamespace, "provider-key"}} {
			if err := getSecret(key[0], key[1]); !apierrors.IsForbidden(err) {
				t.Errorf("the agent read secret %s/%s outside the granted namespace: %v", key[0], key[1], err)
			}
		}
		var list corev1.SecretList
		if err := agent.List(ctx, &list, client.InNamespace(granted)); !apierrors.IsForbidden(err) {
			t.Errorf("the agent listed secrets in %s: %v (it may get them by name only)", granted, err)
		}
	})
}

// applyAgentPolicy creates the policy and binding from
// config/node-agent/admission-policy.yaml, written for user instead of the
// default install's service account.
func applyAgentPolicy(ctx context.Context, t *testing.T, c client.Client, user string) {
	t.Helper()
	data := readRepoFile(t, "config", "node-agent", "admission-policy.yaml")
	if n := bytes.Count(data, []byte(defaultAgentUser)); n != 1 {
		t.Fatalf("admission-policy.yaml names %s %d times, want once", defaultAgentUser, n)
	}
	data = bytes.ReplaceAll(data, []byte(defaultAgentUser), []byte(user))
	kinds := map[string]bool{}
	for _, obj := range decodeManifest(t, data) {
		mustCreate(ctx, t, c, obj)
		kinds[obj.GetKind()] = true
	}
	if !kinds["ValidatingAdmissionPolicy"] || !kinds["ValidatingAdmissionPolicyBinding"] {
		t.Fatalf("admission-policy.yaml: got kinds %v, want a policy and its binding", kinds)
	}
}

// grantAgentRole creates the node agent's generated ClusterRole and binds it
// to the test's service account.
func grantAgentRole(ctx context.Context, t *testing.T, c client.Client) {
	t.Helper()
	role := &rbacv1.ClusterRole{}
	if err := yaml.UnmarshalStrict(readRepoFile(t, "config", "node-agent", "rbac", "role.yaml"), role); err != nil {
		t.Fatalf("parse config/node-agent/rbac/role.yaml: %v", err)
	}
	mustCreate(ctx, t, c, role)
	mustCreate(ctx, t, c, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "policy-test-node-agent"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role.Name},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: policyNamespace, Name: agentSA}},
	})
}

// tokenClient requests a token for sa through the TokenRequest API, bound to
// ref when given, and returns a client that authenticates with that token
// alone.
func tokenClient(ctx context.Context, t *testing.T, admin client.Client, cfg *rest.Config, sa *corev1.ServiceAccount, ref *authenticationv1.BoundObjectReference) client.Client {
	t.Helper()
	tr := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{BoundObjectRef: ref}}
	if err := admin.SubResource("token").Create(ctx, sa, tr); err != nil {
		t.Fatalf("request token for %s/%s: %v", sa.Namespace, sa.Name, err)
	}
	if tr.Status.Token == "" {
		t.Fatal("token request returned no token")
	}
	tc := rest.AnonymousClientConfig(cfg)
	tc.BearerToken = tr.Status.Token
	c, err := client.New(tc, client.Options{Scheme: testenv.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	return client.WithFieldValidation(c, metav1.FieldValidationStrict)
}

// whoAmI returns the user the API server sees behind c.
func whoAmI(ctx context.Context, t *testing.T, c client.Client) authenticationv1.UserInfo {
	t.Helper()
	r := &authenticationv1.SelfSubjectReview{}
	if err := c.Create(ctx, r); err != nil {
		t.Fatalf("self subject review: %v", err)
	}
	return r.Status.UserInfo
}

func expectDenied(t *testing.T, err error, want string) {
	t.Helper()
	switch {
	case err == nil:
		t.Errorf("allowed, want denied with %q", want)
	case !apierrors.IsForbidden(err) && !apierrors.IsInvalid(err):
		t.Errorf("got %v, want Forbidden or Invalid with %q", err, want)
	case !strings.Contains(err.Error(), policyName) || !strings.Contains(err.Error(), want):
		t.Errorf("got %q, want a denial by %s with %q", err, policyName, want)
	}
}

func mustCreate(ctx context.Context, t *testing.T, c client.Client, obj client.Object) {
	t.Helper()
	if err := c.Create(ctx, obj); err != nil {
		t.Fatalf("create %T %s: %v", obj, obj.GetName(), err)
	}
}

func getNode(ctx context.Context, t *testing.T, c client.Client, name string) *corev1.Node {
	t.Helper()
	n := &corev1.Node{}
	if err := c.Get(ctx, client.ObjectKey{Name: name}, n); err != nil {
		t.Fatalf("get node %s: %v", name, err)
	}
	return n
}

func readRepoFile(t *testing.T, elem ...string) []byte {
	t.Helper()
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(append([]string{root}, elem...)...))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func mergePatch(data string) client.Patch { return client.RawPatch(types.MergePatchType, []byte(data)) }

// TestNodeAgentPolicyChartMatchesConfig checks that the Helm chart's copy of
// the policy enforces the same rules as config/node-agent: with the chart's
// names filled in as config/default names things, the specs are equal.
func TestNodeAgentPolicyChartMatchesConfig(t *testing.T) {
	tmpl := string(readRepoFile(t, "charts", "aivm-operator", "templates", "node-agent-policy.yaml"))
	var lines []string
	for _, l := range strings.Split(tmpl, "\n") {
		switch {
		case strings.HasPrefix(l, "{{-"):
			continue // the values guard and its end
		case strings.Contains(l, "labels: {{- include"):
			l = strings.Split(l, "{{")[0]
		}
		lines = append(lines, l)
	}
	chart := strings.NewReplacer(
		`{{ .Release.Namespace }}`, "aivm-system",
		`{{ include "aivm.fullname" . }}`, "aivm",
	).Replace(strings.Join(lines, "\n"))
	if strings.Contains(chart, "{{") {
		t.Fatalf("node-agent-policy.yaml has template expressions this test does not know:\n%s", chart)
	}
	got := policySpecs(t, []byte(chart))
	want := policySpecs(t, readRepoFile(t, "config", "node-agent", "admission-policy.yaml"))
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("chart policy differs from config/node-agent/admission-policy.yaml (-config +chart):\n%s", diff)
	}
}

// policySpecs returns the spec of each object in a policy manifest by kind,
// without the binding's policyName (which differs by install method).
func policySpecs(t *testing.T, data []byte) map[string]any {
	t.Helper()
	specs := map[string]any{}
	for _, obj := range decodeManifest(t, data) {
		unstructured.RemoveNestedField(obj.Object, "spec", "policyName")
		specs[obj.GetKind()] = obj.Object["spec"]
	}
	if len(specs) != 2 {
		t.Fatalf("policy manifest: got kinds %v, want a policy and its binding", specs)
	}
	return specs
}

// decodeManifest returns the objects of a multi-document YAML manifest.
func decodeManifest(t *testing.T, data []byte) []*unstructured.Unstructured {
	t.Helper()
	var objs []*unstructured.Unstructured
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	for {
		obj := &unstructured.Unstructured{}
		err := dec.Decode(&obj.Object)
		if errors.Is(err, io.EOF) {
			return objs
		}
		if err != nil {
			t.Fatalf("decode manifest: %v", err)
		}
		if len(obj.Object) > 0 {
			objs = append(objs, obj)
		}
	}
}
