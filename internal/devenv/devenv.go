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

// Package devenv starts the whole provider on one machine, on loopback, with
// no GPU, cluster or container engine: a real kube-apiserver and etcd with
// the CRDs, kube-controller-manager (garbage collection, node lifecycle,
// service accounts, namespaces), the devnet chain with a funded provider key, the manager, and
// simulated GPU nodes. A simulated node is a Node kept Ready by a process
// runner (internal/devkubelet) that runs its pods as local processes, and a
// node agent on a go-nvml mock profile that serves the model CSI driver.
// `aivmctl dev up` and the end-to-end tests use it.
package devenv

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	nodev1 "k8s.io/api/node/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	aivmv1alpha1 "github.com/aivm-dev/aivm-operator/api/v1alpha1"
	"github.com/aivm-dev/aivm-operator/chain-client/devnet"
	"github.com/aivm-dev/aivm-operator/chain-client/keys"
	"github.com/aivm-dev/aivm-operator/controllers/resultendpoint"
	"github.com/aivm-dev/aivm-operator/internal/devkubelet"
	"github.com/aivm-dev/aivm-operator/internal/scheme"
)

const (
	// Namespace is the manager's namespace.
	Namespace = "aivm-system"
	// RuntimeImage is the job pods' runtime image; the image table runs the
	// locally built aivm-runtime for it.
	RuntimeImage = "ghcr.io/aivm-dev/aivm-runtime:dev"
	// ProviderFunds is the provider account's genesis balance (unes).
	ProviderFunds = 1_000_000_000_000
	// resultSecret holds the result endpoint's certificate.
	resultSecret = "aivm-dev-result-tls"
	// modelCSIDriver is the node agent's CSI driver.
	modelCSIDriver = "models.aivm.dev"
)

// Binaries are the locally built programs the environment runs.
type Binaries struct {
	Manager   string
	NodeAgent string
	Runtime   string
}

// Config configures an environment.
type Config struct {
	// Dir holds everything: kubeconfig, logs, chain, caches; required.
	Dir string
	// RepoRoot is the source tree (CRDs under config/crd/bases); required.
	RepoRoot string
	// Assets is the directory of kube-apiserver and etcd; required.
	Assets string
	// ControllerManager is the kube-controller-manager binary
	// (hack/kube-controller-manager.sh provides it); required.
	ControllerManager string
	// Bin are the built programs; required.
	Bin Binaries
	// Nodes are the simulated nodes' go-nvml profiles, one entry per node
	// (dgxa100, dgxh100, ...).
	Nodes []string
	// Images are image table entries beyond the runtime image.
	Images devkubelet.Images
	// ManagerArgs are extra manager flags (they come after the defaults).
	ManagerArgs []string
	// StartTimeout bounds each start-up step (default 5 minutes: a loaded
	// machine starts kube-apiserver slowly).
	StartTimeout time.Duration
	// Progress receives one line per step with its duration.
	Progress io.Writer
	// Log receives the process runners' logs.
	Log logr.Logger
}

// Node is a running simulated node.
type Node struct {
	Name    string
	Profile string
	Kubelet *devkubelet.Kubelet
	agent   *process
	// faultDir is the node agent's --simulate-fault-dir.
	faultDir string
}

// Env is a running environment.
type Env struct {
	cfg        Config
	Kubeconfig string
	Config     *rest.Config
	Client     client.Client
	Clientset  kubernetes.Interface
	Chain      *devnet.Node
	chainCfg   devnet.Config
	Provider   string
	Nodes      []*Node
	ResultURL  string

	api      *envtest.Environment
	kcm      *process
	manager  *process
	cancel   context.CancelFunc
	kubelets sync.WaitGroup
	stopOnce sync.Once
	stopErr  error
}

// progress prints one step's line.
func (e *Env) progress(format string, args ...any) {
	if e.cfg.Progress != nil {
		_, _ = fmt.Fprintf(e.cfg.Progress, "dev: "+format+"\n", args...)
	}
}

