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

package runner

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkRunOverhead is the runtime's cost outside the engine: reading
// the environment, input and model directory, building the envelope with its
// digests, a fresh TLS connection and post to a local endpoint, and the
// termination message. The engine is trivial; the model directory holds a
// 1 MiB file the engine does not read (the runtime never does either).
// Target: under 50 ms per run.
func BenchmarkRunOverhead(b *testing.B) {
	f := newFixture(b, behaviour{Output: "a short answer of a few tokens"})
	must(b, os.WriteFile(filepath.Join(f.env[EnvModelDir], "model.safetensors"), make([]byte, 1<<20), 0o444))
	o := Options{
		Getenv: func(k string) string { return f.env[k] },
		Log:    slog.New(slog.NewTextHandler(io.Discard, nil)),
		Retry:  f.retry,
	}
	b.ReportAllocs()
	for b.Loop() {
		if out := Run(context.Background(), o); out.ExitCode != 0 {
			b.Fatalf("exit %d: %s", out.ExitCode, out.Message)
		}
	}
}
