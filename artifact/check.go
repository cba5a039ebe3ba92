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
	"fmt"
	"net/http"
)

// Checker checks that artifact sources are reachable without downloading
// them. The model controller uses it; it needs no cache.
type Checker struct {
	cfg config
}

// NewChecker returns a Checker. Options that only concern downloads (total
// time, retries) are ignored.
func NewChecker(opts ...Option) (*Checker, error) {
	cfg, err := newConfig(opts)
	if err != nil {
		return nil, err
	}
	return &Checker{cfg: cfg}, nil
}

// CheckResult is what a check learned about a source.
type CheckResult struct {
	// URL is the resolved source, with credentials and query values redacted.
	URL string
	// NodeLocal is true for file:// sources, which only the nodes that fetch
	// them can check; no request is made for them.
	NodeLocal bool
	// Size is the size the source announced, or -1 when unknown.
	Size int64
}

// Check validates req and, for http, https and hf sources, makes a HEAD
// request (falling back to a one-byte ranged GET when HEAD is not allowed)
// with the request's token. It returns a *HTTPStatusError for an error
// status, a *SizeMismatchError when the announced size differs from
// req.Size, and the network error when the source cannot be reached. The
// digest is not checked: that needs the bytes.
func (c *Checker) Check(ctx context.Context, req Request) (CheckResult, error) {
	p, err := prepare(req, c.cfg.hfBase)
	if err != nil {
		return CheckResult{}, err
	}
	res := CheckResult{URL: p.display, Size: -1}
	if p.u.Scheme == SchemeFile {
		res.NodeLocal = true
		return res, nil
	}
	size, err := c.probe(ctx, p, http.MethodHead)
	var se *HTTPStatusError
	if errors.As(err, &se) && (se.StatusCode == http.StatusMethodNotAllowed || se.StatusCode == http.StatusNotImplemented) {
		size, err = c.probe(ctx, p, http.MethodGet)
	}
	if err != nil {
		return res, err
	}
	res.Size = size
	if p.size > 0 && size >= 0 && size != p.size {
		return res, &SizeMismatchError{Expected: p.size, Actual: size}
	}
	return res, nil
}

// probe makes one HEAD, or GET for the first byte, and returns the size.
func (c *Checker) probe(ctx context.Context, p prepared, method string) (int64, error) {
	req, err := newRequest(ctx, method, p)
	if err != nil {
		return -1, err
	}
	if method == http.MethodGet {
		req.Header.Set("Range", "bytes=0-0")
	}
	resp, err := c.cfg.client.Do(req)
	if err != nil {
		return -1, fmt.Errorf("%s: %w", p.display, unwrapRetryable(clientError(err)))
	}
	_ = resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusPartialContent:
		if _, total, ok := parseContentRange(resp.Header.Get("Content-Range")); ok {
			return total, nil
		}
		return -1, nil
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return resp.ContentLength, nil
	default:
		return -1, &HTTPStatusError{Source: p.display, StatusCode: resp.StatusCode, Status: resp.Status}
	}
}

// unwrapRetryable drops the retryable mark: a check is not retried.
func unwrapRetryable(err error) error {
	var r *retryable
	if errors.As(err, &r) {
		return r.err
	}
	return err
}
