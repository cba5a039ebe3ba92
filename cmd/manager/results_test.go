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
	"bytes"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/yaml"

	"github.com/aivm-dev/aivm-operator/controllers"
	"github.com/aivm-dev/aivm-operator/controllers/resultendpoint"
	"github.com/aivm-dev/aivm-operator/internal/testenv"
)

// TestManagerRefusesBadResultFlags: result endpoint settings that cannot
// work stop the manager at start, naming the flag.
func TestManagerRefusesBadResultFlags(t *testing.T) {
	for flagName, args := range map[string][]string{
		"--result-tls-secret":   {"--result-tls-secret=just-a-name"},
		"--result-service-name": {"--result-service-name="},
		"--result-cert-secret":  {"--result-cert-secret="},
	} {
		opts, err := parseFlags(args...)
		if err != nil {
			t.Fatal(err)
		}
		if err := run(t.Context(), nil, opts); err == nil || !strings.Contains(err.Error(), flagName) {
			t.Errorf("run with %v: %v, want an error naming %s", args, err, flagName)
		}
	}
	// A user Secret needs no Service name; a disabled endpoint needs nothing.
	for _, args := range [][]string{
		{"--result-tls-secret=aivm-system/tls", "--result-service-name="},
		{"--result-bind-address=0", "--result-cert-secret="},
	} {
		opts, err := parseFlags(args...)
		if err != nil {
			t.Fatal(err)
		}
		if err := opts.results.validate(); err != nil {
			t.Errorf("%v refused: %v", args, err)
		}
	}
}

// TestChartResultEndpoint renders the chart and checks that the pieces of
// the result endpoint meet: the Service selects the manager's pods and
// reaches the port the endpoint binds; the URL job pods get names that
// Service, and the self-managed certificate carries that name; the
// manager knows its namespace and may write its certificate Secret there.
func TestChartResultEndpoint(t *testing.T) {
	objs, err := testenv.RenderChart(t, "resultEndpoint.port=8443")
	if err != nil {
		t.Fatalf("helm template: %v", err)
	}
	dep := objectOf[appsv1.Deployment](t, objs, "Deployment/aivm-aivm-operator-manager")
	svc := objectOf[corev1.Service](t, objs, "Service/aivm-aivm-operator-result")
	pod := dep.Spec.Template
	if !labels.SelectorFromSet(svc.Spec.Selector).Matches(labels.Set(pod.Labels)) || len(svc.Spec.Selector) == 0 {
		t.Errorf("Service selector %v does not select the manager's pods %v", svc.Spec.Selector, pod.Labels)
	}
	c := pod.Spec.Containers[0]
	opts := parseManagerArgs(t, c)
	if err := opts.results.validate(); err != nil {
		t.Fatal(err)
	}
	if err := opts.controllers.validate(); err != nil {
		t.Fatal(err)
	}
	_, bindPort, err := net.SplitHostPort(opts.results.bindAddress)
	if err != nil {
		t.Fatal(err)
	}
	if len(svc.Spec.Ports) != 1 {
		t.Fatalf("Service ports %v", svc.Spec.Ports)
	}
	sp := svc.Spec.Ports[0]
	i := slices.IndexFunc(c.Ports, func(p corev1.ContainerPort) bool { return p.Name == sp.TargetPort.String() })
	if i < 0 || strconv.Itoa(int(c.Ports[i].ContainerPort)) != bindPort || bindPort != "8443" {
		t.Errorf("Service targets %s, container ports %v, endpoint binds %s", sp.TargetPort.String(), c.Ports, bindPort)
	}
	u, err := url.Parse(opts.controllers.jobs.resultURL)
	if err != nil {
		t.Fatal(err)
	}
	if u.Hostname() != svc.Name+".aivm-system.svc" || u.Port() != strconv.Itoa(int(sp.Port)) || u.Path != resultendpoint.Path {
		t.Errorf("--result-url %s does not name Service %s port %d path %s", u, svc.Name, sp.Port, resultendpoint.Path)
	}
	if opts.results.serviceName != svc.Name || !slices.Contains(resultendpoint.ServiceDNSNames(opts.results.serviceName, "aivm-system"), u.Hostname()) {
		t.Errorf("the certificate's names (service %q) do not cover %s", opts.results.serviceName, u.Hostname())
	}
	i = slices.IndexFunc(c.Env, func(e corev1.EnvVar) bool { return e.Name == PodNamespaceEnv })
	if i < 0 || c.Env[i].ValueFrom == nil || c.Env[i].ValueFrom.FieldRef == nil || c.Env[i].ValueFrom.FieldRef.FieldPath != "metadata.namespace" {
		t.Errorf("the manager is not told its namespace: env %v", c.Env)
	}
	// The certificate Secret: a Role in the release namespace, bound to
	// the manager's service account.
	rb := objectOf[rbacv1.RoleBinding](t, objs, "RoleBinding/aivm-aivm-operator-manager")
	role := objectOf[rbacv1.Role](t, objs, "Role/"+rb.RoleRef.Name)
	if rb.RoleRef.Kind != "Role" || len(rb.Subjects) != 1 || rb.Subjects[0].Name != pod.Spec.ServiceAccountName || rb.Subjects[0].Namespace != "aivm-system" {
		t.Errorf("RoleBinding %+v does not bind the manager's account %s", rb, pod.Spec.ServiceAccountName)
	}
	if role.Namespace != "" {
		t.Errorf("Role pinned to namespace %q, want the release namespace", role.Namespace)
	}
	if !grants(role.Rules, "secrets", "create") || !grants(role.Rules, "secrets", "update") {
		t.Errorf("Role rules %v do not let the manager write its certificate Secret", role.Rules)
	}

	objs, err = testenv.RenderChart(t, "resultEndpoint.tlsSecret=aivm-system/result-tls")
	if err != nil {
		t.Fatalf("helm template: %v", err)
	}
	dep = objectOf[appsv1.Deployment](t, objs, "Deployment/aivm-aivm-operator-manager")
	if got := parseManagerArgs(t, dep.Spec.Template.Spec.Containers[0]).results.tlsSecret; got != "aivm-system/result-tls" {
		t.Errorf("--result-tls-secret %q, want aivm-system/result-tls", got)
	}
	if _, err := testenv.RenderChart(t, "resultEndpoint.tlsSecret=Not_A_Name"); err == nil {
		t.Error("the chart accepts a Secret name that is not one")
	}
}

