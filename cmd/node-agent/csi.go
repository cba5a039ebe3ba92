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
	"errors"
	"flag"
	"os"

	"github.com/aivm-dev/aivm-operator/nodeagent/csi"
)

// csiOptions are the flags of the models.aivm.dev CSI node plugin.
type csiOptions struct {
	endpoint        string
	stateDir        string
	registrationDir string
	// workloadNamespace is the operator's workload namespace.
	workloadNamespace string
}

func (o *csiOptions) bindFlags(fs *flag.FlagSet) {
	fs.StringVar(&o.endpoint, "csi-endpoint", "", "Unix socket serving the "+csi.DriverName+" CSI node plugin, at the same path the kubelet sees "+
		"(/var/lib/kubelet/plugins/"+csi.DriverName+"/csi.sock); empty serves no CSI driver.")
	fs.StringVar(&o.stateDir, "csi-state-dir", "/var/lib/aivm/csi", "Host directory recording published model volumes, so their pins outlive an agent restart.")
	fs.StringVar(&o.workloadNamespace, "workload-namespace", os.Getenv("POD_NAMESPACE"), "The operator's workload namespace (the manager's --workload-namespace): its pods, which only the manager creates, may mount Models of any namespace; "+
		"a pod elsewhere only its own namespace's. Default $POD_NAMESPACE (the chart installs the agent in the release namespace).")
	fs.StringVar(&o.registrationDir, "kubelet-registration-dir", "/var/lib/kubelet/plugins_registry", "The kubelet's plugin registration directory; empty leaves registration to a node-driver-registrar sidecar.")
}

func (o csiOptions) validate(modelCacheDir string) error {
	if o.endpoint == "" {
		return nil
	}
	if modelCacheDir == "" {
		return errors.New("--csi-endpoint needs --model-cache-dir: volumes are served from the model cache")
	}
	if o.stateDir == "" {
		return errors.New("--csi-endpoint needs --csi-state-dir")
	}
	return nil
}
