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
	"crypto/sha256"
	"strconv"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func TestSourceOf(t *testing.T) {
	for in, want := range map[string]string{
		"10.1.2.3:4431":                  "10.1.2.3",
		"[::ffff:10.1.2.3]:4431":         "10.1.2.3",
		"[2001:db8:1:2:3:4:5:6]:4431":    "2001:db8:1:2::/64",
		"[2001:db8:1:2:ffff:4:5:6]:9443": "2001:db8:1:2::/64",
		"not-an-address":                 "not-an-address",
	} {
		if got := sourceOf(in); got != want {
			t.Errorf("sourceOf(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestReviewLimiter: failed reviews spend a source's burst, then one per
// 1/rate; an authenticated review gives its token back; sources are apart.
func TestReviewLimiter(t *testing.T) {
	l := newReviewLimiter(2, 3)
	for i := range 3 {
		if ok, _ := l.take("a", t0); !ok {
			t.Fatalf("take %d within the burst refused", i)
		}
	}
	ok, wait := l.take("a", t0)
	if ok || wait != 500*time.Millisecond {
		t.Fatalf("past the burst: %v, wait %v; want refused, wait 500ms", ok, wait)
	}
	if ok, _ := l.take("b", t0); !ok {
		t.Fatal("another source is refused")
	}
	if ok, _ := l.take("a", t0.Add(500*time.Millisecond)); !ok {
		t.Fatal("refused after 1/rate")
	}
	// An authenticated review: taken and given back, the budget is whole.
	l.giveBack("a", t0.Add(500*time.Millisecond))
	if ok, _ := l.take("a", t0.Add(500*time.Millisecond)); !ok {
		t.Fatal("the token given back cannot be taken")
	}
	if ok, _ := l.take("a", t0.Add(500*time.Millisecond)); ok {
		t.Fatal("more than the burst and the refill")
	}
}

// TestReviewLimiterBounded: a flood of sources cannot grow the map past
// maxSources; the least recently seen source goes first.
func TestReviewLimiterBounded(t *testing.T) {
	l := newReviewLimiter(1, 1)
	if ok, _ := l.take("first", t0); !ok {
		t.Fatal("first source refused")
	}
	for i := range 2 * maxSources {
		l.take(strconv.Itoa(i), t0)
	}
	if n := len(l.buckets.m); n != maxSources || l.buckets.order.Len() != maxSources {
		t.Fatalf("%d sources kept (list %d), want %d", n, l.buckets.order.Len(), maxSources)
	}
	if _, ok := l.buckets.get("first"); ok {
		t.Error("the least recently seen source is still kept")
	}
}

// TestFailedTokens: a failed token is refused for the ttl, then reviewed
// again; the cache holds digests only and stays bounded.
func TestFailedTokens(t *testing.T) {
	f := newFailedTokens(30 * time.Second)
	d := sha256.Sum256([]byte("garbage"))
	if f.failed(d, t0) {
		t.Fatal("an unseen token is failed")
	}
	f.add(d, t0)
	if !f.failed(d, t0.Add(29*time.Second)) {
		t.Error("refused token not remembered within the ttl")
	}
	if f.failed(d, t0.Add(30*time.Second)) {
		t.Error("refused token remembered past the ttl")
	}
	for i := range 2 * maxFailedTokens {
		f.add(sha256.Sum256([]byte(strconv.Itoa(i))), t0)
	}
	if n := len(f.expires.m); n != maxFailedTokens {
		t.Errorf("%d tokens kept, want %d", n, maxFailedTokens)
	}
	if off := newFailedTokens(0); func() bool { off.add(d, t0); return off.failed(d, t0) }() {
		t.Error("a zero ttl remembers tokens")
	}
}

// TestLogLimiter: lines per interval, then a summary by reason with the
// first line of the next interval.
func TestLogLimiter(t *testing.T) {
	l := newLogLimiter(2, 10*time.Second)
	var logged []bool
	for _, r := range []string{"A", "A", "A", "B", "A"} {
		ok, sum := l.allow(r, t0)
		if sum != nil {
			t.Fatalf("summary %v within the first interval", sum)
		}
		logged = append(logged, ok)
	}
	if diff := cmp.Diff([]bool{true, true, false, false, false}, logged); diff != "" {
		t.Errorf("logged (-want +got):\n%s", diff)
	}
	ok, sum := l.allow("B", t0.Add(10*time.Second))
	if !ok {
		t.Error("the first refusal of the next interval is not logged")
	}
	if diff := cmp.Diff(map[string]int{"A": 2, "B": 1}, sum); diff != "" {
		t.Errorf("summary (-want +got):\n%s", diff)
	}
	if _, sum := l.allow("B", t0.Add(20*time.Second)); sum != nil {
		t.Errorf("summary %v of an interval with nothing suppressed", sum)
	}
}
