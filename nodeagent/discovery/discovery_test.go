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

package discovery_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock"
	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
	"github.com/google/go-cmp/cmp"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/aivm-dev/aivm-operator/internal/testutil"
	"github.com/aivm-dev/aivm-operator/nodeagent"
	"github.com/aivm-dev/aivm-operator/nodeagent/discovery"
	"github.com/aivm-dev/aivm-operator/nodeagent/discovery/discoverytest"
	"github.com/aivm-dev/aivm-operator/nodeagent/simulate"
)

const mib = 1 << 20

// start is the fake clocks' start time.
var start = time.Date(2026, 11, 25, 8, 0, 0, 0, time.UTC)

func TestInventoryDGXA100(t *testing.T) {
	n := discoverytest.NewNode(t, "dgxa100")
	d := discoverytest.Open(t, n, discovery.Options{})
	inv := d.Poll()

	want := nodeagent.Inventory{
		DriverVersion:     "550.54.15",
		CUDADriverVersion: "12.4",
		NVMLVersion:       "12.550.54.15",
	}
	for i := range 8 {
		want.GPUs = append(want.GPUs, nodeagent.GPU{
			Index:                    i,
			UUID:                     n.Device(i).UUID,
			Product:                  "Mock NVIDIA A100-SXM4-40GB",
			MemoryTotal:              40960 * mib,
			MemoryUsed:               0,
			MemoryFree:               40960 * mib,
			ComputeCapability:        "8.0",
			MIGMode:                  nodeagent.MIGDisabled,
			Health:                   nodeagent.HealthHealthy,
			UtilizationPercent:       ptr(int32(0)),
			MemoryUtilizationPercent: ptr(int32(0)),
			TemperatureCelsius:       ptr(int32(34)),
		})
	}
	if diff := cmp.Diff(want, inv); diff != "" {
		t.Errorf("inventory mismatch (-want +got):\n%s", diff)
	}
	seen := map[string]bool{}
	for _, g := range inv.GPUs {
		if !strings.HasPrefix(g.UUID, "GPU-") || seen[g.UUID] {
			t.Errorf("GPU %d: UUID %q is not a distinct GPU- UUID", g.Index, g.UUID)
		}
		seen[g.UUID] = true
	}
}

func TestInventoryProfiles(t *testing.T) {
	tests := []struct {
		profile string
		product string
		memMiB  uint64
		cc      string
	}{
		{"dgxa100", "Mock NVIDIA A100-SXM4-40GB", 40960, "8.0"},
		{"dgxh100", "NVIDIA H100 80GB HBM3", 81920, "9.0"},
		{"dgxh200", "NVIDIA H200 141GB HBM3e", 144384, "9.0"},
		{"dgxb200", "NVIDIA B200 180GB HBM3e", 184320, "10.0"},
	}
	if got := simulate.Profiles(); len(got) != len(tests) {
		t.Errorf("simulate.Profiles() = %v, want %d profiles", got, len(tests))
	}
	for _, tt := range tests {
		t.Run(tt.profile, func(t *testing.T) {
			n := discoverytest.NewNode(t, tt.profile)
			inv := discoverytest.Open(t, n, discovery.Options{}).Poll()
			if len(inv.GPUs) != 8 {
				t.Fatalf("got %d GPUs, want 8", len(inv.GPUs))
			}
			for _, g := range inv.GPUs {
				if g.Product != tt.product || g.MemoryTotal != tt.memMiB*mib || g.ComputeCapability != tt.cc || g.Health != nodeagent.HealthHealthy {
					t.Errorf("GPU %d = %q %d bytes cc %s %s, want %q %d bytes cc %s Healthy",
						g.Index, g.Product, g.MemoryTotal, g.ComputeCapability, g.Health, tt.product, tt.memMiB*mib, tt.cc)
				}
			}
		})
	}
}

func TestSimulateUnknownProfile(t *testing.T) {
	_, err := simulate.New("dgx-nope")
	if err == nil || !strings.Contains(err.Error(), "dgxa100") {
		t.Fatalf("simulate.New(unknown) error = %v, want one listing the known profiles", err)
	}
}

func TestSimulateSeedGivesStableDistinctUUIDs(t *testing.T) {
	a1 := discoverytest.NewNode(t, "dgxh100", simulate.WithSeed("node-a"))
	a2 := discoverytest.NewNode(t, "dgxh100", simulate.WithSeed("node-a"))
	b := discoverytest.NewNode(t, "dgxh100", simulate.WithSeed("node-b"))
	for i := range 8 {
		if a1.UUID(i) != a2.UUID(i) {
			t.Errorf("GPU %d: same seed gave %s and %s", i, a1.UUID(i), a2.UUID(i))
		}
		if a1.UUID(i) == b.UUID(i) {
			t.Errorf("GPU %d: different seeds gave the same UUID %s", i, b.UUID(i))
		}
	}
}

