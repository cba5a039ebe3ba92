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

package devkubelet

import (
	"fmt"
	"runtime"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

var goarch = runtime.GOARCH

// Images is the image table: an image reference maps to the local command
// (program and leading arguments) that stands in for its entrypoint. A
// container's args follow that command; a container's own command, when
// set, replaces the leading arguments but keeps the program.
type Images map[string][]string

// ParseImage parses one IMAGE=COMMAND entry (COMMAND split on spaces) into
// the table.
func (im Images) ParseImage(entry string) error {
	img, cmd, ok := strings.Cut(entry, "=")
	fields := strings.Fields(cmd)
	if !ok || img == "" || len(fields) == 0 {
		return fmt.Errorf("image entry %q: want IMAGE=COMMAND [ARGS...]", entry)
	}
	if _, dup := im[img]; dup {
		return fmt.Errorf("image %s is mapped twice", img)
	}
	im[img] = fields
	return nil
}

// argv returns the process argv of a container and how many of its leading
// entries come from the image table (host paths, never rewritten to a
// volume), or an error naming the image that has no local command.
func (im Images) argv(c *corev1.Container) ([]string, int, error) {
	base, ok := im[c.Image]
	if !ok {
		return nil, 0, fmt.Errorf("image %q has no local command in the dev image table", c.Image)
	}
	argv := append([]string{}, base...)
	if len(c.Command) > 0 {
		argv = append(argv[:1], c.Command...)
	}
	host := min(len(base), len(argv)-len(c.Command))
	return append(argv, c.Args...), host, nil
}

// capacity is the Node's capacity: cfg.Capacity and SetCapacity over
// machine defaults.
func (k *Kubelet) capacity() corev1.ResourceList {
	out := corev1.ResourceList{
		corev1.ResourceCPU:    resource.MustParse(strconv.Itoa(runtime.NumCPU())),
		corev1.ResourceMemory: resource.MustParse("64Gi"),
		corev1.ResourcePods:   resource.MustParse("110"),
	}
	k.capMu.Lock()
	defer k.capMu.Unlock()
	for k, v := range k.cfg.Capacity {
		out[k] = v.DeepCopy()
	}
	return out
}

// SetCapacity sets the Node's capacity and allocatable of one resource, as
// a device plugin advertises nvidia.com/gpu once it found the GPUs; the
// next heartbeat publishes it, and admission counts it at once.
func (k *Kubelet) SetCapacity(name corev1.ResourceName, q resource.Quantity) {
	k.capMu.Lock()
	defer k.capMu.Unlock()
	if k.cfg.Capacity == nil {
		k.cfg.Capacity = corev1.ResourceList{}
	}
	k.cfg.Capacity[name] = q
}
