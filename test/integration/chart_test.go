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
	"slices"
	"strings"
	"sync"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/yaml"

	"github.com/aivm-dev/aivm-operator/internal/testenv"
)

// chartNamespace is the namespace testenv.RenderChart installs into.
const chartNamespace = "aivm-system"

// monitoringCRDs are the parts of the Prometheus Operator's ServiceMonitor
// and PodMonitor schemas the chart uses (the interval pattern is theirs).
// Unknown fields are refused, so a misspelt field fails the dry run.
const monitoringCRDs = `
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: servicemonitors.monitoring.coreos.com}
spec:
  group: monitoring.coreos.com
  scope: Namespaced
  names: {kind: ServiceMonitor, listKind: ServiceMonitorList, plural: servicemonitors, singular: servicemonitor}
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema:
          type: object
          properties:
            spec:
              type: object
              required: [endpoints, selector]
              properties:
                selector:
                  type: object
                  properties:
                    matchLabels: {type: object, additionalProperties: {type: string}}
                    matchExpressions:
                      type: array
                      items:
                        type: object
                        required: [key, operator]
                        properties:
                          key: {type: string}
                          operator: {type: string}
                          values: {type: array, items: {type: string}}
                namespaceSelector:
                  type: object
                  properties:
                    any: {type: boolean}
                    matchNames: {type: array, items: {type: string}}
                endpoints:
                  type: array
                  items:
                    type: object
                    properties:
                      port: {type: string}
                      path: {type: string}
                      interval:
                        type: string
                        pattern: '^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$'
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: podmonitors.monitoring.coreos.com}
spec:
  group: monitoring.coreos.com
  scope: Namespaced
  names: {kind: PodMonitor, listKind: PodMonitorList, plural: podmonitors, singular: podmonitor}
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema:
          type: object
          properties:
            spec:
              type: object
              required: [selector]
              properties:
                selector:
                  type: object
                  properties:
                    matchLabels: {type: object, additionalProperties: {type: string}}
                    matchExpressions:
                      type: array
                      items:
                        type: object
                        required: [key, operator]
                        properties:
                          key: {type: string}
                          operator: {type: string}
                          values: {type: array, items: {type: string}}
                namespaceSelector:
                  type: object
                  properties:
                    any: {type: boolean}
                    matchNames: {type: array, items: {type: string}}
                podMetricsEndpoints:
                  type: array
                  items:
                    type: object
                    properties:
                      port: {type: string}
                      path: {type: string}
                      interval:
                        type: string
                        pattern: '^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$'
                      relabelings:
                        type: array
                        items:
                          type: object
                          properties:
                            sourceLabels: {type: array, items: {type: string}}
                            targetLabel: {type: string}
`

var (
	installMonitoringCRDs sync.Once
	monitoringCRDsErr     error
)

// chartCluster prepares the test API server for the chart: the release
// namespace and the given others, and the monitoring CRDs.
func chartCluster(t *testing.T, namespaces ...string) {
	t.Helper()
	installMonitoringCRDs.Do(func() {
		var crds []*apiextensionsv1.CustomResourceDefinition
		for _, doc := range strings.Split(monitoringCRDs, "\n---\n") {
			crd := &apiextensionsv1.CustomResourceDefinition{}
			if monitoringCRDsErr = yaml.UnmarshalStrict([]byte(doc), crd); monitoringCRDsErr != nil {
				return
			}
			crds = append(crds, crd)
		}
		_, monitoringCRDsErr = envtest.InstallCRDs(testConfig, envtest.CRDInstallOptions{CRDs: crds})
	})
	if monitoringCRDsErr != nil {
		t.Fatalf("install the monitoring CRDs: %v", monitoringCRDsErr)
	}
	for _, ns := range append([]string{chartNamespace}, namespaces...) {
		err := k8sClient.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})
		if err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatalf("create namespace %s: %v", ns, err)
		}
	}
}

