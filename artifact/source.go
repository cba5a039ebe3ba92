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
	"fmt"
	"net/url"
	"path"
	"sort"
	"strings"

	"github.com/aivm-dev/aivm-operator/internal/modeldigest"
	"github.com/aivm-dev/aivm-operator/internal/text"
)

// DefaultHFBaseURL is the Hugging Face endpoint hf:// sources resolve against
// unless a Fetcher is given another one.
const DefaultHFBaseURL = "https://huggingface.co"

// DefaultHFRevision is the revision of an hf:// source that names none.
const DefaultHFRevision = "main"

// Source schemes.
const (
	SchemeHTTPS = "https"
	SchemeHTTP  = "http"
	SchemeFile  = "file"
	SchemeHF    = "hf"
)

// maxSourceLen bounds a source URI.
const maxSourceLen = 4096

// ResolveSource parses a source URI and returns the URL it is fetched from:
// an http(s) URL, or a file URL with an absolute, clean path. hf:// sources
// are resolved against hfBase (DefaultHFBaseURL when empty).
func ResolveSource(raw, hfBase string) (*url.URL, error) {
	if raw == "" {
		return nil, fmt.Errorf("source is empty")
	}
	if len(raw) > maxSourceLen {
		return nil, fmt.Errorf("source is %d characters long, more than %d", len(raw), maxSourceLen)
	}
	u, err := url.Parse(raw)
	if err != nil {
		// url.Parse errors quote the input, which may hold credentials.
		return nil, fmt.Errorf("source is not a valid URI")
	}
	if u.User != nil {
		return nil, fmt.Errorf("source %s: credentials in the URI are not allowed; reference a Secret holding a bearer token instead", RedactURL(u))
	}
	switch u.Scheme {
	case SchemeHTTPS, SchemeHTTP:
		if u.Host == "" {
			return nil, fmt.Errorf("source %s: missing host", RedactURL(u))
		}
		u.Fragment = ""
		return u, nil
	case SchemeFile:
		if u.Host != "" && u.Host != "localhost" {
			return nil, fmt.Errorf("source %s: file sources must be local (file:///path), not on host %q", RedactURL(u), u.Host)
		}
		if !path.IsAbs(u.Path) {
			return nil, fmt.Errorf("source %s: file path must be absolute", RedactURL(u))
		}
		if u.RawQuery != "" || u.Fragment != "" {
			return nil, fmt.Errorf("source %s: file sources take no query or fragment", RedactURL(u))
		}
		return &url.URL{Scheme: SchemeFile, Path: path.Clean(u.Path)}, nil
	case SchemeHF:
		return resolveHF(raw, u, hfBase)
	case "":
		return nil, fmt.Errorf("source %q has no scheme; want https://, http://, file:// or hf://", text.Shorten(raw, 80))
	default:
		return nil, fmt.Errorf("source scheme %q is not supported; want https, http, file or hf", u.Scheme)
	}
}

// resolveHF turns hf://<namespace>/<repo>/<file>[@<revision>] into
// <base>/<namespace>/<repo>/resolve/<revision>/<file>.
func resolveHF(raw string, u *url.URL, hfBase string) (*url.URL, error) {
	const form = "want hf://<namespace>/<repo>/<file>[@<revision>]"
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("source %q: hf sources take no query or fragment; %s", text.Shorten(raw, 120), form)
	}
	rest := strings.TrimPrefix(raw, "hf://")
	if rest == raw {
		return nil, fmt.Errorf("source %q: %s", text.Shorten(raw, 120), form)
	}
	revision := DefaultHFRevision
	if i := strings.LastIndexByte(rest, '@'); i >= 0 {
		revision = rest[i+1:]
		rest = rest[:i]
		if revision == "" {
			return nil, fmt.Errorf("source %q: empty revision after '@'; %s", text.Shorten(raw, 120), form)
		}
	}
	parts := strings.Split(rest, "/")
	if len(parts) < 3 {
		return nil, fmt.Errorf("source %q: %s", text.Shorten(raw, 120), form)
	}
	for _, p := range parts {
		if p == "" || p == "." || p == ".." {
			return nil, fmt.Errorf("source %q: empty, '.' or '..' path segment; %s", text.Shorten(raw, 120), form)
		}
	}
	if strings.Contains(revision, "..") {
		return nil, fmt.Errorf("source %q: revision must not contain '..'", text.Shorten(raw, 120))
	}
	return hfResolveURL(hfBase, parts[0], parts[1], revision, parts[2:])
}

