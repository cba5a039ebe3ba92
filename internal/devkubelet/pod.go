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

package devkubelet

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
)

// TerminationMessageEnv tells a process where its container's termination
// message file is (the aivm-runtime honours it); the runner reads that file
// when the process exits, as the kubelet reads terminationMessagePath.
const TerminationMessageEnv = "AIVM_TERMINATION_MESSAGE_PATH"

// maxTerminationMessage is the kubelet's limit on a termination message.
const maxTerminationMessage = 4096

// podWorker runs one pod.
type podWorker struct {
	k   *Kubelet
	pod *corev1.Pod
	dir string
	log logr.Logger

	csi          []csiVolume
	tokenRefresh time.Time

	deleteOnce sync.Once
	deleted    chan struct{}
	mu         sync.Mutex
	grace      time.Duration
	// gone is set when the pod object no longer exists.
	gone bool
}

func newPodWorker(k *Kubelet, pod *corev1.Pod) *podWorker {
	return &podWorker{
		k: k, pod: pod.DeepCopy(), dir: k.podDir(pod.UID), deleted: make(chan struct{}),
		log:   k.cfg.Log.WithValues("pod", pod.Namespace+"/"+pod.Name),
		grace: k.cfg.GracePeriod,
	}
}

// delete stops the pod: pod is the terminating object, nil when it is gone.
func (w *podWorker) delete(pod *corev1.Pod) {
	w.mu.Lock()
	if pod == nil {
		w.gone = true
	} else if pod.DeletionGracePeriodSeconds != nil {
		w.grace = time.Duration(*pod.DeletionGracePeriodSeconds) * time.Second
	}
	w.mu.Unlock()
	w.deleteOnce.Do(func() { close(w.deleted) })
}

// proc is one container's process.
type proc struct {
	c       *corev1.Container
	cmd     *exec.Cmd
	log     *os.File
	msgPath string
	started metav1.Time
	done    chan struct{}
	state   corev1.ContainerStateTerminated
}

// run prepares the volumes, starts the containers, reports their states
// and cleans up when they end or the pod is deleted.
func (w *podWorker) run(ctx context.Context) {
	defer w.k.done(w.pod.UID)
	defer w.finish(ctx)
	if err := os.MkdirAll(w.dir, 0o750); err != nil {
		w.log.Error(err, "Creating the pod directory failed")
		return
	}
	// Volumes: retried until they are ready or the pod goes away, as the
	// kubelet keeps a pod ContainerCreating.
	for {
		err := w.prepareVolumes(ctx)
		if err == nil {
			break
		}
		w.log.Info("Volumes not ready", "err", err.Error())
		w.setWaiting(ctx, "ContainerCreating", err.Error())
		select {
		case <-ctx.Done():
			return
		case <-w.deleted:
			return
		case <-time.After(2 * time.Second):
		}
	}
	procs := make([]*proc, 0, len(w.pod.Spec.Containers))
	for i := range w.pod.Spec.Containers {
		c := &w.pod.Spec.Containers[i]
		argv, host, err := w.k.cfg.Images.argv(c)
		if err != nil {
			w.stopProcs(procs)
			w.setWaiting(ctx, "ErrImageNeverPull", err.Error())
			select {
			case <-ctx.Done():
			case <-w.deleted:
			}
			return
		}
		p, err := w.start(ctx, c, argv, host)
		if err != nil {
			w.stopProcs(procs)
			w.setWaiting(ctx, "CreateContainerError", err.Error())
			select {
			case <-ctx.Done():
			case <-w.deleted:
			}
			return
		}
		procs = append(procs, p)
	}
	w.report(ctx, procs)
	w.wait(ctx, procs)
}

// wait waits for every process, reporting each exit; deletion or ctx stops
// them.
func (w *podWorker) wait(ctx context.Context, procs []*proc) {
	refresh := time.NewTicker(5 * time.Second)
	defer refresh.Stop()
	for _, p := range procs {
		for waiting := true; waiting; {
			select {
			case <-p.done:
				waiting = false
				w.report(ctx, procs)
			case <-w.deleted:
				w.stopProcs(procs)
				return
			case <-ctx.Done():
				w.stopProcs(procs)
				return
			case <-refresh.C:
				w.refreshTokens(ctx)
			}
		}
	}
}

