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

package artifact

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr/funcr"
)

// server serves data at every path, counting requests and recording their
// Range and Authorization headers.
type server struct {
	*httptest.Server
	requests atomic.Int32
	mu       sync.Mutex
	ranges   []string
	auths    []string
	paths    []string
}

func newServer(t *testing.T, h func(n int32, w http.ResponseWriter, r *http.Request)) *server {
	return startServer(t, false, h)
}

// newTLSServer is newServer over https; its Client trusts it.
func newTLSServer(t *testing.T, h func(n int32, w http.ResponseWriter, r *http.Request)) *server {
	return startServer(t, true, h)
}

func startServer(t *testing.T, tls bool, h func(n int32, w http.ResponseWriter, r *http.Request)) *server {
	s := &server{}
	s.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := s.requests.Add(1)
		s.mu.Lock()
		s.ranges = append(s.ranges, r.Header.Get("Range"))
		s.auths = append(s.auths, r.Header.Get("Authorization"))
		s.paths = append(s.paths, r.URL.EscapedPath())
		s.mu.Unlock()
		h(n, w, r)
	}))
	if tls {
		s.StartTLS()
	} else {
		s.Start()
	}
	t.Cleanup(s.Close)
	return s
}

func serveData(data []byte) func(int32, http.ResponseWriter, *http.Request) {
	return func(_ int32, w http.ResponseWriter, r *http.Request) {
		w.Header().Set("ETag", `"v1"`)
		http.ServeContent(w, r, "model.bin", time.Unix(1700000000, 0), bytes.NewReader(data))
	}
}

func TestFetchLandsInCache(t *testing.T) {
	data, digest := blob(3<<20+17, 1)
	srv := newServer(t, serveData(data))
	f := newTestFetcher(t)

	res, err := f.Fetch(context.Background(), Request{Source: srv.URL + "/m.bin", Digest: "sha256:" + digest, Size: int64(len(data))})
	if err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	want := Result{Path: f.Cache().Path(digest), Digest: digest, Size: int64(len(data)), Downloaded: true}
	if res != want {
		t.Errorf("Fetch = %+v, want %+v", res, want)
	}
	assertCached(t, f.Cache(), digest, data)
	info, err := os.Stat(res.Path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := info.Mode().Perm(); perm&0o222 != 0 {
		t.Errorf("cached blob is writable: %v", perm)
	}

	// A second fetch is a cache hit: no request.
	res, err = f.Fetch(context.Background(), Request{Source: srv.URL + "/m.bin", Digest: digest})
	if err != nil || res.Downloaded || res.Path != want.Path {
		t.Errorf("second Fetch = %+v, %v; want a cache hit", res, err)
	}
	if n := srv.requests.Load(); n != 1 {
		t.Errorf("server saw %d requests, want 1", n)
	}
	entries, err := f.Cache().List()
	if err != nil || len(entries) != 1 || entries[0].Digest != digest || entries[0].Size != int64(len(data)) {
		t.Errorf("List = %+v, %v", entries, err)
	}
}

func TestFetchRejectsTamperedBytes(t *testing.T) {
	data, digest := blob(1<<20, 2)
	tampered := bytes.Clone(data)
	tampered[len(tampered)/2] ^= 0xff
	srv := newServer(t, serveData(tampered))
	f := newTestFetcher(t)

	_, err := f.Fetch(context.Background(), Request{Source: srv.URL + "/m.bin", Digest: digest})
	var dm *DigestMismatchError
	if !errors.As(err, &dm) {
		t.Fatalf("Fetch error = %v, want *DigestMismatchError", err)
	}
	if dm.Expected != digest || dm.Actual == digest || len(dm.Actual) != 64 {
		t.Errorf("mismatch = %+v", dm)
	}
	if got := sha256Hex(tampered); dm.Actual != got {
		t.Errorf("Actual = %s, want the digest of the served bytes %s", dm.Actual, got)
	}
	assertNotCached(t, f.Cache(), digest)
	if n := srv.requests.Load(); n != 1 {
		t.Errorf("integrity failure was retried: %d requests", n)
	}
}

func TestFetchSizeMismatch(t *testing.T) {
	data, digest := blob(1000, 3)
	srv := newServer(t, serveData(data))
	f := newTestFetcher(t)
	for _, size := range []int64{999, 1001} {
		_, err := f.Fetch(context.Background(), Request{Source: srv.URL + "/m", Digest: digest, Size: size})
		var sm *SizeMismatchError
		if !errors.As(err, &sm) || sm.Expected != size || sm.Actual != 1000 {
			t.Errorf("size %d: error = %v, want SizeMismatchError{%d, 1000}", size, err, size)
		}
		assertNotCached(t, f.Cache(), digest)
	}

	// A server that sends more bytes than announced by neither header nor
	// expectation: stopped as soon as the bytes pass the expected size.
	chunked := newServer(t, func(_ int32, w http.ResponseWriter, _ *http.Request) {
		w.(http.Flusher).Flush() // no Content-Length: chunked
		_, _ = w.Write(data)
	})
	_, err := f.Fetch(context.Background(), Request{Source: chunked.URL + "/m", Digest: digest, Size: 10})
	var sm *SizeMismatchError
	if !errors.As(err, &sm) || sm.Expected != 10 || sm.Actual <= 10 {
		t.Errorf("oversized chunked body: error = %v", err)
	}
	assertNotCached(t, f.Cache(), digest)
}

// dropHalfway answers the first request with the full Content-Length but
// only half the body, then cuts the connection.
func dropHalfway(data []byte, then func(int32, http.ResponseWriter, *http.Request)) func(int32, http.ResponseWriter, *http.Request) {
	return func(n int32, w http.ResponseWriter, r *http.Request) {
		if n == 1 {
			w.Header().Set("ETag", `"v1"`)
			w.Header().Set("Content-Length", strconv.Itoa(len(data)))
			w.WriteHeader(http.StatusOK)
			_, _ = w.Write(data[:len(data)/2])
			w.(http.Flusher).Flush()
			panic(http.ErrAbortHandler)
		}
		then(n, w, r)
	}
}

func TestFetchResumesAfterDroppedConnection(t *testing.T) {
	data, digest := blob(4<<20, 4)
	srv := newServer(t, dropHalfway(data, serveData(data)))
	f := newTestFetcher(t)

	res, err := f.Fetch(context.Background(), Request{Source: srv.URL + "/m", Digest: digest, Size: int64(len(data))})
	if err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	assertCached(t, f.Cache(), res.Digest, data)
	if n := srv.requests.Load(); n != 2 {
		t.Fatalf("server saw %d requests, want 2", n)
	}
	// The retry asked for the rest only. The client may have read less than
	// the server flushed, so the exact offset is not fixed, but it is past 0.
	rng := srv.ranges[1]
	off, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimPrefix(rng, "bytes="), "-"), 10, 64)
	if err != nil || off <= 0 || off > int64(len(data)/2) {
		t.Errorf("resume request Range = %q, want bytes=<offset>- with 0 < offset <= %d", rng, len(data)/2)
	}
}

