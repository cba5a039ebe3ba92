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

package runner

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
)

// RetryPolicy bounds the retries of a post the endpoint could not take:
// Attempts tries in all, waiting Initial, then doubling up to Max.
type RetryPolicy struct {
	Attempts     int
	Initial, Max time.Duration
	// AttemptTimeout bounds one request, connection and TLS included.
	AttemptTimeout time.Duration
}

// DefaultRetry rides out a manager restart or a leader change (about a
// minute) and stays well within the token's 600 s lifetime.
var DefaultRetry = RetryPolicy{Attempts: 8, Initial: 500 * time.Millisecond, Max: 16 * time.Second, AttemptTimeout: 30 * time.Second}

// maxReplyBytes bounds how much of the endpoint's reply is read.
const maxReplyBytes = 64 << 10

// postError is a post that did not end in 200. refused: the endpoint said
// no (4xx other than 408 and 429), and asking again cannot help.
type postError struct {
	refused    bool
	status     int
	reason     string
	retryAfter time.Duration
	err        error
}

func (e *postError) Error() string {
	if e.status != 0 {
		return fmt.Sprintf("result endpoint answered %d %s: %v", e.status, e.reason, e.err)
	}
	return fmt.Sprintf("result endpoint: %v", e.err)
}

func (e *postError) Unwrap() error { return e.err }

// refusal is the endpoint's error body.
type refusal struct {
	Reason  string `json:"reason"`
	Message string `json:"message"`
}

// poster posts envelopes. The token and the CA bundle are read again for
// every attempt: the kubelet rotates the projected token, and the job
// controller rotates the CA ConfigMap.
type poster struct {
	url, tokenFile, caFile string
	retry                  RetryPolicy
	// wait sleeps between attempts; tests replace it.
	wait func(ctx context.Context, d time.Duration) error
	// attempts counts requests sent, for the outcome.
	attempts int
}

// check fails early, before any inference, when the post could never work.
func (p *poster) check() error {
	if _, err := p.readToken(); err != nil {
		return err
	}
	_, err := p.client()
	return err
}

func (p *poster) readToken() (string, error) {
	b, err := os.ReadFile(p.tokenFile)
	if err != nil {
		return "", fmt.Errorf("reading the result token: %w", err)
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return "", fmt.Errorf("result token file %s is empty", p.tokenFile)
	}
	return tok, nil
}

// client trusts only the CA bundle of the contract, not the system roots:
// the endpoint's certificate comes from the operator's own CA.
func (p *poster) client() (*http.Client, error) {
	pem, err := os.ReadFile(p.caFile)
	if err != nil {
		return nil, fmt.Errorf("reading the result endpoint's CA bundle: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("result endpoint's CA bundle %s holds no PEM certificate", p.caFile)
	}
	return &http.Client{
		Transport: &http.Transport{
			TLSClientConfig:   &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
			Proxy:             nil, // cluster-internal; never through a proxy
			ForceAttemptHTTP2: true,
		},
		// A redirect would carry the token elsewhere; the endpoint never sends one.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Timeout:       p.retry.AttemptTimeout,
	}, nil
}

// post sends body until the endpoint accepts it, refuses it, or the retry
// policy is spent.
func (p *poster) post(ctx context.Context, body []byte) error {
	delay := p.retry.Initial
	var last error
	for i := 0; i < p.retry.Attempts; i++ {
		if i > 0 {
			if err := p.wait(ctx, delay); err != nil {
				return &postError{err: fmt.Errorf("%w (last: %w)", err, last)}
			}
			delay = min(2*delay, p.retry.Max)
		}
		err := p.once(ctx, body)
		if err == nil {
			return nil
		}
		var pe *postError
		if errors.As(err, &pe) && pe.refused {
			return err
		}
		if errors.As(err, &pe) && pe.retryAfter > delay {
			delay = min(pe.retryAfter, p.retry.Max)
		}
		last = err
	}
	return fmt.Errorf("gave up after %d attempts: %w", p.retry.Attempts, last)
}

func (p *poster) once(ctx context.Context, body []byte) error {
	tok, err := p.readToken()
	if err != nil {
		return &postError{err: err}
	}
	c, err := p.client()
	if err != nil {
		return &postError{err: err}
	}
	defer c.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.url, bytes.NewReader(body))
	if err != nil {
		return &postError{refused: true, err: err}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+tok)
	p.attempts++
	resp, err := c.Do(req)
	if err != nil {
		// url.Error names the URL and the cause, never the header.
		return &postError{err: err}
	}
	defer func() { _ = resp.Body.Close() }()
	reply, _ := io.ReadAll(io.LimitReader(resp.Body, maxReplyBytes))
	if resp.StatusCode == http.StatusOK {
		return nil
	}
	var r refusal
	if json.Unmarshal(reply, &r) != nil || (r.Reason == "" && r.Message == "") {
		r.Message = strings.TrimSpace(string(reply))
		if len(r.Message) > 512 {
			r.Message = r.Message[:512]
		}
	}
	transient := resp.StatusCode >= 500 || resp.StatusCode == http.StatusRequestTimeout || resp.StatusCode == http.StatusTooManyRequests
	return &postError{
		refused:    !transient,
		retryAfter: retryAfter(resp.Header.Get("Retry-After")),
		status:     resp.StatusCode,
		reason:     r.Reason,
		err:        errors.New(r.Message),
	}
}

// retryAfter reads a Retry-After header in seconds (the only form the
// endpoint sends); anything else is ignored.
func retryAfter(v string) time.Duration {
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || n <= 0 {
		return 0
	}
	return time.Duration(n) * time.Second
}

// sleepCtx waits d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
