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

package simulate

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
)

func TestApplyFaultsIsAllOrNone(t *testing.T) {
	n, err := New("dgxa100", WithSeed("n1"))
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{
		"xid 0 79\nburn 1",
		"xid 0 79\nxid 8 79",
		"xid 0 seventy-nine",
		"ecc 0 1",
		"detach GPU-nope",
	} {
		if err := n.ApplyFaults(bad); err == nil {
			t.Errorf("ApplyFaults(%q) succeeded", bad)
		}
	}
	if got := n.PendingEvents(); got != 0 {
		t.Fatalf("refused fault text queued %d events", got)
	}
	if err := n.ApplyFaults("xid " + n.UUID(3) + " 79\n\necc 1\n"); err != nil {
		t.Fatal(err)
	}
	e, ret := n.waitEvent(0)
	if ret != nvml.SUCCESS || e.EventType != nvml.EventTypeXidCriticalError || e.EventData != 79 {
		t.Fatalf("first event %+v (%v), want XID 79", e, ret)
	}
	if uuid, _ := e.Device.GetUUID(); uuid != n.UUID(3) {
		t.Errorf("XID on %s, want GPU 3 (%s)", uuid, n.UUID(3))
	}
	if e, ret := n.waitEvent(0); ret != nvml.SUCCESS || e.EventType != nvml.EventTypeDoubleBitEccError {
		t.Fatalf("second event %+v (%v), want double-bit ECC", e, ret)
	}
}

func TestWatchFaultDirAppliesAndRemovesFiles(t *testing.T) {
	n, err := New("dgxh100", WithSeed("n2"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	var (
		mu   sync.Mutex
		errs []string
		done = make(chan struct{})
	)
	go func() {
		defer close(done)
		n.WatchFaultDir(ctx, dir, func(err error) { mu.Lock(); errs = append(errs, err.Error()); mu.Unlock() })
	}()
	defer func() { cancel(); <-done }()
	// Written under a hidden name and renamed into place, as writers must:
	// the watcher may read a file as soon as its name appears.
	for name, text := range map[string]string{"a": "xid 2 48\n", "b": "nonsense\n", ".c": "xid 0 79\n"} {
		tmp := filepath.Join(dir, ".tmp-"+name)
		if err := os.WriteFile(tmp, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, errA := os.Stat(filepath.Join(dir, "a"))
		_, errB := os.Stat(filepath.Join(dir, "b"))
		if os.IsNotExist(errA) && os.IsNotExist(errB) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("fault files not consumed")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got := n.PendingEvents(); got != 1 {
		t.Errorf("%d events queued, want the one XID of file a", got)
	}
	if _, err := os.Stat(filepath.Join(dir, ".c")); err != nil {
		t.Errorf("hidden file .c was touched: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(errs) != 1 || !strings.Contains(errs[0], "fault file b") || !strings.Contains(errs[0], "unknown fault") {
		t.Errorf("errors %q, want one naming file b", errs)
	}
}
