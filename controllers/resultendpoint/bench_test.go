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

package resultendpoint

import (
	"fmt"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aivm-dev/aivm-operator/internal/testutil"

	"github.com/aivm-dev/aivm-operator/runtime-image/envelope"
)

// BenchmarkAcceptedResults measures accepted results per second on the
// envtest API server: each post is a distinct job's current pod with its
// own real token, so every one costs a TokenReview, the job and input
// reads, the ConfigMap write, the status write and a signature. Jobs,
// pods and tokens are made before the timer starts; posts run in parallel
// (GOMAXPROCS goroutines, times -cpu).
func BenchmarkAcceptedResults(b *testing.B) {
	f := newFixture(b, nil)
	type post struct {
		token string
		env   *envelope.Envelope
	}
	posts := make([]post, b.N)
	for i := range posts {
		j := testutil.MakeInferenceJob(f.ns, fmt.Sprintf("bench-%d", i), "k", "hello").Obj()
		mustCreate(b, j)
		g := &fixture{t: b, ns: f.ns, job: j}
		g.place(1, 0)
		pod := g.newPod(1, 0)
		g.record(pod)
		posts[i] = post{token: requestToken(b, f.ns, pod), env: g.envelope(1, 0, fmt.Sprintf(" result %d", i))}
	}
	var next, failed atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	start, requests := time.Now(), apiRequests.Load()
	b.SetParallelism(benchPosters)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			p := posts[next.Add(1)-1]
			if a, err := send(p.token, "application/json", p.env); err != nil || a.code != http.StatusOK {
				failed.Add(1)
			}
		}
	})
	elapsed := time.Since(start)
	b.StopTimer()
	if failed.Load() > 0 {
		b.Fatalf("%d of %d posts not accepted", failed.Load(), b.N)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "results/s")
	b.ReportMetric(float64(apiRequests.Load()-requests)/float64(b.N), "apirequests/result")
}

// benchPosters is the posting goroutines per GOMAXPROCS: job pods post
// concurrently, each waiting on its own round trips.
const benchPosters = 32