func TestMIGDevicesAppearWhenMIGIsOn(t *testing.T) {
	n := discoverytest.NewNode(t, "dgxa100")
	d := discoverytest.Open(t, n, discovery.Options{})
	if inv := d.Poll(); len(inv.GPUs[2].MIGDevices) != 0 || inv.GPUs[2].MIGMode != nodeagent.MIGDisabled {
		t.Fatalf("before MIG: GPU 2 mode %s with %d MIG devices", inv.GPUs[2].MIGMode, len(inv.GPUs[2].MIGDevices))
	}
	if err := n.EnableMIG(2, nvml.GPU_INSTANCE_PROFILE_3_SLICE, nvml.GPU_INSTANCE_PROFILE_2_SLICE, nvml.GPU_INSTANCE_PROFILE_1_SLICE); err != nil {
		t.Fatal(err)
	}
	inv := d.Poll()
	g := inv.GPUs[2]
	if g.MIGMode != nodeagent.MIGEnabled {
		t.Fatalf("GPU 2 MIG mode = %s, want Enabled", g.MIGMode)
	}
	type row struct {
		Profile    string
		Memory     uint64
		GI, CI     int32
		UUIDPrefix string
	}
	var got []row
	for _, m := range g.MIGDevices {
		got = append(got, row{m.Profile, m.MemoryTotal, m.GPUInstanceID, m.ComputeInstanceID, m.UUID[:4]})
	}
	want := []row{
		{"3g.20gb", 19968 * mib, 0, 0, "MIG-"},
		{"2g.10gb", 9856 * mib, 1, 0, "MIG-"},
		{"1g.5gb", 4864 * mib, 2, 0, "MIG-"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("MIG devices mismatch (-want +got):\n%s", diff)
	}
	uuids := map[string]bool{}
	for _, m := range g.MIGDevices {
		uuids[m.UUID] = true
	}
	if len(uuids) != 3 {
		t.Errorf("MIG device UUIDs not distinct: %v", g.MIGDevices)
	}
	// The UUIDs stay the same from poll to poll.
	again := d.Poll().GPUs[2].MIGDevices
	if diff := cmp.Diff(g.MIGDevices, again); diff != "" {
		t.Errorf("MIG devices changed between polls (-first +second):\n%s", diff)
	}
	for i, other := range inv.GPUs {
		if i != 2 && (other.MIGMode != nodeagent.MIGDisabled || len(other.MIGDevices) != 0) {
			t.Errorf("GPU %d: MIG mode %s with %d devices, want Disabled with none", i, other.MIGMode, len(other.MIGDevices))
		}
	}
}

func TestMIGProfileName(t *testing.T) {
	tests := []struct {
		gi, ci    uint32
		memMiB    uint64
		parentMiB uint64
		want      string
	}{
		{1, 0, 4864, 40960, "1g.5gb"},   // A100 40GB (mock)
		{2, 0, 9856, 40960, "2g.10gb"},  // A100 40GB (mock)
		{3, 0, 19968, 40960, "3g.20gb"}, // A100 40GB (mock)
		{7, 0, 40192, 40960, "7g.40gb"}, // A100 40GB (mock)
		{4, 0, 19968, 40536, "4g.20gb"}, // A100 40GB (hardware)
		{7, 0, 80896, 81559, "7g.80gb"}, // H100 80GB (hardware)
		{1, 0, 9856, 81559, "1g.10gb"},  // H100 80GB (hardware)
		{1, 0, 18432, 144384, "1g.18gb"},
		{3, 0, 72704, 144384, "3g.71gb"},
		{1, 0, 23552, 184320, "1g.23gb"},
		{3, 1, 19968, 40960, "1c.3g.20gb"},
		{2, 2, 9856, 40960, "2g.10gb"},
		{1, 0, 5000, 0, "1g.5gb"},
	}
	for _, tt := range tests {
		if got := discovery.MIGProfileName(tt.gi, tt.ci, tt.memMiB, tt.parentMiB*mib); got != tt.want {
			t.Errorf("MIGProfileName(%d, %d, %d, %d MiB) = %q, want %q", tt.gi, tt.ci, tt.memMiB, tt.parentMiB, got, tt.want)
		}
	}
}

// healthOf returns index -> "Health: reason" for a compact comparison.
func healthOf(inv nodeagent.Inventory) map[int]string {
	out := map[int]string{}
	for _, g := range inv.GPUs {
		out[g.Index] = string(g.Health)
		if g.HealthReason != "" {
			out[g.Index] += ": " + g.HealthReason
		}
	}
	return out
}

func allHealthy(n int, except map[int]string) map[int]string {
	out := map[int]string{}
	for i := range n {
		out[i] = "Healthy"
	}
	for i, s := range except {
		out[i] = s
	}
	return out
}

func TestXIDEventMarksExactlyThatGPU(t *testing.T) {
	n := discoverytest.NewNode(t, "dgxh100")
	d := discoverytest.Open(t, n, discovery.Options{})
	n.InjectXID(3, 79)
	want := allHealthy(8, map[int]string{3: "Unhealthy: XID 79: GPU has fallen off the bus"})
	if diff := cmp.Diff(want, healthOf(d.Poll())); diff != "" {
		t.Errorf("health after XID 79 (-want +got):\n%s", diff)
	}
	// It stays unhealthy: nothing new happened, the fault is remembered.
	if diff := cmp.Diff(want, healthOf(d.Poll())); diff != "" {
		t.Errorf("health one poll later (-want +got):\n%s", diff)
	}
}

func TestXIDFiltering(t *testing.T) {
	tests := []struct {
		name           string
		ignore, enable string
		xid            uint64
		wantUnhealthy  bool
	}{
		{"application XID 13 ignored", "", "", 13, false},
		{"application XID 31 ignored", "", "", 31, false},
		{"application XID 109 ignored", "", "", 109, false},
		{"XID 48 critical", "", "", 48, true},
		{"extra ignored XID", "48, 79", "", 48, false},
		{"all ignored", "all", "", 94, false},
		{"all ignored but one", "all", "94", 94, true},
		{"application XID enabled", "", "13", 13, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := discovery.NewXIDFilter(tt.ignore, tt.enable)
			if err != nil {
				t.Fatal(err)
			}
			n := discoverytest.NewNode(t, "dgxa100")
			d := discoverytest.Open(t, n, discovery.Options{XIDs: &f})
			n.InjectXID(6, tt.xid)
			g := d.Poll().GPUs[6]
			if got := g.Health == nodeagent.HealthUnhealthy; got != tt.wantUnhealthy {
				t.Fatalf("XID %d: health %s (%s), want unhealthy=%v", tt.xid, g.Health, g.HealthReason, tt.wantUnhealthy)
			}
			if tt.wantUnhealthy && !strings.Contains(g.HealthReason, fmt.Sprintf("XID %d", tt.xid)) {
				t.Errorf("reason %q does not name XID %d", g.HealthReason, tt.xid)
			}
		})
	}
}

