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
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"

	"github.com/aivm-dev/aivm-operator/artifact"
	"github.com/aivm-dev/aivm-operator/nodeagent"
	"github.com/aivm-dev/aivm-operator/nodeagent/simulate"
)

func defaults() options {
	return options{
		pollInterval:         nodeagent.DefaultPollInterval,
		heartbeatInterval:    nodeagent.DefaultHeartbeatInterval,
		prefetch:             true,
		hfBaseURL:            artifact.DefaultHFBaseURL,
		prefetchConcurrency:  nodeagent.DefaultPrefetchConcurrency,
		modelFileConcurrency: artifact.DefaultFileConcurrency,
		cacheSyncInterval:    nodeagent.DefaultCacheSyncInterval,
	}
}

// TestWithoutNVMLOneClearLine runs the agent against the real NVML loader:
// without libnvidia-ml it must fail with the one line that says how to run it.
func TestWithoutNVMLOneClearLine(t *testing.T) {
	o := defaults()
	o.nodeName = "node-1"
	err := run(context.Background(), o, logr.Discard(), &bytes.Buffer{})
	if err == nil {
		t.Skip("NVML is present on this machine")
	}
	if !errors.Is(err, errNoNVML) {
		if strings.Contains(err.Error(), "kubeconfig") || strings.Contains(err.Error(), "api client") {
			t.Skip("NVML is present on this machine")
		}
		t.Fatalf("run error = %v, want the NVML-not-found line", err)
	}
	msg := err.Error()
	for _, want := range []string{"libnvidia-ml.so.1", "NVIDIA container toolkit", "--simulate=<dgxa100|dgxb200|dgxh100|dgxh200>"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message %q does not mention %q", msg, want)
		}
	}
	if strings.Contains(msg, "\n") {
		t.Errorf("message spans lines: %q", msg)
	}
}

func TestOnceSimulated(t *testing.T) {
	o := defaults()
	o.once, o.simulate, o.nodeName = true, "dgxb200", "node-1"
	var out bytes.Buffer
	if err := run(context.Background(), o, logr.Discard(), &out); err != nil {
		t.Fatal(err)
	}
	var inv nodeagent.Inventory
	if err := json.Unmarshal(out.Bytes(), &inv); err != nil {
		t.Fatalf("output is not an inventory: %v\n%s", err, out.String())
	}
	if len(inv.GPUs) != 8 || inv.GPUs[0].Product != "NVIDIA B200 180GB HBM3e" || inv.HealthyCount() != 8 {
		t.Errorf("inventory: %d GPUs, product %q, %d healthy", len(inv.GPUs), inv.GPUs[0].Product, inv.HealthyCount())
	}
}

// TestOnceHandlesQueuedEvents: --once runs no health watcher, so its one
// poll handles the events NVML queued.
func TestOnceHandlesQueuedEvents(t *testing.T) {
	sim, err := simulate.New("dgxa100")
	if err != nil {
		t.Fatal(err)
	}
	sim.InjectXID(2, 79)
	sim.InjectXID(3, 13)
	o := defaults()
	o.once, o.sim = true, sim
	var out bytes.Buffer
	if err := run(context.Background(), o, logr.Discard(), &out); err != nil {
		t.Fatal(err)
	}
	var inv nodeagent.Inventory
	if err := json.Unmarshal(out.Bytes(), &inv); err != nil {
		t.Fatalf("output is not an inventory: %v\n%s", err, out.String())
	}
	if len(inv.GPUs) != 8 || inv.HealthyCount() != 7 || inv.GPUs[2].HealthReason != "XID 79: GPU has fallen off the bus" {
		t.Errorf("inventory: %d GPUs, %d healthy, GPU 2 %s %q", len(inv.GPUs), inv.HealthyCount(), inv.GPUs[2].Health, inv.GPUs[2].HealthReason)
	}
	if n := sim.PendingEvents(); n != 0 {
		t.Errorf("%d events left unhandled", n)
	}
}

func TestRejectsBadFlags(t *testing.T) {
	tests := []struct {
		name string
		edit func(*options)
		want string
	}{
		{"fast poll", func(o *options) { o.pollInterval = 100 * time.Millisecond }, "--poll-interval"},
		{"heartbeat below poll", func(o *options) { o.heartbeatInterval = 5 * time.Second }, "--heartbeat-interval"},
		{"unknown profile", func(o *options) { o.simulate = "dgx9000" }, "dgx9000"},
		{"bad xid", func(o *options) { o.ignoreXIDs = "13,x" }, `"x"`},
		{"no node name", func(o *options) { o.simulate = "dgxa100"; o.nodeName = "" }, "--node-name"},
		{"negative cache size", func(o *options) { o.modelCacheMaxBytes = -1 }, "--model-cache-max-bytes"},
		{"cache size without dir", func(o *options) { o.modelCacheMaxBytes = 1 << 30 }, "--model-cache-dir"},
		{"no prefetch slots", func(o *options) { o.prefetchConcurrency = 0 }, "--prefetch-concurrency"},
		{"no file slots", func(o *options) { o.modelFileConcurrency = 0 }, "--model-file-concurrency"},
		{"too many file slots", func(o *options) { o.modelFileConcurrency = 65 }, "--model-file-concurrency"},
		{"fast cache sync", func(o *options) { o.cacheSyncInterval = time.Millisecond }, "--cache-sync-interval"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := defaults()
			o.nodeName = "node-1"
			tt.edit(&o)
			err := run(context.Background(), o, logr.Discard(), &bytes.Buffer{})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("run error = %v, want one naming %s", err, tt.want)
			}
		})
	}
}