func TestFetchRestartsWhenServerIgnoresRange(t *testing.T) {
	data, digest := blob(2<<20, 5)
	srv := newServer(t, dropHalfway(data, func(_ int32, w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write(data) // 200 with the whole body, whatever the Range
	}))
	f := newTestFetcher(t)
	if _, err := f.Fetch(context.Background(), Request{Source: srv.URL + "/m", Digest: digest}); err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	assertCached(t, f.Cache(), digest, data)
}

func TestFetchRetriesTransientStatus(t *testing.T) {
	data, digest := blob(1000, 6)
	srv := newServer(t, func(n int32, w http.ResponseWriter, r *http.Request) {
		if n <= 2 {
			http.Error(w, "busy", []int{http.StatusServiceUnavailable, http.StatusTooManyRequests}[n-1])
			return
		}
		serveData(data)(n, w, r)
	})
	f := newTestFetcher(t)
	if _, err := f.Fetch(context.Background(), Request{Source: srv.URL + "/m", Digest: digest}); err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	assertCached(t, f.Cache(), digest, data)
	if n := srv.requests.Load(); n != 3 {
		t.Errorf("server saw %d requests, want 3", n)
	}
}

func TestFetchGivesUpAfterRetries(t *testing.T) {
	_, digest := blob(10, 7)
	srv := newServer(t, func(_ int32, w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "down", http.StatusBadGateway)
	})
	f := newTestFetcher(t) // 3 retries
	_, err := f.Fetch(context.Background(), Request{Source: srv.URL + "/m", Digest: digest})
	var se *HTTPStatusError
	if !errors.As(err, &se) || se.StatusCode != http.StatusBadGateway || !strings.Contains(err.Error(), "giving up after 4 attempts") {
		t.Fatalf("error = %v, want giving up with 502", err)
	}
	if n := srv.requests.Load(); n != 4 {
		t.Errorf("server saw %d requests, want 4", n)
	}
	assertNotCached(t, f.Cache(), digest)
}

