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

package chainclient_test

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	chainclient "github.com/aivm-dev/aivm-operator/chain-client"
	"github.com/aivm-dev/aivm-operator/chain-client/devnet"
)

// benchCommit enqueues n results from producers goroutines, at most rate
// results per second in total (0: as fast as they can), and waits until all
// are committed. It reports results committed per second and the latency
// from enqueue to commit in blocks and milliseconds.
func benchCommit(b *testing.B, n, producers, rate int) {
	k := keyFor(b, "bench")
	env := startChain(b, devnet.Config{Accounts: map[string]uint64{addrOf(b, k): testFunds}, BlockTime: 200 * time.Millisecond})
	type stamp struct {
		height int64
		at     time.Time
	}
	// mu guards enq, blocks and millis: producers and the client's loop
	// (OnEvent) write them.
	var mu sync.Mutex
	enq := make(map[string]stamp, n)
	var blocks []int64
	var millis []float64
	done := make(chan struct{})
	var committed atomic.Int64
	onEvent := func(e chainclient.Event) {
		if e.Type != chainclient.EventCommitted {
			b.Errorf("job %s: %s code %d: %s", e.UID, e.Type, e.Code, e.Log)
		}
		mu.Lock()
		s, measured := enq[e.UID]
		if measured {
			blocks = append(blocks, e.Height-s.height)
			millis = append(millis, float64(time.Since(s.at).Microseconds())/1000)
		}
		mu.Unlock()
		// Only the measured results count (not the warm-up's).
		if measured && committed.Add(1) == int64(n) {
			close(done)
		}
	}
	r := startReporter(b, env, k, b.TempDir(), func(o *chainclient.Options) {
		o.MaxBatchResults = chainclient.DefaultMaxBatchResults
		o.BatchDelay = 50 * time.Millisecond
		o.PollInterval = 50 * time.Millisecond
		o.OnEvent = onEvent
	})
	// Registration first, so the measurement starts on a ready provider.
	warm := record("warm-up")
	if err := r.client.Enqueue(context.Background(), warm); err != nil {
		b.Fatal(err)
	}
	for {
		e, err := r.client.Get(warm.GetJobUid())
		if err == nil && e.State == "Committed" {
			break
		}
		r.client.Kick()
		time.Sleep(10 * time.Millisecond)
	}

	recs := records("bench", 0, n)
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	var next atomic.Int64
	for range producers {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if rate > 0 {
					// Result i is due at start + i/rate; a late producer
					// does not wait, so the offered rate holds on average.
					if d := time.Until(start.Add(time.Duration(i) * time.Second / time.Duration(rate))); d > 0 {
						time.Sleep(d)
					}
				}
				rec := recs[i]
				mu.Lock()
				enq[rec.GetJobUid()] = stamp{height: env.node.Height(), at: time.Now()}
				mu.Unlock()
				if err := r.client.Enqueue(context.Background(), rec); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	select {
	case <-done:
	case <-time.After(5 * time.Minute):
		b.Fatalf("only %d of %d results committed", committed.Load(), n)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	mu.Lock()
	defer mu.Unlock()
	slices.Sort(blocks)
	slices.Sort(millis)
	b.ReportMetric(float64(n)/elapsed.Seconds(), "results/s")
	b.ReportMetric(float64(blocks[len(blocks)/2]), "p50-blocks")
	b.ReportMetric(float64(blocks[len(blocks)*99/100]), "p99-blocks")
	b.ReportMetric(float64(blocks[len(blocks)-1]), "max-blocks")
	b.ReportMetric(millis[len(millis)/2], "p50-ms")
	b.ReportMetric(millis[len(millis)*99/100], "p99-ms")
}

// BenchmarkDevnetCommit measures results committed per second on the devnet
// (200 ms blocks) with 64 producers enqueueing as fast as they can, and the
// enqueue-to-commit latency. Run with a fixed count, e.g.
// -benchtime 20000x: b.N is the number of results.
func BenchmarkDevnetCommit(b *testing.B) {
	benchCommit(b, max(b.N, 1000), 64, 0)
}

// BenchmarkDevnetCommitAt2000PerSecond offers 2,000 results per second and
// measures the enqueue-to-commit latency at that load.
func BenchmarkDevnetCommitAt2000PerSecond(b *testing.B) {
	benchCommit(b, max(b.N, 1000), 64, 2000)
}
