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
	"fmt"
	"slices"

	"github.com/aivm-dev/aivm-operator/artifact"
)

// MaxCachedModels is the most digests a GPUNode lists; the API bounds the list.
const MaxCachedModels = 1024

// ScanModelCache lists what the node-local model cache at dir holds, by
// the cache's own listing (artifact.CachedDigests): the modelDigests of
// complete snapshots first, then the digests of verified blobs, so a
// single-file Model (whose modelDigest is its sha256) counts once its blob
// is cached and a file set once its snapshot is complete. Stray files,
// directories and symlinks count for nothing. A cache that does not exist
// yet holds nothing. When more than MaxCachedModels digests are present,
// the first MaxCachedModels are returned (snapshots first) with truncated
// set; the result is sorted.
func ScanModelCache(dir string) (digests []string, truncated bool, err error) {
	digests, err = artifact.CachedDigests(dir)
	if err != nil {
		return nil, false, fmt.Errorf("scan model cache: %w", err)
	}
	if len(digests) > MaxCachedModels {
		digests, truncated = digests[:MaxCachedModels], true
	}
	slices.Sort(digests)
	return digests, truncated, nil
}
