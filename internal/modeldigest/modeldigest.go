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

// Package modeldigest computes a Model's identity, status.modelDigest: for a
// single-file Model its spec.sha256 (so Kernel digests of single-file Models
// keep their values), for a file set the sha256 of a canonical manifest.
//
// # Canonical manifest (version 1)
//
// Lines, each ending in "\n". The first line is the version tag
//
//	aivm.dev/model-manifest/v1
//
// then one line per file, sorted by path in byte order:
//
//	<byte length of path>:<path> <sha256> <size>
//
// sha256 is 64 lowercase hex characters; size is the decimal sizeBytes, or
// "-" when the spec does not give it. The length prefix keeps the encoding
// unambiguous whatever bytes a path holds. Neither the order of spec.files
// nor any uri enters it: the manifest names the bytes, not where they come
// from. docs/models.md has the golden value.
package modeldigest

import (
	"bytes"
	"fmt"
	"net/url"
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/aivm-dev/aivm-operator/api/v1alpha1"
	"github.com/aivm-dev/aivm-operator/internal/sha256hex"
	"github.com/aivm-dev/aivm-operator/internal/text"
)

// Version is the first line of the canonical manifest.
const Version = "aivm.dev/model-manifest/v1"

// File is one entry of a manifest.
type File struct {
	// Path is the file's relative path in the model directory.
	Path string
	// SHA256 is the file's digest, 64 lowercase hex characters.
	SHA256 string
	// Size is the file's size in bytes, or -1 when unknown.
	Size int64
}

// Files returns a Model's files: its file set, or for a single-file Model
// one file named by the base name of its uri (see BaseName).
func Files(spec *v1alpha1.ModelSpec) ([]File, error) {
	if spec == nil {
		return nil, fmt.Errorf("model spec is required")
	}
	if len(spec.Files) == 0 {
		if spec.SHA256 == "" {
			return nil, fmt.Errorf("model has neither sha256 nor files")
		}
		size := int64(-1)
		if spec.SizeBytes != nil {
			size = *spec.SizeBytes
		}
		return []File{{Path: BaseName(spec.URI), SHA256: spec.SHA256, Size: size}}, nil
	}
	out := make([]File, len(spec.Files))
	for i, f := range spec.Files {
		size := int64(-1)
		if f.SizeBytes != nil {
			size = *f.SizeBytes
		}
		out[i] = File{Path: f.Path, SHA256: f.SHA256, Size: size}
	}
	return out, nil
}

// Of returns a Model's modelDigest (lowercase hex, no prefix).
func Of(spec *v1alpha1.ModelSpec) (string, error) {
	if spec == nil {
		return "", fmt.Errorf("model spec is required")
	}
	if len(spec.Files) == 0 {
		if !sha256hex.IsCanonical(spec.SHA256) {
			return "", fmt.Errorf("model sha256 %q is not 64 lowercase hexadecimal characters", text.Shorten(spec.SHA256, 80))
		}
		return spec.SHA256, nil
	}
	files, err := Files(spec)
	if err != nil {
		return "", err
	}
	m, err := Manifest(files)
	if err != nil {
		return "", err
	}
	return sha256hex.Of(m), nil
}

// Manifest returns the canonical manifest of files. It fails on an invalid
// path or digest and on duplicate paths.
func Manifest(files []File) ([]byte, error) {
	sorted := slices.Clone(files)
	slices.SortFunc(sorted, func(a, b File) int { return strings.Compare(a.Path, b.Path) })
	var b bytes.Buffer
	b.WriteString(Version)
	b.WriteByte('\n')
	for i, f := range sorted {
		if err := ValidatePath(f.Path); err != nil {
			return nil, err
		}
		if i > 0 && sorted[i-1].Path == f.Path {
			return nil, fmt.Errorf("path %q is listed twice", text.Shorten(f.Path, 120))
		}
		if !sha256hex.IsCanonical(f.SHA256) {
			return nil, fmt.Errorf("file %q: sha256 %q is not 64 lowercase hexadecimal characters", text.Shorten(f.Path, 120), text.Shorten(f.SHA256, 80))
		}
		size := "-"
		if f.Size >= 0 {
			size = strconv.FormatInt(f.Size, 10)
		}
		fmt.Fprintf(&b, "%d:%s %s %s\n", len(f.Path), f.Path, f.SHA256, size)
	}
	return b.Bytes(), nil
}