func TestFetchPermanentStatusIsNotRetried(t *testing.T) {
	_, digest := blob(10, 8)
	for _, code := range []int{http.StatusNotFound, http.StatusUnauthorized, http.StatusForbidden} {
		srv := newServer(t, func(_ int32, w http.ResponseWriter, _ *http.Request) { http.Error(w, "no", code) })
		f := newTestFetcher(t)
		_, err := f.Fetch(context.Background(), Request{Source: srv.URL + "/m", Digest: digest})
		var se *HTTPStatusError
		if !errors.As(err, &se) || se.StatusCode != code {
			t.Errorf("%d: error = %v", code, err)
		}
		if n := srv.requests.Load(); n != 1 {
			t.Errorf("%d: server saw %d requests, want 1", code, n)
		}
		assertNotCached(t, f.Cache(), digest)
	}
}

func TestFetchBoundedTotalTime(t *testing.T) {
	_, digest := blob(10, 9)
	release := make(chan struct{})
	defer close(release)
	srv := newServer(t, func(_ int32, w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "10")
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		select { // a stalled body
		case <-r.Context().Done():
		case <-release:
		}
	})
	f := newTestFetcher(t, WithMaxTotalTime(50*time.Millisecond))
	_, err := f.Fetch(context.Background(), Request{Source: srv.URL + "/m", Digest: digest})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("error = %v, want deadline exceeded", err)
	}
	assertNotCached(t, f.Cache(), digest)
}

func TestFetchHFSourceWithToken(t *testing.T) {
	const token = "hf_abcdefSECRET"
	data, digest := blob(5000, 10)
	srv := newTLSServer(t, serveData(data))
	f := newTestFetcher(t, WithHFBaseURL(srv.URL+"/mirror"), WithHTTPClient(srv.Client()))
	_, err := f.Fetch(context.Background(), Request{Source: "hf://acme/llama-tiny/weights/model.gguf@v1.0", Digest: digest, Token: NewToken(token)})
	if err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	if got, want := srv.paths[0], "/mirror/acme/llama-tiny/resolve/v1.0/weights/model.gguf"; got != want {
		t.Errorf("request path = %q, want %q", got, want)
	}
	if got := srv.auths[0]; got != "Bearer "+token {
		t.Errorf("Authorization = %q", got)
	}
	assertCached(t, f.Cache(), digest, data)
}

// TestFetchNeverLeaksToken drives every error path with a token and a
// signed-looking query, and checks neither errors nor logs carry them.
func TestFetchNeverLeaksToken(t *testing.T) {
	const token, sig = "tok_VERYSECRET", "SIGNATURE123"
	data, digest := blob(2000, 11)
	var logs bytes.Buffer
	var logMu sync.Mutex
	log := funcr.New(func(prefix, args string) {
		logMu.Lock()
		defer logMu.Unlock()
		fmt.Fprintln(&logs, prefix, args)
	}, funcr.Options{Verbosity: 10})

	handlers := map[string]func(int32, http.ResponseWriter, *http.Request){
		"unauthorized": func(_ int32, w http.ResponseWriter, _ *http.Request) { http.Error(w, "no", http.StatusUnauthorized) },
		"unavailable": func(_ int32, w http.ResponseWriter, _ *http.Request) {
			http.Error(w, "no", http.StatusServiceUnavailable)
		},
		"tampered": serveData(append(bytes.Clone(data[:1000]), make([]byte, 1000)...)),
		"dropped":  dropHalfway(data, func(int32, http.ResponseWriter, *http.Request) { panic(http.ErrAbortHandler) }),
		"redirect": func(_ int32, w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "http://127.0.0.1:1/closed?sig="+sig, http.StatusFound)
		},
	}
	for name, h := range handlers {
		srv := newTLSServer(t, h)
		f := newTestFetcher(t, WithLogger(log), WithHTTPClient(srv.Client()))
		src := srv.URL + "/m?X-Signature=" + sig
		_, err := f.Fetch(context.Background(), Request{Source: src, Digest: digest, Token: NewToken(token)})
		if err == nil {
			t.Fatalf("%s: Fetch succeeded", name)
		}
		for _, secret := range []string{token, sig} {
			if strings.Contains(err.Error(), secret) || strings.Contains(fmt.Sprintf("%+v", err), secret) {
				t.Errorf("%s: error leaks %q: %v", name, secret, err)
			}
		}
		c, _ := NewChecker(WithLogger(log), WithHTTPClient(srv.Client()))
		if _, err := c.Check(context.Background(), Request{Source: src, Digest: digest, Token: NewToken(token)}); err != nil {
			if strings.Contains(err.Error(), token) || strings.Contains(err.Error(), sig) {
				t.Errorf("%s: check error leaks a secret: %v", name, err)
			}
		}
	}
	logMu.Lock()
	defer logMu.Unlock()
	if logs.Len() == 0 {
		t.Fatal("expected some log output")
	}
	if strings.Contains(logs.String(), token) || strings.Contains(logs.String(), sig) {
		t.Errorf("logs leak a secret:\n%s", logs.String())
	}
}

