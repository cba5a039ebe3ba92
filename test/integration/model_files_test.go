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

package integration

import (
	"context"
	"fmt"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
)

const fileSetModel = `
apiVersion: aivm.dev/v1alpha1
kind: Model
metadata: {name: fs}
spec:
  baseURI: hf://openai-community/gpt2@607a30d783dfa663caf39e06633721c8d4cfcd7e
  files:
  - {path: config.json, sha256: "1111111111111111111111111111111111111111111111111111111111111111", sizeBytes: 665}
  - {path: model.safetensors, sha256: "2222222222222222222222222222222222222222222222222222222222222222"}
  - {path: tokenizer/tokenizer.json, sha256: "3333333333333333333333333333333333333333333333333333333333333333"}
  gpuMemory: 1Gi
`

var fileDigest = strings.Repeat("ab", 32)

// files returns a spec.files list of the given paths.
func files(paths ...string) []any {
	out := make([]any, len(paths))
	for i, p := range paths {
		out[i] = map[string]any{"path": p, "sha256": fileDigest}
	}
	return out
}

// manyFiles returns a list of n distinct paths.
func manyFiles(n int) []any {
	paths := make([]string, n)
	for i := range paths {
		paths[i] = fmt.Sprintf("shard-%04d.safetensors", i)
	}
	return files(paths...)
}

// TestModelFileSetAdmission creates valid and invalid file-set Models: the
// valid ones are accepted, each invalid one is refused with a message that
// names the field and the rule.
func TestModelFileSetAdmission(t *testing.T) {
	ctx := context.Background()
	createNamespace(t, "filesets")
	cases := []struct {
		name  string
		base  string
		edits []edit
		want  []string // nil: accepted; else substrings of the refusal
	}{
		{"hugging face directory", fileSetModel, nil, nil},
		{"https base", fileSetModel, []edit{{"spec.baseURI", "https://models.example.com/gpt2/"}}, nil},
		{"files with own uris", fileSetModel, []edit{{"spec.baseURI", nil}, {"spec.files", []any{
			map[string]any{"path": "a.gguf", "sha256": fileDigest, "uri": "https://models.example.com/a.gguf"}}}}, nil},
		{"512 files", fileSetModel, []edit{{"spec.files", manyFiles(512)}}, nil},
		{"single file form still valid", validModel, nil, nil},

		{"absolute path", fileSetModel, []edit{{"spec.files", files("/etc/passwd")}}, []string{"spec.files[0].path", "must be relative"}},
		{"dot-dot segment", fileSetModel, []edit{{"spec.files", files("config.json", "a/../../b")}}, []string{"spec.files[1].path", "'..' segment"}},
		{"dot-dot alone", fileSetModel, []edit{{"spec.files", files("..")}}, []string{"spec.files[0].path", "'..' segment"}},
		{"leading dot-dot", fileSetModel, []edit{{"spec.files", files("../x")}}, []string{"spec.files[0].path", "'..' segment"}},
		{"double slash", fileSetModel, []edit{{"spec.files", files("a//b")}}, []string{"spec.files[0].path", "'//'"}},
		{"backslash", fileSetModel, []edit{{"spec.files", files(`a\b`)}}, []string{"spec.files[0].path", "backslash"}},
		{"nul", fileSetModel, []edit{{"spec.files", files("a\x00b")}}, []string{"spec.files[0].path", "NUL"}},
		{"empty path", fileSetModel, []edit{{"spec.files", files("")}}, []string{"spec.files[0].path"}},
		{"dot segment", fileSetModel, []edit{{"spec.files", files("./config.json")}}, []string{"spec.files[0].path", "'.' segment"}},
		{"trailing slash", fileSetModel, []edit{{"spec.files", files("tokenizer/")}}, []string{"spec.files[0].path", "not end with '/'"}},
		{"duplicate paths", fileSetModel, []edit{{"spec.files", files("config.json", "config.json")}}, []string{"spec.files[1]", "Duplicate value"}},
		{"513 files", fileSetModel, []edit{{"spec.files", manyFiles(513)}}, []string{"spec.files", "must have at most 512 items"}},
		{"empty file list", fileSetModel, []edit{{"spec.files", []any{}}}, []string{"spec.files"}},
		{"both forms", fileSetModel, []edit{{"spec.uri", "https://models.example.com/m.gguf"}, {"spec.sha256", fileDigest}}, []string{"spec.files", "files and uri are mutually exclusive"}},
		{"neither form", fileSetModel, []edit{{"spec.baseURI", nil}, {"spec.files", nil}}, []string{"spec.uri", "one of uri (with sha256) or files is required"}},
		{"file without uri and no base", fileSetModel, []edit{{"spec.baseURI", nil}}, []string{"spec.files", "every file needs its own uri when baseURI is not set"}},
		{"base with single file", validModel, []edit{{"spec.baseURI", "https://models.example.com/"}}, []string{"spec.baseURI", "baseURI applies only to files"}},
		{"hf base without revision", fileSetModel, []edit{{"spec.baseURI", "hf://org/repo"}}, []string{"spec.baseURI", "hf://<org>/<repo>@<revision>"}},
		{"ftp base", fileSetModel, []edit{{"spec.baseURI", "ftp://example.com/"}}, []string{"spec.baseURI", "must start with https://, http://, file:/// or hf://"}},
		{"uppercase file digest", fileSetModel, []edit{{"spec.files", []any{map[string]any{"path": "a", "sha256": strings.Repeat("AB", 32)}}}}, []string{"spec.files[0].sha256", "should match"}},
		{"sha256 with files", fileSetModel, []edit{{"spec.sha256", fileDigest}}, []string{"spec.sha256", "sha256 goes with uri"}},
		{"credentials over http base", fileSetModel, []edit{{"spec.baseURI", "http://models.example.com/"}, {"spec.credentialsSecretRef", map[string]any{"name": "t"}}}, []string{"credentialsSecretRef applies only to https:// and hf:// sources"}},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			obj := parse(t, tc.base)
			obj.SetName(fmt.Sprintf("fs-%d", i))
			obj.SetNamespace("filesets")
			apply(t, obj, tc.edits)
			err := k8sClient.Create(ctx, obj)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("refused, want accepted: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("accepted, want refusal mentioning %q", tc.want)
			}
			if !apierrors.IsInvalid(err) && !apierrors.IsBadRequest(err) {
				t.Fatalf("got %v, want an Invalid error", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not mention %q:\n%v", w, err)
				}
			}
		})
	}
}