// ParseManifest parses a canonical manifest.
func ParseManifest(data []byte) ([]File, error) {
	rest, ok := bytes.CutPrefix(data, []byte(Version+"\n"))
	if !ok {
		return nil, fmt.Errorf("manifest does not start with %s", Version)
	}
	var out []File
	for len(rest) > 0 {
		colon := bytes.IndexByte(rest, ':')
		if colon < 0 {
			return nil, fmt.Errorf("manifest entry %d: no path length", len(out))
		}
		n, err := strconv.Atoi(string(rest[:colon]))
		if err != nil || n < 0 || colon+1+n > len(rest) {
			return nil, fmt.Errorf("manifest entry %d: bad path length", len(out))
		}
		p := string(rest[colon+1 : colon+1+n])
		rest = rest[colon+1+n:]
		nl := bytes.IndexByte(rest, '\n')
		if nl < 0 {
			return nil, fmt.Errorf("manifest entry %d: unterminated line", len(out))
		}
		fields := strings.Fields(string(rest[:nl]))
		rest = rest[nl+1:]
		if len(fields) != 2 {
			return nil, fmt.Errorf("manifest entry %d: want sha256 and size after the path", len(out))
		}
		size := int64(-1)
		if fields[1] != "-" {
			if size, err = strconv.ParseInt(fields[1], 10, 64); err != nil || size < 0 {
				return nil, fmt.Errorf("manifest entry %d: bad size %q", len(out), text.Shorten(fields[1], 40))
			}
		}
		out = append(out, File{Path: p, SHA256: fields[0], Size: size})
	}
	// Re-encoding proves the entries are valid, sorted and unique.
	again, err := Manifest(out)
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(again, data) {
		return nil, fmt.Errorf("manifest is not in canonical form")
	}
	return out, nil
}

// ValidatePath checks a file set path as admission does: relative, '/'
// separated, no empty, '.' or '..' segment, no backslash or NUL.
func ValidatePath(p string) error {
	switch {
	case p == "":
		return fmt.Errorf("path is empty")
	case len(p) > 1024:
		return fmt.Errorf("path %q is longer than 1024 bytes", text.Shorten(p, 120))
	case strings.HasPrefix(p, "/"):
		return fmt.Errorf("path %q must be relative", text.Shorten(p, 120))
	case strings.ContainsRune(p, '\\'):
		return fmt.Errorf("path %q must use '/', not a backslash", text.Shorten(p, 120))
	case strings.ContainsRune(p, 0):
		return fmt.Errorf("path %q must not contain a NUL character", text.Shorten(p, 120))
	}
	for _, seg := range strings.Split(p, "/") {
		switch seg {
		case "":
			return fmt.Errorf("path %q has an empty segment", text.Shorten(p, 120))
		case ".", "..":
			return fmt.Errorf("path %q must not contain a %q segment", text.Shorten(p, 120), seg)
		}
	}
	return nil
}

// BaseName is the file name a single-file Model's snapshot holds its file
// under: the last segment of the uri's path (of the file part for hf://),
// without query or fragment; "model" when there is none.
func BaseName(uri string) string {
	var p string
	if rest, ok := strings.CutPrefix(uri, "hf://"); ok {
		if i := strings.LastIndexByte(rest, '@'); i >= 0 {
			rest = rest[:i]
		}
		if strings.Count(rest, "/") >= 2 {
			p = rest
		}
	} else if u, err := url.Parse(uri); err == nil {
		p = u.Path
	}
	if p == "" || strings.HasSuffix(p, "/") {
		return "model"
	}
	b := path.Base(p)
	if ValidatePath(b) != nil {
		return "model"
	}
	return b
}
