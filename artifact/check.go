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
	// DigestHeader names the response header in which the source stated
	// the expected sha256 (X-Linked-Etag, Repr-Digest, Digest or ETag),
	// or is empty when it stated none. A source that states it with the
	// caller's credentials has shown it can deliver the bytes.
	DigestHeader string
}

// Check validates req and, for http, https and hf sources, makes a HEAD
// request (falling back to a one-byte ranged GET when HEAD is not allowed)
// with the request's token. It returns a *HTTPStatusError for an error
// status, a *SizeMismatchError when the announced size differs from
// req.Size, a *SourceDigestMismatchError when a response (the redirects
// on the way included) states a sha256 other than req.Digest in a header
// that means the content's digest, and the network error when the source
// cannot be reached. A source that states no digest is not checked further:
// that needs the bytes.
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
	return checkSource(ctx, c.cfg.client, p, res)
}

// checkSource probes p with a HEAD (a one-byte GET where HEAD is not
// allowed) and fills in res's size and stated digest.
func checkSource(ctx context.Context, client *http.Client, p prepared, res CheckResult) (CheckResult, error) {
	pr, err := probe(ctx, client, p, http.MethodHead)
	var se *HTTPStatusError
	if errors.As(err, &se) && (se.StatusCode == http.StatusMethodNotAllowed || se.StatusCode == http.StatusNotImplemented) {
		pr, err = probe(ctx, client, p, http.MethodGet)
	}
	if err != nil {
		return res, err
	}
	res.Size = pr.size
	if p.size > 0 && pr.size >= 0 && pr.size != p.size {
		return res, &SizeMismatchError{Expected: p.size, Actual: pr.size}
	}
	v := judgeDigests(pr.stated, p.digest)
	if v.mismatch != nil {
		return res, &SourceDigestMismatchError{Source: p.display, Header: v.mismatch.header, Expected: p.digest, Stated: v.mismatch.sha256}
	}
	res.DigestHeader = v.match
	return res, nil
}

// probeResult is what one probe learned.
type probeResult struct {
	size   int64
	stated []statedDigest // from every response, redirects included
}

// probe makes one HEAD, or GET for the first byte, and returns the size
// and the digests the responses state. The Hugging Face hub answers a
// HEAD of an LFS file with a redirect to its storage that carries
// X-Linked-Etag, so the redirects' headers count too.
func probe(ctx context.Context, client *http.Client, p prepared, method string) (probeResult, error) {
	out := probeResult{size: -1}
	req, err := newRequest(ctx, method, p)
	if err != nil {
		return out, err
	}
	if method == http.MethodGet {
		req.Header.Set("Range", "bytes=0-0")
	}
	hc := *client
	next := client.CheckRedirect
	hc.CheckRedirect = func(r *http.Request, via []*http.Request) error {
		if r.Response != nil {
			out.stated = append(out.stated, statedDigests(r.Response.Header)...)
		}
		if next != nil {
			return next(r, via)
		}
		if len(via) >= maxRedirects {
			return fmt.Errorf("stopped after %d redirects", maxRedirects)
		}
		return nil
	}
	resp, err := hc.Do(req)
	if err != nil {
		return out, fmt.Errorf("%s: %w", p.display, unwrapRetryable(clientError(err)))
	}
	_ = resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusPartialContent:
		if _, total, ok := parseContentRange(resp.Header.Get("Content-Range")); ok {
			out.size = total
		}
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		out.size = resp.ContentLength
	default:
		return out, &HTTPStatusError{Source: p.display, StatusCode: resp.StatusCode, Status: resp.Status}
	}
	out.stated = append(out.stated, statedDigests(resp.Header)...)
	return out, nil
}

// unwrapRetryable drops the retryable mark: a check is not retried.
func unwrapRetryable(err error) error {
	var r *retryable
	if errors.As(err, &r) {
		return r.err
	}
	return err
}
