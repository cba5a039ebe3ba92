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
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	authnv1 "k8s.io/api/authentication/v1"
	"k8s.io/utils/clock"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/aivm-dev/aivm-operator/internal/testutil"
)

// counterValue reads a counter of metrics.go.
func counterValue(c prometheus.Counter) float64 {
	m := &dto.Metric{}
	_ = c.Write(m)
	return m.GetCounter().GetValue()
}

// reviewCounter counts the TokenReviews a server sends.
type reviewCounter struct {
	client.Client
	reviews atomic.Int64
}

func (c *reviewCounter) Create(ctx context.Context, obj client.Object, opts ...client.CreateOption) error {
	if _, ok := obj.(*authnv1.TokenReview); ok {
		c.reviews.Add(1)
	}
	return c.Client.Create(ctx, obj, opts...)
}

// limitedServer is an endpoint of its own for one test, with its limits
// and a TokenReview count, until the test ends.
type limitedServer struct {
	url     string
	bundle  []byte
	client  *http.Client
	counter *reviewCounter
}

func startLimitedServer(t testing.TB, limits Limits, opts ...Option) *limitedServer {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	key := client.ObjectKey{Namespace: certNamespace, Name: "tls-" + strconv.FormatInt(time.Now().UnixNano(), 36)}
	certs := NewSelfManagedCerts(k8sClient, k8sClient, key, ServiceDNSNames("aivm-operator-result", key.Namespace), clock.RealClock{}, testLogger())
	if err := certs.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	cached, err := cachedClient(ctx)
	if err != nil {
		t.Fatal(err)
	}
	counter := &reviewCounter{Client: cached}
	srv := NewServer(counter, k8sClient, certs, "127.0.0.1:0", append([]Option{WithLogger(testLogger()), WithSigner(signer), WithLimits(limits)}, opts...)...)
	go func() { _ = srv.Start(ctx) }()
	if srv.Addr() == nil {
		t.Fatal("the result endpoint did not listen")
	}
	return &limitedServer{url: "https://" + srv.Addr().String() + Path, bundle: certs.CABundle(), client: tlsClient(certs.CABundle(), certNamespace), counter: counter}
}

