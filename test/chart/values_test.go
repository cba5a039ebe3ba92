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

// Package chart checks the Helm chart's values schema against values.yaml
// and against the values a provider may mistype.
package chart

import (
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/aivm-dev/aivm-operator/internal/testenv"
)

// schemaNode is the part of a JSON schema the key walk needs.
type schemaNode struct {
	Type                 any                    `json:"type"`
	Properties           map[string]*schemaNode `json:"properties"`
	AdditionalProperties any                    `json:"additionalProperties"`
}

func chartDir(t *testing.T) string {
	t.Helper()
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(root, "charts", "aivm-operator")
}

// closed reports whether a schema object lists its keys (additionalProperties
// false); open objects (affinity, nodeSelector, tolerations) pass through
// Kubernetes structures and are not walked.
func (n *schemaNode) closed() bool {
	b, ok := n.AdditionalProperties.(bool)
	return ok && !b
}

// TestValuesAndSchemaAgree walks values.yaml and values.schema.json together:
// every value in one must appear in the other, and every closed object in
// the schema refuses unknown keys.
func TestValuesAndSchemaAgree(t *testing.T) {
	dir := chartDir(t)
	var values map[string]any
	b, err := os.ReadFile(filepath.Join(dir, "values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &values); err != nil {
		t.Fatalf("values.yaml: %v", err)
	}
	var schema schemaNode
	sb, err := os.ReadFile(filepath.Join(dir, "values.schema.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(sb, &schema); err != nil {
		t.Fatalf("values.schema.json: %v", err)
	}
	var problems []string
	var walk func(path string, v map[string]any, s *schemaNode)
	walk = func(path string, v map[string]any, s *schemaNode) {
		if !s.closed() {
			problems = append(problems, path+": schema object does not set additionalProperties: false")
		}
		for k, val := range v {
			p := strings.TrimPrefix(path+"."+k, ".")
			child, ok := s.Properties[k]
			if !ok {
				problems = append(problems, p+": in values.yaml, not in the schema")
				continue
			}
			if m, ok := val.(map[string]any); ok && child.Properties != nil {
				walk(p, m, child)
			}
		}
		for k := range s.Properties {
			// Resource lists name any of the standard resources; values.yaml
			// sets only some of them.
			if _, ok := v[k]; ok || k == "global" || strings.HasSuffix(path, ".limits") || strings.HasSuffix(path, ".requests") {
				continue
			}
			problems = append(problems, strings.TrimPrefix(path+"."+k, ".")+": in the schema, not in values.yaml")
		}
	}
	walk("", values, &schema)
	sort.Strings(problems)
	for _, p := range problems {
		t.Error(p)
	}
}

// TestBadValuesRefused renders the chart with values a provider could
// mistype; helm must refuse each, naming the value.
func TestBadValuesRefused(t *testing.T) {
	cases := []struct {
		set  []string
		want []string // substrings of helm's error
	}{
		{[]string{"nodeagent.simulate=dgxa100"}, []string{"nodeagent"}},
		{[]string{"replicaCount=3"}, []string{"replicaCount"}},
		{[]string{"manager.replicas=two"}, []string{"/manager/replicas"}},
		{[]string{"manager.replicas=-1"}, []string{"/manager/replicas"}},
		{[]string{"manager.replica=2"}, []string{"replica"}},
		{[]string{"nodeAgent.simulate=dgxz999"}, []string{"/nodeAgent/simulate"}},
		{[]string{"nodeAgent.pollInterval=fast"}, []string{"/nodeAgent/pollInterval"}},
		{[]string{"nodeAgent.prefetchConcurrency=0"}, []string{"/nodeAgent/prefetchConcurrency"}},
		{[]string{"manager.logLevel=verbose"}, []string{"/manager/logLevel"}},
		{[]string{"chain.batchInterval=soon"}, []string{"/chain/batchInterval"}},
		{[]string{"chain.outbox.accessModes={ReadWriteAlways}"}, []string{"/chain/outbox/accessModes"}},
		{[]string{"image.pullPolicy=Sometimes"}, []string{"/image/pullPolicy"}},
		{[]string{"nodeAgent.modelCacheDir=relative/dir"}, []string{"/nodeAgent/modelCacheDir"}},
		{[]string{"manager.logFormat=xml"}, []string{"/manager/logFormat"}},
		{[]string{"nodeAgent.logFormat=text"}, []string{"/nodeAgent/logFormat"}},
		{[]string{"manager.terminationGracePeriodSeconds=5"}, []string{"/manager/terminationGracePeriodSeconds"}},
		{[]string{"resultEndpoint.port=80"}, []string{"/resultEndpoint/port"}},
		{[]string{"resultEndpoint.tlsSecret=no-namespace"}, []string{"/resultEndpoint/tlsSecret"}},
		{[]string{"jobs.gpuBinding=mig"}, []string{"/jobs/gpuBinding"}},
		{[]string{"jobs.schedulingPolicy=random"}, []string{"/jobs/schedulingPolicy"}},
		{[]string{"jobs.runtimeImage=has space:1"}, []string{"/jobs/runtimeImage"}},
		{[]string{"metrics.serviceMonitor.interval=1.5s"}, []string{"/metrics/serviceMonitor/interval"}},
		{[]string{"metrics.podmonitor.enabled=true"}, []string{"podmonitor"}},
		{[]string{"networkPolicy.enabeld=true"}, []string{"enabeld"}},
		{[]string{"networkPolicy.apiServer.cidrs={10.0.0.1}"}, []string{"/networkPolicy/apiServer/cidrs"}},
		{[]string{"networkPolicy.chainRPC.ports={0}"}, []string{"/networkPolicy/chainRPC/ports"}},
		{[]string{"networkPolicy.jobNamespaces={Team_A}"}, []string{"/networkPolicy/jobNamespaces"}},
		{[]string{"grafanaDashboard.namespace=Monitoring"}, []string{"/grafanaDashboard/namespace"}},
	}
	for _, c := range cases {
		t.Run(strings.Join(c.set, ","), func(t *testing.T) {
			_, err := testenv.RenderChart(t, c.set...)
			if err == nil {
				t.Fatalf("helm template accepted %v", c.set)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("helm's error does not name %q:\n%v", w, err)
				}
			}
			if n := len(err.Error()); n > 2000 {
				t.Errorf("helm's error is %d bytes; want a short message", n)
			}
		})
	}
}

// TestGoodValuesRender renders value sets a provider uses.
func TestGoodValuesRender(t *testing.T) {
	for _, set := range [][]string{
		nil,
		{"nodeAgent.simulate=dgxh100"},
		{"chain.reportResults=true", "chain.keySecret=k", "chain.rpcURL=http://nesa:26657"},
		{"manager.replicas=2", "chain.reportResults=true", "chain.keySecret=k", "chain.rpcURL=http://nesa:26657", "chain.outbox.accessModes={ReadWriteMany}"},
		{"nodeAgent.ignoreXIDs=all", `nodeAgent.criticalXIDs=79\,48`},
		{"manager.logFormat=json", "nodeAgent.logFormat=json", "jobs.runtimeImage=ghcr.io/aivm-dev/aivm-runtime:v1.2.3"},
		{"networkPolicy.enabled=true", "networkPolicy.jobNamespaces={team-a}", "networkPolicy.apiServer.cidrs={10.96.0.1/32,fd00::1/128}"},
		{"metrics.serviceMonitor.enabled=true", "metrics.podMonitor.enabled=true", "metrics.podMonitor.interval=1m", "grafanaDashboard.enabled=true"},
	} {
		if _, err := testenv.RenderChart(t, set...); err != nil {
			t.Errorf("helm template %v: %v", set, err)
		}
	}
}
