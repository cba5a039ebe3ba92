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
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/aivm-dev/aivm-operator/internal/devenv"
	"github.com/aivm-dev/aivm-operator/internal/devkubelet"
	"github.com/aivm-dev/aivm-operator/internal/testenv"
)

func init() {
	register("dev", "Run the whole provider locally: API server, chain, manager, simulated GPU nodes (up, down)", runDev)
}

var devSubcommands = map[string]subcommand{
	"up":   {"Build and start the local dev environment; runs until interrupted", devUp},
	"down": {"Stop a dev environment started with 'dev up' in another terminal", devDown},
}

func runDev(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	return dispatch(ctx, "dev", devSubcommands, args, stdin, stdout, stderr)
}

// imageFlags collects repeated --image IMAGE=COMMAND flags.
type imageFlags struct{ devkubelet.Images }

func (f imageFlags) String() string { return "" }
func (f imageFlags) Set(s string) error {
	return f.ParseImage(s)
}

func defaultDevDir() string {
	h, err := os.UserHomeDir()
	if err != nil {
		return ".aivm/dev"
	}
	return filepath.Join(h, ".aivm", "dev")
}

// devPIDFile records the running `dev up` so `dev down` can stop it.
const devPIDFile = "dev.pid"

func devUp(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	fs := newFlagSet("dev up", stderr, "dev up [flags]")
	dir := fs.String("dir", defaultDevDir(), "State directory (kubeconfig, logs, chain, model caches); emptied at start.")
	nodes := fs.String("nodes", "dgxa100,dgxh100", "Simulated GPU nodes: one go-nvml profile per node, comma-separated (dgxa100, dgxh100, dgxh200, dgxb200).")
	images := imageFlags{devkubelet.Images{}}
	fs.Var(images, "image", "Image table entry IMAGE=COMMAND: pods using IMAGE run COMMAND locally (repeatable); the runtime image always runs the freshly built aivm-runtime.")
	demo := fs.Bool("demo", false, "Run the demo (a generated GPT-2 model, a few jobs including a committee of 3, a table of results, one receipt verified against the chain), then stop. Default nodes: dgxa100,dgxh100,dgxa100.")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		fs.Usage()
		return errUsage
	}
	nodesSet := false
	fs.Visit(func(f *flag.Flag) { nodesSet = nodesSet || f.Name == "nodes" })
	if *demo && !nodesSet {
		*nodes = "dgxa100,dgxh100,dgxa100"
	}
	var profiles []string
	for _, p := range strings.Split(*nodes, ",") {
		if p = strings.TrimSpace(p); p != "" {
			profiles = append(profiles, p)
		}
	}
	if len(profiles) == 0 {
		return errors.New("--nodes: at least one node profile is required")
	}
	if *demo {
		if err := checkDemoNodes(profiles); err != nil {
			return err
		}
	}
	root, err := testenv.RepoRoot()
	if err != nil {
		return fmt.Errorf("run aivmctl dev up inside the aivm-operator source tree: %w", err)
	}
	if err := os.RemoveAll(*dir); err != nil {
		return fmt.Errorf("--dir %s: %w", *dir, err)
	}
	if err := os.MkdirAll(*dir, 0o750); err != nil {
		return fmt.Errorf("--dir %s is not writable: %w", *dir, err)
	}
	start := time.Now()
	fmt.Fprintln(stderr, "dev: providing kube-apiserver and etcd (hack/envtest.sh; the first build takes about 15 minutes)")
	assets, err := testenv.Assets()
	if err != nil {
		return err
	}
	fmt.Fprintln(stderr, "dev: providing kube-controller-manager (hack/kube-controller-manager.sh; the first build takes about 10 minutes)")
	kcm, err := testenv.ControllerManager()
	if err != nil {
		return err
	}
	bins, err := devenv.Build(ctx, root, filepath.Join(*dir, "bin"), stderr)
	if err != nil {
		return err
	}
	env, err := devenv.Start(ctx, devenv.Config{
		Dir: *dir, RepoRoot: root, Assets: assets, ControllerManager: kcm, Bin: bins, Nodes: profiles, Images: images.Images, Progress: stderr,
		Log: newLogger(io.Discard, 0),
	})
	if err != nil {
		return fmt.Errorf("%w (logs in %s)", err, filepath.Join(*dir, "logs"))
	}
	if *demo {
		fmt.Fprintf(stderr, "dev: environment ready in %s\n", time.Since(start).Round(time.Second))
		derr := runDemo(ctx, env, *dir, stdout, stderr)
		fmt.Fprintf(stderr, "dev: demo finished in %s; stopping\n", time.Since(start).Round(time.Second))
		if serr := env.Stop(); derr == nil {
			derr = serr
		}
		if derr != nil {
			return fmt.Errorf("%w (logs in %s)", derr, env.LogDir())
		}
		return nil
	}
	pidFile := filepath.Join(*dir, devPIDFile)
	if err := os.WriteFile(pidFile, []byte(strconv.Itoa(os.Getpid())), 0o600); err != nil {
		_ = env.Stop()
		return err
	}
	names := make([]string, 0, len(env.Nodes))
	for _, n := range env.Nodes {
		names = append(names, n.Name+" ("+n.Profile+")")
	}
	fmt.Fprintf(stdout, `aivm dev environment ready in %s
  nodes:      %s
  chain:      %s (chain id %s), provider %s
  logs:       %s

  export KUBECONFIG=%s
  kubectl apply -f config/samples/
  kubectl get aivm

Stop it with Ctrl-C or 'aivmctl dev down --dir %s'.
`, time.Since(start).Round(time.Second), strings.Join(names, ", "), env.Chain.RPCURL(), env.Chain.ChainID(), env.Provider,
		env.LogDir(), env.Kubeconfig, *dir)
	<-ctx.Done()
	fmt.Fprintln(stderr, "dev: stopping")
	_ = os.Remove(pidFile)
	return env.Stop()
}

func devDown(_ context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	fs := newFlagSet("dev down", stderr, "dev down [flags]")
	dir := fs.String("dir", defaultDevDir(), "State directory of the running environment.")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		fs.Usage()
		return errUsage
	}
	b, err := os.ReadFile(filepath.Join(*dir, devPIDFile))
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("no dev environment is running from %s", *dir)
	}
	if err != nil {
		return err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return fmt.Errorf("%s does not hold a process id", filepath.Join(*dir, devPIDFile))
	}
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		return fmt.Errorf("stop process %d: %w", pid, err)
	}
	for range 120 {
		if syscall.Kill(pid, 0) != nil {
			fmt.Fprintln(stdout, "dev environment stopped")
			return nil
		}
		time.Sleep(500 * time.Millisecond)
	}
	return fmt.Errorf("process %d did not stop within 60s", pid)
}