// step runs f, printing a line every 15 s while it runs and one with its
// duration when it ends.
func (e *Env) step(what string, f func() error) error {
	start := time.Now()
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(15 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				e.progress("still %s (%s)", what, time.Since(start).Round(time.Second))
			}
		}
	}()
	err := f()
	close(done)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	e.progress("%s: done in %s", what, time.Since(start).Round(10*time.Millisecond))
	return nil
}

func (c *Config) check() error {
	switch {
	case c.Dir == "":
		return errors.New("devenv: Dir is required")
	case c.RepoRoot == "":
		return errors.New("devenv: RepoRoot is required")
	case len(c.Nodes) == 0:
		return errors.New("devenv: at least one node is required")
	}
	if c.ControllerManager == "" {
		return errors.New("devenv: ControllerManager is required (hack/kube-controller-manager.sh provides it)")
	}
	for _, b := range []string{c.Bin.Manager, c.Bin.NodeAgent, c.Bin.Runtime, c.ControllerManager} {
		if _, err := os.Stat(b); err != nil {
			return fmt.Errorf("devenv: binary %q is missing (build it first): %w", b, err)
		}
	}
	for _, b := range []string{"kube-apiserver", "etcd"} {
		if _, err := os.Stat(filepath.Join(c.Assets, b)); err != nil {
			return fmt.Errorf("devenv: %s is missing from %q (hack/envtest.sh provides it): %w", b, c.Assets, err)
		}
	}
	if err := os.MkdirAll(c.Dir, 0o750); err != nil {
		return fmt.Errorf("devenv: directory %s is not writable: %w", c.Dir, err)
	}
	f, err := os.CreateTemp(c.Dir, ".write-check-*")
	if err != nil {
		return fmt.Errorf("devenv: directory %s is not writable: %w", c.Dir, err)
	}
	_ = f.Close()
	_ = os.Remove(f.Name())
	if c.StartTimeout <= 0 {
		c.StartTimeout = 5 * time.Minute
	}
	if c.Log.GetSink() == nil {
		c.Log = logr.Discard()
	}
	return nil
}

// Start starts the environment; Stop it when done (it stops on its own
// when a step fails).
func Start(ctx context.Context, cfg Config) (env *Env, err error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	e := &Env{cfg: cfg}
	defer func() {
		if err != nil {
			_ = e.Stop()
		}
	}()
	if err := e.step("starting etcd and kube-apiserver", e.startAPI); err != nil {
		return nil, err
	}
	if err := e.step("creating cluster objects", func() error { return e.bootstrap(ctx) }); err != nil {
		return nil, err
	}
	if err := e.step("starting kube-controller-manager", func() error { return e.startControllerManager(ctx) }); err != nil {
		return nil, err
	}
	if err := e.step("starting the devnet chain", func() error { return e.startChain(ctx) }); err != nil {
		return nil, err
	}
	if err := e.step("starting the manager", func() error { return e.startManager(ctx) }); err != nil {
		return nil, err
	}
	runCtx, cancel := context.WithCancel(context.Background())
	e.cancel = cancel
	for i, profile := range cfg.Nodes {
		name := fmt.Sprintf("dev-%s-%d", profile, i)
		if err := e.step("starting node "+name, func() error { return e.startNode(ctx, runCtx, name, profile) }); err != nil {
			return nil, err
		}
	}
	return e, nil
}

