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
	"testing"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/aivm-dev/aivm-operator/internal/testenv"
)

// TestChartMatchesConfig: the chart (defaults) and config/node-agent install
// the same agent: the same options once the flags are parsed, and the same
// pod where it matters (runtime class, node selector, tolerations,
// environment, ports, probes, security context, resources, mounts and host
// paths).
func TestChartMatchesConfig(t *testing.T) {
	chartPod, chartOpts := chartAgent(t)
	ds := &appsv1.DaemonSet{}
	testenv.ConfigObjects(t, "node-agent", "daemonset.yaml").Object(t, "DaemonSet/node-agent", ds)
	cfgPod := ds.Spec.Template.Spec

	var cfgOpts options
	fs := flag.NewFlagSet("node-agent", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	cfgOpts.bindFlags(fs, &zap.Options{})
	cc, fc := chartPod.Containers[0], cfgPod.Containers[0]
	if err := fs.Parse(fc.Args); err != nil {
		t.Fatalf("config/node-agent passes args the agent does not accept: %v (args %q)", err, fc.Args)
	}
	if err := cfgOpts.validate(); err != nil {
		t.Errorf("the agent would refuse config/node-agent's flags: %v", err)
	}
	if diff := cmp.Diff(cfgOpts, chartOpts, cmp.AllowUnexported(options{}, csiOptions{})); diff != "" {
		t.Errorf("agent options differ (-config +chart):\n%s", diff)
	}

	for _, c := range []struct {
		what       string
		chart, cfg any
	}{
		{"runtimeClassName", chartPod.RuntimeClassName, cfgPod.RuntimeClassName},
		{"nodeSelector", chartPod.NodeSelector, cfgPod.NodeSelector},
		{"tolerations", chartPod.Tolerations, cfgPod.Tolerations},
		{"pod securityContext", chartPod.SecurityContext, cfgPod.SecurityContext},
		{"volumes", chartPod.Volumes, cfgPod.Volumes},
		{"env", cc.Env, fc.Env},
		{"ports", cc.Ports, fc.Ports},
		{"liveness probe", cc.LivenessProbe, fc.LivenessProbe},
		{"readiness probe", cc.ReadinessProbe, fc.ReadinessProbe},
		{"container securityContext", cc.SecurityContext, fc.SecurityContext},
		{"resources", cc.Resources, fc.Resources},
		{"volumeMounts", cc.VolumeMounts, fc.VolumeMounts},
		{"command", cc.Command, fc.Command},
	} {
		if diff := cmp.Diff(c.cfg, c.chart); diff != "" {
			t.Errorf("node agent %s differs (-config +chart):\n%s", c.what, diff)
		}
	}
}