func TestNewXIDFilterRejectsGarbage(t *testing.T) {
	for _, in := range [][2]string{{"13,abc", ""}, {"", "-1"}, {"", "all"}, {"1.5", ""}} {
		if _, err := discovery.NewXIDFilter(in[0], in[1]); err == nil {
			t.Errorf("NewXIDFilter(%q, %q) succeeded, want an error", in[0], in[1])
		}
	}
	f, err := discovery.NewXIDFilter(" 48 ,,", "13")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]uint64{31, 43, 45, 48, 68, 109}, f.IgnoredList()); diff != "" {
		t.Errorf("IgnoredList (-want +got):\n%s", diff)
	}
}

func TestDoubleBitECCMarksGPUUnhealthy(t *testing.T) {
	n := discoverytest.NewNode(t, "dgxa100")
	d := discoverytest.Open(t, n, discovery.Options{})
	n.InjectDoubleBitECC(1)
	want := allHealthy(8, map[int]string{1: "Unhealthy: ECC double-bit error"})
	if diff := cmp.Diff(want, healthOf(d.Poll())); diff != "" {
		t.Errorf("health (-want +got):\n%s", diff)
	}
}

func TestMIGScopedEventNamesTheInstance(t *testing.T) {
	n := discoverytest.NewNode(t, "dgxa100")
	d := discoverytest.Open(t, n, discovery.Options{})
	n.InjectEvent(nvml.EventData{Device: n.Device(4), EventType: nvml.EventTypeXidCriticalError, EventData: 94, GpuInstanceId: 2, ComputeInstanceId: 0})
	g := d.Poll().GPUs[4]
	if g.Health != nodeagent.HealthUnhealthy || g.HealthReason != "XID 94: contained ECC error (MIG GPU instance 2, compute instance 0)" {
		t.Errorf("GPU 4 = %s %q", g.Health, g.HealthReason)
	}
}

func TestEventOnUnknownDeviceMarksAllGPUs(t *testing.T) {
	n := discoverytest.NewNode(t, "dgxa100")
	d := discoverytest.Open(t, n, discovery.Options{})
	stranger := &mock.Device{GetUUIDFunc: func() (string, nvml.Return) { return "", nvml.ERROR_UNKNOWN }}
	n.InjectEvent(nvml.EventData{Device: stranger, EventType: nvml.EventTypeXidCriticalError, EventData: 79, GpuInstanceId: 0xFFFFFFFF, ComputeInstanceId: 0xFFFFFFFF})
	for _, g := range d.Poll().GPUs {
		if g.Health != nodeagent.HealthUnhealthy || !strings.Contains(g.HealthReason, "unidentified GPU") {
			t.Errorf("GPU %d = %s %q, want Unhealthy on an unidentified GPU", g.Index, g.Health, g.HealthReason)
		}
	}
}

