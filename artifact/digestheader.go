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
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"strings"

	"github.com/aivm-dev/aivm-operator/internal/sha256hex"
)

// Response headers in which a source states the sha256 of its bytes
// (docs/security.md, "Model cache").
const (
	// HeaderLinkedETag is what the Hugging Face hub sends on a HEAD or GET
	// of resolve/<revision>/<file> for a Git LFS file: the LFS oid, which is
	// the file's sha256, quoted. The hub answers it only to a caller that
	// may read the repository (for a gated one: with a token that accepted
	// its licence).
	HeaderLinkedETag = "X-Linked-Etag"
	// HeaderReprDigest is RFC 9530's Repr-Digest: "sha-256=:<base64>:".
	HeaderReprDigest = "Repr-Digest"
	// HeaderDigest is RFC 3230's Digest: "SHA-256=<base64>".
	HeaderDigest = "Digest"
	// HeaderETag is an entity tag. It is opaque in HTTP, so only an ETag
	// that equals the expected sha256 counts (some stores use the sha256 as
	// the ETag); one that differs states nothing.
	HeaderETag = "ETag"
)

// statedDigest is a sha256 a response header states for the source's bytes.
type statedDigest struct {
	header string
	sha256 string // lowercase hex
	// binding is true where the header's meaning is the content's sha256,
	// so a value other than the expected one is a mismatch; an ETag is
	// not binding.
	binding bool
}

// statedDigests reads the sha256 values the headers of one response state.
func statedDigests(h http.Header) []statedDigest {
	var out []statedDigest
	if v := h.Get(HeaderLinkedETag); v != "" {
		if d, ok := quotedHex(v); ok {
			out = append(out, statedDigest{header: HeaderLinkedETag, sha256: d, binding: true})
		}
	}
	for _, name := range []string{HeaderReprDigest, HeaderDigest} {
		for _, v := range h.Values(name) {
			for _, d := range digestFieldSHA256(v) {
				out = append(out, statedDigest{header: name, sha256: d, binding: true})
			}
		}
	}
	if v := h.Get(HeaderETag); v != "" && !strings.HasPrefix(v, "W/") {
		if d, ok := quotedHex(v); ok {
			out = append(out, statedDigest{header: HeaderETag, sha256: d})
		}
	}
	return out
}

// quotedHex returns the lowercase sha256 hex an entity tag holds
// ("<64 hex>", with or without quotes, a weak prefix dropped).
func quotedHex(v string) (string, bool) {
	v = strings.TrimPrefix(strings.TrimSpace(v), "W/")
	v = strings.Trim(v, `"`)
	d := strings.ToLower(v)
	return d, sha256hex.IsCanonical(d)
}

// digestFieldSHA256 returns the sha-256 values of a Repr-Digest or Digest
// field: comma-separated "algorithm=value" members, the value base64
// (RFC 3230) or a byte sequence ":base64:" (RFC 9530).
func digestFieldSHA256(v string) []string {
	var out []string
	for member := range strings.SplitSeq(v, ",") {
		alg, val, ok := strings.Cut(strings.TrimSpace(member), "=")
		if !ok || !strings.EqualFold(strings.TrimSpace(alg), "sha-256") {
			continue
		}
		val = strings.TrimSpace(val)
		if i := strings.IndexByte(val, ';'); i >= 0 { // parameters
			val = val[:i]
		}
		val = strings.Trim(val, ":")
		raw, err := base64.StdEncoding.DecodeString(val)
		if err != nil || len(raw) != 32 {
			continue
		}
		out = append(out, hex.EncodeToString(raw))
	}
	return out
}

// digestVerdict is what the stated digests of a source say about want.
type digestVerdict struct {
	// match names the header that stated want, or "" when none did.
	match string
	// mismatch is the first binding statement of another digest, when no
	// header stated want.
	mismatch *statedDigest
}

func judgeDigests(stated []statedDigest, want string) digestVerdict {
	var v digestVerdict
	for i, s := range stated {
		if s.sha256 == want {
			return digestVerdict{match: s.header}
		}
		if s.binding && v.mismatch == nil {
			v.mismatch = &stated[i]
		}
	}
	return v
}