// send posts body with token to the server.
func (s *limitedServer) send(token string, body any) (answer, error) {
	b, err := json.Marshal(body)
	if err != nil {
		return answer{}, err
	}
	req, err := http.NewRequest(http.MethodPost, s.url, bytes.NewReader(b))
	if err != nil {
		return answer{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := s.client.Do(req)
	if err != nil {
		return answer{}, fmt.Errorf("post: %w", err)
	}
	defer func() { _ = resp.Body.Close() }()
	raw, _ := io.ReadAll(resp.Body)
	var r response
	if err := json.Unmarshal(raw, &r); err != nil {
		return answer{}, fmt.Errorf("reply %d is not the endpoint's JSON: %q", resp.StatusCode, raw)
	}
	return answer{code: resp.StatusCode, reason: r.Reason, message: r.Message, retryAfter: resp.Header.Get("Retry-After")}, nil
}

func (s *limitedServer) post(t testing.TB, token string, body any) answer {
	t.Helper()
	a, err := s.send(token, body)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// dialIdle opens a TLS connection to the server and sends nothing.
func (s *limitedServer) dialIdle(t testing.TB) *tls.Conn {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(s.bundle)
	host := s.url[len("https://") : len(s.url)-len(Path)]
	c, err := tls.Dial("tcp", host, &tls.Config{RootCAs: pool, ServerName: "aivm-operator-result." + certNamespace + ".svc", MinVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// closedByServer fails unless the server closes c: a read ends without
// data. The deadline only keeps a broken server from hanging the test.
func closedByServer(t testing.TB, c net.Conn) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(testutil.EventuallyTimeout))
	n, err := c.Read(make([]byte, 1))
	var ne net.Error
	if n > 0 || err == nil || (errors.As(err, &ne) && ne.Timeout()) {
		t.Errorf("connection not closed by the server: read %d bytes, %v", n, err)
	}
}

// TestConnectionFlood: idle TLS connections beyond the cap do not lock a
// job pod out: its post succeeds, the server never holds more than the
// cap, and the idle connections are closed after the idle timeout.
func TestConnectionFlood(t *testing.T) {
	f := newFixture(t, nil)
	const maxConns = 8
	limits := DefaultLimits()
	limits.MaxConnections, limits.IdleTimeout = maxConns, time.Second
	s := startLimitedServer(t, limits)
	evicted := counterValue(evictedConnections)
	idle := make([]*tls.Conn, 3*maxConns)
	for i := range idle {
		idle[i] = s.dialIdle(t)
	}
	// Every connection past the cap took an idle one's place.
	testutil.Eventually(t, func() error {
		if got := counterValue(evictedConnections) - evicted; got < 2*maxConns {
			return fmt.Errorf("%v connections evicted, want %d", got, 2*maxConns)
		}
		return nil
	})
	s.post(t, f.token(f.pod), f.envelope(1, 0, " world")).want(t, http.StatusOK, ReasonAccepted, "")
	for _, c := range idle {
		closedByServer(t, c)
	}
}

// TestGarbageFlood: posts with garbage tokens cost at most the source's
// burst of TokenReviews, the rest are 429 with Retry-After; once the
// budget refills a job pod at that source gets through, and its review
// costs no budget.
func TestGarbageFlood(t *testing.T) {
	f := newFixture(t, nil)
	clk := clocktesting.NewFakeClock(time.Now())
	limits := DefaultLimits()
	limits.ReviewsPerSecond, limits.ReviewBurst = 1, 5
	s := startLimitedServer(t, limits, WithClock(clk))
	env := f.envelope(1, 0, " world")
	limited := 0
	for i := range 200 {
		a := s.post(t, "garbage-"+strconv.Itoa(i), env)
		switch {
		case a.code == http.StatusTooManyRequests && a.reason == ReasonRateLimited && a.retryAfter == "1":
			limited++
		case a.code != http.StatusUnauthorized:
			t.Fatalf("garbage post %d: %d %s %q", i, a.code, a.reason, a.message)
		}
	}
	if n := s.counter.reviews.Load(); n != int64(limits.ReviewBurst) || limited != 200-limits.ReviewBurst {
		t.Errorf("200 garbage posts: %d TokenReviews and %d rate-limited, want %d and %d", n, limited, limits.ReviewBurst, 200-limits.ReviewBurst)
	}
	tok := f.token(f.pod)
	s.post(t, tok, env).want(t, http.StatusTooManyRequests, ReasonRateLimited, "too many unauthenticated posts")
	clk.Step(time.Second)
	s.post(t, tok, env).want(t, http.StatusOK, ReasonAccepted, "")
	// The pod's review gave its token back: another good post is reviewed.
	s.post(t, tok, env).want(t, http.StatusOK, ReasonAccepted, "")
	if n := s.counter.reviews.Load(); n != int64(limits.ReviewBurst)+2 {
		t.Errorf("%d TokenReviews, want %d", n, limits.ReviewBurst+2)
	}
}

// TestFailedTokenCache: the same bad token posted twice costs one review;
// after the ttl it is reviewed again.
func TestFailedTokenCache(t *testing.T) {
	f := newFixture(t, nil)
	clk := clocktesting.NewFakeClock(time.Now())
	s := startLimitedServer(t, DefaultLimits(), WithClock(clk))
	env := f.envelope(1, 0, " world")
	hits := counterValue(failedTokenHits)
	unbound := f.token(nil)
	for range 2 {
		s.post(t, "not-a-jwt", env).want(t, http.StatusUnauthorized, ReasonUnauthenticated, "not authenticated")
		s.post(t, unbound, env).want(t, http.StatusUnauthorized, ReasonUnauthenticated, "")
	}
	if n := s.counter.reviews.Load(); n != 2 {
		t.Errorf("two bad tokens posted twice: %d TokenReviews, want 2", n)
	}
	if got := counterValue(failedTokenHits) - hits; got != 2 {
		t.Errorf("%v posts refused from the cache, want 2", got)
	}
	clk.Step(DefaultLimits().FailedTokenTTL)
	s.post(t, "not-a-jwt", env).want(t, http.StatusUnauthorized, ReasonUnauthenticated, "not authenticated")
	if n := s.counter.reviews.Load(); n != 3 {
		t.Errorf("after the ttl: %d TokenReviews, want 3", n)
	}
	// The good token of the pod is not affected.
	s.post(t, f.token(f.pod), env).want(t, http.StatusOK, ReasonAccepted, "")
}
