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

func TestCheck(t *testing.T) {
	data, digest := blob(1234, 20)
	const token = "tok_check"
	srv := newTLSServer(t, func(n int32, w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Header.Get("Authorization") != "Bearer "+token:
			http.Error(w, "unauthorized", http.StatusUnauthorized)
		case strings.HasPrefix(r.URL.Path, "/nohead") && r.Method == http.MethodHead:
			http.Error(w, "no HEAD here", http.StatusMethodNotAllowed)
		case strings.HasPrefix(r.URL.Path, "/missing"):
			http.NotFound(w, r)
		default:
			serveData(data)(n, w, r)
		}
	})
	c, err := NewChecker(WithHTTPClient(srv.Client()))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	tok := NewToken(token)

	res, err := c.Check(ctx, Request{Source: srv.URL + "/m", Digest: digest, Size: 1234, Token: tok})
	if err != nil || res.Size != 1234 || res.NodeLocal {
		t.Errorf("Check = %+v, %v", res, err)
	}
	res, err = c.Check(ctx, Request{Source: srv.URL + "/nohead", Digest: digest, Token: tok})
	if err != nil || res.Size != 1234 {
		t.Errorf("Check without HEAD = %+v, %v", res, err)
	}
	_, err = c.Check(ctx, Request{Source: srv.URL + "/m", Digest: digest, Size: 99, Token: tok})
	var sm *SizeMismatchError
	if !errors.As(err, &sm) || sm.Actual != 1234 {
		t.Errorf("wrong size: %v", err)
	}
	_, err = c.Check(ctx, Request{Source: srv.URL + "/missing", Digest: digest, Token: tok})
	var se *HTTPStatusError
	if !errors.As(err, &se) || se.StatusCode != http.StatusNotFound {
		t.Errorf("missing: %v", err)
	}
	_, err = c.Check(ctx, Request{Source: srv.URL + "/m", Digest: digest})
	if !errors.As(err, &se) || se.StatusCode != http.StatusUnauthorized {
		t.Errorf("no token: %v", err)
	}
	res, err = c.Check(ctx, Request{Source: "file:///models/a.gguf", Digest: digest})
	if err != nil || !res.NodeLocal {
		t.Errorf("file source: %+v, %v", res, err)
	}
	if _, err := c.Check(ctx, Request{Source: "gs://b/o", Digest: digest}); err == nil {
		t.Error("unsupported scheme accepted")
	}
	for _, r := range srv.ranges {
		if r != "" && r != "bytes=0-0" {
			t.Errorf("check asked for more than one byte: Range %q", r)
		}
	}

	closed := newServer(t, serveData(data))
	closed.Close()
	if _, err := c.Check(ctx, Request{Source: closed.URL + "/m", Digest: digest}); err == nil || !strings.Contains(err.Error(), "connection refused") {
		t.Errorf("unreachable: %v", err)
	}
}
