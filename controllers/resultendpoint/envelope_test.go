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
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/aivm-dev/aivm-operator/runtime-image/envelope"
)

// TestMalformedEnvelopes: each malformed post from the right pod is refused
// with its own status, reason and message, and nothing is written.
func TestMalformedEnvelopes(t *testing.T) {
	f := newFixture(t, nil)
	tok := f.token(f.pod)
	valid := func(change func(e *envelope.Envelope)) *envelope.Envelope {
		e := f.envelope(1, 0, " world")
		change(e)
		return e
	}
	raw := func(e *envelope.Envelope, edit func(string) string) []byte {
		b, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		return []byte(edit(string(b)))
	}
	big := strings.Repeat("x", envelope.MaxOutputBytes+1)
	zeros := "sha256:" + strings.Repeat("0", 64)
	cases := []struct {
		name        string
		contentType string
		body        any
		code        int
		reason, msg string
	}{
		{"text/plain", "text/plain", valid(func(*envelope.Envelope) {}), http.StatusUnsupportedMediaType, ReasonBadRequest, `Content-Type "text/plain" is not application/json`},
		{"no content type", "", valid(func(*envelope.Envelope) {}), http.StatusUnsupportedMediaType, ReasonBadRequest, `Content-Type "" is not application/json`},
		{"not JSON", "application/json", []byte("output=hi"), http.StatusBadRequest, ReasonBadRequest, "decode envelope"},
		{"unknown field", "application/json", raw(f.envelope(1, 0, "x"), func(s string) string { return strings.Replace(s, "{", `{"score":1,`, 1) }), http.StatusBadRequest, ReasonBadRequest, `unknown field "score"`},
		{"trailing data", "application/json", raw(f.envelope(1, 0, "x"), func(s string) string { return s + "{}" }), http.StatusBadRequest, ReasonBadRequest, "trailing data"},
		{"version", "application/json; charset=utf-8", valid(func(e *envelope.Envelope) { e.Version = "aivm.dev/result/v0" }), http.StatusBadRequest, ReasonBadRequest, `version "aivm.dev/result/v0"`},
		{"output over the bound", "application/json", valid(func(e *envelope.Envelope) { e.Output = big; e.Digests.Output = envelope.Digest([]byte(big)) }), http.StatusRequestEntityTooLarge, ReasonOutputTooLarge, "exceeds 524288"},
		{"body over the bound", "application/json", []byte(`{"output":"` + strings.Repeat("x", envelope.MaxBodyBytes) + `"}`), http.StatusRequestEntityTooLarge, ReasonOutputTooLarge, "body exceeds"},
		{"no namespace", "application/json", valid(func(e *envelope.Envelope) { e.Namespace = "" }), http.StatusBadRequest, ReasonBadRequest, "namespace, job and jobUID are required"},
		{"no jobUID", "application/json", valid(func(e *envelope.Envelope) { e.JobUID = "" }), http.StatusBadRequest, ReasonBadRequest, "namespace, job and jobUID are required"},
		{"namespace name", "application/json", valid(func(e *envelope.Envelope) { e.Namespace = "Team_A" }), http.StatusBadRequest, ReasonBadRequest, `namespace "Team_A" is not a namespace name`},
		{"job name", "application/json", valid(func(e *envelope.Envelope) { e.Job = "../secrets/x" }), http.StatusBadRequest, ReasonBadRequest, `job "../secrets/x" is not an InferenceJob name`},
		{"long jobUID", "application/json", valid(func(e *envelope.Envelope) { e.JobUID = strings.Repeat("u", 129) }), http.StatusBadRequest, ReasonBadRequest, "jobUID longer than 128 bytes"},
		{"attempt 0", "application/json", valid(func(e *envelope.Envelope) { e.Attempt = 0 }), http.StatusBadRequest, ReasonBadRequest, "attempt must be at least 1"},
		{"negative member", "application/json", valid(func(e *envelope.Envelope) { e.Member = -1 }), http.StatusBadRequest, ReasonBadRequest, "member at least 0"},
		{"negative tokens", "application/json", valid(func(e *envelope.Envelope) { e.OutputTokens = -1 }), http.StatusBadRequest, ReasonBadRequest, "must not be negative"},
		{"negative timing", "application/json", valid(func(e *envelope.Envelope) { e.Timings.LoadMillis = -5 }), http.StatusBadRequest, ReasonBadRequest, "must not be negative"},
		{"long engine", "application/json", valid(func(e *envelope.Envelope) { e.Engine = strings.Repeat("e", 129) }), http.StatusBadRequest, ReasonBadRequest, "engine longer than 128 bytes"},
		{"17 GPUs", "application/json", valid(func(e *envelope.Envelope) { e.GPUUUIDs = make([]string, 17) }), http.StatusBadRequest, ReasonBadRequest, "more than 16 GPU UUIDs"},
		{"long GPU UUID", "application/json", valid(func(e *envelope.Envelope) { e.GPUUUIDs = []string{strings.Repeat("g", 129)} }), http.StatusBadRequest, ReasonBadRequest, "GPU UUID longer than 128 bytes"},
		{"forged output digest", "application/json", valid(func(e *envelope.Envelope) { e.Digests.Output = envelope.Digest([]byte("another")) }), http.StatusBadRequest, ReasonDigestMismatch, "output digest"},
		{"wrong input digest", "application/json", valid(func(e *envelope.Envelope) { e.Digests.Input = zeros }), http.StatusBadRequest, ReasonDigestMismatch, "input digest"},
		{"wrong model digest", "application/json", valid(func(e *envelope.Envelope) { e.Digests.Model = zeros }), http.StatusBadRequest, ReasonDigestMismatch, "model digest"},
		{"wrong kernel digest", "application/json", valid(func(e *envelope.Envelope) { e.Digests.Kernel = zeros }), http.StatusBadRequest, ReasonDigestMismatch, "kernel digest"},
		{"malformed digest", "application/json", valid(func(e *envelope.Envelope) { e.Digests.Kernel = "md5:abc" }), http.StatusBadRequest, ReasonDigestMismatch, `kernel digest "md5:abc"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			postAs(t, tok, c.contentType, c.body).want(t, c.code, c.reason, c.msg)
		})
	}
	f.nothingWritten()
}

// TestMethodNotAllowed: only POST is served.
func TestMethodNotAllowed(t *testing.T) {
	resp, err := httpClient.Get(endpoint)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != http.MethodPost {
		t.Errorf("GET answered %d Allow %q, want 405 Allow POST", resp.StatusCode, resp.Header.Get("Allow"))
	}
}