func TestNVMLErrorOnOneDeviceDoesNotHideOthers(t *testing.T) {
	n := discoverytest.NewNode(t, "dgxa100")
	d := discoverytest.Open(t, n, discovery.Options{})
	healthyMem := n.Device(5).GetMemoryInfoFunc
	n.Device(5).GetMemoryInfoFunc = func() (nvml.Memory, nvml.Return) { return nvml.Memory{}, nvml.ERROR_UNKNOWN }

	inv := d.Poll()
	if len(inv.GPUs) != 8 {
		t.Fatalf("got %d GPUs, want 8", len(inv.GPUs))
	}
	want := allHealthy(8, map[int]string{5: "Unhealthy: get memory info: " + nvml.ERROR_UNKNOWN.Error()})
	if diff := cmp.Diff(want, healthOf(inv)); diff != "" {
		t.Errorf("health (-want +got):\n%s", diff)
	}
	if inv.GPUs[5].UUID != n.UUID(5) || inv.GPUs[5].Product == "" {
		t.Errorf("failing GPU lost its identity: %+v", inv.GPUs[5])
	}
	for i, g := range inv.GPUs {
		if i != 5 && g.MemoryFree != 40960*mib {
			t.Errorf("GPU %d free memory = %d, want %d", i, g.MemoryFree, 40960*mib)
		}
	}
	if inv.CallErrors != 1 {
		t.Errorf("CallErrors = %d, want 1", inv.CallErrors)
	}

	// A transient query error is not remembered: the GPU is healthy again
	// once NVML answers.
	n.Device(5).GetMemoryInfoFunc = healthyMem
	if got := d.Poll(); got.GPUs[5].Health != nodeagent.HealthHealthy || got.CallErrors != 0 {
		t.Errorf("after recovery: GPU 5 %s (%s), %d call errors", got.GPUs[5].Health, got.GPUs[5].HealthReason, got.CallErrors)
	}
}

func TestUnimplementedNVMLCallOnOneDeviceDoesNotHideOthers(t *testing.T) {
	n := discoverytest.NewNode(t, "dgxa100")
	d := discoverytest.Open(t, n, discovery.Options{})
	n.Device(1).GetTemperatureFunc = nil // the mock panics on a nil function
	inv := d.Poll()
	want := allHealthy(8, map[int]string{1: "Unhealthy: NVML call failed: Device.GetTemperatureFunc: method is nil but Device.GetTemperature was just called"})
	if diff := cmp.Diff(want, healthOf(inv)); diff != "" {
		t.Errorf("health (-want +got):\n%s", diff)
	}
}

func TestGPUThatFallsOffTheBusStaysListedUnhealthy(t *testing.T) {
	n := discoverytest.NewNode(t, "dgxb200")
	d := discoverytest.Open(t, n, discovery.Options{})
	n.InjectXID(4, 79)
	n.Detach(4)
	inv := d.Poll()
	if len(inv.GPUs) != 8 {
		t.Fatalf("got %d GPUs, want 8 (the lost one listed)", len(inv.GPUs))
	}
	g := inv.GPUs[4]
	if g.UUID != n.UUID(4) || g.Product != "NVIDIA B200 180GB HBM3e" || g.MemoryTotal != 184320*mib || g.MemoryFree != 0 {
		t.Errorf("lost GPU reported as %+v, want its last known identity with no free memory", g)
	}
	if g.Health != nodeagent.HealthUnhealthy || !strings.Contains(g.HealthReason, "GPU lost") || !strings.Contains(g.HealthReason, "XID 79") {
		t.Errorf("lost GPU health = %s %q", g.Health, g.HealthReason)
	}
	if h := inv.HealthyCount(); h != 7 {
		t.Errorf("HealthyCount = %d, want 7", h)
	}

	// Reset: the GPU comes back and its old fault is cleared.
	n.Reattach(4)
	if g := d.Poll().GPUs[4]; g.Health != nodeagent.HealthHealthy || g.MemoryFree != 184320*mib {
		t.Errorf("after reattach: %s %q, free %d", g.Health, g.HealthReason, g.MemoryFree)
	}
}

