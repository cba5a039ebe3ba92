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
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
)

// TestTokenNeverSentOverPlainHTTP checks that a plain http source with a
// token is refused before any request, also when an hf source resolves to
// plain http.
func TestTokenNeverSentOverPlainHTTP(t *testing.T) {
	const token = "tok_CLEARTEXT"
	data, digest := blob(1000, 70)
	plain := newServer(t, serveData(data))
	ctx := context.Background()
	tok := NewToken(token)

	f := newTestFetcher(t, WithHFBaseURL(plain.URL))
	c, err := NewChecker(WithHFBaseURL(plain.URL))
	if err != nil {
		t.Fatal(err)
	}
	for _, src := range []string{plain.URL + "/m", "hf://acme/tiny/m.gguf@v1"} {
		_, err := f.Fetch(ctx, Request{Source: src, Digest: digest, Token: tok})
		var ie *InsecureTokenError
		if !errors.As(err, &ie) || ie.Redirect || !strings.Contains(err.Error(), "only sent over https") {
			t.Errorf("Fetch %s: got %v, want an *InsecureTokenError", src, err)
		}
		if _, err := c.Check(ctx, Request{Source: src, Digest: digest, Token: tok}); !errors.As(err, &ie) {
			t.Errorf("Check %s: got %v, want an *InsecureTokenError", src, err)
		}
	}
	if n := plain.requests.Load(); n != 0 {
		t.Errorf("the plain http server saw %d requests, want none", n)
	}
	assertNotCached(t, f.Cache(), digest)

	// Without a token, plain http is fine.
	if _, err := f.Fetch(ctx, Request{Source: plain.URL + "/m", Digest: digest}); err != nil {
		t.Fatalf("Fetch without a token: %v", err)
	}
}

// TestRedirectKeepsTokenOffPlainHTTP redirects a request carrying a token
// from an https server to a plain http server on the same host (another
// port), which net/http would follow with the Authorization header; the
// redirect must be refused and the token never reach the http server.
func TestRedirectKeepsTokenOffPlainHTTP(t *testing.T) {
	const token = "tok_DOWNGRADE"
	data, digest := blob(1000, 71)
	plain := newServer(t, serveData(data))
	secure := newTLSServer(t, func(_ int32, w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, plain.URL+"/m?sig=SIGNED", http.StatusFound)
	})
	ctx := context.Background()
	tok := NewToken(token)
	f := newTestFetcher(t, WithHTTPClient(secure.Client()))
	c, err := NewChecker(WithHTTPClient(secure.Client()))
	if err != nil {
		t.Fatal(err)
	}

	_, err = f.Fetch(ctx, Request{Source: secure.URL + "/m", Digest: digest, Token: tok})
	var ie *InsecureTokenError
	if !errors.As(err, &ie) || !ie.Redirect {
		t.Fatalf("Fetch: got %v, want an *InsecureTokenError for the redirect", err)
	}
	if strings.Contains(err.Error(), "SIGNED") || strings.Contains(err.Error(), token) {
		t.Errorf("error leaks a secret: %v", err)
	}
	if n := secure.requests.Load(); n != 1 {
		t.Errorf("https server saw %d requests, want 1: a refused redirect is not retried", n)
	}
	if _, err := c.Check(ctx, Request{Source: secure.URL + "/m", Digest: digest, Token: tok}); !errors.As(err, &ie) || !ie.Redirect {
		t.Errorf("Check: got %v, want an *InsecureTokenError for the redirect", err)
	}
	plain.mu.Lock()
	for i, a := range plain.auths {
		if a != "" {
			t.Errorf("plain http request %d carried Authorization %q", i, a)
		}
	}
	plain.mu.Unlock()
	assertNotCached(t, f.Cache(), digest)

	// Without a token the same redirect is followed.
	if _, err := f.Fetch(ctx, Request{Source: secure.URL + "/m", Digest: digest}); err != nil {
		t.Fatalf("Fetch without a token: %v", err)
	}
	assertCached(t, f.Cache(), digest, data)
}

// TestRedirectToOtherHostDropsToken redirects a request carrying a token to
// another https server (same address, another port): it is followed, but
// without the Authorization header, by both the fetcher and the checker.
func TestRedirectToOtherHostDropsToken(t *testing.T) {
	const token = "tok_OTHERHOST"
	data, digest := blob(1000, 72)
	other := newTLSServer(t, serveData(data))
	origin := newTLSServer(t, func(_ int32, w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, other.URL+"/blob", http.StatusFound)
	})
	ctx := context.Background()
	client := origin.Client()
	f := newTestFetcher(t, WithHTTPClient(client))
	if _, err := f.Fetch(ctx, Request{Source: origin.URL + "/m", Digest: digest, Token: NewToken(token)}); err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	assertCached(t, f.Cache(), digest, data)
	c, err := NewChecker(WithHTTPClient(client))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Check(ctx, Request{Source: origin.URL + "/m", Digest: digest, Token: NewToken(token)}); err != nil {
		t.Fatalf("Check: %v", err)
	}
	if client.CheckRedirect != nil {
		t.Error("the caller's http.Client was modified")
	}
	origin.mu.Lock()
	if len(origin.auths) != 2 || origin.auths[0] != "Bearer "+token || origin.auths[1] != "Bearer "+token {
		t.Errorf("origin saw Authorization %q, want the token on both requests", origin.auths)
	}
	origin.mu.Unlock()
	other.mu.Lock()
	defer other.mu.Unlock()
	if len(other.auths) < 2 {
		t.Fatalf("other host saw %d requests, want the fetch and the check", len(other.auths))
	}
	for i, a := range other.auths {
		if a != "" {
			t.Errorf("request %d to the other host carried Authorization %q", i, a)
		}
	}
}
