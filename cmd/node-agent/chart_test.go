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
	"flag"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/aivm-dev/aivm-operator/artifact"
	"github.com/aivm-dev/aivm-operator/internal/testenv"
	"github.com/aivm-dev/aivm-operator/nodeagent"
)

const agentDaemonSet = "DaemonSet/aivm-aivm-operator-node-agent"

// chartAgent renders the chart and returns the agent's pod spec and its
// options, parsed with the agent's own flags and checked as the agent
// checks them at start.
func chartAgent(t *testing.T, set ...string) (corev1.PodSpec, options) {
	t.Helper()
	chart, err := testenv.RenderChart(t, set...)
	if err != nil {
		t.Fatalf("helm template: %v", err)
	}
	ds := &appsv1.DaemonSet{}
	chart.Object(t, agentDaemonSet, ds)
	pod := ds.Spec.Template.Spec
	c := pod.Containers[0]
	var o options
	fs := flag.NewFlagSet("node-agent", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	o.bindFlags(fs, &zap.Options{})
	if err := fs.Parse(c.Args); err != nil {
		t.Fatalf("the chart passes the agent args it does not accept: %v (args %q)", err, c.Args)
	}
	var nodeNameFromAPI bool
	for _, e := range c.Env {
		if e.Name == "NODE_NAME" && e.ValueFrom != nil && e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "spec.nodeName" {
			nodeNameFromAPI = true
		}
	}
	if !nodeNameFromAPI {
		t.Errorf("NODE_NAME does not come from spec.nodeName: %+v", c.Env)
	}
	if err := o.validate(); err != nil {
		t.Errorf("the agent would refuse the chart's flags: %v", err)
	}
	return pod, o
}

// TestChartNodeAgentDefaults: the chart's defaults are the agent's own, and
// the agent runs on GPU nodes with the NVIDIA runtime class.
func TestChartNodeAgentDefaults(t *testing.T) {
	pod, o := chartAgent(t)
	if o.pollInterval != nodeagent.DefaultPollInterval || o.heartbeatInterval != nodeagent.DefaultHeartbeatInterval ||
		o.prefetchConcurrency != nodeagent.DefaultPrefetchConcurrency || o.cacheSyncInterval != nodeagent.DefaultCacheSyncInterval ||
		o.modelFileConcurrency != artifact.DefaultFileConcurrency ||
		!o.prefetch || o.simulate != "" || o.modelCacheDir != "/var/lib/aivm/models" {
		t.Errorf("agent options from the chart's defaults: %+v", o)
	}
	if pod.RuntimeClassName == nil || *pod.RuntimeClassName != "nvidia" || pod.NodeSelector["nvidia.com/gpu.present"] != "true" {
		t.Errorf("runtimeClassName %v, nodeSelector %v: want nvidia on nvidia.com/gpu.present nodes", pod.RuntimeClassName, pod.NodeSelector)
	}
}

// TestChartNodeAgentValues: each value reaches the agent's flags, and a
// simulated agent drops the GPU node selector and runtime class.
func TestChartNodeAgentValues(t *testing.T) {
	pod, o := chartAgent(t,
		"nodeAgent.simulate=dgxh100", "nodeAgent.pollInterval=5s", "nodeAgent.heartbeatInterval=20s",
		"nodeAgent.prefetch=false", "nodeAgent.modelCacheMaxBytes=107374182400", "nodeAgent.hfBaseURL=https://hf-mirror.example",
		"nodeAgent.ignoreXIDs=48", "nodeAgent.criticalXIDs=13", "nodeAgent.prefetchConcurrency=4", "nodeAgent.cacheSyncInterval=30s",
		"nodeAgent.modelFileConcurrency=8")
	if o.simulate != "dgxh100" || o.pollInterval != 5*time.Second || o.heartbeatInterval != 20*time.Second || o.prefetch ||
		o.modelCacheMaxBytes != 100<<30 || o.hfBaseURL != "https://hf-mirror.example" || o.ignoreXIDs != "48" ||
		o.criticalXIDs != "13" || o.prefetchConcurrency != 4 || o.cacheSyncInterval != 30*time.Second ||
		o.modelFileConcurrency != 8 {
		t.Errorf("agent options from the chart's values: %+v", o)
	}
	if pod.RuntimeClassName != nil || len(pod.NodeSelector) != 0 {
		t.Errorf("a simulated agent keeps runtimeClassName %v and nodeSelector %v", pod.RuntimeClassName, pod.NodeSelector)
	}
}

// TestChartCredentialNamespaces: each listed namespace gets one Role and
// RoleBinding; the release namespace, which holds the provider key, is
// refused.
func TestChartCredentialNamespaces(t *testing.T) {
	chart, err := testenv.RenderChart(t, "nodeAgent.modelCredentialNamespaces={ml-team,research,ml-team}")
	if err != nil {
		t.Fatalf("helm template: %v", err)
	}
	for _, ns := range []string{"ml-team", "research"} {
		role := &rbacv1.Role{}
		chart.Object(t, "Role/"+ns+"/aivm-aivm-operator-node-agent-model-credentials", role)
		if len(role.Rules) != 1 || !slices.Equal(role.Rules[0].Verbs, []string{"get"}) || !slices.Equal(role.Rules[0].Resources, []string{"secrets"}) {
			t.Errorf("role in %s: %+v, want get on secrets only", ns, role.Rules)
		}
	}
	roles := 0
	for key := range chart {
		if strings.HasPrefix(key, "Role/") && strings.HasSuffix(key, "-model-credentials") {
			roles++
		}
	}
	if roles != 2 {
		t.Errorf("%d credential Roles for two distinct namespaces", roles)
	}
	if _, err := testenv.RenderChart(t, "nodeAgent.modelCredentialNamespaces={ml-team,aivm-system}"); err == nil ||
		!strings.Contains(err.Error(), "provider key") {
		t.Errorf("listing the release namespace: %v, want a refusal naming the provider key", err)
	}
}