func grants(rules []rbacv1.PolicyRule, resource, verb string) bool {
	for _, r := range rules {
		if slices.Contains(r.Resources, resource) && slices.Contains(r.Verbs, verb) {
			return true
		}
	}
	return false
}

// TestConfigResultService: the kustomize install's Service for the result
// endpoint is the one the manager's defaults name (namePrefix applied).
func TestConfigResultService(t *testing.T) {
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	var kust struct {
		Namespace  string `json:"namespace"`
		NamePrefix string `json:"namePrefix"`
	}
	readYAML(t, filepath.Join(root, "config", "default", "kustomization.yaml"), &kust)
	var svc *corev1.Service
	b, err := os.ReadFile(filepath.Join(root, "config", "manager", "manager.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, doc := range bytes.Split(b, []byte("\n---\n")) {
		s := &corev1.Service{}
		// The result Service is the one in front of the container's
		// result port; config/manager has a metrics Service too.
		if err := yaml.Unmarshal(doc, s); err == nil && s.Kind == "Service" && len(s.Spec.Ports) == 1 && s.Spec.Ports[0].TargetPort.String() == "result" {
			svc = s
		}
	}
	if svc == nil {
		t.Fatal("config/manager/manager.yaml has no Service for the result port")
	}
	defaults, err := parseFlags()
	if err != nil {
		t.Fatal(err)
	}
	name := kust.NamePrefix + svc.Name
	if name != defaults.results.serviceName || kust.Namespace != defaultNamespace {
		t.Errorf("config installs Service %s/%s; the manager's default is %s/%s", kust.Namespace, name, defaultNamespace, defaults.results.serviceName)
	}
	u, err := url.Parse(controllers.DefaultResultURL)
	if err != nil {
		t.Fatal(err)
	}
	if u.Hostname() != name+"."+kust.Namespace+".svc" || u.Port() != strconv.Itoa(int(svc.Spec.Ports[0].Port)) {
		t.Errorf("the default --result-url %s does not name the Service %s port %d", u, name, svc.Spec.Ports[0].Port)
	}
}

func readYAML(t *testing.T, path string, into any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, into); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}