// refreshTokens rewrites projected token volumes when their tokens near
// expiry.
func (w *podWorker) refreshTokens(ctx context.Context) {
	if w.tokenRefresh.IsZero() || time.Now().Before(w.tokenRefresh) {
		return
	}
	for i := range w.pod.Spec.Volumes {
		v := &w.pod.Spec.Volumes[i]
		if v.Projected != nil {
			if err := w.writeProjected(ctx, w.volumeDir(v.Name), v.Projected); err != nil {
				w.log.Error(err, "Refreshing a projected volume failed", "volume", v.Name)
			}
		}
	}
}

// finish unpublishes the pod's volumes and, when the pod is terminating,
// confirms its deletion.
func (w *podWorker) finish(ctx context.Context) {
	w.unpublishCSI()
	select {
	case <-w.deleted:
	default:
		return
	}
	w.mu.Lock()
	gone := w.gone
	w.mu.Unlock()
	if err := os.RemoveAll(w.dir); err != nil {
		w.log.Error(err, "Removing the pod directory failed")
	}
	if !gone && ctx.Err() == nil {
		w.k.confirmDeletion(ctx, w.pod)
	}
}

// mapping maps container paths under a volume mount to local paths.
type mapping struct{ from, to string }

// mappings are the container's mounts, longest path first, plus its
// termination message path.
func (w *podWorker) mappings(c *corev1.Container, msgPath string) []mapping {
	var ms []mapping
	for _, m := range c.VolumeMounts {
		to := w.volumeDir(m.Name)
		if m.SubPath != "" {
			to = filepath.Join(to, m.SubPath)
		}
		ms = append(ms, mapping{from: filepath.Clean(m.MountPath), to: to})
	}
	tmp := c.TerminationMessagePath
	if tmp == "" {
		tmp = corev1.TerminationMessagePathDefault
	}
	ms = append(ms, mapping{from: tmp, to: msgPath})
	sort.Slice(ms, func(i, j int) bool { return len(ms[i].from) > len(ms[j].from) })
	return ms
}

// rewrite maps s when it is a container path under a mount.
func rewrite(ms []mapping, s string) string {
	for _, m := range ms {
		if s == m.from {
			return m.to
		}
		if strings.HasPrefix(s, m.from+"/") {
			return m.to + s[len(m.from):]
		}
	}
	return s
}

// rewriteArgv maps the container paths in argv[host:]; the leading entries
// name the local program (which may lie under a path the container mounts
// over, /tmp for one) and stay as they are.
func rewriteArgv(ms []mapping, argv []string, host int) {
	for i := host; i < len(argv); i++ {
		argv[i] = rewrite(ms, argv[i])
	}
}

// start starts one container's process; argv[host:] are the container's
// own command and args, in container paths.
func (w *podWorker) start(ctx context.Context, c *corev1.Container, argv []string, host int) (*proc, error) {
	cdir := filepath.Join(w.dir, "containers", c.Name)
	work := filepath.Join(cdir, "work")
	if err := os.MkdirAll(work, 0o750); err != nil {
		return nil, err
	}
	msgPath := filepath.Join(cdir, "termination-log")
	if err := os.WriteFile(msgPath, nil, 0o666); err != nil { //nolint:gosec // the process writes it
		return nil, err
	}
	ms := w.mappings(c, msgPath)
	env, err := w.env(ctx, c, ms, msgPath, work)
	if err != nil {
		return nil, err
	}
	rewriteArgv(ms, argv, host)
	logf, err := os.OpenFile(filepath.Join(cdir, "log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(argv[0], argv[1:]...) //nolint:gosec // the image table names the program
	cmd.Dir = work
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		_ = logf.Close()
		return nil, fmt.Errorf("start %s: %w", argv[0], err)
	}
	p := &proc{c: c, cmd: cmd, log: logf, msgPath: msgPath, started: metav1.Now(), done: make(chan struct{})}
	w.log.Info("Started container", "container", c.Name, "pid", cmd.Process.Pid, "argv", argv[0])
	go func() {
		err := cmd.Wait()
		p.state = terminated(cmd, err, p)
		_ = logf.Close()
		close(p.done)
	}()
	return p, nil
}

// terminated is a finished process's container state.
func terminated(cmd *exec.Cmd, err error, p *proc) corev1.ContainerStateTerminated {
	st := corev1.ContainerStateTerminated{StartedAt: p.started, FinishedAt: metav1.Now(), Reason: "Completed",
		ContainerID: containerID(cmd)}
	if err != nil {
		st.Reason = "Error"
		st.ExitCode = 128
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
				st.ExitCode = 128 + int32(ws.Signal())
			} else {
				st.ExitCode = int32(ee.ExitCode()) //nolint:gosec // exit codes fit
			}
		}
	}
	msg, _ := os.ReadFile(p.msgPath)
	if len(msg) > maxTerminationMessage {
		msg = msg[:maxTerminationMessage]
	}
	if len(bytes.TrimSpace(msg)) == 0 && st.ExitCode != 0 && p.c.TerminationMessagePolicy == corev1.TerminationMessageFallbackToLogsOnError {
		msg = tail(p.log.Name(), 80, 2048)
	}
	st.Message = string(msg)
	return st
}