// startAPI starts etcd and kube-apiserver with the CRDs and writes an admin
// kubeconfig.
func (e *Env) startAPI() error {
	e.api = &envtest.Environment{
		BinaryAssetsDirectory:    e.cfg.Assets,
		CRDDirectoryPaths:        []string{filepath.Join(e.cfg.RepoRoot, "config", "crd", "bases")},
		ErrorIfCRDPathMissing:    true,
		Scheme:                   scheme.New(),
		ControlPlaneStartTimeout: e.cfg.StartTimeout,
		ControlPlaneStopTimeout:  time.Minute,
	}
	if _, err := e.api.Start(); err != nil {
		return err
	}
	user, err := e.api.AddUser(envtest.User{Name: "aivm-dev-admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return fmt.Errorf("add admin user: %w", err)
	}
	kc, err := user.KubeConfig()
	if err != nil {
		return fmt.Errorf("kubeconfig: %w", err)
	}
	e.Kubeconfig = filepath.Join(e.cfg.Dir, "kubeconfig")
	if err := os.WriteFile(e.Kubeconfig, kc, 0o600); err != nil {
		return fmt.Errorf("write kubeconfig: %w", err)
	}
	e.Config = user.Config()
	// The environment's own clients (the process runners, the demo) share
	// one local API server; client-go's default 5 QPS only slows them.
	e.Config.QPS, e.Config.Burst = 200, 400
	if e.Client, err = client.New(e.Config, client.Options{Scheme: scheme.New()}); err != nil {
		return err
	}
	e.Clientset, err = kubernetes.NewForConfig(e.Config)
	return err
}

// bootstrap creates the manager's namespace, the nvidia RuntimeClass and
// the model CSIDriver, as the Helm chart and the GPU operator would.
func (e *Env) bootstrap(ctx context.Context) error {
	objs := []client.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: Namespace}},
		&nodev1.RuntimeClass{ObjectMeta: metav1.ObjectMeta{Name: "nvidia"}, Handler: "nvidia"},
		&storagev1.CSIDriver{ObjectMeta: metav1.ObjectMeta{Name: modelCSIDriver}, Spec: storagev1.CSIDriverSpec{
			AttachRequired: ptr.To(false), PodInfoOnMount: ptr.To(true),
			VolumeLifecycleModes: []storagev1.VolumeLifecycleMode{storagev1.VolumeLifecycleEphemeral},
		}},
	}
	for _, o := range objs {
		if err := e.Client.Create(ctx, o); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create %T %s: %w", o, o.GetName(), err)
		}
	}
	return nil
}

// startChain generates the provider key, starts the devnet with it funded
// and waits for the first block.
func (e *Env) startChain(ctx context.Context) error {
	key, err := keys.Generate()
	if err != nil {
		return err
	}
	keyFile := filepath.Join(e.cfg.Dir, "provider.key")
	if err := keys.SaveFile(keyFile, key, true); err != nil {
		return err
	}
	if e.Provider, err = key.Address(""); err != nil {
		return err
	}
	e.chainCfg = devnet.Config{
		Home:          filepath.Join(e.cfg.Dir, "devnet"),
		Accounts:      map[string]uint64{e.Provider: ProviderFunds},
		BlockTime:     200 * time.Millisecond,
		RPCListenAddr: "tcp://127.0.0.1:0",
	}
	e.Chain, err = devnet.Start(ctx, e.chainCfg)
	if err != nil {
		return err
	}
	// A restart (StartChain) keeps the chain id and the RPC address the
	// manager was given.
	e.chainCfg.ChainID, e.chainCfg.RPCListenAddr = e.Chain.ChainID(), e.Chain.RPCListenAddr()
	wctx, cancel := context.WithTimeout(ctx, e.cfg.StartTimeout)
	defer cancel()
	return e.Chain.WaitForHeight(wctx, 1)
}

