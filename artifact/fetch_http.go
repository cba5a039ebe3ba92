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
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/aivm-dev/aivm-operator/internal/text"
)

// retryable marks an error worth another attempt.
type retryable struct{ err error }

func (e *retryable) Error() string { return e.err.Error() }
func (e *retryable) Unwrap() error { return e.err }

func isRetryable(err error) bool {
	var r *retryable
	return errors.As(err, &r)
}

// download fetches an http(s) source, retrying transient failures and
// resuming from the bytes already received.
func (f *Fetcher) download(ctx context.Context, p prepared, dl *download) error {
	wait := f.cfg.retryInitial
	failures := 0
	validator := ""
	for {
		before := dl.n
		err := f.attempt(ctx, p, dl, &validator)
		if err == nil {
			return nil
		}
		if !isRetryable(err) || ctx.Err() != nil {
			return err
		}
		if dl.n > before {
			failures, wait = 0, f.cfg.retryInitial
		}
		failures++
		if failures > f.cfg.maxRetries {
			return fmt.Errorf("giving up after %d attempts without progress: %w", failures, err)
		}
		f.cfg.log.Info("Retrying artifact download", "digest", p.digest, "source", p.display,
			"received", dl.n, "attempt", failures, "wait", wait.String(), "err", err.Error())
		t := f.cfg.clock.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w (last error: %w)", ctx.Err(), err)
		case <-t.C():
		}
		wait = min(2*wait, f.cfg.retryMax)
	}
}

// errStalled cancels an attempt that received nothing for the stall timeout.
var errStalled = errors.New("download stalled")

// attempt makes one GET request, resuming at dl.n when it is not zero. An
// attempt that receives nothing for the stall timeout is abandoned with a
// retryable error.
func (f *Fetcher) attempt(ctx context.Context, p prepared, dl *download, validator *string) error {
	actx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	wd := newWatchdog(f.cfg.clock, f.cfg.stall, func() { cancel(errStalled) })
	defer wd.stop()
	dl.onProgress = wd.kick
	defer func() { dl.onProgress = nil }()
	err := f.attemptOnce(actx, p, dl, validator)
	if err != nil && ctx.Err() == nil && errors.Is(context.Cause(actx), errStalled) {
		return &retryable{fmt.Errorf("no data received for %s at byte %d: %w", f.cfg.stall, dl.n, errStalled)}
	}
	return err
}

func (f *Fetcher) attemptOnce(ctx context.Context, p prepared, dl *download, validator *string) error {
	req, err := newRequest(ctx, http.MethodGet, p)
	if err != nil {
		return err
	}
	if dl.n > 0 {
		req.Header.Set("Range", "bytes="+strconv.FormatInt(dl.n, 10)+"-")
		if *validator != "" {
			req.Header.Set("If-Range", *validator)
		}
	}
	resp, err := f.cfg.client.Do(req)
	if err != nil {
		return clientError(err)
	}
	defer func() { _ = resp.Body.Close() }()

	var total int64 // the full size, or -1 when unknown
	switch resp.StatusCode {
	case http.StatusOK:
		if dl.n > 0 { // the server ignored the range: start over
			if err := dl.reset(); err != nil {
				return err
			}
		}
		total = resp.ContentLength
		*validator = rangeValidator(resp.Header)
	case http.StatusPartialContent:
		start, t, ok := parseContentRange(resp.Header.Get("Content-Range"))
		if !ok || start != dl.n {
			if err := dl.reset(); err != nil {
				return err
			}
			return &retryable{fmt.Errorf("unexpected Content-Range %q for a request from byte %d", text.Shorten(resp.Header.Get("Content-Range"), 80), start)}
		}
		total = t
	case http.StatusRequestedRangeNotSatisfiable:
		if dl.n > 0 {
			if err := dl.reset(); err != nil {
				return err
			}
			return &retryable{fmt.Errorf("server refused to resume at byte %d", dl.n)}
		}
		fallthrough
	default:
		se := &HTTPStatusError{Source: p.display, StatusCode: resp.StatusCode, Status: resp.Status}
		if se.Transient() {
			return &retryable{se}
		}
		return se
	}
	if p.size > 0 && total >= 0 && total != p.size {
		return &SizeMismatchError{Expected: p.size, Actual: total}
	}
	if err := dl.copyFrom(ctx, resp.Body); err != nil {
		var we *writeError
		var se *SizeMismatchError
		if errors.As(err, &we) || errors.As(err, &se) || ctx.Err() != nil {
			return err
		}
		return &retryable{fmt.Errorf("read body at byte %d: %w", dl.n, err)}
	}
	if total >= 0 && dl.n != total {
		return &retryable{fmt.Errorf("body ended at byte %d of %d: %w", dl.n, total, io.ErrUnexpectedEOF)}
	}
	return nil
}

func newRequest(ctx context.Context, method string, p prepared) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, method, p.u.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("build request for %s: %w", p.display, clientError(err))
	}
	if !p.token.IsZero() {
		req.Header.Set("Authorization", p.token.bearer())
	}
	// Ask for the bytes as stored: no transparent decompression, so sizes
	// and ranges refer to the artifact itself.
	req.Header.Set("Accept-Encoding", "identity")
	req.Header.Set("User-Agent", "aivm-operator-artifact")
	return req, nil
}

// clientError strips the URL (which may carry signed query values) from an
// HTTP client error and marks network failures retryable.
func clientError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	var insecure *InsecureTokenError
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) || errors.As(err, &insecure) {
		return err
	}
	var certErr *tls.CertificateVerificationError
	var uaErr x509.UnknownAuthorityError
	var hostErr x509.HostnameError
	var invErr x509.CertificateInvalidError
	if errors.As(err, &certErr) || errors.As(err, &uaErr) || errors.As(err, &hostErr) || errors.As(err, &invErr) {
		return err
	}
	return &retryable{err}
}

// rangeValidator returns the If-Range value that makes a resumed request
// return the same representation: a strong ETag, else Last-Modified.
func rangeValidator(h http.Header) string {
	if etag := h.Get("ETag"); etag != "" && !strings.HasPrefix(etag, "W/") {
		return etag
	}
	return h.Get("Last-Modified")
}

// parseContentRange parses "bytes <start>-<end>/<total>"; total is -1 for "*".
func parseContentRange(s string) (start, total int64, ok bool) {
	rest, found := strings.CutPrefix(s, "bytes ")
	if !found {
		return 0, 0, false
	}
	rng, tot, found := strings.Cut(rest, "/")
	if !found {
		return 0, 0, false
	}
	a, b, found := strings.Cut(rng, "-")
	if !found {
		return 0, 0, false
	}
	start, err1 := strconv.ParseInt(a, 10, 64)
	end, err2 := strconv.ParseInt(b, 10, 64)
	if err1 != nil || err2 != nil || start < 0 || end < start {
		return 0, 0, false
	}
	total = -1
	if tot != "*" {
		t, err := strconv.ParseInt(tot, 10, 64)
		if err != nil || t <= end {
			return 0, 0, false
		}
		total = t
	}
	return start, total, true
}
