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

// Package openai is the engine for Kernels whose own server (vLLM, llama.cpp
// server, TGI, Ollama) runs in a second container of the job pod and speaks
// the OpenAI-compatible completions API on localhost
// (docs/runtime-contract.md). It waits for the server, sends one
// non-streaming completion with the job's parameters, and maps the server's
// failures to engine Kinds.
package openai

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/aivm-dev/aivm-operator/internal/text"
	"github.com/aivm-dev/aivm-operator/runtime-image/engine"
)

// Name is the engine's name in the registry and in AIVM_ENGINE.
const Name = "openai"

// EnvURL is the server's base URL in the job pod (http://127.0.0.1:<port>).
const EnvURL = "AIVM_ENGINE_URL"

// DefaultPollInterval is how often Start asks the server whether it is up.
const DefaultPollInterval = 500 * time.Millisecond

// maxReplyOverhead bounds a reply beyond its output text (JSON framing,
// usage, log probabilities a server adds unasked).
const maxReplyOverhead = 4 << 20

func init() {
	engine.Register(Name, func(string) (engine.Engine, error) {
		// The model directory is mounted into the server's container; this
		// side only needs the server's address.
		return New(Options{BaseURL: os.Getenv(EnvURL)})
	})
}

// Options configure an Engine.
type Options struct {
	// BaseURL is the server's address, such as http://127.0.0.1:8000.
	BaseURL string
	// Client sends the requests (default: no proxy, no timeout of its own;
	// the context bounds every request).
	Client *http.Client
	// PollInterval is the wait between readiness checks (DefaultPollInterval).
	PollInterval time.Duration
}

// Engine talks to one OpenAI-compatible server.
type Engine struct {
	base   *url.URL
	client *http.Client
	poll   time.Duration

	mu    sync.Mutex
	model string // the id the server lists; set by Start
}

// New checks the options; it contacts nothing.
func New(o Options) (*Engine, error) {
	if o.BaseURL == "" {
		return nil, engine.Errorf(engine.KindEngine, "%s is not set: the openai engine needs its server's URL", EnvURL)
	}
	u, err := url.Parse(o.BaseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, engine.Errorf(engine.KindEngine, "engine URL %q is not an http(s) URL", o.BaseURL)
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	if o.Client == nil {
		o.Client = &http.Client{Transport: &http.Transport{Proxy: nil, DisableCompression: false}}
	}
	if o.PollInterval <= 0 {
		o.PollInterval = DefaultPollInterval
	}
	return &Engine{base: u, client: o.Client, poll: o.PollInterval}, nil
}

// Name is "openai/<model id the server lists>".
func (e *Engine) Name() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.model == "" {
		return Name
	}
	return Name + "/" + e.model
}

// Close releases idle connections; the server's container ends with the pod.
func (e *Engine) Close() error {
	e.client.CloseIdleConnections()
	return nil
}

func (e *Engine) endpoint(p string) string {
	u := *e.base
	u.Path += p
	return u.String()
}

// Start waits until GET /v1/models answers 200 with at least one model, and
// remembers the first model's id. A server still loading its weights refuses
// connections or answers 503; both are waited out until ctx ends, which the
// runtime bounds by the Kernel's startup timeout.
func (e *Engine) Start(ctx context.Context) error {
	var last error
	for {
		id, err := e.listModel(ctx)
		if err == nil {
			e.mu.Lock()
			e.model = id
			e.mu.Unlock()
			return nil
		}
		var ee *engine.Error
		if errors.As(err, &ee) { // the server answered, and its answer is wrong
			return err
		}
		if last == nil || ctx.Err() == nil {
			// Keep the server's last real answer rather than the deadline
			// that cut the final request short.
			last = err
		}
		t := time.NewTimer(e.poll)
		select {
		case <-ctx.Done():
			t.Stop()
			return &engine.Error{Kind: engine.KindStartTimeout,
				Err: fmt.Errorf("engine server at %s not ready: %w (last: %w)", e.base, ctx.Err(), last)}
		case <-t.C:
		}
	}
}

