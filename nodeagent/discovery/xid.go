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

package discovery

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// DefaultIgnoredXIDs are the XIDs that an application causes rather than the
// GPU (NVIDIA documents them as application errors; the GPU stays usable),
// so they never make a GPU unhealthy unless enabled explicitly:
// 13 graphics engine exception, 31 GPU memory page fault, 43 GPU stopped
// processing, 45 preemptive cleanup, 68 video processor exception,
// 109 context switch timeout.
var DefaultIgnoredXIDs = []uint64{13, 31, 43, 45, 68, 109}

// XIDFilter decides which XID events make a GPU unhealthy.
type XIDFilter struct {
	ignoreAll bool
	ignored   map[uint64]bool
	enabled   map[uint64]bool
}

// NewXIDFilter returns the filter that ignores DefaultIgnoredXIDs plus the
// XIDs in ignore, except those in enable. ignore and enable are comma
// separated lists of decimal XIDs; ignore may also be "all" (or "xids") to
// ignore every XID but those in enable. Spaces and empty items are skipped;
// anything else that is not a number is an error.
func NewXIDFilter(ignore, enable string) (XIDFilter, error) {
	f := XIDFilter{ignored: map[uint64]bool{}, enabled: map[uint64]bool{}}
	for _, x := range DefaultIgnoredXIDs {
		f.ignored[x] = true
	}
	all, ids, err := parseXIDList(ignore)
	if err != nil {
		return XIDFilter{}, fmt.Errorf("ignored xids: %w", err)
	}
	f.ignoreAll = all
	for _, x := range ids {
		f.ignored[x] = true
	}
	all, ids, err = parseXIDList(enable)
	if err != nil {
		return XIDFilter{}, fmt.Errorf("enabled xids: %w", err)
	}
	if all {
		return XIDFilter{}, fmt.Errorf("enabled xids: %q is only valid in the ignored list", "all")
	}
	for _, x := range ids {
		f.enabled[x] = true
	}
	return f, nil
}

func parseXIDList(s string) (all bool, ids []uint64, err error) {
	for _, item := range strings.Split(s, ",") {
		item = strings.ToLower(strings.TrimSpace(item))
		switch item {
		case "":
			continue
		case "all", "xids":
			all = true
			continue
		}
		id, perr := strconv.ParseUint(item, 10, 32)
		if perr != nil {
			return false, nil, fmt.Errorf("%q is not an XID (want a decimal number or \"all\")", item)
		}
		ids = append(ids, id)
	}
	return all, ids, nil
}

// Ignored reports whether the XID leaves the GPU healthy.
func (f XIDFilter) Ignored(xid uint64) bool {
	if f.enabled[xid] {
		return false
	}
	return f.ignoreAll || f.ignored[xid]
}

// IgnoredList returns the explicitly ignored XIDs in ascending order, for logs.
func (f XIDFilter) IgnoredList() []uint64 {
	out := make([]uint64, 0, len(f.ignored))
	for x := range f.ignored {
		if !f.enabled[x] {
			out = append(out, x)
		}
	}
	slices.Sort(out)
	return out
}

// xidText names the XIDs that most often take a GPU out of service, for the
// health reason a user reads.
var xidText = map[uint64]string{
	48:  "double-bit ECC error",
	61:  "internal micro-controller breakpoint",
	62:  "internal micro-controller halt",
	63:  "ECC page retirement or row remapping event",
	64:  "ECC page retirement or row remapping failure",
	74:  "NVLink error",
	79:  "GPU has fallen off the bus",
	92:  "high single-bit ECC error rate",
	94:  "contained ECC error",
	95:  "uncontained ECC error",
	119: "GSP RPC timeout",
	120: "GSP error",
	140: "unrecovered ECC error",
}

// xidReason is the health reason for a critical XID.
func xidReason(xid uint64) string {
	if t, ok := xidText[xid]; ok {
		return fmt.Sprintf("XID %d: %s", xid, t)
	}
	return fmt.Sprintf("XID %d: critical error", xid)
}