func TestFetchConcurrentDownloadsOnce(t *testing.T) {
	data, digest := blob(2<<20, 12)
	release := make(chan struct{})
	srv := newServer(t, func(n int32, w http.ResponseWriter, r *http.Request) {
		<-release
		serveData(data)(n, w, r)
	})
	f := newTestFetcher(t)
	const callers = 10
	allJoined := make(chan struct{})
	f.onJoin = func(waiters int) {
		if waiters == callers {
			close(allJoined)
		}
	}
	var wg sync.WaitGroup
	results := make([]Result, callers)
	errs := make([]error, callers)
	for i := range callers {
		wg.Go(func() {
			results[i], errs[i] = f.Fetch(context.Background(), Request{Source: srv.URL + "/m", Digest: digest})
		})
	}
	<-allJoined
	close(release)
	wg.Wait()
	for i := range callers {
		if errs[i] != nil || results[i].Path != f.Cache().Path(digest) {
			t.Errorf("caller %d: %+v, %v", i, results[i], errs[i])
		}
	}
	if n := srv.requests.Load(); n != 1 {
		t.Errorf("server saw %d requests for %d concurrent fetches, want 1", n, callers)
	}
	assertCached(t, f.Cache(), digest, data)
}

// TestFetchAcrossProcessesDownloadsOnce uses two Fetchers on one directory,
// as the node agent and a job pod do: the file lock serializes them and the
// second finds the blob in place.
func TestFetchAcrossProcessesDownloadsOnce(t *testing.T) {
	data, digest := blob(1<<20, 13)
	release := make(chan struct{})
	started := make(chan struct{})
	srv := newServer(t, func(n int32, w http.ResponseWriter, r *http.Request) {
		if n == 1 {
			close(started)
		}
		<-release
		serveData(data)(n, w, r)
	})
	dir := t.TempDir()
	newF := func() *Fetcher {
		c, err := OpenCache(dir)
		if err != nil {
			t.Fatal(err)
		}
		f, err := NewFetcher(c, fastRetries)
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	a, b := newF(), newF()
	waiting := make(chan struct{})
	b.onLockWait = func() { close(waiting) }
	req := Request{Source: srv.URL + "/m", Digest: digest}
	errA := make(chan error, 1)
	go func() { _, err := a.Fetch(context.Background(), req); errA <- err }()
	<-started // a holds the lock and is downloading
	errB := make(chan error, 1)
	var resB Result
	go func() { var err error; resB, err = b.Fetch(context.Background(), req); errB <- err }()
	<-waiting // b waits on a's lock
	close(release)
	if err := <-errA; err != nil {
		t.Fatalf("first fetcher: %v", err)
	}
	if err := <-errB; err != nil {
		t.Fatalf("second fetcher: %v", err)
	}
	if resB.Downloaded {
		t.Error("second fetcher downloaded again")
	}
	if n := srv.requests.Load(); n != 1 {
		t.Errorf("server saw %d requests, want 1", n)
	}
	assertCached(t, a.Cache(), digest, data)
}

func TestFetchCallerCancelKeepsSharedDownload(t *testing.T) {
	data, digest := blob(1<<20, 14)
	release := make(chan struct{})
	srv := newServer(t, func(n int32, w http.ResponseWriter, r *http.Request) {
		<-release
		serveData(data)(n, w, r)
	})
	f := newTestFetcher(t)
	joined := make(chan int, 2)
	f.onJoin = func(n int) { joined <- n }
	req := Request{Source: srv.URL + "/m", Digest: digest}
	ctxA, cancelA := context.WithCancel(context.Background())
	errA := make(chan error, 1)
	go func() { _, err := f.Fetch(ctxA, req); errA <- err }()
	<-joined
	errB := make(chan error, 1)
	go func() { _, err := f.Fetch(context.Background(), req); errB <- err }()
	<-joined
	cancelA()
	if err := <-errA; !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled caller: %v", err)
	}
	close(release)
	if err := <-errB; err != nil {
		t.Fatalf("remaining caller: %v", err)
	}
	assertCached(t, f.Cache(), digest, data)
}