func TestQueryLostErrorKeepsTheFault(t *testing.T) {
	n := discoverytest.NewNode(t, "dgxa100")
	d := discoverytest.Open(t, n, discovery.Options{})
	n.InjectXID(2, 79)
	healthyMem := n.Device(2).GetMemoryInfoFunc
	n.Device(2).GetMemoryInfoFunc = func() (nvml.Memory, nvml.Return) { return nvml.Memory{}, nvml.ERROR_GPU_IS_LOST }
	g := d.Poll().GPUs[2]
	if g.Health != nodeagent.HealthUnhealthy || !strings.Contains(g.HealthReason, "XID 79") || !strings.Contains(g.HealthReason, "ERROR_GPU_IS_LOST") {
		t.Fatalf("GPU 2 = %s %q", g.Health, g.HealthReason)
	}
	// The lookup never failed, so answering queries again is no recovery:
	// the XID stays.
	n.Device(2).GetMemoryInfoFunc = healthyMem
	if g := d.Poll().GPUs[2]; g.Health != nodeagent.HealthUnhealthy || g.HealthReason != "XID 79: GPU has fallen off the bus" {
		t.Errorf("GPU 2 after queries answer again = %s %q, want the XID kept", g.Health, g.HealthReason)
	}
}

func TestGPULostBeforeStartIsListed(t *testing.T) {
	n := discoverytest.NewNode(t, "dgxa100")
	n.Detach(7)
	inv := discoverytest.Open(t, n, discovery.Options{}).Poll()
	if len(inv.GPUs) != 8 {
		t.Fatalf("got %d GPUs, want 8", len(inv.GPUs))
	}
	g := inv.GPUs[7]
	if g.Index != 7 || g.UUID != "" || g.Health != nodeagent.HealthUnhealthy || !strings.Contains(g.HealthReason, "ERROR_GPU_IS_LOST") {
		t.Errorf("GPU 7 = %+v", g)
	}
}

func TestEventsUnsupportedMeansUnknownHealth(t *testing.T) {
	n := discoverytest.NewNode(t, "dgxa100")
	n.Device(0).GetSupportedEventTypesFunc = func() (uint64, nvml.Return) { return 0, nvml.ERROR_NOT_SUPPORTED }
	inv := discoverytest.Open(t, n, discovery.Options{}).Poll()
	if g := inv.GPUs[0]; g.Health != nodeagent.HealthUnknown || !strings.Contains(g.HealthReason, "ERROR_NOT_SUPPORTED") {
		t.Errorf("GPU 0 = %s %q, want Unknown naming the error", g.Health, g.HealthReason)
	}
	if g := inv.GPUs[1]; g.Health != nodeagent.HealthHealthy {
		t.Errorf("GPU 1 = %s, want Healthy", g.Health)
	}
}

func TestTelemetry(t *testing.T) {
	n := discoverytest.NewNode(t, "dgxh200")
	n.SetUtilization(2, 87, 40)
	n.SetTemperature(2, 71)
	n.SetMemoryUsed(2, 100*mib)
	g := discoverytest.Open(t, n, discovery.Options{}).Poll().GPUs[2]
	if *g.UtilizationPercent != 87 || *g.MemoryUtilizationPercent != 40 || *g.TemperatureCelsius != 71 ||
		g.MemoryUsed != 100*mib || g.MemoryFree != g.MemoryTotal-100*mib {
		t.Errorf("GPU 2 telemetry = util %d mem %d temp %d used %d free %d",
			*g.UtilizationPercent, *g.MemoryUtilizationPercent, *g.TemperatureCelsius, g.MemoryUsed, g.MemoryFree)
	}
}

func TestUnsupportedTelemetryIsOmittedNotAnError(t *testing.T) {
	n := discoverytest.NewNode(t, "dgxa100")
	n.Device(0).GetUtilizationRatesFunc = func() (nvml.Utilization, nvml.Return) { return nvml.Utilization{}, nvml.ERROR_NOT_SUPPORTED }
	inv := discoverytest.Open(t, n, discovery.Options{}).Poll()
	if g := inv.GPUs[0]; g.UtilizationPercent != nil || g.Health != nodeagent.HealthHealthy || inv.CallErrors != 0 {
		t.Errorf("GPU 0 utilization %v health %s, %d call errors", g.UtilizationPercent, g.Health, inv.CallErrors)
	}
}

func TestOpenWithoutNVMLLibrary(t *testing.T) {
	lib := &mock.Interface{InitFunc: func() nvml.Return { return nvml.ERROR_LIBRARY_NOT_FOUND }}
	if _, err := discovery.Open(lib, discovery.Options{}); !errors.Is(err, discovery.ErrNVMLNotFound) {
		t.Fatalf("Open error = %v, want ErrNVMLNotFound", err)
	}
	lib.InitFunc = func() nvml.Return { return nvml.ERROR_DRIVER_NOT_LOADED }
	if _, err := discovery.Open(lib, discovery.Options{}); err == nil || errors.Is(err, discovery.ErrNVMLNotFound) || !errors.Is(err, nvml.ERROR_DRIVER_NOT_LOADED) {
		t.Fatalf("Open error = %v, want the driver error", err)
	}
}