// hfResolveURL returns <base>/<namespace>/<repo>/resolve/<revision>/<file
// segments>, each segment escaped, as the hub serves a repository file.
func hfResolveURL(hfBase, namespace, repo, revision string, file []string) (*url.URL, error) {
	if hfBase == "" {
		hfBase = DefaultHFBaseURL
	}
	base, err := url.Parse(hfBase)
	if err != nil || (base.Scheme != SchemeHTTPS && base.Scheme != SchemeHTTP) || base.Host == "" {
		return nil, fmt.Errorf("hugging face base URL %q is not an http(s) URL", text.Shorten(hfBase, 120))
	}
	segs := []string{namespace, repo, "resolve", revision}
	segs = append(segs, file...)
	return appendSegments(base, segs), nil
}

// appendSegments returns base with segs appended to its path, each escaped,
// and without query or fragment.
func appendSegments(base *url.URL, segs []string) *url.URL {
	escaped := make([]string, len(segs))
	for i, s := range segs {
		escaped[i] = url.PathEscape(s)
	}
	out := *base
	out.RawQuery, out.Fragment = "", ""
	out.Path = strings.TrimSuffix(base.Path, "/") + "/" + strings.Join(segs, "/")
	out.RawPath = strings.TrimSuffix(base.EscapedPath(), "/") + "/" + strings.Join(escaped, "/")
	return &out
}

// ResolveBase returns the URL a file set's file at path (relative, '/'
// separated) is fetched from under base: https://, http:// or file:///
// base directories get path appended (a base without a trailing '/' is
// still a directory); hf://<namespace>/<repo>@<revision> resolves to
// <hfBase>/<namespace>/<repo>/resolve/<revision>/<path>, the way the hub
// serves a repository file (an LFS file's sha256 is its LFS oid).
func ResolveBase(base, filePath, hfBase string) (*url.URL, error) {
	if err := modeldigest.ValidatePath(filePath); err != nil {
		return nil, err
	}
	segs := strings.Split(filePath, "/")
	if rest, ok := strings.CutPrefix(base, "hf://"); ok {
		const form = "want hf://<namespace>/<repo>@<revision>"
		repoPart, revision, found := strings.Cut(rest, "@")
		if !found || revision == "" || strings.Contains(revision, "..") || strings.ContainsAny(revision, "?#@") {
			return nil, fmt.Errorf("base uri %q: %s", text.Shorten(base, 120), form)
		}
		parts := strings.Split(repoPart, "/")
		if len(parts) != 2 || parts[0] == "" || parts[1] == "" || parts[0] == "." || parts[0] == ".." || parts[1] == "." || parts[1] == ".." {
			return nil, fmt.Errorf("base uri %q: %s", text.Shorten(base, 120), form)
		}
		return hfResolveURL(hfBase, parts[0], parts[1], revision, segs)
	}
	u, err := ResolveSource(base, hfBase)
	if err != nil {
		return nil, fmt.Errorf("base uri: %w", err)
	}
	if u.Scheme == SchemeFile {
		return &url.URL{Scheme: SchemeFile, Path: path.Join(u.Path, filePath)}, nil
	}
	out := appendSegments(u, segs)
	out.RawQuery = u.RawQuery
	return out, nil
}

// RedactURL renders u without user information and with every query value
// replaced, so signed URLs and credentials do not reach logs or errors.
func RedactURL(u *url.URL) string {
	if u == nil {
		return ""
	}
	c := *u
	c.User = nil
	if c.RawQuery != "" {
		q := c.Query()
		keys := make([]string, 0, len(q))
		for k := range q {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		parts := make([]string, len(keys))
		for i, k := range keys {
			parts[i] = url.QueryEscape(k) + "=redacted"
		}
		c.RawQuery = strings.Join(parts, "&")
	}
	return c.String()
}
