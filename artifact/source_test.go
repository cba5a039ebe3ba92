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
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"testing"

	"github.com/aivm-dev/aivm-operator/internal/text"
)

func TestResolveSource(t *testing.T) {
	tests := []struct {
		in, base string
		want     string
		wantErr  string
	}{
		{in: "https://example.com/m/model.gguf?x=1", want: "https://example.com/m/model.gguf?x=1"},
		{in: "http://10.0.0.1:8080/model.bin", want: "http://10.0.0.1:8080/model.bin"},
		{in: "file:///var/models/../models/a.bin", want: "file:///var/models/a.bin"},
		{in: "file://localhost/var/a.bin", want: "file:///var/a.bin"},
		{in: "hf://org/repo/model.gguf@abc123", want: "https://huggingface.co/org/repo/resolve/abc123/model.gguf"},
		{in: "hf://org/repo/sub/dir/model.gguf", want: "https://huggingface.co/org/repo/resolve/main/sub/dir/model.gguf"},
		{in: "hf://org/repo/model.gguf@refs/pr/1", want: "https://huggingface.co/org/repo/resolve/refs%2Fpr%2F1/model.gguf"},
		{in: "hf://org/repo/a b.gguf@v1", base: "http://mirror.local:9000/hf/", want: "http://mirror.local:9000/hf/org/repo/resolve/v1/a%20b.gguf"},
		{in: "", wantErr: "source is empty"},
		{in: "s3://bucket/key", wantErr: `scheme "s3" is not supported`},
		{in: "example.com/model", wantErr: "has no scheme"},
		{in: "https://user:hunter2@example.com/m", wantErr: "credentials in the URI are not allowed"},
		{in: "https:///nohost", wantErr: "missing host"},
		{in: "file://otherhost/a", wantErr: "must be local"},
		{in: "file:relative/a", wantErr: "must be absolute"},
		{in: "hf://org/repo", wantErr: "want hf://<namespace>/<repo>/<file>"},
		{in: "hf://org/repo/model@", wantErr: "empty revision"},
		{in: "hf://org//model", wantErr: "path segment"},
		{in: "hf://org/repo/../x", wantErr: "path segment"},
		{in: "hf://org/repo/m@..", wantErr: "must not contain '..'"},
		{in: "hf://org/repo/m", base: "ftp://x", wantErr: "not an http(s) URL"},
		{in: "https://example.com/" + strings.Repeat("a", 5000), wantErr: "more than 4096"},
	}
	for _, tt := range tests {
		u, err := ResolveSource(tt.in, tt.base)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("ResolveSource(%q) error = %v, want containing %q", text.Shorten(tt.in, 40), err, tt.wantErr)
			}
			if err != nil && strings.Contains(err.Error(), "hunter2") {
				t.Errorf("error leaks the password: %v", err)
			}
			continue
		}
		if err != nil {
			t.Errorf("ResolveSource(%q): %v", tt.in, err)
			continue
		}
		if got := u.String(); got != tt.want {
			t.Errorf("ResolveSource(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestRedactURL(t *testing.T) {
	u, _ := url.Parse("https://u:p@cdn.example/a?X-Amz-Signature=s3cret&b=2")
	got := RedactURL(u)
	want := "https://cdn.example/a?X-Amz-Signature=redacted&b=redacted"
	if got != "https://cdn.example/a?X-Amz-Signature=redacted&b=redacted" && got != "https://cdn.example/a?b=redacted&X-Amz-Signature=redacted" {
		t.Errorf("RedactURL = %q, want %q", got, want)
	}
}

func TestTokenIsRedacted(t *testing.T) {
	const secret = "hf_s3cr3tT0ken"
	req := Request{Source: "https://example.com/m", Digest: strings.Repeat("0", 64), Token: NewToken(secret)}
	outs := []string{
		fmt.Sprint(req.Token), fmt.Sprintf("%v", req), fmt.Sprintf("%+v", req), fmt.Sprintf("%#v", req),
		fmt.Sprintf("%s", req.Token), fmt.Sprintf("%q", req.Token), fmt.Sprintf("%x", req.Token), req.Token.String(),
	}
	js, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	outs = append(outs, string(js))
	for _, o := range outs {
		if strings.Contains(o, secret) || strings.Contains(o, fmt.Sprintf("%x", secret)) {
			t.Errorf("token leaked in %q", o)
		}
		if !strings.Contains(o, redacted) {
			t.Errorf("output %q does not show the redaction marker", o)
		}
	}
	if NewToken("").String() != "" || !NewToken("").IsZero() {
		t.Error("empty token should print empty and be zero")
	}
	if NewToken(secret).bearer() != "Bearer "+secret {
		t.Error("bearer header value is wrong")
	}
}

func TestParseContentRange(t *testing.T) {
	tests := []struct {
		in           string
		start, total int64
		ok           bool
	}{
		{"bytes 0-9/10", 0, 10, true},
		{"bytes 5-9/*", 5, -1, true},
		{"bytes 5-9/9", 0, 0, false},
		{"bytes 9-5/20", 0, 0, false},
		{"bytes -1-5/20", 0, 0, false},
		{"items 0-1/2", 0, 0, false},
		{"bytes 0-1", 0, 0, false},
		{"", 0, 0, false},
	}
	for _, tt := range tests {
		s, tot, ok := parseContentRange(tt.in)
		if s != tt.start || tot != tt.total || ok != tt.ok {
			t.Errorf("parseContentRange(%q) = %d, %d, %v; want %d, %d, %v", tt.in, s, tot, ok, tt.start, tt.total, tt.ok)
		}
	}
}

// FuzzResolveSource checks that resolution never panics, that what it
// accepts is an http(s) or absolute file URL, and that passwords never
// appear in its errors.
func FuzzResolveSource(f *testing.F) {
	for _, s := range []string{
		"https://example.com/a", "hf://org/repo/file@rev", "file:///a/b", "hf://a/b/c/d@refs/pr/1",
		"http://u:pw@h/x", "hf://@", "hf:///", "file://h/x", "::", "https://h/%zz",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		u, err := ResolveSource(s, "")
		if err != nil {
			if pu, perr := url.Parse(s); perr == nil && pu.User != nil {
				if pw, ok := pu.User.Password(); ok && len(pw) > 3 && strings.Contains(err.Error(), pw) {
					t.Fatalf("error leaks password: %v", err)
				}
			}
			return
		}
		switch u.Scheme {
		case SchemeHTTP, SchemeHTTPS:
			if u.Host == "" || u.User != nil {
				t.Fatalf("accepted %q as %q", s, u)
			}
		case SchemeFile:
			if !strings.HasPrefix(u.Path, "/") || strings.Contains(u.Path, "/../") {
				t.Fatalf("accepted %q as %q", s, u)
			}
		default:
			t.Fatalf("accepted %q with scheme %q", s, u.Scheme)
		}
	})
}

// FuzzParseContentRange checks the parser never panics and returns
// consistent values.
func FuzzParseContentRange(f *testing.F) {
	for _, s := range []string{"bytes 0-9/10", "bytes 1-2/*", "bytes 9-1/3", "bytes 0-0/1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		start, total, ok := parseContentRange(s)
		if ok && (start < 0 || (total != -1 && total <= start)) {
			t.Fatalf("parseContentRange(%q) = %d, %d", s, start, total)
		}
	})
}