// TestRealNVML opens the real library and lists the GPUs; on a machine
// without the NVIDIA driver (ErrNVMLNotFound) it skips, saying so. Any other
// error fails.
func TestRealNVML(t *testing.T) {
	d, err := discovery.Open(nvml.New(), discovery.Options{})
	if errors.Is(err, discovery.ErrNVMLNotFound) {
		t.Skipf("no NVML on this machine (%v): nothing real to discover", err)
	}
	if err != nil {
		t.Fatalf("Open(real NVML): %v", err)
	}
	defer d.Close()
	inv := d.Poll()
	if len(inv.GPUs) == 0 {
		t.Fatalf("real NVML reports no GPU")
	}
	for _, g := range inv.GPUs {
		t.Logf("GPU %d %s %q memory %d MiB (free %d MiB) cc %s MIG %s health %s %s",
			g.Index, g.UUID, g.Product, g.MemoryTotal/mib, g.MemoryFree/mib, g.ComputeCapability, g.MIGMode, g.Health, g.HealthReason)
		if g.UUID == "" || g.MemoryTotal == 0 || g.ComputeCapability == "" {
			t.Errorf("GPU %d incomplete: %+v", g.Index, g)
		}
	}
	t.Logf("driver %s CUDA %s NVML %s", inv.DriverVersion, inv.CUDADriverVersion, inv.NVMLVersion)
}

func TestCloseShutsDownOnce(t *testing.T) {
	n := discoverytest.NewNode(t, "dgxa100")
	shutdowns := 0
	n.ShutdownFunc = func() nvml.Return { shutdowns++; return nvml.SUCCESS }
	d, err := discovery.Open(n, discovery.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if shutdowns != 1 {
		t.Errorf("Shutdown called %d times, want 1", shutdowns)
	}
	if inv := d.Poll(); len(inv.GPUs) != 0 {
		t.Errorf("Poll after Close listed %d GPUs", len(inv.GPUs))
	}
}

func ptr[T any](v T) *T { return &v }

// eventually is testutil.Eventually.
func eventually(t testing.TB, fn func() error) {
	t.Helper()
	testutil.Eventually(t, fn)
}

// healthWatch is a WatchHealth running on its own goroutine.
type healthWatch struct {
	cancel context.CancelFunc
	done   chan struct{}
	err    error // set before done is closed
}

// startWatch runs d.WatchHealth until stop or the end of the test.
func startWatch(t *testing.T, d *discovery.Discoverer) *healthWatch {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	w := &healthWatch{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(w.done)
		w.err = d.WatchHealth(ctx)
	}()
	t.Cleanup(func() { w.stop(t) })
	return w
}

// stop cancels the watch's context and waits for WatchHealth to return.
func (w *healthWatch) stop(t *testing.T) error {
	t.Helper()
	w.cancel()
	select {
	case <-w.done:
		return w.err
	case <-time.After(30 * time.Second):
		t.Fatal("WatchHealth still runs 30s after its context was cancelled")
		return nil
	}
}

// waitHandled waits until every injected event was handled: none is
// pending and the one consumer waits for the next.
func waitHandled(t *testing.T, n *simulate.Node) {
	t.Helper()
	eventually(t, func() error {
		if p, w := n.PendingEvents(), n.EventWaiters(); p != 0 || w != 1 {
			return fmt.Errorf("%d events pending, %d waiters, want 0 and 1", p, w)
		}
		return nil
	})
}

func noHealthChange(t *testing.T, d *discovery.Discoverer, after string) {
	t.Helper()
	select {
	case <-d.HealthChanged():
		t.Errorf("%s signalled a health change", after)
	default:
	}
}

func TestWatchHealthHandlesEventsAsTheyCome(t *testing.T) {
	n := discoverytest.NewNode(t, "dgxh100")
	d := discoverytest.Open(t, n, discovery.Options{})
	startWatch(t, d)
	waitHandled(t, n)

	// An application XID leaves the GPU healthy and wakes nothing.
	n.InjectXID(2, 13)
	waitHandled(t, n)
	noHealthChange(t, d, "XID 13")
	if diff := cmp.Diff(allHealthy(8, nil), healthOf(d.Poll())); diff != "" {
		t.Errorf("health after XID 13 (-want +got):\n%s", diff)
	}

	// A critical XID marks its GPU before the change is signalled.
	n.InjectXID(2, 79)
	select {
	case <-d.HealthChanged():
	case <-time.After(30 * time.Second):
		t.Fatal("no health change signalled within 30s of XID 79")
	}
	want := allHealthy(8, map[int]string{2: "Unhealthy: XID 79: GPU has fallen off the bus"})
	if diff := cmp.Diff(want, healthOf(d.Poll())); diff != "" {
		t.Errorf("health after XID 79 (-want +got):\n%s", diff)
	}

	// A further fault of an unhealthy GPU keeps the first reason and
	// changes nothing worth publishing.
	n.InjectDoubleBitECC(2)
	waitHandled(t, n)
	noHealthChange(t, d, "a second fault on GPU 2")
	if diff := cmp.Diff(want, healthOf(d.Poll())); diff != "" {
		t.Errorf("health after a second fault (-want +got):\n%s", diff)
	}
}

func TestWatchHealthStopsWithItsContext(t *testing.T) {
	n := discoverytest.NewNode(t, "dgxa100")
	d := discoverytest.Open(t, n, discovery.Options{})
	w := startWatch(t, d)
	waitHandled(t, n)
	if err := d.WatchHealth(context.Background()); err == nil || !strings.Contains(err.Error(), "already watched") {
		t.Errorf("second WatchHealth = %v, want already watched", err)
	}
	if err := w.stop(t); err != nil {
		t.Fatalf("WatchHealth: %v", err)
	}
	if got := n.EventWaiters(); got != 0 {
		t.Errorf("%d callers still wait for events after WatchHealth returned", got)
	}
	// Without a watcher, Poll handles the queued events again.
	n.InjectXID(5, 48)
	want := allHealthy(8, map[int]string{5: "Unhealthy: XID 48: double-bit ECC error"})
	if diff := cmp.Diff(want, healthOf(d.Poll())); diff != "" {
		t.Errorf("health after the watch (-want +got):\n%s", diff)
	}
}

func TestCloseStopsWatchHealth(t *testing.T) {
	n := discoverytest.NewNode(t, "dgxa100")
	// Record any wait on the event set while or after it is freed.
	var mu sync.Mutex
	var inWait int
	var freed bool
	var misuse []string
	create := n.EventSetCreateFunc
	n.EventSetCreateFunc = func() (nvml.EventSet, nvml.Return) {
		es, ret := create()
		return &mock.EventSet{
			WaitFunc: func(timeout uint32) (nvml.EventData, nvml.Return) {
				mu.Lock()
				if freed {
					misuse = append(misuse, "wait after free")
				}
				inWait++
				mu.Unlock()
				defer func() { mu.Lock(); inWait--; mu.Unlock() }()
				return es.Wait(timeout)
			},
			FreeFunc: func() nvml.Return {
				mu.Lock()
				defer mu.Unlock()
				if inWait > 0 {
					misuse = append(misuse, "free during a wait")
				}
				freed = true
				return es.Free()
			},
		}, ret
	}
	d := discoverytest.Open(t, n, discovery.Options{})
	w := startWatch(t, d)
	waitHandled(t, n)
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	if !freed || len(misuse) > 0 {
		t.Errorf("event set freed: %v, misuse: %q", freed, misuse)
	}
	mu.Unlock()
	if err := w.stop(t); err != nil {
		t.Errorf("WatchHealth: %v", err)
	}
	if err := d.WatchHealth(context.Background()); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Errorf("WatchHealth after Close = %v, want an error saying NVML is closed", err)
	}
}