// freePort returns a loopback port nothing listens on now.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer func() { _ = ln.Close() }()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// startManager issues the result endpoint's certificate and starts the
// manager binary, then waits for its readiness endpoint.
func (e *Env) startManager(ctx context.Context) error {
	resultPort, err := freePort()
	if err != nil {
		return err
	}
	probePort, err := freePort()
	if err != nil {
		return err
	}
	if err := e.createResultCert(ctx); err != nil {
		return err
	}
	e.ResultURL = "https://localhost:" + strconv.Itoa(resultPort) + resultendpoint.Path
	args := []string{
		"--metrics-bind-address=0",
		"--health-probe-bind-address=127.0.0.1:" + strconv.Itoa(probePort),
		"--result-bind-address=127.0.0.1:" + strconv.Itoa(resultPort),
		"--result-tls-secret=" + Namespace + "/" + resultSecret,
		"--result-url=" + e.ResultURL,
		"--runtime-image=" + RuntimeImage,
		"--gpu-binding=visible-devices",
		"--report-results",
		"--chain-rpc-url=" + e.Chain.RPCURL(),
		"--chain-id=" + e.Chain.ChainID(),
		"--chain-key-dir=" + filepath.Join(e.cfg.Dir, "provider.key"),
		"--chain-outbox-dir=" + filepath.Join(e.cfg.Dir, "outbox"),
		"--chain-batch-interval=500ms",
		"--provider-endpoint=https://localhost:" + strconv.Itoa(resultPort),
		"--node-failure-grace=30s",
	}
	args = append(args, e.cfg.ManagerArgs...)
	e.manager, err = e.startProcess("manager", e.cfg.Bin.Manager, args)
	if err != nil {
		return err
	}
	return e.waitHTTP(ctx, e.manager, "http://127.0.0.1:"+strconv.Itoa(probePort)+"/readyz")
}

// waitHTTP polls url until it answers 200, the process exits or the start
// timeout passes.
func (e *Env) waitHTTP(ctx context.Context, p *process, url string) error {
	return e.waitReady(ctx, p, "not ready at "+url, func(ctx context.Context) bool {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return false
		}
		_ = resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
}

// waitReady polls ready every 250 ms until it holds; it fails when process
// p exits first (with its log's last line) or the start timeout passes
// (saying that p is still notYet).
func (e *Env) waitReady(ctx context.Context, p *process, notYet string, ready func(context.Context) bool) error {
	ctx, cancel := context.WithTimeout(ctx, e.cfg.StartTimeout)
	defer cancel()
	for !ready(ctx) {
		select {
		case <-p.done:
			return fmt.Errorf("%s exited (%w): %s; its log: %s", p.name, p.err, lastLine(p.logPath), p.logPath)
		case <-ctx.Done():
			return fmt.Errorf("%s %s: %w; its log: %s", p.name, notYet, ctx.Err(), p.logPath)
		case <-time.After(250 * time.Millisecond):
		}
	}
	return nil
}

// startNode registers a node, starts its node agent (CSI driver included)
// and its process runner, and waits for the agent's GPUNode.
func (e *Env) startNode(ctx, runCtx context.Context, name, profile string) error {
	dir := filepath.Join(e.cfg.Dir, "nodes", name)
	sock := filepath.Join(dir, "csi.sock")
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return err
	}
	images := devkubelet.Images{RuntimeImage: {e.cfg.Bin.Runtime}}
	for k, v := range e.cfg.Images {
		images[k] = v
	}
	kl, err := devkubelet.New(devkubelet.Config{
		NodeName: name, Client: e.Clientset, Dir: filepath.Join(dir, "kubelet"), Images: images,
		CSIDrivers: map[string]string{modelCSIDriver: sock},
		Labels:     map[string]string{"aivm.dev/dev-profile": profile},
		Log:        e.cfg.Log.WithName(name),
	})
	if err != nil {
		return err
	}
	if err := kl.Register(ctx); err != nil {
		return err
	}
	faultDir := filepath.Join(dir, "faults")
	if err := os.MkdirAll(faultDir, 0o750); err != nil {
		return err
	}
	agent, err := e.startProcess("node-agent-"+name, e.cfg.Bin.NodeAgent, []string{
		"--node-name=" + name,
		"--simulate=" + profile,
		"--simulate-fault-dir=" + faultDir,
		"--model-cache-dir=" + filepath.Join(dir, "models"),
		"--csi-endpoint=unix://" + sock,
		"--csi-state-dir=" + filepath.Join(dir, "csi"),
		"--kubelet-registration-dir=",
		"--metrics-bind-address=0",
		"--poll-interval=2s",
		"--heartbeat-interval=10s",
	})
	if err != nil {
		return err
	}
	n := &Node{Name: name, Profile: profile, Kubelet: kl, agent: agent, faultDir: faultDir}
	e.Nodes = append(e.Nodes, n)
	e.kubelets.Add(1)
	go func() {
		defer e.kubelets.Done()
		if err := kl.Run(runCtx); err != nil {
			e.progress("node %s: process runner stopped: %v", name, err)
		}
	}()
	gpus := 0
	err = e.waitReady(ctx, agent, "did not publish GPUNode "+name, func(ctx context.Context) bool {
		var gn aivmv1alpha1.GPUNode
		if err := e.Client.Get(ctx, client.ObjectKey{Name: name}, &gn); err != nil || len(gn.Status.GPUs) == 0 {
			return false
		}
		gpus = len(gn.Status.GPUs)
		_, err := os.Stat(sock)
		return err == nil
	})
	if err != nil {
		return err
	}
	// What the NVIDIA device plugin would advertise: the process runner
	// then refuses a pod beyond the node's GPUs, as the kubelet does
	// (manager flag --gpu-binding=device-plugin).
	kl.SetCapacity("nvidia.com/gpu", *resource.NewQuantity(int64(gpus), resource.DecimalSI))
	return nil
}

