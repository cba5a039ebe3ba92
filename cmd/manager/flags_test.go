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

// Command manager runs the aivm-operator controllers: Models, Kernels,
// InferenceJobs, GPUNode housekeeping and the chain reporter.
package main

import (
	"flag"
	"io"
	"strings"
	"testing"

	"sigs.k8s.io/controller-runtime/pkg/log/zap"
)

// TestManagerRefusesBadControllerFlags: settings the reconcilers cannot run
// with stop the manager at start, naming the flag.
func TestManagerRefusesBadControllerFlags(t *testing.T) {
	for flagName, args := range map[string][]string{
		"--model-concurrent-reconciles":   {"--model-concurrent-reconciles=0"},
		"--model-source-check-timeout":    {"--model-source-check-timeout=0s"},
		"--model-source-recheck-interval": {"--model-source-recheck-interval=-1m"},
		"--gpunode-heartbeat-stale-after": {"--gpunode-heartbeat-stale-after=-1s"},
		"--gpu-binding":                   {"--gpu-binding=hostpath"},
		"--job-concurrent-reconciles":     {"--job-concurrent-reconciles=0"},
		"--runtime-image":                 {"--runtime-image="},
		"--node-failure-grace":            {"--node-failure-grace=0s"},
		"--image-pull-grace":              {"--image-pull-grace=-1s"},
		"--result-url":                    {"--result-url=http://aivm.example/v1/results"},
		"--scheduling-policy":             {"--scheduling-policy=random"},
		"--kube-api-qps":                  {"--kube-api-qps=0"},
		"--kube-api-burst":                {"--kube-api-burst=0"},
		"--scheduling-workers":            {"--scheduling-workers=0"},
		"--result-max-connections":        {"--result-max-connections=0"},
		"--result-idle-timeout":           {"--result-idle-timeout=2m"},
		"--result-unauthenticated-rate":   {"--result-unauthenticated-rate=0"},
		"--result-unauthenticated-burst":  {"--result-unauthenticated-burst=0"},
		"--result-failed-token-ttl":       {"--result-failed-token-ttl=-1s"},
	} {
		opts, err := parseFlags(args...)
		if err != nil {
			t.Fatal(err)
		}
		err = run(t.Context(), nil, opts)
		if err == nil || !strings.Contains(err.Error(), flagName) {
			t.Errorf("run with %v: %v, want an error naming %s", args, err, flagName)
		}
	}
	// Job pods post to the URL as given: one without the endpoint's path
	// would make every attempt fail with a 404.
	noPath, err := parseFlags("--result-url=https://aivm-operator-result.aivm-system.svc:9443")
	if err != nil {
		t.Fatal(err)
	}
	if err := noPath.controllers.validate(); err == nil || !strings.Contains(err.Error(), "/v1/results") {
		t.Errorf("a --result-url without the endpoint's path: %v, want an error naming /v1/results", err)
	}
	defaults, err := parseFlags()
	if err != nil {
		t.Fatal(err)
	}
	if err := defaults.controllers.validate(); err != nil {
		t.Errorf("the defaults are refused: %v", err)
	}
	if err := defaults.scheduling.validate(); err != nil {
		t.Errorf("the scheduling defaults are refused: %v", err)
	}
	if err := defaults.results.validate(); err != nil {
		t.Errorf("the result endpoint defaults are refused: %v", err)
	}
}

// parseFlags parses args with the manager's own flags.
func parseFlags(args ...string) (options, error) {
	var opts options
	fs := flag.NewFlagSet("manager", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	opts.bindFlags(fs, &zap.Options{})
	err := fs.Parse(args)
	return opts, err
}
