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
	"net/http"
	"net/url"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/utils/clock"

	"github.com/aivm-dev/aivm-operator/internal/text"
)

// Defaults for a Fetcher.
const (
	// DefaultMaxTotalTime bounds one fetch, retries included.
	DefaultMaxTotalTime = 2 * time.Hour
	// DefaultRetryInitial is the first wait before retrying a transient error.
	DefaultRetryInitial = 500 * time.Millisecond
	// DefaultRetryMax caps the wait between retries.
	DefaultRetryMax = 30 * time.Second
	// DefaultMaxRetries is how many consecutive attempts may fail without
	// receiving a byte before the fetch gives up (progress resets the count).
	DefaultMaxRetries = 8
	// DefaultStallTimeout is how long a download may go without receiving a
	// byte (response headers included) before the attempt is abandoned and
	// retried, resuming where it stopped.
	DefaultStallTimeout = time.Minute
)

// config is shared by Fetcher and Checker.
type config struct {
	client       *http.Client
	hfBase       string
	maxTotal     time.Duration
	retryInitial time.Duration
	retryMax     time.Duration
	maxRetries   int
	stall        time.Duration
	// fileConcurrency bounds the parallel fetches of one snapshot.
	fileConcurrency int
	clock           clock.Clock
	log             logr.Logger
	// publicPrefixes are the sources the provider declared public
	// (WithPublicSources); public is their parsed form.
	publicPrefixes []string
	public         publicSources
}

// Option configures a Fetcher or a Checker.
type Option func(*config)

// WithHTTPClient sets the HTTP client (for proxies, custom CAs, timeouts).
// The client is not modified; a copy adds the redirect policy that keeps
// bearer tokens off plain http and other hosts.
func WithHTTPClient(c *http.Client) Option { return func(o *config) { o.client = c } }

// WithHFBaseURL sets the base URL hf:// sources resolve against, such as a
// mirror. The default is DefaultHFBaseURL.
func WithHFBaseURL(base string) Option { return func(o *config) { o.hfBase = base } }

// WithMaxTotalTime bounds one fetch, retries and waits included.
func WithMaxTotalTime(d time.Duration) Option { return func(o *config) { o.maxTotal = d } }

// WithRetryBackoff sets the exponential backoff between retries of
// transient errors, and how many attempts in a row may fail without progress.
func WithRetryBackoff(initial, maxWait time.Duration, maxRetries int) Option {
	return func(o *config) {
		o.retryInitial, o.retryMax, o.maxRetries = initial, maxWait, maxRetries
	}
}

// WithStallTimeout sets how long a download attempt may receive nothing
// before it is abandoned and retried.
func WithStallTimeout(d time.Duration) Option { return func(o *config) { o.stall = d } }

// WithFileConcurrency sets how many files of one snapshot are fetched at
// once (DefaultFileConcurrency by default).
func WithFileConcurrency(n int) Option { return func(o *config) { o.fileConcurrency = n } }

// WithPublicSources declares URL prefixes (https://host/path, http://...,
// file:///dir) under which everything is public: a blob fetched from under
// one without a credential is served to any request of its digest, whatever
// its source (docs/security.md, "Model cache"). Without it a credential-less
// fetch is shared only with requests of the same source. Do not list a
// host that serves gated or private files, such as https://huggingface.co.
func WithPublicSources(prefixes ...string) Option {
	return func(o *config) { o.publicPrefixes = append(o.publicPrefixes, prefixes...) }
}

// WithClock sets the clock that times retry and lock waits.
func WithClock(c clock.Clock) Option { return func(o *config) { o.clock = c } }

// WithLogger sets the logger. Tokens are never logged; URLs are logged
// without credentials and query values.
func WithLogger(l logr.Logger) Option { return func(o *config) { o.log = l } }

func newConfig(opts []Option) (config, error) {
	c := config{
		client:          http.DefaultClient,
		hfBase:          DefaultHFBaseURL,
		maxTotal:        DefaultMaxTotalTime,
		retryInitial:    DefaultRetryInitial,
		retryMax:        DefaultRetryMax,
		maxRetries:      DefaultMaxRetries,
		stall:           DefaultStallTimeout,
		fileConcurrency: DefaultFileConcurrency,
		clock:           clock.RealClock{},
		log:             logr.Discard(),
	}
	for _, o := range opts {
		o(&c)
	}
	if c.client == nil {
		return c, fmt.Errorf("http client is nil")
	}
	c.client = withTokenRedirectPolicy(c.client)
	if u, err := url.Parse(c.hfBase); err != nil || (u.Scheme != SchemeHTTPS && u.Scheme != SchemeHTTP) || u.Host == "" || u.User != nil {
		return c, fmt.Errorf("hugging face base URL %q is not an http(s) URL without credentials", text.Shorten(c.hfBase, 120))
	}
	public, err := parsePublicSources(c.publicPrefixes)
	if err != nil {
		return c, err
	}
	c.public = public
	if c.maxTotal <= 0 {
		return c, fmt.Errorf("maximum fetch time %s is not positive", c.maxTotal)
	}
	if c.retryInitial <= 0 || c.retryMax < c.retryInitial {
		return c, fmt.Errorf("retry backoff %s..%s is invalid: want 0 < initial <= max", c.retryInitial, c.retryMax)
	}
	if c.maxRetries < 0 {
		return c, fmt.Errorf("retry count %d is negative", c.maxRetries)
	}
	if c.stall <= 0 {
		return c, fmt.Errorf("stall timeout %s is not positive", c.stall)
	}
	if c.fileConcurrency < 1 {
		return c, fmt.Errorf("file concurrency %d is below 1", c.fileConcurrency)
	}
	if c.clock == nil {
		return c, fmt.Errorf("clock is nil")
	}
	return c, nil
}
