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

package modeldigest

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/aivm-dev/aivm-operator/api/v1alpha1"
)

func sum(s string) string {
	b := sha256.Sum256([]byte(s))
	return hex.EncodeToString(b[:])
}

func ptr(n int64) *int64 { return &n }

// goldenSpec is the example of docs/models.md.
func goldenSpec() *v1alpha1.ModelSpec {
	return &v1alpha1.ModelSpec{BaseURI: "hf://acme/tiny@main", Files: []v1alpha1.ModelFile{
		{Path: "model.safetensors", SHA256: sum("weights"), SizeBytes: ptr(7)},
		{Path: "config.json", SHA256: sum("{}"), SizeBytes: ptr(2)},
		{Path: "tokenizer.json", SHA256: sum("tok")},
	}}
}

// TestGolden pins the canonical manifest and modelDigest of docs/models.md.
func TestGolden(t *testing.T) {
	const golden = "7d07b556a88cf52d4a7fad59e9e45bac740a4c78d4293ca860b70cf8dec20c62"
	files, err := Files(goldenSpec())
	if err != nil {
		t.Fatal(err)
	}
	m, err := Manifest(files)
	if err != nil {
		t.Fatal(err)
	}
	want := "aivm.dev/model-manifest/v1\n" +
		"11:config.json " + sum("{}") + " 2\n" +
		"17:model.safetensors " + sum("weights") + " 7\n" +
		"14:tokenizer.json " + sum("tok") + " -\n"
	if string(m) != want {
		t.Errorf("manifest:\n%s\nwant:\n%s", m, want)
	}
	d, err := Of(goldenSpec())
	if err != nil || d != golden {
		t.Errorf("modelDigest = %s, %v; want %s", d, err, golden)
	}
	parsed, err := ParseManifest(m)
	if err != nil || len(parsed) != 3 || parsed[2].Size != -1 || parsed[0].Path != "config.json" {
		t.Errorf("ParseManifest = %+v, %v", parsed, err)
	}
}

// TestDigestChanges: the digest follows every file's digest, size and path,
// and not the order of files or where they come from.
func TestDigestChanges(t *testing.T) {
	base, _ := Of(goldenSpec())
	edits := map[string]func(*v1alpha1.ModelSpec){
		"a file's sha256": func(s *v1alpha1.ModelSpec) { s.Files[2].SHA256 = sum("other") },
		"a file's size":   func(s *v1alpha1.ModelSpec) { s.Files[0].SizeBytes = ptr(8) },
		"a path":          func(s *v1alpha1.ModelSpec) { s.Files[1].Path = "config2.json" },
		"a file added": func(s *v1alpha1.ModelSpec) {
			s.Files = append(s.Files, v1alpha1.ModelFile{Path: "x", SHA256: sum("x")})
		},
	}
	for name, edit := range edits {
		s := goldenSpec()
		edit(s)
		if d, err := Of(s); err != nil || d == base {
			t.Errorf("changing %s: digest %s, %v; want a new digest", name, d, err)
		}
	}
	same := map[string]func(*v1alpha1.ModelSpec){
		"file order": func(s *v1alpha1.ModelSpec) { s.Files[0], s.Files[2] = s.Files[2], s.Files[0] },
		"base uri":   func(s *v1alpha1.ModelSpec) { s.BaseURI = "https://mirror.example/tiny/" },
		"a file uri": func(s *v1alpha1.ModelSpec) { s.Files[1].URI = "https://elsewhere.example/config.json" },
	}
	for name, edit := range same {
		s := goldenSpec()
		edit(s)
		if d, err := Of(s); err != nil || d != base {
			t.Errorf("changing %s: digest %s, %v; want %s", name, d, err, base)
		}
	}
}

// TestSingleFileDigestIsSHA256: a single-file Model's modelDigest is its
// sha256, so Kernel digests made before file sets keep their value.
func TestSingleFileDigestIsSHA256(t *testing.T) {
	s := &v1alpha1.ModelSpec{URI: "https://example.com/m.gguf", SHA256: sum("w")}
	if d, err := Of(s); err != nil || d != sum("w") {
		t.Errorf("Of = %s, %v", d, err)
	}
}

func TestValidatePath(t *testing.T) {
	for _, p := range []string{"", "/abs", "a/../b", "..", "a//b", `a\b`, "a\x00b", "./a", "a/", "a/."} {
		if err := ValidatePath(p); err == nil {
			t.Errorf("ValidatePath(%q) accepted", p)
		}
	}
	for _, p := range []string{"config.json", "a/b/c.safetensors", "..a", "a..b/c", ".hidden"} {
		if err := ValidatePath(p); err != nil {
			t.Errorf("ValidatePath(%q) = %v", p, err)
		}
	}
	if _, err := Manifest([]File{{Path: "a", SHA256: sum("1"), Size: -1}, {Path: "a", SHA256: sum("2"), Size: -1}}); err == nil || !strings.Contains(err.Error(), "twice") {
		t.Errorf("duplicate paths: %v", err)
	}
}

func TestBaseName(t *testing.T) {
	for uri, want := range map[string]string{
		"https://h/models/m.gguf?sig=1#x":  "m.gguf",
		"https://h/models/my%20model.gguf": "my model.gguf",
		"hf://org/repo/dir/w.gguf@main":    "w.gguf",
		"hf://org/repo/w.gguf@refs/pr/1":   "w.gguf",
		"file:///var/models/llama.gguf":    "llama.gguf",
		"https://h/":                       "model",
		"https://h":                        "model",
	} {
		if got := BaseName(uri); got != want {
			t.Errorf("BaseName(%q) = %q, want %q", uri, got, want)
		}
	}
}