func containerID(cmd *exec.Cmd) string {
	return "dev://" + strconv.Itoa(cmd.Process.Pid)
}

// tail returns the last lines of a log file, at most limit bytes.
func tail(path string, lines, limit int) []byte {
	b, _ := os.ReadFile(path)
	parts := bytes.Split(bytes.TrimRight(b, "\n"), []byte("\n"))
	if len(parts) > lines {
		parts = parts[len(parts)-lines:]
	}
	out := bytes.Join(parts, []byte("\n"))
	if len(out) > limit {
		out = out[len(out)-limit:]
	}
	return out
}

// env is the process environment: a minimal host base, the container's
// variables (paths under mounts rewritten), the termination message path.
func (w *podWorker) env(ctx context.Context, c *corev1.Container, ms []mapping, msgPath, work string) ([]string, error) {
	vals := map[string]string{
		"PATH": os.Getenv("PATH"), "HOME": work, "HOSTNAME": w.pod.Name, "TMPDIR": work,
		TerminationMessageEnv: msgPath,
	}
	order := []string{"PATH", "HOME", "HOSTNAME", "TMPDIR", TerminationMessageEnv}
	set := func(k, v string) {
		if _, ok := vals[k]; !ok {
			order = append(order, k)
		}
		vals[k] = v
	}
	for _, e := range c.Env {
		v := e.Value
		if e.ValueFrom != nil {
			var err error
			if v, err = w.valueFrom(ctx, e.ValueFrom); err != nil {
				return nil, fmt.Errorf("env %s: %w", e.Name, err)
			}
		}
		set(e.Name, rewrite(ms, v))
	}
	out := make([]string, 0, len(order))
	for _, k := range order {
		out = append(out, k+"="+vals[k])
	}
	return out, nil
}

func (w *podWorker) valueFrom(ctx context.Context, src *corev1.EnvVarSource) (string, error) {
	switch {
	case src.FieldRef != nil:
		switch src.FieldRef.FieldPath {
		case "metadata.name":
			return w.pod.Name, nil
		case "metadata.namespace":
			return w.pod.Namespace, nil
		case "metadata.uid":
			return string(w.pod.UID), nil
		case "spec.nodeName":
			return w.pod.Spec.NodeName, nil
		case "spec.serviceAccountName":
			return w.pod.Spec.ServiceAccountName, nil
		case "status.podIP", "status.hostIP":
			return "127.0.0.1", nil
		}
		return "", fmt.Errorf("field %s is not supported by the dev process runner", src.FieldRef.FieldPath)
	case src.ConfigMapKeyRef != nil:
		data, err := w.configMapData(ctx, src.ConfigMapKeyRef.Name)
		if err != nil {
			return "", err
		}
		return string(data[src.ConfigMapKeyRef.Key]), nil
	case src.SecretKeyRef != nil:
		data, err := w.secretData(ctx, src.SecretKeyRef.Name)
		if err != nil {
			return "", err
		}
		return string(data[src.SecretKeyRef.Key]), nil
	}
	return "", errors.New("valueFrom source is not supported by the dev process runner")
}

