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

package csi

import (
	"context"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kubernetes-csi/csi-test/v5/pkg/sanity"
	"github.com/onsi/ginkgo/v2"
	"github.com/onsi/gomega"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	registerapi "k8s.io/kubelet/pkg/apis/pluginregistration/v1"
)

// sanitySkips are the csi-test sanity specs that do not apply to a node-only
// driver of inline ephemeral volumes, and why. Everything else in the suite
// runs (identity, NodeGetInfo, NodeGetCapabilities, the publish and
// unpublish argument checks); specs for capabilities the driver does not
// advertise (staging, stats, expansion, health) skip themselves.
var sanitySkips = map[string]string{
	// Both create their volume with the controller's CreateVolume, which a
	// node-only driver lacks; TestPublishServesModelReadOnly covers the
	// removal of the target path on unpublish with a real mount.
	"should remove target path": "needs CreateVolume (no controller service)",
	"Node Service should work":  "needs CreateVolume (no controller service)",
	// The controller, snapshot and group controller specs test services
	// the driver does not have.
	"[Controller Server]":     "no controller service",
	"Controller Service":      "no controller service",
	"GroupController Service": "no group controller service",
}

// TestSanity runs the CSI project's sanity suite against the served driver.
func TestSanity(t *testing.T) {
	n := newNode(t)
	dir := t.TempDir()
	cfg := sanity.NewTestConfig()
	cfg.Address = "unix://" + n.socket
	cfg.TargetPath = filepath.Join(dir, "target")
	cfg.StagingPath = filepath.Join(dir, "staging")
	cfg.IdempotentCount = 0
	sc := sanity.GinkgoTest(&cfg)
	defer sc.Finalize()
	gomega.RegisterFailHandler(ginkgo.Fail)
	suite, reporter := ginkgo.GinkgoConfiguration()
	for s, why := range sanitySkips {
		t.Logf("sanity: skipping %q: %s", s, why)
		suite.SkipStrings = append(suite.SkipStrings, regexp.QuoteMeta(s)) // regular expressions
	}
	reporter.Succinct = true
	ginkgo.RunSpecs(t, "CSI sanity (models.aivm.dev node plugin)", suite, reporter)
}

// TestRegistration: the kubelet's plugin watcher finds the registration
// socket and learns the driver's name, type, endpoint and CSI versions.
func TestRegistration(t *testing.T) {
	dir := t.TempDir()
	regDir := filepath.Join(dir, "plugins_registry")
	endpoint := filepath.Join(dir, "plugins", DriverName, "csi.sock")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Serve(ctx, Options{
			DriverOptions:   DriverOptions{NodeID: "node-a", StateDir: filepath.Join(dir, "state"), Snapshots: newNode(t).snapshots},
			Endpoint:        endpoint,
			RegistrationDir: regDir,
		})
	}()
	conn, err := grpc.NewClient("unix://"+filepath.Join(regDir, RegistrationSocketName),
		grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithDefaultCallOptions(grpc.WaitForReady(true)))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close() }()
	cctx, ccancel := context.WithTimeout(ctx, 30*time.Second)
	defer ccancel()
	reg := registerapi.NewRegistrationClient(conn)
	info, err := reg.GetInfo(cctx, &registerapi.InfoRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if info.Type != registerapi.CSIPlugin || info.Name != DriverName || info.Endpoint != endpoint || !slices.Contains(info.SupportedVersions, "1.0.0") {
		t.Errorf("plugin info %+v", info)
	}
	if _, err := reg.NotifyRegistrationStatus(cctx, &registerapi.RegistrationStatus{PluginRegistered: true}); err != nil {
		t.Errorf("notify: %v", err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	left, _ := filepath.Glob(filepath.Join(regDir, "*.sock"))
	left2, _ := filepath.Glob(filepath.Join(dir, "plugins", "*", "*.sock"))
	if len(left)+len(left2) != 0 {
		t.Errorf("sockets left after Serve returned: %s", strings.Join(append(left, left2...), ", "))
	}
}
