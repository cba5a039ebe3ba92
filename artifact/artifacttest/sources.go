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

// Package artifacttest runs model sources for tests: a gated hub that
// behaves like the Hugging Face hub towards a gated repository, and a
// plain server that states no digest. Both are real HTTP servers
// (httptest), so the fetcher, the checker and the CSI driver talk to them
// as they talk to the real ones.
package artifacttest

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Request is one request a test source received.
type Request struct {
	Method string
	Path   string
	// Auth is the Authorization header.
	Auth string
}

type recorder struct {
	mu   sync.Mutex
	reqs []Request
}

func (r *recorder) record(req *http.Request) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reqs = append(r.reqs, Request{Method: req.Method, Path: req.URL.Path, Auth: req.Header.Get("Authorization")})
}

// Requests returns the requests received so far with the given method, or
// all of them when method is empty.
func (r *recorder) Requests(method string) []Request {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []Request
	for _, q := range r.reqs {
		if method == "" || q.Method == method {
			out = append(out, q)
		}
	}
	return out
}

// Reset forgets the requests received.
func (r *recorder) Reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reqs = nil
}

// Hub is an https server that serves a gated repository the way the
// Hugging Face hub does: <URL>/<repo>/resolve/<revision>/<path> answers
// only a bearer token it accepts (401 without one, 403 with another), and
// then redirects, HEAD and GET alike, to its storage (<URL>/cdn/<sha256>,
// which needs no token), the redirect carrying X-Linked-Etag (the quoted
// sha256) and X-Linked-Size.
type Hub struct {
	*httptest.Server
	recorder
	// Repo is the repository path, "acme/gated".
	Repo string
	// Revision is the revision served, "main".
	Revision string

	mu     sync.Mutex
	tokens map[string]bool
	files  map[string][]byte // by path
	blobs  map[string][]byte // by sha256
}

// NewHub starts a hub serving files to the given tokens; it stops with the test.
func NewHub(t testing.TB, files map[string][]byte, tokens ...string) *Hub {
	t.Helper()
	h := &Hub{Repo: "acme/gated", Revision: "main", tokens: map[string]bool{}, files: files, blobs: map[string][]byte{}}
	for _, tok := range tokens {
		h.tokens[tok] = true
	}
	for _, b := range files {
		h.blobs[SHA256(b)] = b
	}
	h.Server = httptest.NewTLSServer(http.HandlerFunc(h.serve))
	t.Cleanup(h.Close)
	return h
}

// Allow makes the hub accept another token (a user who accepted the licence).
func (h *Hub) Allow(token string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.tokens[token] = true
}

// BaseURI is the https baseURI of the repository's revision.
func (h *Hub) BaseURI() string { return h.URL + "/" + h.Repo + "/resolve/" + h.Revision + "/" }

func (h *Hub) serve(w http.ResponseWriter, r *http.Request) {
	h.record(r)
	h.mu.Lock()
	defer h.mu.Unlock()
	if sum, ok := strings.CutPrefix(r.URL.Path, "/cdn/"); ok {
		b, found := h.blobs[sum]
		if !found {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("ETag", `"cdn-`+sum[:8]+`"`)
		http.ServeContent(w, r, "", time.Unix(1700000000, 0), bytes.NewReader(b))
		return
	}
	p, ok := strings.CutPrefix(r.URL.Path, "/"+h.Repo+"/resolve/"+h.Revision+"/")
	if !ok {
		http.NotFound(w, r)
		return
	}
	tok, hasTok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	switch {
	case !hasTok:
		http.Error(w, "Access to model "+h.Repo+" is restricted. You must be authenticated to access it.", http.StatusUnauthorized)
		return
	case !h.tokens[tok]:
		http.Error(w, "Access to model "+h.Repo+" is restricted and you are not in the authorized list.", http.StatusForbidden)
		return
	}
	b, found := h.files[p]
	if !found {
		http.NotFound(w, r)
		return
	}
	sum := SHA256(b)
	w.Header().Set("X-Linked-Etag", `"`+sum+`"`)
	w.Header().Set("X-Linked-Size", strconv.Itoa(len(b)))
	http.Redirect(w, r, "/cdn/"+sum+"?X-Amz-Signature=signed", http.StatusFound)
}

// Plain is an http server that answers every path it has bytes for, HEAD
// and GET, with 200 and no digest header and no authentication: the
// foreign source of a tenant who names someone else's digests.
type Plain struct {
	*httptest.Server
	recorder
	files map[string][]byte // by path, "/" + file path
}

// NewPlain starts a plain source serving files under <URL>/models/; it
// stops with the test.
func NewPlain(t testing.TB, files map[string][]byte) *Plain {
	t.Helper()
	p := &Plain{files: map[string][]byte{}}
	for path, b := range files {
		p.files["/models/"+path] = b
	}
	p.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.record(r)
		b, ok := p.files[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		http.ServeContent(w, r, "", time.Unix(1700000000, 0), bytes.NewReader(b))
	}))
	t.Cleanup(p.Close)
	return p
}

// BaseURI is the http baseURI of the files.
func (p *Plain) BaseURI() string { return p.URL + "/models/" }

// SHA256 returns the lowercase hex sha256 of b.
func SHA256(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}
