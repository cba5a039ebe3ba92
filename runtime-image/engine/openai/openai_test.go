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

package openai

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/aivm-dev/aivm-operator/runtime-image/engine"
)

// server speaks the OpenAI-compatible API the way vLLM and llama.cpp do:
// /v1/models lists one model once ready; /v1/completions answers through
// complete, which tests replace.
type server struct {
	*httptest.Server
	// notReady answers /v1/models with 503 this many times first.
	notReady  atomic.Int32
	modelsHit atomic.Int32
	complete  func(w http.ResponseWriter, r *http.Request, req completionRequest)
	// got is the last completion request.
	got atomic.Pointer[completionRequest]
}

func newServer(t *testing.T, complete func(w http.ResponseWriter, r *http.Request, req completionRequest)) *server {
	t.Helper()
	s := &server{complete: complete}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/models", func(w http.ResponseWriter, _ *http.Request) {
		s.modelsHit.Add(1)
		if s.notReady.Add(-1) >= 0 {
			http.Error(w, `{"error":{"message":"loading weights"}}`, http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, `{"object":"list","data":[{"id":"tiny-gpt2","object":"model"}]}`)
	})
	mux.HandleFunc("POST /v1/completions", func(w http.ResponseWriter, r *http.Request) {
		var req completionRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		s.got.Store(&req)
		s.complete(w, r, req)
	})
	s.Server = httptest.NewServer(mux)
	t.Cleanup(s.Close)
	return s
}