// listModel asks /v1/models once. A plain error means "not ready yet"; an
// *engine.Error means the server is up and broken.
func (e *Engine) listModel(ctx context.Context) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, e.endpoint("/v1/models"), nil)
	if err != nil {
		return "", engine.Errorf(engine.KindEngine, "building the models request: %w", err)
	}
	resp, err := e.client.Do(req)
	if err != nil {
		return "", err
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxReplyOverhead))
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET /v1/models answered %s: %s", resp.Status, serverMessage(body))
	}
	var list struct {
		Data []struct {
			ID string `json:"id"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &list); err != nil {
		return "", engine.Errorf(engine.KindEngine, "GET /v1/models answered 200 with malformed JSON: %w", err)
	}
	if len(list.Data) == 0 || list.Data[0].ID == "" {
		return "", errors.New("GET /v1/models lists no model yet")
	}
	return list.Data[0].ID, nil
}

// completionRequest is POST /v1/completions, non-streaming.
type completionRequest struct {
	Model       string   `json:"model"`
	Prompt      string   `json:"prompt"`
	MaxTokens   int      `json:"max_tokens"`
	Temperature float64  `json:"temperature"`
	TopP        float64  `json:"top_p"`
	Seed        int64    `json:"seed"`
	Stop        []string `json:"stop,omitempty"`
	Stream      bool     `json:"stream"`
}

// completion is the reply, and also one event of a streamed reply.
type completion struct {
	Choices []struct {
		Text         string  `json:"text"`
		FinishReason *string `json:"finish_reason"`
	} `json:"choices"`
	Usage *struct {
		PromptTokens     int `json:"prompt_tokens"`
		CompletionTokens int `json:"completion_tokens"`
	} `json:"usage"`
	Error json.RawMessage `json:"error"`
}

// Generate sends one completion request. ctx bounds it (the runtime's
// inference timeout).
func (e *Engine) Generate(ctx context.Context, r engine.Request) (engine.Response, error) {
	e.mu.Lock()
	model := e.model
	e.mu.Unlock()
	if model == "" {
		if err := e.Start(ctx); err != nil {
			return engine.Response{}, err
		}
		return e.Generate(ctx, r)
	}
	body, err := json.Marshal(completionRequest{
		Model: model, Prompt: r.Prompt, MaxTokens: r.MaxTokens,
		Temperature: r.Temperature, TopP: r.TopP, Seed: r.Seed, Stop: r.Stop,
	})
	if err != nil {
		return engine.Response{}, engine.Errorf(engine.KindBadInput, "encoding the completion request: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.endpoint("/v1/completions"), bytes.NewReader(body))
	if err != nil {
		return engine.Response{}, engine.Errorf(engine.KindEngine, "building the completion request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	start := time.Now()
	resp, err := e.client.Do(req)
	if err != nil {
		return engine.Response{}, transportError(ctx, e.base, err)
	}
	defer func() { _ = resp.Body.Close() }()
	limit := int64(maxReplyOverhead)
	if r.MaxOutputBytes > 0 {
		limit += 6 * int64(r.MaxOutputBytes) // JSON may escape a byte as \u00XX
	}
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		return engine.Response{}, statusError(resp.StatusCode, serverMessage(msg))
	}
	var c completion
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		// A server that streams although asked not to: fold its events.
		c, err = readStream(resp.Body, limit)
	} else {
		c, err = readJSON(resp.Body, limit)
	}
	if err != nil {
		if ctx.Err() != nil || isTransport(err) {
			return engine.Response{}, transportError(ctx, e.base, err)
		}
		return engine.Response{}, err
	}
	out := engine.Response{GenerateDuration: time.Since(start)}
	out.Output = c.Choices[0].Text
	if fr := c.Choices[0].FinishReason; fr != nil {
		out.FinishReason = *fr
	}
	if c.Usage != nil {
		out.InputTokens, out.OutputTokens = c.Usage.PromptTokens, c.Usage.CompletionTokens
	}
	if r.MaxOutputBytes > 0 && len(out.Output) > r.MaxOutputBytes {
		out.Output, out.FinishReason = text.Truncate(out.Output, r.MaxOutputBytes), engine.FinishMaxBytes
	}
	return out, nil
}

func readJSON(body io.Reader, limit int64) (completion, error) {
	b, err := io.ReadAll(io.LimitReader(body, limit+1))
	if err != nil {
		return completion{}, err
	}
	if int64(len(b)) > limit {
		return completion{}, engine.Errorf(engine.KindEngine, "completion reply is larger than %d bytes", limit)
	}
	var c completion
	if err := json.Unmarshal(b, &c); err != nil {
		return c, engine.Errorf(engine.KindEngine, "completion reply is not JSON: %w (starts %q)", err, prefix(b, 64))
	}
	if len(c.Error) > 0 && string(c.Error) != "null" {
		return c, classify(engine.KindEngine, "completion reply carries an error: "+serverMessage(b))
	}
	if len(c.Choices) == 0 {
		return c, engine.Errorf(engine.KindEngine, "completion reply has no choices")
	}
	return c, nil
}

func prefix(b []byte, n int) string {
	if len(b) > n {
		b = b[:n]
	}
	return string(b)
}

// transportError maps a failed exchange: ctx's deadline is the inference
// timeout; anything else means the server is gone or broke the connection.
func transportError(ctx context.Context, base *url.URL, err error) error {
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		return &engine.Error{Kind: engine.KindTimeout, Err: fmt.Errorf("engine server at %s did not answer in time: %w", base, err)}
	case errors.Is(err, syscall.ECONNREFUSED):
		return engine.Errorf(engine.KindEngine, "engine server at %s is not listening (did its container exit?): %w", base, err)
	default:
		return engine.Errorf(engine.KindEngine, "engine server at %s broke off the request: %w", base, err)
	}
}

func isTransport(err error) bool {
	var ee *engine.Error
	return !errors.As(err, &ee)
}