func TestFetchFileSource(t *testing.T) {
	data, digest := blob(100_000, 15)
	src := filepath.Join(t.TempDir(), "model.bin")
	if err := os.WriteFile(src, data, 0o600); err != nil {
		t.Fatal(err)
	}
	f := newTestFetcher(t)
	if _, err := f.Fetch(context.Background(), Request{Source: "file://" + src, Digest: digest, Size: int64(len(data))}); err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	assertCached(t, f.Cache(), digest, data)

	_, other := blob(10, 16)
	_, err := f.Fetch(context.Background(), Request{Source: "file://" + src, Digest: other})
	var dm *DigestMismatchError
	if !errors.As(err, &dm) || dm.Actual != digest {
		t.Errorf("mismatched file: %v", err)
	}
	assertNotCached(t, f.Cache(), other)

	_, err = f.Fetch(context.Background(), Request{Source: "file://" + src + ".missing", Digest: other})
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
	_, err = f.Fetch(context.Background(), Request{Source: "file://" + src, Digest: other, Token: NewToken("x")})
	if err == nil || !strings.Contains(err.Error(), "token is only used with http") {
		t.Errorf("file source with a token: %v", err)
	}
}

func TestFetchRejectsBadRequests(t *testing.T) {
	f := newTestFetcher(t)
	_, digest := blob(1, 17)
	tests := []struct {
		req  Request
		want string
	}{
		{Request{Source: "https://h/m", Digest: "abc"}, "invalid sha256 digest"},
		{Request{Source: "ftp://h/m", Digest: digest}, "not supported"},
		{Request{Source: "https://h/m", Digest: digest, Size: -1}, "negative"},
	}
	for _, tt := range tests {
		if _, err := f.Fetch(context.Background(), tt.req); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Fetch(%+v) error = %v, want containing %q", tt.req, err, tt.want)
		}
	}
	if _, err := NewFetcher(f.Cache(), WithHFBaseURL("not a url")); err == nil {
		t.Error("NewFetcher accepted a bad base URL")
	}
	if _, err := NewFetcher(f.Cache(), WithRetryBackoff(time.Second, time.Millisecond, 1)); err == nil {
		t.Error("NewFetcher accepted max backoff below the initial one")
	}
}

func TestFetchRetriesStalledTransfer(t *testing.T) {
	data, digest := blob(2<<20, 18)
	half := len(data) / 2
	srv := newServer(t, func(n int32, w http.ResponseWriter, r *http.Request) {
		if n == 1 {
			w.Header().Set("ETag", `"v1"`)
			w.Header().Set("Content-Length", strconv.Itoa(len(data)))
			w.WriteHeader(http.StatusOK)
			_, _ = w.Write(data[:half])
			w.(http.Flusher).Flush()
			<-r.Context().Done() // then nothing, until the client gives up
			return
		}
		serveData(data)(n, w, r)
	})
	f := newTestFetcher(t, WithStallTimeout(250*time.Millisecond))
	if _, err := f.Fetch(context.Background(), Request{Source: srv.URL + "/m", Digest: digest}); err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	assertCached(t, f.Cache(), digest, data)
	// A loaded machine may stall more than once; every retry must resume
	// (Range from a byte past 0, at most where the first response stopped
	// for the first retry), never start over.
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if len(srv.ranges) < 2 || srv.ranges[0] != "" {
		t.Fatalf("requests' Range headers %q: want a plain first request and at least one retry", srv.ranges)
	}
	var prev int64
	for i, r := range srv.ranges[1:] {
		start, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimPrefix(r, "bytes="), "-"), 10, 64)
		if err != nil || !strings.HasPrefix(r, "bytes=") || !strings.HasSuffix(r, "-") || start <= 0 || start < prev || (i == 0 && start > int64(half)) {
			t.Errorf("retry %d did not resume from byte %d or later: Range %q", i+1, prev, r)
		}
		prev = start
	}
}

// TestFetchResultWinsOverCancelledContext ends a download and the caller's
// context together: the caller gets the result, not the context's error.
// Before waiting, each round cancels the context and lets the download
// finish, so both are ready when the caller chooses; without the recheck
// half of the rounds would report the cancellation.
func TestFetchResultWinsOverCancelledContext(t *testing.T) {
	dir := t.TempDir()
	f := newTestFetcher(t)
	for i := range 32 {
		data, digest := blob(1000+i, uint64(100+i))
		src := filepath.Join(dir, digest)
		if err := os.WriteFile(src, data, 0o600); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		f.onWait = func(done <-chan struct{}) {
			cancel()
			<-done
		}
		res, err := f.Fetch(ctx, Request{Source: "file://" + src, Digest: digest})
		if err != nil || !res.Downloaded {
			t.Fatalf("round %d: Fetch = %+v, %v; want the finished download", i, res, err)
		}
	}
}
