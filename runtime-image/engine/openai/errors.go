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
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/aivm-dev/aivm-operator/internal/text"
	"github.com/aivm-dev/aivm-operator/runtime-image/engine"
)

// maxMessageBytes bounds a server message quoted in an error.
const maxMessageBytes = 512

// statusError maps a non-200 answer: the server's own message, classified.
func statusError(code int, msg string) error {
	kind := engine.KindEngine
	if code == http.StatusBadRequest || code == http.StatusUnprocessableEntity {
		kind = engine.KindBadInput
	}
	return classify(kind, fmt.Sprintf("engine server answered %d %s: %s", code, http.StatusText(code), msg))
}

// classify picks the Kind a server's message names: running out of (GPU)
// memory and overrunning the context are told apart from other failures,
// because the operator reacts to them differently (another GPU; the user's
// input).
func classify(kind engine.Kind, msg string) error {
	low := strings.ToLower(msg)
	switch {
	case strings.Contains(low, "out of memory") || strings.Contains(low, "outofmemory"):
		kind = engine.KindOutOfMemory
	case strings.Contains(low, "context length") || strings.Contains(low, "context_length_exceeded") ||
		strings.Contains(low, "context window"):
		kind = engine.KindContextLength
	}
	return &engine.Error{Kind: kind, Err: errors.New(msg)}
}

// serverMessage finds the message in an error body: OpenAI's
// {"error":{"message"}}, {"error":"..."}, vLLM's {"message"}, FastAPI's
// {"detail"}, or the body itself.
func serverMessage(body []byte) string {
	var v struct {
		Error   json.RawMessage `json:"error"`
		Message string          `json:"message"`
		Detail  json.RawMessage `json:"detail"`
	}
	msg := ""
	if json.Unmarshal(body, &v) == nil {
		var obj struct {
			Message string `json:"message"`
		}
		var s string
		switch {
		case json.Unmarshal(v.Error, &obj) == nil && obj.Message != "":
			msg = obj.Message
		case json.Unmarshal(v.Error, &s) == nil && s != "":
			msg = s
		case v.Message != "":
			msg = v.Message
		case json.Unmarshal(v.Detail, &s) == nil && s != "":
			msg = s
		case len(v.Detail) > 0:
			msg = string(v.Detail)
		}
	}
	if msg == "" {
		msg = strings.TrimSpace(string(body))
	}
	if msg == "" {
		return "(no message)"
	}
	if len(msg) > maxMessageBytes {
		msg = text.Truncate(msg, maxMessageBytes) + "…"
	}
	return msg
}

// readStream folds a server-sent event stream of completion chunks into one
// completion: texts concatenated, the last finish reason and usage kept.
func readStream(body io.Reader, limit int64) (completion, error) {
	var out completion
	var text strings.Builder
	var finish *string
	sc := bufio.NewScanner(io.LimitReader(body, limit+1))
	sc.Buffer(make([]byte, 64<<10), int(min(limit+1, 16<<20)))
	done, chunks := false, 0
	for sc.Scan() {
		line := bytes.TrimSpace(sc.Bytes())
		data, ok := bytes.CutPrefix(line, []byte("data:"))
		if !ok {
			continue // comments, event names, blank separators
		}
		data = bytes.TrimSpace(data)
		if string(data) == "[DONE]" {
			done = true
			break
		}
		var c completion
		if err := json.Unmarshal(data, &c); err != nil {
			return out, engine.Errorf(engine.KindEngine, "streamed completion event is not JSON: %w (starts %q)", err, prefix(data, 64))
		}
		if len(c.Error) > 0 && string(c.Error) != "null" {
			return out, classify(engine.KindEngine, "streamed completion carries an error: "+serverMessage(data))
		}
		chunks++
		if len(c.Choices) > 0 {
			text.WriteString(c.Choices[0].Text)
			if c.Choices[0].FinishReason != nil {
				finish = c.Choices[0].FinishReason
			}
		}
		if c.Usage != nil {
			out.Usage = c.Usage
		}
	}
	if err := sc.Err(); err != nil {
		return out, err
	}
	if !done && finish == nil {
		// The stream ended without [DONE] or a finish reason: the server died.
		return out, errors.New("the event stream ended before [DONE] (unexpected EOF)")
	}
	if chunks == 0 {
		return out, engine.Errorf(engine.KindEngine, "completion stream has no choices")
	}
	out.Choices = []struct {
		Text         string  `json:"text"`
		FinishReason *string `json:"finish_reason"`
	}{{Text: text.String(), FinishReason: finish}}
	return out, nil
}
