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

package nodeagent

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"

	"github.com/aivm-dev/aivm-operator/artifact"
)

// MaxCachedModels is the most digests a GPUNode lists; the API bounds the list.
const MaxCachedModels = 1024

// ScanModelCache lists the model digests present in a node-local cache laid
// out as <dir>/sha256/<lowercase hex digest>, sorted. Anything else in that
// directory (temporary files of a download in progress, other names) is
// skipped. A cache that does not exist yet holds nothing. When more than
// MaxCachedModels digests are present, the first MaxCachedModels are
// returned with truncated set.
func ScanModelCache(dir string) (digests []string, truncated bool, err error) {
	if dir == "" {
		return nil, false, nil
	}
	entries, err := os.ReadDir(filepath.Join(dir, "sha256"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("scan model cache: %w", err)
	}
	for _, e := range entries {
		// Only names that are already canonical digests (64 lowercase hex).
		if d, err := artifact.ParseDigest(e.Name()); err != nil || d != e.Name() {
			continue
		}
		if t := e.Type(); t != 0 && !t.IsDir() && t&fs.ModeSymlink == 0 {
			continue // sockets, pipes, devices
		}
		digests = append(digests, e.Name())
	}
	slices.Sort(digests)
	if len(digests) > MaxCachedModels {
		return digests[:MaxCachedModels], true, nil
	}
	return digests, false, nil
}
