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
	"strings"
)

// maxRedirects is how many redirects one request follows, as net/http does
// by default.
const maxRedirects = 10

// withTokenRedirectPolicy returns a copy of c whose redirects never carry a
// bearer token in cleartext or to another host: when the first request of
// a chain has an Authorization header, a redirect to a plain http URL is
// refused with an *InsecureTokenError, and a redirect to another host
// (host and port) goes without the header. c's own CheckRedirect, or the
// net/http default of at most maxRedirects, applies after that.
func withTokenRedirectPolicy(c *http.Client) *http.Client {
	next := c.CheckRedirect
	out := *c
	out.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if first := via[0]; first.Header.Get("Authorization") != "" {
			if req.URL.Scheme != SchemeHTTPS {
				return &InsecureTokenError{URL: RedactURL(req.URL), Redirect: true}
			}
			if !strings.EqualFold(req.URL.Host, first.URL.Host) {
				req.Header.Del("Authorization")
			}
		}
		if next != nil {
			return next(req, via)
		}
		if len(via) >= maxRedirects {
			return fmt.Errorf("stopped after %d redirects", maxRedirects)
		}
		return nil
	}
	return &out
}