// TestChartObjectsAccepted renders the chart for the value sets providers
// use and applies every object with a server-side dry run to the API
// server, with strict field validation: all must be accepted, and each
// value set must render the objects it is for.
func TestChartObjectsAccepted(t *testing.T) {
	reporting := []string{"chain.reportResults=true", "chain.keySecret=provider-key", "chain.rpcURL=http://nesa-node.nesa:26657"}
	cases := []struct {
		name string
		set  []string
		// want are keys ("Kind/name" or "Kind/namespace/name") the set renders.
		want []string
		// absent are keys it must not render.
		absent []string
	}{
		{name: "defaults", want: []string{
			"Deployment/aivm-aivm-operator-manager", "DaemonSet/aivm-aivm-operator-node-agent",
			"Service/aivm-aivm-operator-result", "Service/aivm-aivm-operator-metrics",
			"Role/aivm-aivm-operator-manager", "RoleBinding/aivm-aivm-operator-manager",
			"CSIDriver/models.aivm.dev", "ValidatingAdmissionPolicy/aivm-aivm-operator-node-agent-restriction",
		}, absent: []string{"PodDisruptionBudget/aivm-aivm-operator-manager", "NetworkPolicy/aivm-aivm-operator-manager"}},
		{name: "simulate", set: []string{"nodeAgent.simulate=dgxh100", "nodeAgent.logFormat=json"}},
		{name: "reporting", set: reporting, want: []string{"PersistentVolumeClaim/aivm-aivm-operator-outbox"}},
		{name: "standby replicas", set: append([]string{"manager.replicas=3", "chain.outbox.accessModes={ReadWriteMany}",
			"manager.topologySpreadConstraints[0].maxSkew=1",
			"manager.topologySpreadConstraints[0].topologyKey=kubernetes.io/hostname",
			"manager.topologySpreadConstraints[0].whenUnsatisfiable=ScheduleAnyway",
			"manager.topologySpreadConstraints[0].labelSelector.matchLabels.app\\.kubernetes\\.io/component=manager"}, reporting...),
			want: []string{"PodDisruptionBudget/aivm-aivm-operator-manager"}},
		{name: "rpc URL from a Secret", set: []string{"chain.reportResults=true", "chain.keySecret=k", "chain.rpcURLSecret.name=nesa-rpc",
			"chain.outbox.create=false"}, absent: []string{"PersistentVolumeClaim/aivm-aivm-operator-outbox"}},
		{name: "monitoring", set: []string{"metrics.serviceMonitor.enabled=true", "metrics.serviceMonitor.labels.release=prometheus",
			"metrics.podMonitor.enabled=true", "metrics.podMonitor.interval=1m", "grafanaDashboard.enabled=true", "grafanaDashboard.namespace=chart-monitoring"},
			want: []string{"ServiceMonitor/aivm-aivm-operator-manager", "PodMonitor/aivm-aivm-operator-node-agent",
				"ConfigMap/chart-monitoring/aivm-aivm-operator-dashboard"}},
		{name: "network policy", set: append([]string{"networkPolicy.enabled=true",
			"networkPolicy.apiServer.cidrs={10.96.0.1/32}", "networkPolicy.chainRPC.cidrs={10.0.0.0/8}"}, reporting...),
			want: []string{"NetworkPolicy/aivm-aivm-operator-manager", "NetworkPolicy/aivm-aivm-operator-node-agent",
				"NetworkPolicy/aivm-aivm-operator-jobs"}},
		{name: "workload namespace", set: []string{"networkPolicy.enabled=true", "jobs.workloadNamespace=chart-jobs-a"},
			want: []string{"NetworkPolicy/chart-jobs-a/aivm-aivm-operator-jobs", "Role/chart-jobs-a/aivm-aivm-operator-manager-workload",
				"RoleBinding/chart-jobs-a/aivm-aivm-operator-manager-workload"}},
		{name: "no node agent", set: []string{"nodeAgent.enabled=false", "networkPolicy.enabled=true"},
			absent: []string{"DaemonSet/aivm-aivm-operator-node-agent", "CSIDriver/models.aivm.dev", "NetworkPolicy/aivm-aivm-operator-node-agent"}},
		{name: "provider settings", set: []string{"manager.logFormat=json", "resultEndpoint.tlsSecret=aivm-system/result-tls",
			"resultEndpoint.port=10443", "jobs.runtimeImage=registry.example/aivm-runtime@sha256:" + strings.Repeat("ab", 32),
			"jobs.gpuBinding=visible-devices", "jobs.schedulingPolicy=spread", "manager.priorityClassName=system-cluster-critical",
			"nodeAgent.priorityClassName=system-node-critical", "nodeAgent.csi.enabled=false",
			"nodeAgent.modelCredentialNamespaces={chart-models}", "manager.podAnnotations.example\\.com/team=gpu"},
			want: []string{"Role/chart-models/aivm-aivm-operator-node-agent-model-credentials"}, absent: []string{"CSIDriver/models.aivm.dev"}},
	}
	chartCluster(t, "chart-monitoring", "chart-jobs-a", "chart-jobs-b", "chart-models")
	ctx := context.Background()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			objs, err := testenv.RenderChart(t, c.set...)
			if err != nil {
				t.Fatalf("helm template %v: %v", c.set, err)
			}
			for _, k := range c.want {
				if objs[k] == nil {
					t.Errorf("renders no %s", k)
				}
			}
			for _, k := range c.absent {
				if objs[k] != nil {
					t.Errorf("renders %s", k)
				}
			}
			keys := make([]string, 0, len(objs))
			for k := range objs {
				keys = append(keys, k)
			}
			slices.Sort(keys)
			for _, k := range keys {
				obj := objs[k]
				namespaced, err := k8sClient.IsObjectNamespaced(obj)
				if err != nil {
					t.Errorf("%s: the API server does not serve its kind: %v", k, err)
					continue
				}
				if namespaced && obj.GetNamespace() == "" {
					obj.SetNamespace(chartNamespace)
				}
				if err := k8sClient.Apply(ctx, client.ApplyConfigurationFromUnstructured(obj), client.DryRunAll, client.ForceOwnership, client.FieldOwner("helm")); err != nil {
					t.Errorf("%s refused: %v", k, err)
				}
			}
		})
	}
}
