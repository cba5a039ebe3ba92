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

package nodeagent_test

import (
	"fmt"

	"github.com/aivm-dev/aivm-operator/nodeagent"
	"github.com/aivm-dev/aivm-operator/nodeagent/discovery"
	"github.com/aivm-dev/aivm-operator/nodeagent/simulate"
)

// A simulated DGX H100 whose GPU 3 reports XID 79 (fallen off the bus).
func ExampleDiscoverer_Poll() {
	sim, err := simulate.New("dgxh100", simulate.WithSeed("gpu-node-1"))
	if err != nil {
		panic(err)
	}
	d, err := discovery.Open(sim, discovery.Options{})
	if err != nil {
		panic(err)
	}
	defer d.Close()

	sim.InjectXID(3, 79)
	inv := d.Poll()
	fmt.Println("driver", inv.DriverVersion, "CUDA", inv.CUDADriverVersion)
	for _, g := range inv.GPUs[2:5] {
		fmt.Printf("%d %s %d GiB cc %s %s", g.Index, g.Product, g.MemoryTotal>>30, g.ComputeCapability, g.Health)
		if g.HealthReason != "" {
			fmt.Printf(" (%s)", g.HealthReason)
		}
		fmt.Println()
	}
	fmt.Println("labels:", nodeagent.LabelsFor(inv))
	// Output:
	// driver 550.54.15 CUDA 12.4
	// 2 NVIDIA H100 80GB HBM3 80 GiB cc 9.0 Healthy
	// 3 NVIDIA H100 80GB HBM3 80 GiB cc 9.0 Unhealthy (XID 79: GPU has fallen off the bus)
	// 4 NVIDIA H100 80GB HBM3 80 GiB cc 9.0 Healthy
	// labels: map[aivm.dev/gpu.compute-capability:9.0 aivm.dev/gpu.count:8 aivm.dev/gpu.healthy-count:7 aivm.dev/gpu.memory:81920 aivm.dev/gpu.present:true aivm.dev/gpu.product:NVIDIA-H100-80GB-HBM3]
}
