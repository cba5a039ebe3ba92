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

package scheduler

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"syscall"
	"testing"
	"time"

	clocktesting "k8s.io/utils/clock/testing"
)

// BenchmarkSchedule measures placement decisions per second with 10,000
// jobs pending, on clusters of 8-GPU nodes of increasing size. Each
// iteration is one decision; the cluster is kept in a steady state: a
// placed job is replaced in the queue by a new one, and once as many jobs
// run as there are GPUs, the oldest finishes (its reservation is released).
// Jobs ask for 10, 20, 40 or 80 GiB on one GPU, one in twenty for two
// GPUs, one in fifty for a committee of three; ten namespaces, five
// priorities, twenty models cached on a tenth of the nodes each.
func BenchmarkSchedule(b *testing.B) {
	for _, nodes := range []int{100, 1000, 5000, 10000} {
		b.Run(fmt.Sprintf("nodes=%d", nodes), func(b *testing.B) { benchSchedule(b, nodes, 10000) })
	}
}

func benchSchedule(b *testing.B, nodes, pending int) {
	clk := clocktesting.NewFakeClock(t0)
	s, err := New(Options{Clock: clk, HeartbeatStaleAfter: 100 * time.Second})
	if err != nil {
		b.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < nodes; i++ {
		name := fmt.Sprintf("node-%05d", i)
		gn := GPUNode{Name: name, GPUs: gpus(name, 8, 80*gi, a100, "8.0"), Heartbeat: t0}
		if i%2 == 1 {
			for j := range gn.GPUs {
				gn.GPUs[j].Product, gn.GPUs[j].ComputeCapability = h100, "9.0"
			}
		}
		for m := 0; m < 20; m++ {
			if rng.IntN(10) == 0 {
				gn.CachedModels = append(gn.CachedModels, fmt.Sprintf("model-%02d", m))
			}
		}
		s.UpsertGPUNode(gn)
		s.UpsertNode(Node{Name: name, Ready: true, Labels: map[string]string{"kubernetes.io/hostname": name}})
	}
	namespaces := make([]string, 10)
	for i := range namespaces {
		namespaces[i] = fmt.Sprintf("ns-%d", i)
	}
	models := make([]string, 20)
	for i := range models {
		models[i] = fmt.Sprintf("model-%02d", i)
	}
	seq := 0
	newJob := func() Request {
		seq++
		r := Request{
			Key:         JobKey{Namespace: namespaces[seq%10], Name: "job-" + strconv.Itoa(seq)},
			Attempt:     1,
			Priority:    int32(rng.IntN(5)),
			Created:     t0.Add(time.Duration(seq) * time.Millisecond),
			Members:     1,
			GPUs:        1,
			Memory:      []int64{10, 20, 40, 80}[rng.IntN(4)] * gi,
			ModelDigest: models[rng.IntN(20)],
		}
		switch n := rng.IntN(100); {
		case n < 5:
			r.GPUs, r.Memory = 2, 40*gi
		case n < 7:
			r.Members, r.Memory = 3, 20*gi
		}
		return r
	}
	for i := 0; i < pending; i++ {
		s.Enqueue(newJob())
	}
	capacity := nodes * 8
	running := make([]JobKey, 0, capacity+1)
	placed := 0
	b.ReportAllocs()
	b.ResetTimer()
	start, cpuStart := time.Now(), cpuTime()
	for i := 0; i < b.N; i++ {
		d, ok := s.Next()
		if !ok {
			// Everything pending is parked: let the oldest job finish.
			s.Release(running[0])
			running = running[1:]
			i--
			continue
		}
		if d.Placed() {
			placed++
			running = append(running, d.Request.Key)
			s.Enqueue(newJob())
			if len(running) > capacity {
				s.Release(running[0])
				running = running[1:]
			}
		}
	}
	elapsed, cpu := time.Since(start), cpuTime()-cpuStart
	b.StopTimer()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "decisions/s")
	// On a shared machine the wall clock counts time spent waiting for a
	// core; decisions per CPU second is what one free core would do.
	b.ReportMetric(float64(b.N)/cpu.Seconds(), "decisions/cpu-s")
	b.ReportMetric(float64(placed)/float64(b.N), "placed/decision")
}

// cpuTime is the CPU time (user + system) this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
