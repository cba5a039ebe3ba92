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

package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	_ "github.com/aivm-dev/aivm-operator/runtime-image/engine/builtin" // registers "builtin"
	_ "github.com/aivm-dev/aivm-operator/runtime-image/engine/openai"  // registers "openai"
	"github.com/aivm-dev/aivm-operator/runtime-image/runner"
)

func init() { commands["run"] = runCmd }

// runCmd is the job pod's entrypoint: everything comes from the environment
// (docs/runtime-contract.md), so it takes no flags.
func runCmd(args []string) int {
	if len(args) > 0 {
		fmt.Fprintf(os.Stderr, "aivm-runtime run takes no arguments (got %q); it reads the AIVM_* environment\n", args)
		return 2
	}
	// SIGTERM (pod deletion) cancels the run; the termination message still
	// gets written.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	return runner.Run(ctx, runner.Options{Log: log}).ExitCode
}