// lineLog records log lines.
type lineLog struct {
	mu    sync.Mutex
	lines []string
}

// logger returns a logger that records the lines up to verbosity v.
func (l *lineLog) logger(v int) logr.Logger {
	return funcr.New(func(prefix, args string) {
		l.mu.Lock()
		defer l.mu.Unlock()
		l.lines = append(l.lines, prefix+" "+args)
	}, funcr.Options{Verbosity: v})
}

func (l *lineLog) count(substr string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, line := range l.lines {
		if strings.Contains(line, substr) {
			n++
		}
	}
	return n
}

func TestWatchHealthBacksOffOnNVMLErrors(t *testing.T) {
	n := discoverytest.NewNode(t, "dgxa100")
	var waits atomic.Int32
	var fail atomic.Int32
	fail.Store(int32(nvml.ERROR_UNKNOWN))
	n.EventSetCreateFunc = func() (nvml.EventSet, nvml.Return) {
		return &mock.EventSet{
			WaitFunc: func(uint32) (nvml.EventData, nvml.Return) {
				waits.Add(1)
				return nvml.EventData{}, nvml.Return(fail.Load())
			},
			FreeFunc: func() nvml.Return { return nvml.SUCCESS },
		}, nvml.SUCCESS
	}
	clk := clocktesting.NewFakeClock(start)
	var logs lineLog
	d := discoverytest.Open(t, n, discovery.Options{Clock: clk, Log: logs.logger(0)})
	startWatch(t, d)

	// waitBackoff waits until the watcher made want waits and sleeps on the clock.
	waitBackoff := func(want int32) {
		t.Helper()
		eventually(t, func() error {
			if got := waits.Load(); got != want || !clk.HasWaiters() {
				return fmt.Errorf("%d waits (want %d), backoff timer set: %v", got, want, clk.HasWaiters())
			}
			return nil
		})
	}
	waitBackoff(1)
	for i, backoff := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second} {
		clk.Step(backoff - time.Millisecond)
		if got := waits.Load(); got != int32(i+1) {
			t.Fatalf("waited %d times before backoff %d (%s) ended, want %d", got, i+1, backoff, i+1)
		}
		clk.Step(time.Millisecond)
		waitBackoff(int32(i + 2))
	}
	if got := logs.count("NVML event wait failed"); got != 1 {
		t.Errorf("4 failures of one kind logged %d times, want once", got)
	}

	fail.Store(int32(nvml.ERROR_GPU_IS_LOST))
	clk.Step(8 * time.Second)
	waitBackoff(5)
	if got := logs.count("NVML event wait failed"); got != 2 {
		t.Errorf("a second kind of failure: %d log lines, want 2", got)
	}
	if got := logs.count("ERROR_GPU_IS_LOST"); got != 1 {
		t.Errorf("ERROR_GPU_IS_LOST logged %d times, want once", got)
	}

	// The failed waits are counted in the next poll, which leaves the
	// event set to the watcher.
	inv := d.Poll()
	if inv.CallErrors != 5 {
		t.Errorf("CallErrors = %d, want the 5 failed waits", inv.CallErrors)
	}
	if got := waits.Load(); got != 5 {
		t.Errorf("Poll waited on the event set while the watcher runs (%d waits, want 5)", got)
	}
	if inv := d.Poll(); inv.CallErrors != 0 {
		t.Errorf("CallErrors of the following poll = %d, want 0", inv.CallErrors)
	}
}