func newEngine(t *testing.T, url string) *Engine {
	t.Helper()
	e, err := New(Options{BaseURL: url, PollInterval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

func ctxWithin(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func jsonReply(text, finish string) func(http.ResponseWriter, *http.Request, completionRequest) {
	return func(w http.ResponseWriter, _ *http.Request, _ completionRequest) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"id":"cmpl-1","object":"text_completion","model":"tiny-gpt2",`+
			`"choices":[{"index":0,"text":%q,"finish_reason":%q,"logprobs":null}],`+
			`"usage":{"prompt_tokens":5,"completion_tokens":7,"total_tokens":12}}`, text, finish)
	}
}

var request = engine.Request{
	Prompt: "Once upon a time", MaxTokens: 16, Temperature: 0.7, TopP: 0.9, Seed: 42,
	Stop: []string{"\n\n"}, MaxOutputBytes: 1 << 10,
}

func TestGenerateSendsTheJobsParametersAndReadsTheReply(t *testing.T) {
	s := newServer(t, jsonReply(" there was a GPU.", "stop"))
	e := newEngine(t, s.URL)
	ctx := ctxWithin(t, 5*time.Second)
	if err := e.Start(ctx); err != nil {
		t.Fatal(err)
	}
	resp, err := e.Generate(ctx, request)
	if err != nil {
		t.Fatal(err)
	}
	want := completionRequest{Model: "tiny-gpt2", Prompt: "Once upon a time", MaxTokens: 16,
		Temperature: 0.7, TopP: 0.9, Seed: 42, Stop: []string{"\n\n"}, Stream: false}
	if diff := cmp.Diff(want, *s.got.Load()); diff != "" {
		t.Errorf("request (-want +got):\n%s", diff)
	}
	resp.GenerateDuration = 0
	if diff := cmp.Diff(engine.Response{Output: " there was a GPU.", InputTokens: 5, OutputTokens: 7, FinishReason: "stop"}, resp); diff != "" {
		t.Errorf("response (-want +got):\n%s", diff)
	}
	if got := e.Name(); got != "openai/tiny-gpt2" {
		t.Errorf("Name() = %q, want openai/tiny-gpt2", got)
	}
}

// sse writes a completion as server-sent events, as vLLM does for stream=true.
func sse(w http.ResponseWriter, parts []string, done bool) {
	w.Header().Set("Content-Type", "text/event-stream")
	for i, p := range parts {
		finish := "null"
		if i == len(parts)-1 {
			finish = `"length"`
		}
		fmt.Fprintf(w, "data: {\"choices\":[{\"index\":0,\"text\":%q,\"finish_reason\":%s}]}\n\n", p, finish)
		w.(http.Flusher).Flush()
	}
	if done {
		io.WriteString(w, "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":4,\"completion_tokens\":3}}\n\ndata: [DONE]\n\n")
	}
}

func TestStreamingCapableServerAnswersTheNonStreamingRequest(t *testing.T) {
	s := newServer(t, func(w http.ResponseWriter, r *http.Request, req completionRequest) {
		if req.Stream {
			sse(w, []string{"a", "b", "c"}, true)
			return
		}
		jsonReply("abc", "length")(w, r, req)
	})
	resp, err := newEngine(t, s.URL).Generate(ctxWithin(t, 5*time.Second), request)
	if err != nil {
		t.Fatal(err)
	}
	if s.got.Load().Stream {
		t.Error("the request asked for a stream")
	}
	if resp.Output != "abc" || resp.FinishReason != "length" || resp.OutputTokens != 7 {
		t.Errorf("response = %+v, want the JSON reply abc/length/7", resp)
	}
}

func TestServerThatStreamsAnywayIsFolded(t *testing.T) {
	s := newServer(t, func(w http.ResponseWriter, _ *http.Request, _ completionRequest) {
		sse(w, []string{"Hel", "lo", " wörld"}, true)
	})
	resp, err := newEngine(t, s.URL).Generate(ctxWithin(t, 5*time.Second), request)
	if err != nil {
		t.Fatal(err)
	}
	resp.GenerateDuration = 0
	if diff := cmp.Diff(engine.Response{Output: "Hello wörld", FinishReason: "length", InputTokens: 4, OutputTokens: 3}, resp); diff != "" {
		t.Errorf("response (-want +got):\n%s", diff)
	}
}

func TestOutputIsCutAtMaxOutputBytesOnARuneBoundary(t *testing.T) {
	s := newServer(t, jsonReply("hé wörld", "length"))
	req := request
	req.MaxOutputBytes = 2 // "h" is 1 byte, "é" 2: a cut at 2 would split é
	resp, err := newEngine(t, s.URL).Generate(ctxWithin(t, 5*time.Second), req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Output != "h" || resp.FinishReason != engine.FinishMaxBytes {
		t.Errorf("output %q finish %q, want \"h\" and %s", resp.Output, resp.FinishReason, engine.FinishMaxBytes)
	}
}

// errorReply answers with status and body.
func errorReply(status int, body string) func(http.ResponseWriter, *http.Request, completionRequest) {
	return func(w http.ResponseWriter, _ *http.Request, _ completionRequest) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		io.WriteString(w, body)
	}
}

func TestServerFailuresMapToKinds(t *testing.T) {
	hijackAndClose := func(w http.ResponseWriter, _ *http.Request, _ completionRequest) {
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			conn.Close() // the server process died mid-request
		}
	}
	cases := []struct {
		name     string
		complete func(http.ResponseWriter, *http.Request, completionRequest)
		kind     engine.Kind
		msg      string
	}{
		{"400 with OpenAI error JSON", errorReply(400, `{"error":{"message":"temperature must be non-negative","type":"invalid_request_error"}}`),
			engine.KindBadInput, "400 Bad Request: temperature must be non-negative"},
		{"400 context length (vLLM)", errorReply(400, `{"object":"error","message":"This model's maximum context length is 1024 tokens. However, you requested 2048 tokens.","type":"BadRequestError","code":400}`),
			engine.KindContextLength, "maximum context length is 1024 tokens"},
		{"500 with error JSON", errorReply(500, `{"error":{"message":"engine loop has died"}}`),
			engine.KindEngine, "500 Internal Server Error: engine loop has died"},
		{"500 CUDA OOM", errorReply(500, `{"error":{"message":"CUDA out of memory. Tried to allocate 2.00 GiB"}}`),
			engine.KindOutOfMemory, "CUDA out of memory"},
		{"503 plain text", errorReply(503, "upstream unavailable"),
			engine.KindEngine, "503 Service Unavailable: upstream unavailable"},
		{"garbage JSON", errorReply(200, `{"choices":[{"text":"abc"`),
			engine.KindEngine, "completion reply is not JSON"},
		{"HTML instead of JSON", errorReply(200, `<html>bad gateway</html>`),
			engine.KindEngine, `starts "<html>bad gateway</html>"`},
		{"no choices", errorReply(200, `{"id":"x","choices":[]}`),
			engine.KindEngine, "completion reply has no choices"},
		{"error in a 200 reply", errorReply(200, `{"error":{"message":"out of memory while decoding"}}`),
			engine.KindOutOfMemory, "out of memory while decoding"},
		{"server dies mid-request", hijackAndClose,
			engine.KindEngine, "broke off the request"},
		{"stream cut before [DONE]", func(w http.ResponseWriter, _ *http.Request, _ completionRequest) {
			w.Header().Set("Content-Type", "text/event-stream")
			io.WriteString(w, "data: {\"choices\":[{\"text\":\"par\",\"finish_reason\":null}]}\n\n")
		}, engine.KindEngine, "ended before [DONE]"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := newServer(t, tc.complete)
			_, err := newEngine(t, s.URL).Generate(ctxWithin(t, 5*time.Second), request)
			if got := engine.KindOf(err); err == nil || got != tc.kind {
				t.Fatalf("error %v of kind %s, want kind %s", err, got, tc.kind)
			}
			if !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("error %q does not contain %q", err, tc.msg)
			}
		})
	}
}

func TestHangingServerIsAnInferenceTimeout(t *testing.T) {
	entered := make(chan struct{})
	s := newServer(t, func(_ http.ResponseWriter, r *http.Request, _ completionRequest) {
		close(entered)
		<-r.Context().Done() // hangs until the client gives up
	})
	e := newEngine(t, s.URL)
	if err := e.Start(ctxWithin(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	_, err := e.Generate(ctxWithin(t, 100*time.Millisecond), request)
	select {
	case <-entered:
	default:
		t.Fatal("the request never reached the server")
	}
	if engine.KindOf(err) != engine.KindTimeout || !strings.Contains(err.Error(), "did not answer in time") {
		t.Errorf("error %v, want an InferenceTimeout", err)
	}
}

func TestServerGoneAfterStartIsAnEngineError(t *testing.T) {
	s := newServer(t, jsonReply("x", "stop"))
	e := newEngine(t, s.URL)
	if err := e.Start(ctxWithin(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	s.Close() // the engine container exited; its port is closed
	// Drop the kept-alive connection, so the request dials the closed port
	// (on a reused connection the death reads as EOF, the case above).
	e.client.CloseIdleConnections()
	_, err := e.Generate(ctxWithin(t, 5*time.Second), request)
	if engine.KindOf(err) != engine.KindEngine || !strings.Contains(err.Error(), "is not listening") {
		t.Errorf("error %v, want EngineError naming a server that is not listening", err)
	}
}

func TestStartWaitsForTheServer(t *testing.T) {
	s := newServer(t, jsonReply("x", "stop"))
	s.notReady.Store(3)
	e := newEngine(t, s.URL)
	if err := e.Start(ctxWithin(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	if got := s.modelsHit.Load(); got != 4 {
		t.Errorf("/v1/models asked %d times, want 4 (3 times 503, then 200)", got)
	}
	if e.Name() != "openai/tiny-gpt2" {
		t.Errorf("Name() = %q", e.Name())
	}
}

func TestStartWaitsThroughRefusedConnections(t *testing.T) {
	// A port nobody listens on yet, then a server on it: the sidecar binding
	// its port after loading. The handler swaps in once the engine has been
	// refused, so the wait covers both phases without timing.
	s := newServer(t, jsonReply("x", "stop"))
	e := newEngine(t, s.URL)
	refused := 0
	base := e.client.Transport
	e.client.Transport = roundTripFunc(func(r *http.Request) (*http.Response, error) {
		if refused < 2 {
			refused++
			return nil, fmt.Errorf("dial tcp %s: connect: connection refused", r.URL.Host)
		}
		return base.RoundTrip(r)
	})
	if err := e.Start(ctxWithin(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	if refused != 2 || s.modelsHit.Load() != 1 {
		t.Errorf("refused %d, asked %d; want 2 refusals then 1 answer", refused, s.modelsHit.Load())
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestStartTimeout(t *testing.T) {
	s := newServer(t, jsonReply("x", "stop"))
	s.notReady.Store(1 << 30)
	err := newEngine(t, s.URL).Start(ctxWithin(t, 300*time.Millisecond))
	if engine.KindOf(err) != engine.KindStartTimeout || !strings.Contains(err.Error(), "loading weights") {
		t.Errorf("error %v, want EngineStartTimeout quoting the last answer", err)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("error %v does not wrap the deadline", err)
	}
}

func TestStartRefusesABrokenModelList(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, "not json")
	}))
	t.Cleanup(srv.Close)
	err := newEngine(t, srv.URL).Start(ctxWithin(t, 5*time.Second))
	if engine.KindOf(err) != engine.KindEngine || !strings.Contains(err.Error(), "malformed JSON") {
		t.Errorf("error %v, want EngineError for a malformed model list", err)
	}
}

func TestNewRefusesABadURL(t *testing.T) {
	for _, u := range []string{"", "127.0.0.1:8000", "ftp://x", "http://"} {
		if _, err := New(Options{BaseURL: u}); err == nil {
			t.Errorf("New(%q) accepted it", u)
		}
	}
}

func TestRegisteredAsOpenAI(t *testing.T) {
	f, ok := engine.Lookup(Name)
	if !ok {
		t.Fatal("openai is not registered")
	}
	t.Setenv(EnvURL, "http://127.0.0.1:1")
	e, err := f(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := e.(engine.Starter); !ok {
		t.Error("the openai engine does not wait for its server (no Start)")
	}
}
