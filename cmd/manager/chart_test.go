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
	"fmt"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/aivm-dev/aivm-operator/controllers/reporter"
	"github.com/aivm-dev/aivm-operator/internal/testenv"
)

// parseManagerArgs parses a container's args with the manager's own flags.
func parseManagerArgs(t *testing.T, c corev1.Container) options {
	t.Helper()
	opts, err := parseFlags(c.Args...)
	if err != nil {
		t.Fatalf("the chart passes the manager args it does not accept: %v (args %q)", err, c.Args)
	}
	return opts
}

// TestChartManagerWithReporting renders the chart with chain reporting on
// and checks the manager's Deployment against the manager itself: every
// argument parses with the manager's flags and carries the chart's value,
// the outbox is a kept PersistentVolumeClaim, the pod's user can read the
// key and write the outbox, and an update never runs two pods on the outbox.
func TestChartManagerWithReporting(t *testing.T) {
	objs, err := testenv.RenderChart(t,
		"chain.reportResults=true", "chain.keySecret=provider-key", "chain.rpcURL=http://nesa-node.nesa:26657",
		"chain.batchSize=300", "chain.batchInterval=750ms", "chain.provider.endpoint=https://provider.example",
		"chain.outbox.retainBlocks=100000", "image.tag=v9.9.9")
	if err != nil {
		t.Fatalf("helm template: %v", err)
	}
	dep := objectOf[appsv1.Deployment](t, objs, "Deployment/aivm-aivm-operator-manager")
	if dep.Spec.Strategy.Type != appsv1.RecreateDeploymentStrategyType {
		t.Errorf("strategy %q, want Recreate while reporting (one outbox volume)", dep.Spec.Strategy.Type)
	}
	pod := dep.Spec.Template.Spec
	if sc := pod.SecurityContext; sc == nil || sc.FSGroup == nil || *sc.FSGroup != 65532 || sc.RunAsUser == nil || *sc.RunAsUser != 65532 {
		t.Errorf("pod securityContext %+v: the image's user 65532 must own the key and outbox volumes (fsGroup)", sc)
	}
	opts := parseManagerArgs(t, pod.Containers[0])
	chain := opts.controllers.chain
	if !chain.Enabled || chain.RPCURL != "http://nesa-node.nesa:26657" || chain.MaxBatchResults != 300 ||
		chain.BatchDelay != 750*time.Millisecond || chain.Endpoint != "https://provider.example" ||
		chain.RetainBlocks != 100000 || chain.Version != "v9.9.9" || chain.MaxTxBytes != 1<<20 {
		t.Errorf("chain settings from the chart's args: %+v", chain)
	}
	var outboxClaim, keySecret string
	for _, v := range pod.Volumes {
		switch {
		case v.Name == "outbox" && v.PersistentVolumeClaim != nil:
			outboxClaim = v.PersistentVolumeClaim.ClaimName
		case v.Name == "provider-key" && v.Secret != nil:
			keySecret = v.Secret.SecretName
			if m := v.Secret.DefaultMode; m == nil || *m&0o040 == 0 {
				t.Errorf("key Secret defaultMode %s: the group (fsGroup) cannot read it", fileMode(m))
			}
		}
	}
	if keySecret != "provider-key" {
		t.Errorf("key Secret volume %q, want provider-key", keySecret)
	}
	pvc := objectOf[corev1.PersistentVolumeClaim](t, objs, "PersistentVolumeClaim/"+outboxClaim)
	if pvc.Annotations["helm.sh/resource-policy"] != "keep" {
		t.Errorf("outbox claim annotations %v: uninstalling would delete results not yet on chain", pvc.Annotations)
	}
}

// TestChartDefaultsMatchTheManager: with reporting off the chart's args
// parse with the manager's flags, and the chart's chain defaults are the
// manager's own (so turning reporting on changes nothing else).
func TestChartDefaultsMatchTheManager(t *testing.T) {
	objs, err := testenv.RenderChart(t)
	if err != nil {
		t.Fatalf("helm template: %v", err)
	}
	dep := objectOf[appsv1.Deployment](t, objs, "Deployment/aivm-aivm-operator-manager")
	parseManagerArgs(t, dep.Spec.Template.Spec.Containers[0])
	if _, ok := objs["PersistentVolumeClaim/aivm-aivm-operator-outbox"]; ok {
		t.Error("an outbox claim without chain reporting")
	}

	on, err := testenv.RenderChart(t, "chain.reportResults=true", "chain.keySecret=k", "chain.rpcURL=http://n:26657")
	if err != nil {
		t.Fatalf("helm template: %v", err)
	}
	fromChart := parseManagerArgs(t, objectOf[appsv1.Deployment](t, on, "Deployment/aivm-aivm-operator-manager").Spec.Template.Spec.Containers[0])
	defaults := parseManagerArgs(t, corev1.Container{})
	got, want := fromChart.controllers.chain, defaults.controllers.chain
	if got.ChainID != want.ChainID || got.Prefix != want.Prefix || got.GasPrice != want.GasPrice || got.HDPath != want.HDPath ||
		got.MaxBatchResults != want.MaxBatchResults || got.BatchDelay != want.BatchDelay || got.MaxTxBytes != want.MaxTxBytes ||
		got.Moniker != want.Moniker || got.RetainBlocks != want.RetainBlocks {
		t.Errorf("chart chain defaults %+v differ from the manager's %+v", got, want)
	}
}

