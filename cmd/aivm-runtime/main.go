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

// Command aivm-runtime runs inside an InferenceJob's pod
// (docs/runtime-contract.md), and runs the builtin engine locally with
// `aivm-runtime generate`.
package main

import (
	"fmt"
	"os"
	"sort"
)

// commands are the subcommands; each file registers its own in init.
var commands = map[string]func(args []string) int{}

func main() {
	if len(os.Args) < 2 || commands[os.Args[1]] == nil {
		names := make([]string, 0, len(commands))
		for n := range commands {
			names = append(names, n)
		}
		sort.Strings(names)
		fmt.Fprintf(os.Stderr, "usage: aivm-runtime <command> [flags]; commands: %v\n", names)
		os.Exit(2)
	}
	os.Exit(commands[os.Args[1]](os.Args[2:]))
}