// infoLines counts the recorded Info-level (V(0)) lines that contain every
// one of substrs.
func (l *lineLog) infoLines(substrs ...string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, line := range l.lines {
		if !strings.Contains(line, `"level"=0 `) {
			continue
		}
		all := true
		for _, s := range substrs {
			all = all && strings.Contains(line, s)
		}
		if all {
			n++
		}
	}
	return n
}

func TestEventStormOnOneGPULogsOneInfoLine(t *testing.T) {
	n := discoverytest.NewNode(t, "dgxh100")
	var logs lineLog
	d := discoverytest.Open(t, n, discovery.Options{Log: logs.logger(1)})
	startWatch(t, d)
	waitHandled(t, n)

	// A failing GPU reports critical XIDs without bound.
	const storm = 50
	for range storm {
		n.InjectXID(2, 79)
	}
	waitHandled(t, n)
	uuid2 := fmt.Sprintf("%q", n.UUID(2))
	if got := logs.infoLines("unhealthy", uuid2); got != 1 {
		t.Errorf("%d critical XIDs on GPU 2 logged %d Info lines saying it is unhealthy, want 1", storm, got)
	}
	if got := logs.count(uuid2); got != storm {
		t.Errorf("GPU 2's events logged %d lines at any level, want %d (the repeats at V(1))", got, storm)
	}

	// A fault on another GPU is news and logs its own line.
	n.InjectDoubleBitECC(5)
	waitHandled(t, n)
	if got := logs.infoLines("unhealthy", fmt.Sprintf("%q", n.UUID(5))); got != 1 {
		t.Errorf("a fault on GPU 5 logged %d Info lines saying it is unhealthy, want 1", got)
	}

	// So does the first event on an unidentified GPU while some GPU is
	// still healthy; a repeat once every GPU has a fault does not.
	stranger := &mock.Device{GetUUIDFunc: func() (string, nvml.Return) { return "", nvml.ERROR_UNKNOWN }}
	for range 2 {
		n.InjectEvent(nvml.EventData{Device: stranger, EventType: nvml.EventTypeXidCriticalError, EventData: 79, GpuInstanceId: 0xFFFFFFFF, ComputeInstanceId: 0xFFFFFFFF})
	}
	waitHandled(t, n)
	if got := logs.infoLines("unidentified GPU"); got != 1 {
		t.Errorf("two events on an unidentified GPU logged %d Info lines, want 1", got)
	}
	want := allHealthy(8, nil)
	for i := range want {
		want[i] = "Unhealthy: XID 79: GPU has fallen off the bus on an unidentified GPU"
	}
	want[2] = "Unhealthy: XID 79: GPU has fallen off the bus"
	want[5] = "Unhealthy: ECC double-bit error"
	if diff := cmp.Diff(want, healthOf(d.Poll())); diff != "" {
		t.Errorf("health after the events (-want +got):\n%s", diff)
	}
}
