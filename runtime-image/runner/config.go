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

// Package runner is `aivm-runtime run`: the side of the runtime contract
// (docs/runtime-contract.md) that runs inside a job pod. It reads the pod's
// files and environment, runs one engine request, posts the result envelope
// to the manager's result endpoint and ends with the contract's exit code
// and termination message.
package runner

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/aivm-dev/aivm-operator/internal/sha256hex"
)

// Default paths of the job pod (docs/runtime-contract.md); the env vars
// carry them too, so a runtime also runs outside a pod (the dev
// environment's process runner) with other paths.
const (
	DefaultModelDir         = "/var/run/aivm/model"
	DefaultInputFile        = "/var/run/aivm/input/input"
	DefaultTokenFile        = "/var/run/aivm/token/token"
	DefaultCAFile           = "/var/run/aivm/ca/ca.crt"
	DefaultTerminationPath  = "/dev/termination-log"
	DefaultStartupTimeout   = 900 * time.Second
	DefaultInferenceTimeout = 300 * time.Second
)

// Environment variables of the contract.
const (
	EnvJobNamespace     = "AIVM_JOB_NAMESPACE"
	EnvJobName          = "AIVM_JOB_NAME"
	EnvJobUID           = "AIVM_JOB_UID"
	EnvAttempt          = "AIVM_ATTEMPT"
	EnvMember           = "AIVM_MEMBER"
	EnvKernelDigest     = "AIVM_KERNEL_DIGEST"
	EnvModelDigest      = "AIVM_MODEL_DIGEST"
	EnvInputDigest      = "AIVM_INPUT_DIGEST"
	EnvEngine           = "AIVM_ENGINE"
	EnvEngineURL        = "AIVM_ENGINE_URL"
	EnvParameters       = "AIVM_PARAMETERS"
	EnvStartupTimeout   = "AIVM_STARTUP_TIMEOUT"
	EnvInferenceTimeout = "AIVM_INFERENCE_TIMEOUT"
	EnvResultURL        = "AIVM_RESULT_URL"
	EnvModelDir         = "AIVM_MODEL_DIR"
	EnvInputFile        = "AIVM_INPUT_FILE"
	EnvTokenFile        = "AIVM_RESULT_TOKEN_FILE"
	EnvCAFile           = "AIVM_RESULT_CA_FILE"
	EnvTerminationPath  = "AIVM_TERMINATION_MESSAGE_PATH"
	EnvVisibleDevices   = "NVIDIA_VISIBLE_DEVICES"
)

// Config is what a run needs, read from the pod's environment.
type Config struct {
	Namespace, Job, JobUID string
	Attempt, Member        int32
	// KernelDigest and ModelDigest are canonical ("sha256:<hex>").
	KernelDigest, ModelDigest string
	// InputDigest, when set, is the digest the input file must have.
	InputDigest string
	Engine      string
	EngineURL   string
	// Parameters is AIVM_PARAMETERS, decoded and checked.
	Parameters                       Parameters
	StartupTimeout, InferenceTimeout time.Duration
	ResultURL                        string
	ModelDir, InputFile              string
	TokenFile, CAFile                string
	TerminationPath                  string
	// GPUUUIDs are the GPU and MIG UUIDs NVIDIA_VISIBLE_DEVICES names.
	GPUUUIDs []string
}

// LoadConfig reads the contract's environment through getenv. Errors name
// the variable; they are BadInput failures (exit 10).
func LoadConfig(getenv func(string) string) (Config, error) {
	c := Config{
		Namespace:       getenv(EnvJobNamespace),
		Job:             getenv(EnvJobName),
		JobUID:          getenv(EnvJobUID),
		Engine:          getenv(EnvEngine),
		EngineURL:       getenv(EnvEngineURL),
		ResultURL:       getenv(EnvResultURL),
		ModelDir:        orDefault(getenv(EnvModelDir), DefaultModelDir),
		InputFile:       orDefault(getenv(EnvInputFile), DefaultInputFile),
		TokenFile:       orDefault(getenv(EnvTokenFile), DefaultTokenFile),
		CAFile:          orDefault(getenv(EnvCAFile), DefaultCAFile),
		TerminationPath: orDefault(getenv(EnvTerminationPath), DefaultTerminationPath),
		GPUUUIDs:        gpuUUIDs(getenv(EnvVisibleDevices)),
	}
	for _, req := range []struct{ name, val string }{
		{EnvJobNamespace, c.Namespace}, {EnvJobName, c.Job}, {EnvJobUID, c.JobUID},
		{EnvEngine, c.Engine}, {EnvResultURL, c.ResultURL},
	} {
		if req.val == "" {
			return c, fmt.Errorf("%s is not set", req.name)
		}
	}
	var err error
	if c.Attempt, err = int32Env(getenv, EnvAttempt, 1); err != nil {
		return c, err
	}
	if c.Member, err = int32Env(getenv, EnvMember, 0); err != nil {
		return c, err
	}
	if c.KernelDigest, err = digestEnv(getenv, EnvKernelDigest, true); err != nil {
		return c, err
	}
	if c.ModelDigest, err = digestEnv(getenv, EnvModelDigest, true); err != nil {
		return c, err
	}
	if c.InputDigest, err = digestEnv(getenv, EnvInputDigest, false); err != nil {
		return c, err
	}
	if c.StartupTimeout, err = durationEnv(getenv, EnvStartupTimeout, DefaultStartupTimeout); err != nil {
		return c, err
	}
	if c.InferenceTimeout, err = durationEnv(getenv, EnvInferenceTimeout, DefaultInferenceTimeout); err != nil {
		return c, err
	}
	u, err := url.Parse(c.ResultURL)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		// The token must never travel in clear text.
		return c, fmt.Errorf("%s %q is not an https:// URL", EnvResultURL, c.ResultURL)
	}
	if c.Parameters, err = ParseParameters(getenv(EnvParameters)); err != nil {
		return c, fmt.Errorf("%s: %w", EnvParameters, err)
	}
	return c, nil
}

func orDefault(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

func int32Env(getenv func(string) string, name string, minimum int64) (int32, error) {
	v := getenv(name)
	if v == "" {
		return 0, fmt.Errorf("%s is not set", name)
	}
	n, err := strconv.ParseInt(v, 10, 32)
	if err != nil || n < minimum {
		return 0, fmt.Errorf("%s %q is not an integer of at least %d", name, v, minimum)
	}
	return int32(n), nil
}

func digestEnv(getenv func(string) string, name string, required bool) (string, error) {
	v := getenv(name)
	if v == "" {
		if required {
			return "", fmt.Errorf("%s is not set", name)
		}
		return "", nil
	}
	d, err := sha256hex.Prefixed(v)
	if err != nil {
		return "", fmt.Errorf("%s: %w", name, err)
	}
	return d, nil
}

func durationEnv(getenv func(string) string, name string, def time.Duration) (time.Duration, error) {
	v := getenv(name)
	if v == "" {
		return def, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("%s %q is not a positive Go duration (such as 300s)", name, v)
	}
	return d, nil
}

// gpuUUIDs keeps the entries of NVIDIA_VISIBLE_DEVICES that are GPU or MIG
// UUIDs; indexes, "all", "none" and "void" name no device the envelope can
// identify.
func gpuUUIDs(v string) []string {
	var out []string
	for _, f := range strings.Split(v, ",") {
		f = strings.TrimSpace(f)
		if strings.HasPrefix(f, "GPU-") || strings.HasPrefix(f, "MIG-") {
			out = append(out, f)
		}
	}
	return out
}
