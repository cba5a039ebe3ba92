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

package devenv

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

const (
	// NodeMonitorGracePeriod is how long kube-controller-manager's node
	// lifecycle controller waits for a node's heartbeat before it marks the
	// node NotReady (Unknown). Three of the process runner's 10 s heartbeats:
	// short enough for the fault tests, long enough that one late heartbeat
	// on a loaded machine does not flap the node.
	NodeMonitorGracePeriod = 30 * time.Second

	// controllers are the kube-controller-manager controllers the dev
	// environment runs: the rest need cloud, storage or workload objects the
	// environment does not have.
	controllers = "garbage-collector-controller,node-lifecycle-controller,serviceaccount-controller," +
		"serviceaccount-token-controller,namespace-controller"
)

// startControllerManager starts kube-controller-manager against the API
// server, with the API server's service-account signing key and CA, and
// waits until its service-account controller has made the manager
// namespace's default ServiceAccount (the controllers are running).
func (e *Env) startControllerManager(ctx context.Context) error {
	apiserver := e.api.ControlPlane.APIServer
	pki := filepath.Join(e.cfg.Dir, "pki")
	if err := os.MkdirAll(pki, 0o750); err != nil {
		return err
	}
	caFile := filepath.Join(pki, "apiserver-ca.crt")
	if err := os.WriteFile(caFile, apiserver.SecureServing.CA, 0o600); err != nil {
		return fmt.Errorf("write the API server's CA: %w", err)
	}
	args := []string{
		"--kubeconfig=" + e.Kubeconfig,
		"--controllers=" + controllers,
		"--leader-elect=false",
		// No serving endpoint: readiness is read from the objects it makes.
		"--secure-port=0",
		"--service-account-private-key-file=" + filepath.Join(apiserver.CertDir, "sa-signer.key"),
		"--root-ca-file=" + caFile,
		"--node-monitor-period=2s",
		"--node-monitor-grace-period=" + NodeMonitorGracePeriod.String(),
		"--kube-api-qps=100",
		"--kube-api-burst=200",
		"--v=1",
	}
	var err error
	if e.kcm, err = e.startProcess("kube-controller-manager", e.cfg.ControllerManager, args); err != nil {
		return err
	}
	return e.waitReady(ctx, e.kcm, "made no default ServiceAccount in "+Namespace, func(ctx context.Context) bool {
		var sa corev1.ServiceAccount
		return e.Client.Get(ctx, client.ObjectKey{Namespace: Namespace, Name: "default"}, &sa) == nil
	})
}

// lastLine returns the last non-empty line of the file at path, for the
// error about a process that exited.
func lastLine(path string) string {
	b, err := os.ReadFile(path) //nolint:gosec // the environment's own log
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return lines[len(lines)-1]
}
