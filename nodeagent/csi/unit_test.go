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
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestParseMountPoints(t *testing.T) {
	in := `22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
36 22 8:1 /var/lib/aivm/models/snapshots/abc /var/lib/kubelet/pods/u/volumes/kubernetes.io~csi/model/mount ro,nosuid,nodev,noexec shared:1 - ext4 /dev/sda1 rw
37 22 0:5 / /mnt/with\040space\134x rw - tmpfs tmpfs rw
short line
`
	got, err := parseMountPoints(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{"/": true, "/var/lib/kubelet/pods/u/volumes/kubernetes.io~csi/model/mount": true, `/mnt/with space\x`: true}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("mount points (-want +got):\n%s", d)
	}
}

// TestRecords: records round-trip; a crash's temporary file is removed and
// an unreadable record is reported without hiding the others.
func TestRecords(t *testing.T) {
	s, err := openRecords(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	r := &record{VolumeID: "csi-1", TargetPath: "/t", Namespace: "ns", Name: "m", Digest: strings.Repeat("a", 64)}
	if err := s.put(r); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(s.dir, ".csi-2.123.tmp"), []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(s.dir, "csi-3.json"), []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := s.list()
	if err == nil || !strings.Contains(err.Error(), "csi-3.json") {
		t.Errorf("list error %v, want one naming csi-3.json", err)
	}
	if d := cmp.Diff([]*record{r}, got); d != "" {
		t.Errorf("records (-want +got):\n%s", d)
	}
	if _, err := os.Stat(filepath.Join(s.dir, ".csi-2.123.tmp")); !os.IsNotExist(err) {
		t.Errorf("temporary file left: %v", err)
	}
	for _, id := range []string{"", ".hidden", "a/b", strings.Repeat("x", 129), "x\x00"} {
		if validVolumeID(id) {
			t.Errorf("volume ID %q accepted", id)
		}
	}
}

// TestVolumeNamespaces: a pod mounts its own namespace's Models; a pod of
// the workload namespace, where only the manager creates pods, any
// namespace's; with no workload namespace set, nobody another's.
func TestVolumeNamespaces(t *testing.T) {
	attrs := func(podNS, modelNS string) map[string]string {
		return map[string]string{
			attrEphemeral: "true", attrPodNamespace: podNS, attrPodName: "p", attrPodUID: "u",
			AttrModelNamespace: modelNS, AttrModelName: "m", AttrModelDigest: strings.Repeat("ab", 32),
		}
	}
	cases := []struct {
		name, podNS, modelNS, workload string
		ok                             bool
	}{
		{"own namespace", "team-a", "team-a", "aivm-system", true},
		{"workload namespace, a tenant's Model", "aivm-system", "team-a", "aivm-system", true},
		{"a tenant's pod, another tenant's Model", "team-b", "team-a", "aivm-system", false},
		{"a tenant's pod, a Model of the workload namespace", "team-b", "aivm-system", "aivm-system", false},
		{"no workload namespace", "aivm-system", "team-a", "", false},
	}
	for _, c := range cases {
		_, err := volumeFromContext("v", "/target", attrs(c.podNS, c.modelNS), c.workload)
		if (err == nil) != c.ok {
			t.Errorf("%s: %v, want ok %v", c.name, err, c.ok)
		}
		if err != nil && status.Code(err) != codes.PermissionDenied {
			t.Errorf("%s: code %v, want PermissionDenied", c.name, status.Code(err))
		}
	}
}
