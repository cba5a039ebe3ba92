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
	"container/list"
	"crypto/sha256"
	"net"
	"net/netip"
	"sync"
	"time"
)

// Limits keep the endpoint standing under floods: of connections, of
// posts with bad tokens (each would cost a TokenReview), of log lines.
// See docs/result-endpoint.md.
type Limits struct {
	// MaxConnections caps open connections; at the cap the least recently
	// idle connection is closed for a new one.
	MaxConnections int
	// IdleTimeout closes a connection that sends no request for this long,
	// before its first request as between two.
	IdleTimeout time.Duration
	// ReviewsPerSecond and ReviewBurst bound, per source address, the
	// TokenReviews of tokens that fail: each review takes one, an
	// authenticated token gives it back.
	ReviewsPerSecond float64
	ReviewBurst      int
	// FailedTokenTTL is how long a token that failed its review is refused
	// again without one.
	FailedTokenTTL time.Duration
	// LogLines refusals are logged per LogInterval; the rest are counted
	// in one summary line.
	LogLines    int
	LogInterval time.Duration
}

// DefaultLimits are the manager's defaults (its --result-* flags).
func DefaultLimits() Limits {
	return Limits{
		MaxConnections:   1024,
		IdleTimeout:      5 * time.Second,
		ReviewsPerSecond: 5,
		ReviewBurst:      20,
		FailedTokenTTL:   30 * time.Second,
		LogLines:         10,
		LogInterval:      10 * time.Second,
	}
}

// WithLimits sets the flood limits (default DefaultLimits).
func WithLimits(l Limits) Option { return func(srv *Server) { srv.limits = l } }

// Sizes of the bounded maps: a flood of sources or tokens evicts the least
// recently used entry instead of growing them.
const (
	maxSources      = 4096
	maxFailedTokens = 4096
)

// sourceOf is the rate-limit key of a request's remote address: the IPv4
// address, or the IPv6 /64 (one host usually holds a whole /64).
func sourceOf(remoteAddr string) string {
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		host = remoteAddr
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return host
	}
	a = a.Unmap()
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.String()
	}
	return a.String()
}

// lru is a bounded map whose least recently used entry goes first when
// it is full. Not safe for concurrent use.
type lru[K comparable, V any] struct {
	max   int
	order list.List // of *lruEntry, most recent at the back
	m     map[K]*list.Element
}

type lruEntry[K comparable, V any] struct {
	key K
	val V
}

func newLRU[K comparable, V any](size int) *lru[K, V] {
	return &lru[K, V]{max: size, m: map[K]*list.Element{}}
}

func (c *lru[K, V]) get(k K) (V, bool) {
	e, ok := c.m[k]
	if !ok {
		var zero V
		return zero, false
	}
	c.order.MoveToBack(e)
	return e.Value.(*lruEntry[K, V]).val, true
}

func (c *lru[K, V]) put(k K, v V) {
	if e, ok := c.m[k]; ok {
		e.Value.(*lruEntry[K, V]).val = v
		c.order.MoveToBack(e)
		return
	}
	if len(c.m) >= c.max {
		oldest := c.order.Front()
		delete(c.m, oldest.Value.(*lruEntry[K, V]).key)
		c.order.Remove(oldest)
	}
	c.m[k] = c.order.PushBack(&lruEntry[K, V]{key: k, val: v})
}

func (c *lru[K, V]) remove(k K) {
	if e, ok := c.m[k]; ok {
		delete(c.m, k)
		c.order.Remove(e)
	}
}

// reviewLimiter is a token bucket per source for TokenReviews. A review
// takes a token before it is sent; an authenticated token is given back,
// so only failed reviews use the budget and a source's job pods are never
// slowed by it.
type reviewLimiter struct {
	mu      sync.Mutex
	rate    float64
	burst   float64
	buckets *lru[string, *bucket]
}

type bucket struct {
	tokens float64
	last   time.Time
}

func newReviewLimiter(perSecond float64, burst int) *reviewLimiter {
	return &reviewLimiter{rate: perSecond, burst: float64(max(burst, 1)), buckets: newLRU[string, *bucket](maxSources)}
}

// take takes a token of source at now, or says how long until one is due.
func (l *reviewLimiter) take(source string, now time.Time) (bool, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.fill(source, now)
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	if l.rate <= 0 {
		return false, time.Minute
	}
	return false, time.Duration((1 - b.tokens) / l.rate * float64(time.Second))
}

// giveBack returns the token a review of source took.
func (l *reviewLimiter) giveBack(source string, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.fill(source, now)
	b.tokens = min(b.tokens+1, l.burst)
}

func (l *reviewLimiter) fill(source string, now time.Time) *bucket {
	b, ok := l.buckets.get(source)
	if !ok {
		b = &bucket{tokens: l.burst, last: now}
		l.buckets.put(source, b)
		return b
	}
	if d := now.Sub(b.last); d > 0 {
		b.tokens = min(b.tokens+d.Seconds()*l.rate, l.burst)
		b.last = now
	}
	return b
}

// failedTokens remembers, by sha256 and never as themselves, the tokens
// whose review failed, for a ttl.
type failedTokens struct {
	mu      sync.Mutex
	ttl     time.Duration
	expires *lru[[sha256.Size]byte, time.Time]
}

func newFailedTokens(ttl time.Duration) *failedTokens {
	return &failedTokens{ttl: ttl, expires: newLRU[[sha256.Size]byte, time.Time](maxFailedTokens)}
}

// failed says whether the token with digest d failed its review within ttl.
func (f *failedTokens) failed(d [sha256.Size]byte, now time.Time) bool {
	if f.ttl <= 0 {
		return false
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	exp, ok := f.expires.get(d)
	if ok && now.Before(exp) {
		return true
	}
	if ok {
		f.expires.remove(d)
	}
	return false
}

func (f *failedTokens) add(d [sha256.Size]byte, now time.Time) {
	if f.ttl <= 0 {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.expires.put(d, now.Add(f.ttl))
}

// logLimiter lets lines lines through per interval and counts the rest
// by reason, for a summary with the first line of the next interval.
type logLimiter struct {
	mu         sync.Mutex
	lines      int
	interval   time.Duration
	start      time.Time
	logged     int
	suppressed map[string]int
}

func newLogLimiter(lines int, interval time.Duration) *logLimiter {
	return &logLimiter{lines: lines, interval: interval, suppressed: map[string]int{}}
}

// allow says whether a line for reason may be logged at now and returns
// the counts suppressed in the interval that ended, if any.
func (l *logLimiter) allow(reason string, now time.Time) (bool, map[string]int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var summary map[string]int
	if now.Sub(l.start) >= l.interval {
		if len(l.suppressed) > 0 {
			summary, l.suppressed = l.suppressed, map[string]int{}
		}
		l.start, l.logged = now, 0
	}
	if l.logged < l.lines {
		l.logged++
		return true, summary
	}
	l.suppressed[reason]++
	return false, summary
}