// process is a child process of the environment.
type process struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	done    chan struct{}
	err     error
}

// startProcess starts bin with args, KUBECONFIG and POD_NAMESPACE set, its
// output going to <Dir>/logs/<name>.log.
func (e *Env) startProcess(name, bin string, args []string) (*process, error) {
	logDir := filepath.Join(e.cfg.Dir, "logs")
	if err := os.MkdirAll(logDir, 0o750); err != nil {
		return nil, err
	}
	p := &process{name: name, logPath: filepath.Join(logDir, name+".log"), done: make(chan struct{})}
	f, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return nil, err
	}
	p.cmd = exec.Command(bin, args...) //nolint:gosec // the environment's own binaries
	p.cmd.Env = append(os.Environ(), "KUBECONFIG="+e.Kubeconfig, "POD_NAMESPACE="+Namespace)
	p.cmd.Stdout, p.cmd.Stderr = f, f
	// Its own process group, so Ctrl-C reaches it only through Stop.
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		_ = f.Close()
		close(p.done)
	}()
	return p, nil
}

// stop sends SIGTERM and waits, then SIGKILL after grace.
func (p *process) stop(grace time.Duration) {
	if p == nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// RestartManager stops the manager with SIGKILL and starts it again with the same
// flags, for crash tests; it returns once the new one is ready.
func (e *Env) RestartManager(ctx context.Context) error {
	old := e.manager
	_ = old.cmd.Process.Kill()
	<-old.done
	p, err := e.startProcess("manager", old.cmd.Path, old.cmd.Args[1:])
	if err != nil {
		return err
	}
	e.manager = p
	for _, a := range old.cmd.Args {
		if v, ok := strings.CutPrefix(a, "--health-probe-bind-address="); ok {
			return e.waitHTTP(ctx, p, "http://"+v+"/readyz")
		}
	}
	return nil
}

// LogDir is where the processes' logs are.
func (e *Env) LogDir() string { return filepath.Join(e.cfg.Dir, "logs") }

// Stop stops everything it started, in reverse order, and leaves nothing
// running.
func (e *Env) Stop() error {
	e.stopOnce.Do(func() {
		if e.cancel != nil {
			e.cancel()
		}
		e.kubelets.Wait()
		for _, n := range e.Nodes {
			n.agent.stop(10 * time.Second)
		}
		e.manager.stop(10 * time.Second)
		e.kcm.stop(10 * time.Second)
		var errs []error
		if e.Chain != nil {
			errs = append(errs, e.Chain.Stop())
		}
		if e.api != nil {
			errs = append(errs, e.api.Stop())
		}
		e.stopErr = errors.Join(errs...)
	})
	return e.stopErr
}
