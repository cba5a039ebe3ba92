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
	"errors"
	"fmt"
)

// DigestMismatchError reports bytes whose sha256 is not the expected one.
// Nothing is left in the cache when it is returned.
type DigestMismatchError struct {
	// Expected is the digest the caller asked for, lowercase hex.
	Expected string
	// Actual is the digest of the bytes received, lowercase hex.
	Actual string
}

// Error names both digests.
func (e *DigestMismatchError) Error() string {
	return fmt.Sprintf("sha256 mismatch: expected %s, got %s", e.Expected, e.Actual)
}

// SizeMismatchError reports an artifact whose size is not the expected one.
type SizeMismatchError struct {
	// Expected is the size the caller declared, in bytes.
	Expected int64
	// Actual is the size the source announced or delivered, in bytes. When
	// the source delivered more bytes than expected, Actual is a lower bound.
	Actual int64
}

// Error names both sizes.
func (e *SizeMismatchError) Error() string {
	return fmt.Sprintf("size mismatch: expected %d bytes, got %d", e.Expected, e.Actual)
}

// HTTPStatusError reports an HTTP response status that ended a fetch or check.
type HTTPStatusError struct {
	// Source is the URL, with credentials and query values redacted.
	Source string
	// StatusCode is the HTTP status code received.
	StatusCode int
	// Status is the HTTP status line text.
	Status string
}

// Error names the redacted source and the status.
func (e *HTTPStatusError) Error() string {
	return fmt.Sprintf("%s: unexpected HTTP status %s", e.Source, e.Status)
}

// Transient reports whether the status is worth retrying.
func (e *HTTPStatusError) Transient() bool { return transientStatus(e.StatusCode) }

// InsecureTokenError reports a bearer token that would travel in cleartext:
// to a plain http source, or on a redirect from https to http. Nothing is
// sent to that URL.
type InsecureTokenError struct {
	// URL is the refused URL, with credentials and query values redacted.
	URL string
	// Redirect is true when the URL came from a redirect.
	Redirect bool
}

// Error names the redacted URL.
func (e *InsecureTokenError) Error() string {
	if e.Redirect {
		return fmt.Sprintf("refusing redirect to %s: a request with a bearer token is not redirected to plain http", e.URL)
	}
	return fmt.Sprintf("source %s: a bearer token is only sent over https, not plain http", e.URL)
}

// ErrInUse is returned when removing a blob that is pinned.
var ErrInUse = errors.New("artifact is in use")

// ErrNotCached is returned for a digest that is not in the cache.
var ErrNotCached = errors.New("artifact is not cached")

func transientStatus(code int) bool {
	switch {
	case code == 408, code == 425, code == 429:
		return true
	case code >= 500 && code != 501 && code != 505:
		return true
	}
	return false
}

// SourceDigestMismatchError reports a source whose response states a sha256
// other than the expected one (docs/security.md, "Model cache"): the source
// answers, but not with these bytes.
type SourceDigestMismatchError struct {
	// Source is the URL, with credentials and query values redacted.
	Source string
	// Header is the response header that stated the digest.
	Header string
	// Expected is the digest the caller asked for, lowercase hex.
	Expected string
	// Stated is the digest the header stated, lowercase hex.
	Stated string
}

// Error names the source, the header and both digests.
func (e *SourceDigestMismatchError) Error() string {
	return fmt.Sprintf("%s states sha256 %s in %s, not the expected %s", e.Source, e.Stated, e.Header, e.Expected)
}

// AccessDeniedError reports a cached blob that is not served to a request
// because the request's own source and credentials have not shown that
// they can fetch it (docs/security.md, "Model cache"). It names only the
// request's source and digest, never who else holds the blob.
type AccessDeniedError struct {
	// Source is the request's URL, with credentials and query values redacted.
	Source string
	// Digest is the blob's sha256, lowercase hex.
	Digest string
	// Err is why the source did not prove access: an error status, a
	// stated or downloaded digest that differs.
	Err error
}

// Error names the request's source and digest and the cause.
func (e *AccessDeniedError) Error() string {
	return fmt.Sprintf("the cached bytes of sha256 %s are not served: %s did not show it can deliver them: %v", e.Digest, e.Source, e.Err)
}

// Unwrap returns the cause.
func (e *AccessDeniedError) Unwrap() error { return e.Err }
