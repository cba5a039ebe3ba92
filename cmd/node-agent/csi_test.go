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

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/aivm-dev/aivm-operator/internal/testenv"
	"github.com/aivm-dev/aivm-operator/nodeagent/csi"
)

// TestCSIFlags: the driver is off by default, and on it needs the cache.
func TestCSIFlags(t *testing.T) {
	parse := func(args ...string) options {
		var o options
		fs := flag.NewFlagSet("node-agent", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		o.bindFlags(fs, &zap.Options{})
		if err := fs.Parse(args); err != nil {
			t.Fatal(err)
		}
		return o
	}
	if o := parse(); o.csi.endpoint != "" || o.validate() != nil {
		t.Errorf("defaults: endpoint %q, validate %v; want off and valid", o.csi.endpoint, o.validate())
	}
	o := parse("--csi-endpoint=/var/lib/kubelet/plugins/models.aivm.dev/csi.sock", "--model-cache-dir=")
	if err := o.validate(); err == nil || !strings.Contains(err.Error(), "--model-cache-dir") {
		t.Errorf("csi without a model cache: %v, want a refusal naming --model-cache-dir", err)
	}
	o = parse("--csi-endpoint=/x/csi.sock", "--csi-state-dir=")
	if err := o.validate(); err == nil || !strings.Contains(err.Error(), "--csi-state-dir") {
		t.Errorf("csi without a state dir: %v, want a refusal naming --csi-state-dir", err)
	}
}

// TestChartCSIDriver: by default the chart installs the CSIDriver and gives
// the agent the CSI flags, the kubelet directories (pods Bidirectional) and
// a privileged container; with nodeAgent.csi.enabled=false none of that.
func TestChartCSIDriver(t *testing.T) {
	pod, o := chartAgent(t)
	chart, err := testenv.RenderChart(t)
	if err != nil {
		t.Fatal(err)
	}
	d := &storagev1.CSIDriver{}
	chart.Object(t, "CSIDriver/"+csi.DriverName, d)
	if d.Spec.AttachRequired == nil || *d.Spec.AttachRequired || d.Spec.PodInfoOnMount == nil || !*d.Spec.PodInfoOnMount ||
		!slices.Equal(d.Spec.VolumeLifecycleModes, []storagev1.VolumeLifecycleMode{storagev1.VolumeLifecycleEphemeral}) {
		t.Errorf("CSIDriver spec %+v", d.Spec)
	}
	if o.csi.endpoint != "/var/lib/kubelet/plugins/models.aivm.dev/csi.sock" || o.csi.registrationDir != "/var/lib/kubelet/plugins_registry" || o.csi.stateDir == "" {
		t.Errorf("csi flags %+v", o.csi)
	}
	c := pod.Containers[0]
	if c.SecurityContext == nil || c.SecurityContext.Privileged == nil || !*c.SecurityContext.Privileged {
		t.Errorf("agent security context %+v, want privileged", c.SecurityContext)
	}
	var bidirectional bool
	for _, m := range c.VolumeMounts {
		if m.MountPath == "/var/lib/kubelet/pods" && m.MountPropagation != nil && *m.MountPropagation == corev1.MountPropagationBidirectional {
			bidirectional = true
		}
	}
	if !bidirectional {
		t.Errorf("no Bidirectional mount of /var/lib/kubelet/pods: %+v", c.VolumeMounts)
	}

	pod, o = chartAgent(t, "nodeAgent.csi.enabled=false")
	off, err := testenv.RenderChart(t, "nodeAgent.csi.enabled=false")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := off["CSIDriver/"+csi.DriverName]; ok || o.csi.endpoint != "" {
		t.Errorf("csi disabled: CSIDriver rendered %v, endpoint %q", ok, o.csi.endpoint)
	}
	if sc := pod.Containers[0].SecurityContext; sc == nil || (sc.Privileged != nil && *sc.Privileged) {
		t.Errorf("csi disabled: security context %+v, want unprivileged", sc)
	}
}