// TestChartRefusesIncompleteReporting: reporting without an RPC URL or a
// key Secret, or with standby replicas that cannot mount the outbox, fails
// to render, naming the value to set.
func TestChartRefusesIncompleteReporting(t *testing.T) {
	for missing, set := range map[string][]string{
		"chain.rpcURL":    {"chain.reportResults=true", "chain.keySecret=k"},
		"chain.keySecret": {"chain.reportResults=true", "chain.rpcURL=http://n:26657"},
		"chain.outbox.accessModes": {"chain.reportResults=true", "chain.keySecret=k", "chain.rpcURL=http://n:26657",
			"manager.replicas=2"},
	} {
		_, err := testenv.RenderChart(t, set...)
		if err == nil || !strings.Contains(err.Error(), missing) {
			t.Errorf("render without %s: %v, want an error naming it", missing, err)
		}
	}
}

func fileMode(m *int32) string {
	if m == nil {
		return "unset"
	}
	return fmt.Sprintf("%#o", *m)
}

func objectOf[T any](t *testing.T, c testenv.Chart, key string) *T {
	t.Helper()
	obj := new(T)
	c.Object(t, key, obj)
	return obj
}

// TestChartArgsSurviveYAML: values with YAML-significant characters reach
// the manager unchanged (a '#' would otherwise start a comment, ': ' a map).
func TestChartArgsSurviveYAML(t *testing.T) {
	const moniker = "GPU farm #1: east"
	const endpoint = "https://provider.example/#status"
	objs, err := testenv.RenderChart(t, "chain.reportResults=true", "chain.keySecret=k", "chain.rpcURL=http://n:26657",
		"chain.provider.moniker="+moniker, "chain.provider.endpoint="+endpoint)
	if err != nil {
		t.Fatalf("helm template: %v", err)
	}
	opts := parseManagerArgs(t, objectOf[appsv1.Deployment](t, objs, "Deployment/aivm-aivm-operator-manager").Spec.Template.Spec.Containers[0])
	if got := opts.controllers.chain; got.Moniker != moniker || got.Endpoint != endpoint {
		t.Errorf("moniker %q, endpoint %q; want %q, %q", got.Moniker, got.Endpoint, moniker, endpoint)
	}
}

// TestChartRPCURLFromSecret: with chain.rpcURLSecret the URL (which may
// carry credentials) is not in the Deployment: the manager reads it from
// the environment, filled from the Secret.
func TestChartRPCURLFromSecret(t *testing.T) {
	objs, err := testenv.RenderChart(t, "chain.reportResults=true", "chain.keySecret=k",
		"chain.rpcURLSecret.name=nesa-rpc", "chain.rpcURL=http://must-not-appear:26657")
	if err != nil {
		t.Fatalf("helm template: %v", err)
	}
	c := objectOf[appsv1.Deployment](t, objs, "Deployment/aivm-aivm-operator-manager").Spec.Template.Spec.Containers[0]
	for _, a := range c.Args {
		if strings.HasPrefix(a, "--chain-rpc-url") {
			t.Errorf("the Deployment carries %q", a)
		}
	}
	var ref *corev1.SecretKeySelector
	for _, e := range c.Env {
		if e.Name == reporter.RPCURLEnv && e.ValueFrom != nil {
			ref = e.ValueFrom.SecretKeyRef
		}
	}
	if ref == nil || ref.Name != "nesa-rpc" || ref.Key != "url" {
		t.Fatalf("env %s from secret %+v, want nesa-rpc/url", reporter.RPCURLEnv, ref)
	}
	t.Setenv(reporter.RPCURLEnv, "https://user:secret@rpc.example:443")
	if got := parseManagerArgs(t, c).controllers.chain.RPCURL; got != "https://user:secret@rpc.example:443" {
		t.Errorf("the manager's RPC URL is %q, want the one from $%s", got, reporter.RPCURLEnv)
	}
}
