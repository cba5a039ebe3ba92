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
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// Build builds the manager, the node agent (with cgo, for the go-nvml
// mocks) and aivm-runtime from the source tree at root into binDir, one
// after the other (the Go build cache makes a rebuild of unchanged code
// quick), printing a line per binary with its duration.
func Build(ctx context.Context, root, binDir string, progress io.Writer) (Binaries, error) {
	b := Binaries{
		Manager:   filepath.Join(binDir, "manager"),
		NodeAgent: filepath.Join(binDir, "node-agent"),
		Runtime:   filepath.Join(binDir, "aivm-runtime"),
	}
	if err := os.MkdirAll(binDir, 0o750); err != nil {
		return b, fmt.Errorf("binary directory %s is not writable: %w", binDir, err)
	}
	for _, t := range []struct {
		out, pkg string
		cgo      bool
	}{
		{b.Manager, "./cmd/manager", false},
		{b.NodeAgent, "./cmd/node-agent", true},
		{b.Runtime, "./cmd/aivm-runtime", false},
	} {
		start := time.Now()
		cmd := exec.CommandContext(ctx, "go", "build", "-o", t.out, t.pkg) //nolint:gosec // fixed packages
		cmd.Dir = root
		cgo := "CGO_ENABLED=0"
		if t.cgo {
			cgo = "CGO_ENABLED=1"
		}
		cmd.Env = append(os.Environ(), cgo)
		if os.Getenv("CGO_CFLAGS") == "" {
			cmd.Env = append(cmd.Env, "CGO_CFLAGS=-Wno-deprecated-declarations")
		}
		out, err := cmd.CombinedOutput()
		if err != nil {
			return b, fmt.Errorf("go build %s: %w: %s", t.pkg, err, strings.TrimSpace(string(out)))
		}
		if progress != nil {
			_, _ = fmt.Fprintf(progress, "dev: built %s in %s\n", filepath.Base(t.out), time.Since(start).Round(10*time.Millisecond))
		}
	}
	return b, nil
}
