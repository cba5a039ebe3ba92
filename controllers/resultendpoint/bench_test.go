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
	"context"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
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
	posts := makePosts(b, "bench", b.N)
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

// benchPost is one job pod's result post: its token and envelope.
type benchPost struct {
	token string
	env   *envelope.Envelope
}

// makePosts makes n jobs named prefix-<i> in a new namespace, each placed
// with its pod recorded, and returns each pod's post of a distinct output.
func makePosts(b *testing.B, prefix string, n int) []benchPost {
	b.Helper()
	f := newFixture(b, nil)
	posts := make([]benchPost, n)
	for i := range posts {
		j := testutil.MakeInferenceJob(f.ns, fmt.Sprintf("%s-%d", prefix, i), "k", "hello").Obj()
		mustCreate(b, j)
		g := &fixture{t: b, ns: f.ns, job: j}
		g.place(1, 0)
		pod := g.newPod(1, 0)
		g.record(pod)
		posts[i] = benchPost{token: g.token(pod), env: g.envelope(1, 0, fmt.Sprintf(" result %d", i))}
	}
	return posts
}

// benchPosters is the posting goroutines per GOMAXPROCS: job pods post
// concurrently, each waiting on its own round trips.
const benchPosters = 32

// BenchmarkResultLatency measures a job pod's post, one at a time, on a
// quiet endpoint and under a flood: 10,000 idle connections (raw TCP, the
// server waiting for their TLS handshake; each is dialed again a second
// after the server closes it) and 1,000 posts per second with garbage
// tokens, from other loopback addresses than the pod's. Both run on an
// endpoint of their own with DefaultLimits; ns/op is the mean latency.
// idle and garbage run the two halves of the flood alone.
func BenchmarkResultLatency(b *testing.B) {
	raiseOpenFileLimit(b)
	for _, c := range []struct {
		name          string
		idle          int
		garbagePerSec int
	}{{"quiet", 0, 0}, {"flood", 10000, 1000}, {"idle", 10000, 0}, {"garbage", 0, 1000}} {
		b.Run(c.name, func(b *testing.B) {
			posts := makePosts(b, "lat", b.N)
			s := startLimitedServer(b, DefaultLimits())
			fl := startFlood(b, s, c.idle, c.garbagePerSec)
			lat := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for i := range b.N {
				start := time.Now()
				a, err := s.send(posts[i].token, posts[i].env)
				lat = append(lat, time.Since(start))
				if err != nil || a.code != http.StatusOK {
					b.Fatalf("post %d: %v %+v", i, err, a)
				}
			}
			b.StopTimer()
			garbage, dropped, elapsed := fl.stop()
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
			if c.garbagePerSec > 0 {
				b.ReportMetric(float64(garbage)/elapsed.Seconds(), "garbage/s")
				b.ReportMetric(float64(dropped), "garbage-dropped")
			}
		})
	}
}

// raiseOpenFileLimit lifts the soft open-file limit to the hard one: the
// flood holds 10,000 client sockets and the server up to its cap.
func raiseOpenFileLimit(b *testing.B) {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		b.Fatal(err)
	}
	if l.Cur < l.Max {
		l.Cur = l.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
			b.Fatal(err)
		}
	}
	if l.Cur < 16384 {
		b.Fatalf("open-file limit %d: the flood needs about 12,000", l.Cur)
	}
}

// flood runs idle connections and garbage posts against a server.
type flood struct {
	cancel           context.CancelFunc
	wg               sync.WaitGroup
	start            time.Time
	garbage, dropped atomic.Int64
}

// startFlood opens idle connections from 127.0.0.3-127.0.0.10 and posts
// garbage tokens from 127.0.0.2 at perSec, and waits until the idle ones
// have filled the server's connection cap.
func startFlood(b *testing.B, s *limitedServer, idle, perSec int) *flood {
	ctx, cancel := context.WithCancel(context.Background())
	fl := &flood{cancel: cancel, start: time.Now()}
	addr := s.url[len("https://") : len(s.url)-len(Path)]
	evicted := counterValue(evictedConnections)
	var dialed atomic.Int64
	for i := range idle {
		d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(3+i%8))}}
		fl.wg.Go(func() {
			buf := make([]byte, 1)
			for ctx.Err() == nil {
				c, err := d.DialContext(ctx, "tcp", addr)
				if err == nil {
					dialed.Add(1)
					stop := context.AfterFunc(ctx, func() { _ = c.Close() })
					_, _ = c.Read(buf) // until the server closes it
					stop()
					_ = c.Close()
				}
				select {
				case <-ctx.Done():
				case <-time.After(time.Second):
				}
			}
		})
	}
	if perSec > 0 {
		garbageClient := tlsClient(s.bundle, certNamespace)
		tr := garbageClient.Transport.(*http.Transport)
		d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}}
		tr.DialContext = d.DialContext
		tr.TLSClientConfig = tr.TLSClientConfig.Clone()
		g := &limitedServer{url: s.url, client: garbageClient}
		work := make(chan int, 256)
		for range 32 {
			fl.wg.Go(func() {
				for i := range work {
					if _, err := g.send("garbage-"+strconv.Itoa(i), map[string]string{"version": "x"}); err == nil {
						fl.garbage.Add(1)
					}
				}
			})
		}
		fl.wg.Go(func() {
			defer close(work)
			every := time.Second / time.Duration(perSec)
			for i := 0; ctx.Err() == nil; i++ {
				time.Sleep(time.Until(fl.start.Add(time.Duration(i) * every)))
				select {
				case work <- i:
				default:
					fl.dropped.Add(1)
				}
			}
		})
	}
	if idle > 0 {
		over := float64(idle - DefaultLimits().MaxConnections)
		deadline := time.Now().Add(time.Minute)
		for counterValue(evictedConnections)-evicted < over {
			if time.Now().After(deadline) {
				b.Fatalf("flood not established: %d dialed, %v evicted", dialed.Load(), counterValue(evictedConnections)-evicted)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return fl
}

// stop ends the flood and says how many garbage posts were answered and
// dropped (the posters fell behind) in how long.
func (fl *flood) stop() (int64, int64, time.Duration) {
	elapsed := time.Since(fl.start)
	fl.cancel()
	fl.wg.Wait()
	return fl.garbage.Load(), fl.dropped.Load(), elapsed
}
