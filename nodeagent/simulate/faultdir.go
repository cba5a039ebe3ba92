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
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// faultDirPoll is how often WatchFaultDir looks for new fault files.
const faultDirPoll = 200 * time.Millisecond

// WatchFaultDir injects the faults described by the files that appear in
// dir until ctx ends, so a simulated node running as its own process (the
// dev environment's node agents) can be given faults from outside. Each
// file holds one fault a line:
//
//	xid GPU CODE     a critical-XID event (InjectXID)
//	ecc GPU          a double-bit ECC event (InjectDoubleBitECC)
//	detach GPU       the GPU falls off the bus (Detach)
//	reattach GPU     it comes back (Reattach)
//
// GPU is the GPU's index or UUID. Files are read in name order and removed
// once applied; names starting with "." are skipped, so a writer can create
// ".name" and rename it into place. A file that does not parse is removed
// and reported to onErr, nothing of it applied.
func (n *Node) WatchFaultDir(ctx context.Context, dir string, onErr func(error)) {
	t := time.NewTicker(faultDirPoll)
	defer t.Stop()
	for {
		entries, err := os.ReadDir(dir)
		if err != nil && !os.IsNotExist(err) {
			onErr(fmt.Errorf("read fault directory: %w", err))
		}
		names := make([]string, 0, len(entries))
		for _, e := range entries {
			if e.Type().IsRegular() && !strings.HasPrefix(e.Name(), ".") {
				names = append(names, e.Name())
			}
		}
		sort.Strings(names)
		for _, name := range names {
			path := filepath.Join(dir, name)
			b, err := os.ReadFile(path) //nolint:gosec // the configured fault directory
			if err == nil {
				err = n.ApplyFaults(string(b))
			}
			if err != nil {
				onErr(fmt.Errorf("fault file %s: %w", name, err))
			}
			if err := os.Remove(path); err != nil {
				onErr(err)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// ApplyFaults applies faults in WatchFaultDir's line format, all or none:
// every line is checked before the first is applied.
func (n *Node) ApplyFaults(text string) error {
	var apply []func()
	for i, line := range strings.Split(text, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		bad := func(format string, args ...any) error {
			return fmt.Errorf("line %d %q: %s", i+1, line, fmt.Sprintf(format, args...))
		}
		want := map[string]int{"xid": 3, "ecc": 2, "detach": 2, "reattach": 2}[f[0]]
		if want == 0 {
			return bad("unknown fault %q (want xid, ecc, detach or reattach)", f[0])
		}
		if len(f) != want {
			return bad("want %d fields", want)
		}
		gpu, err := n.gpuIndex(f[1])
		if err != nil {
			return bad("%v", err)
		}
		switch f[0] {
		case "xid":
			code, err := strconv.ParseUint(f[2], 10, 64)
			if err != nil {
				return bad("XID %q is not a number", f[2])
			}
			apply = append(apply, func() { n.InjectXID(gpu, code) })
		case "ecc":
			apply = append(apply, func() { n.InjectDoubleBitECC(gpu) })
		case "detach":
			apply = append(apply, func() { n.Detach(gpu) })
		case "reattach":
			apply = append(apply, func() { n.Reattach(gpu) })
		}
	}
	for _, f := range apply {
		f()
	}
	return nil
}

// gpuIndex resolves a GPU index or UUID to the index.
func (n *Node) gpuIndex(s string) (int, error) {
	if i, err := strconv.Atoi(s); err == nil {
		if i < 0 || i >= len(n.gpus) {
			return 0, fmt.Errorf("GPU index %d is out of range (the node has %d GPUs)", i, len(n.gpus))
		}
		return i, nil
	}
	for i, g := range n.gpus {
		if g.dev.UUID == s {
			return i, nil
		}
	}
	return 0, fmt.Errorf("no GPU %q on the node", s)
}
