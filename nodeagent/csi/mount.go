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
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// defaultMountInfo is where the mounts of the agent's mount namespace are
// listed; the kubelet's pods directory is shared with it (Bidirectional).
const defaultMountInfo = "/proc/self/mountinfo"

// maxStackedUnmounts bounds how many mounts one unpublish peels off a target.
const maxStackedUnmounts = 8

// bindReadOnly bind-mounts src at target and makes that mount read-only,
// nosuid, nodev and noexec. A bind mount ignores MS_RDONLY on the first call,
// so a remount applies it; if the remount fails the bind is undone.
func bindReadOnly(src, target string) error {
	if err := unix.Mount(src, target, "", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("bind mount %s at %s: %w", src, target, err)
	}
	flags := uintptr(unix.MS_REMOUNT | unix.MS_BIND | unix.MS_RDONLY | unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC)
	if err := unix.Mount("", target, "", flags, ""); err != nil {
		_ = unix.Unmount(target, 0)
		return fmt.Errorf("remount %s read-only: %w", target, err)
	}
	return nil
}

// unmountAll unmounts target until nothing is mounted there; a path that is
// not a mount point or does not exist is no error.
func unmountAll(mountInfo, target string) error {
	for range maxStackedUnmounts {
		mounted, err := isMountPoint(mountInfo, target)
		if err != nil || !mounted {
			return err
		}
		if err := unix.Unmount(target, 0); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("unmount %s: %w", target, err)
		}
	}
	return fmt.Errorf("unmount %s: still mounted after %d unmounts", target, maxStackedUnmounts)
}

// isMountPoint reports whether path is a mount point in mountInfo. The path is
// compared after resolving symlinks when it exists, as the kernel lists it.
func isMountPoint(mountInfo, path string) (bool, error) {
	points, err := mountPoints(mountInfo)
	if err != nil {
		return false, err
	}
	return points[canonical(path)], nil
}

// canonical returns path cleaned, with symlinks resolved when it exists.
func canonical(path string) string {
	if p, err := filepath.EvalSymlinks(path); err == nil {
		return p
	}
	return filepath.Clean(path)
}

// mountPoints returns the set of mount points listed in a mountinfo file.
func mountPoints(mountInfo string) (map[string]bool, error) {
	f, err := os.Open(mountInfo)
	if err != nil {
		return nil, fmt.Errorf("read mounts: %w", err)
	}
	defer func() { _ = f.Close() }()
	return parseMountPoints(f)
}

// parseMountPoints reads mountinfo lines ("36 35 98:0 /root /mnt opts ...",
// see proc(5)); the fifth field is the mount point, with space, tab, newline
// and backslash escaped as octal.
func parseMountPoints(r io.Reader) (map[string]bool, error) {
	out := map[string]bool{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		out[filepath.Clean(unescapeOctal(fields[4]))] = true
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read mounts: %w", err)
	}
	return out, nil
}

func unescapeOctal(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
