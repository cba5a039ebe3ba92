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

// Package testenv starts a real kube-apiserver and etcd (envtest) with the
// project's CRDs installed, for integration tests. One per test package, from
// TestMain.
package testenv

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/aivm-dev/aivm-operator/internal/scheme"
)

// Scheme returns a scheme with the built-in kinds and the aivm.dev kinds.
func Scheme() *runtime.Scheme { return scheme.New() }

// RepoRoot returns the directory holding the module's go.mod, found by
// walking up from the working directory.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("go.mod not found above the working directory")
		}
		dir = parent
	}
}

// Assets returns the directory holding kube-apiserver and etcd: the
// KUBEBUILDER_ASSETS environment variable when set, else what hack/envtest.sh
// provides (cached binaries, setup-envtest, or a build from Go modules).
func Assets() (string, error) { return provided("KUBEBUILDER_ASSETS", "envtest.sh") }

// ControllerManager returns the path of a kube-controller-manager built from
// the same Kubernetes release as the API server: the KUBE_CONTROLLER_MANAGER
// environment variable when set, else what hack/kube-controller-manager.sh
// provides (the cached binary, or a build from Go modules).
func ControllerManager() (string, error) {
	return provided("KUBE_CONTROLLER_MANAGER", "kube-controller-manager.sh")
}

// KubeScheduler returns the path of a kube-scheduler built from the same
// Kubernetes release as the API server: the KUBE_SCHEDULER environment
// variable when set, else what hack/kube-scheduler.sh provides (the cached
// binary, or a build from Go modules: minutes the first time).
func KubeScheduler() (string, error) { return provided("KUBE_SCHEDULER", "kube-scheduler.sh") }

// provided returns the environment variable env when set, else the path
// the hack/ script prints.
func provided(env, script string) (string, error) {
	if p := os.Getenv(env); p != "" {
		return p, nil
	}
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(filepath.Join(root, "hack", script)) //nolint:gosec // the repository's own scripts
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("hack/%s: %w: %s", script, err, strings.TrimSpace(stderr.String()))
	}
	return strings.TrimSpace(stdout.String()), nil
}

// Start starts kube-apiserver and etcd with the CRDs from config/crd/bases
// installed and returns the environment (Stop it when done) and a config for
// clients of it.
func Start() (*envtest.Environment, *rest.Config, error) {
	root, err := RepoRoot()
	if err != nil {
		return nil, nil, err
	}
	assets, err := Assets()
	if err != nil {
		return nil, nil, err
	}
	env := &envtest.Environment{
		BinaryAssetsDirectory: assets,
		CRDDirectoryPaths:     []string{filepath.Join(root, "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
		Scheme:                Scheme(),
		// A 2-core machine running several test packages at once can take
		// well over envtest's 20s default to start kube-apiserver.
		ControlPlaneStartTimeout: 3 * time.Minute,
		ControlPlaneStopTimeout:  time.Minute,
	}
	cfg, err := env.Start()
	if err != nil {
		return nil, nil, fmt.Errorf("start envtest with binaries from %s: %w", assets, err)
	}
	return env, cfg, nil
}