// stopProcs sends SIGTERM to each running process group, then SIGKILL
// after the grace period, and waits for them.
func (w *podWorker) stopProcs(procs []*proc) {
	w.mu.Lock()
	grace := w.grace
	w.mu.Unlock()
	for _, p := range procs {
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
	}
	deadline := time.After(grace)
	for _, p := range procs {
		select {
		case <-p.done:
		case <-deadline:
			for _, q := range procs {
				_ = syscall.Kill(-q.cmd.Process.Pid, syscall.SIGKILL)
			}
			<-p.done
		}
	}
}

// setWaiting reports the pod Pending with every container waiting.
func (w *podWorker) setWaiting(ctx context.Context, reason, msg string) {
	w.updateStatus(ctx, func(st *corev1.PodStatus) {
		st.Phase = corev1.PodPending
		st.ContainerStatuses = nil
		for _, c := range w.pod.Spec.Containers {
			st.ContainerStatuses = append(st.ContainerStatuses, corev1.ContainerStatus{
				Name: c.Name, Image: c.Image,
				State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: reason, Message: msg}},
			})
		}
	})
}

// report writes the containers' states and the pod phase.
func (w *podWorker) report(ctx context.Context, procs []*proc) {
	statuses := make([]corev1.ContainerStatus, 0, len(procs))
	running, failed := 0, false
	for _, p := range procs {
		cs := corev1.ContainerStatus{Name: p.c.Name, Image: p.c.Image, ImageID: "dev://" + p.c.Image, ContainerID: containerID(p.cmd)}
		select {
		case <-p.done:
			st := p.state
			cs.State.Terminated = &st
			failed = failed || st.ExitCode != 0
		default:
			running++
			cs.State.Running = &corev1.ContainerStateRunning{StartedAt: p.started}
			cs.Ready, cs.Started = true, ptrTrue()
		}
		statuses = append(statuses, cs)
	}
	phase := corev1.PodRunning
	switch {
	case running > 0:
	case failed:
		phase = corev1.PodFailed
	default:
		phase = corev1.PodSucceeded
	}
	ready := corev1.ConditionFalse
	if running == len(procs) {
		ready = corev1.ConditionTrue
	}
	w.updateStatus(ctx, func(st *corev1.PodStatus) {
		st.Phase = phase
		st.ContainerStatuses = statuses
		if st.StartTime == nil {
			now := metav1.Now()
			st.StartTime = &now
		}
		setCondition(st, corev1.PodInitialized, corev1.ConditionTrue)
		setCondition(st, corev1.ContainersReady, ready)
		setCondition(st, corev1.PodReady, ready)
	})
	w.log.Info("Pod status", "phase", phase)
}

func ptrTrue() *bool { b := true; return &b }

func setCondition(st *corev1.PodStatus, t corev1.PodConditionType, s corev1.ConditionStatus) {
	for i := range st.Conditions {
		if st.Conditions[i].Type == t {
			if st.Conditions[i].Status != s {
				st.Conditions[i].Status, st.Conditions[i].LastTransitionTime = s, metav1.Now()
			}
			return
		}
	}
	st.Conditions = append(st.Conditions, corev1.PodCondition{Type: t, Status: s, LastTransitionTime: metav1.Now()})
}

// updateStatus applies f to the pod's latest status and writes it.
func (w *podWorker) updateStatus(ctx context.Context, f func(*corev1.PodStatus)) {
	pods := w.k.cfg.Client.CoreV1().Pods(w.pod.Namespace)
	err := retry.RetryOnConflict(retry.DefaultBackoff, func() error {
		pod, err := pods.Get(ctx, w.pod.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if pod.UID != w.pod.UID {
			return apierrors.NewNotFound(corev1.Resource("pods"), w.pod.Name)
		}
		f(&pod.Status)
		pod.Status.HostIP, pod.Status.PodIP = "127.0.0.1", "127.0.0.1"
		_, err = pods.UpdateStatus(ctx, pod, metav1.UpdateOptions{})
		return err
	})
	if err != nil && !apierrors.IsNotFound(err) && ctx.Err() == nil {
		w.log.Error(err, "Updating the pod status failed")
	}
}
