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
	"net/url"
	"testing"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"

	"github.com/aivm-dev/aivm-operator/internal/testenv"
)

// configDefault names what config/default does to config/manager: the
// namespace it installs into and the prefix it gives every name.
const (
	configNamespace = "aivm-system"
	configPrefix    = "aivm-"
)

// configObjects decodes the objects of a file under config/ by "Kind/name".
func configObjects(t *testing.T, elem ...string) testenv.Chart {
	t.Helper()
	return testenv.ConfigObjects(t, elem...)
}

// TestChartMatchesConfig: the chart (defaults) and config/ install the same
// manager: the same ports, probes, security contexts, environment, grace
// period and leader-election rules, Services on the same ports, and a
// result URL that names each install's own result Service.
func TestChartMatchesConfig(t *testing.T) {
	chart, err := testenv.RenderChart(t)
	if err != nil {
		t.Fatalf("helm template: %v", err)
	}
	cfg := configObjects(t, "manager", "manager.yaml")
	const fullname = "aivm-aivm-operator"

	chartDep := objectOf[appsv1.Deployment](t, chart, "Deployment/"+fullname+"-manager")
	cfgDep := objectOf[appsv1.Deployment](t, cfg, "Deployment/controller-manager")
	cp, fp := chartDep.Spec.Template.Spec, cfgDep.Spec.Template.Spec
	cc, fc := cp.Containers[0], fp.Containers[0]
	for _, c := range []struct {
		what       string
		chart, cfg any
	}{
		{"pod securityContext", cp.SecurityContext, fp.SecurityContext},
		{"terminationGracePeriodSeconds", cp.TerminationGracePeriodSeconds, fp.TerminationGracePeriodSeconds},
		{"ports", cc.Ports, fc.Ports},
		{"liveness probe", cc.LivenessProbe, fc.LivenessProbe},
		{"readiness probe", cc.ReadinessProbe, fc.ReadinessProbe},
		{"container securityContext", cc.SecurityContext, fc.SecurityContext},
		{"env", cc.Env, fc.Env},
		{"resources", cc.Resources, fc.Resources},
		{"command", cc.Command, fc.Command},
	} {
		if diff := cmp.Diff(c.cfg, c.chart); diff != "" {
			t.Errorf("manager %s differs (-config +chart):\n%s", c.what, diff)
		}
	}

	chartOpts, cfgOpts := parseManagerArgs(t, cc), parseManagerArgs(t, fc)
	if chartOpts.metricsAddr != cfgOpts.metricsAddr || chartOpts.probeAddr != cfgOpts.probeAddr ||
		chartOpts.results.bindAddress != cfgOpts.results.bindAddress || !chartOpts.leaderElect || !cfgOpts.leaderElect {
		t.Errorf("manager flags differ: chart %+v, config %+v", chartOpts, cfgOpts)
	}
	for _, install := range []struct {
		what     string
		objs     testenv.Chart
		service  string
		ns       string
		opts     options
		svcLocal string
	}{
		{"chart", chart, fullname + "-result", "aivm-system", chartOpts, "Service/" + fullname + "-result"},
		{"config", cfg, configPrefix + "operator-result", configNamespace, cfgOpts, "Service/operator-result"},
	} {
		svc := objectOf[corev1.Service](t, install.objs, install.svcLocal)
		u, err := url.Parse(install.opts.controllers.jobs.resultURL)
		if err != nil {
			t.Fatalf("%s --result-url: %v", install.what, err)
		}
		if want := install.service + "." + install.ns + ".svc"; u.Hostname() != want || u.Port() != "9443" || u.Path != "/v1/results" {
			t.Errorf("%s --result-url %s: want https://%s:9443/v1/results", install.what, u, want)
		}
		if install.opts.results.serviceName != install.service {
			t.Errorf("%s --result-service-name %q, want %q (the certificate must name the Service)", install.what, install.opts.results.serviceName, install.service)
		}
		if len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].Port != 9443 || svc.Spec.Ports[0].TargetPort.String() != "result" {
			t.Errorf("%s result Service ports %+v, want 9443 to the result port", install.what, svc.Spec.Ports)
		}
	}
	chartMetrics := objectOf[corev1.Service](t, chart, "Service/"+fullname+"-metrics")
	cfgMetrics := objectOf[corev1.Service](t, cfg, "Service/controller-manager-metrics")
	if diff := cmp.Diff(cfgMetrics.Spec.Ports, chartMetrics.Spec.Ports); diff != "" {
		t.Errorf("metrics Service ports differ (-config +chart):\n%s", diff)
	}

	chartLE := objectOf[rbacv1.Role](t, chart, "Role/"+fullname+"-leader-election")
	cfgLE := objectOf[rbacv1.Role](t, configObjects(t, "rbac", "leader_election_role.yaml"), "Role/leader-election-role")
	if diff := cmp.Diff(cfgLE.Rules, chartLE.Rules); diff != "" {
		t.Errorf("leader-election rules differ (-config +chart):\n%s", diff)
	}
	if _, ok := configObjects(t, "rbac", "role_binding.yaml")["RoleBinding/manager-rolebinding"]; !ok {
		t.Error("config/rbac binds no namespaced manager Role (the chart does)")
	}
}
