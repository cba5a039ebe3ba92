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
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/aivm-dev/aivm-operator/internal/testenv"
)

func TestRewriteMapsLongestMountFirst(t *testing.T) {
	ms := []mapping{{from: "/var/run/aivm/model", to: "/l/model"}, {from: "/var/run/aivm", to: "/l/all"}}
	for in, want := range map[string]string{
		"/var/run/aivm/model/config.json": "/l/model/config.json",
		"/var/run/aivm/model":             "/l/model",
		"/var/run/aivm/input/input":       "/l/all/input/input",
		"/var/run/aivmx":                  "/var/run/aivmx",
		"relative":                        "relative",
	} {
		if got := rewrite(ms, in); got != want {
			t.Errorf("rewrite(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestImagesArgv(t *testing.T) {
	im := Images{}
	if err := im.ParseImage("example.com/engine:v1=/bin/echo -n"); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"noequals", "=cmd", "img=", "example.com/engine:v1=/bin/true"} {
		if err := im.ParseImage(bad); err == nil {
			t.Errorf("ParseImage(%q) accepted", bad)
		}
	}
	got, host, err := im.argv(&corev1.Container{Image: "example.com/engine:v1", Args: []string{"a"}})
	if err != nil || strings.Join(got, " ") != "/bin/echo -n a" || host != 2 {
		t.Errorf("argv = %q (%d from the table), %v", got, host, err)
	}
	got, host, _ = im.argv(&corev1.Container{Image: "example.com/engine:v1", Command: []string{"-e"}, Args: []string{"b"}})
	if strings.Join(got, " ") != "/bin/echo -e b" || host != 1 {
		t.Errorf("argv with command = %q (%d from the table)", got, host)
	}
	// A local program under a path the container mounts over (a job pod
	// mounts an emptyDir at /tmp) keeps its host path; the container's
	// own arguments are mapped.
	if err := im.ParseImage("runtime:v1=/tmp/dev/bin/aivm-runtime run"); err != nil {
		t.Fatal(err)
	}
	argv, host, _ := im.argv(&corev1.Container{Image: "runtime:v1", Args: []string{"--out=/tmp/x", "/tmp/in"}})
	rewriteArgv([]mapping{{from: "/tmp", to: "/pods/1/volumes/tmp"}}, argv, host)
	if want := "/tmp/dev/bin/aivm-runtime run --out=/tmp/x /pods/1/volumes/tmp/in"; strings.Join(argv, " ") != want {
		t.Errorf("argv %q, want %q", argv, want)
	}
	if _, _, err := im.argv(&corev1.Container{Image: "other"}); err == nil || !strings.Contains(err.Error(), `"other"`) {
		t.Errorf("unknown image: %v", err)
	}
}

// TestPodRunsAsProcess runs a pod on a real API server: the Node turns
// Ready with a Lease, the container's process sees its ConfigMap volume at
// the rewritten path, and its exit code and termination message reach the
// pod status; deleting the pod removes it.
func TestPodRunsAsProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("starts kube-apiserver")
	}
	assets, err := testenv.Assets()
	if err != nil {
		t.Fatal(err)
	}
	// A machine busy compiling starts kube-apiserver slowly.
	api := &envtest.Environment{BinaryAssetsDirectory: assets, ControlPlaneStartTimeout: 3 * time.Minute}
	cfg, err := api.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = api.Stop() })
	cs := kubernetes.NewForConfigOrDie(cfg)
	ctx, cancel := context.WithCancel(t.Context())
	kl, err := New(Config{
		NodeName: "n1", Client: cs, Dir: t.TempDir(), HeartbeatInterval: time.Second,
		Images: Images{"busybox": {"/bin/sh", "-c"}}, Log: testr.New(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = kl.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	if _, err := cs.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "in"}, Data: map[string]string{"k": "hello"},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	script := `test "$(cat $IN)" = hello || exit 9; echo "done: $(cat $IN)" > $AIVM_TERMINATION_MESSAGE_PATH; exit 3`
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "default"},
		Spec: corev1.PodSpec{
			NodeName: "n1", RestartPolicy: corev1.RestartPolicyNever, AutomountServiceAccountToken: ptr.To(false),
			Containers: []corev1.Container{{
				Name: "c", Image: "busybox", Args: []string{script},
				Env:          []corev1.EnvVar{{Name: "IN", Value: "/etc/in/k"}},
				VolumeMounts: []corev1.VolumeMount{{Name: "in", MountPath: "/etc/in"}},
			}},
			Volumes: []corev1.Volume{{Name: "in", VolumeSource: corev1.VolumeSource{
				ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "in"}},
			}}},
		},
	}
	created, err := cs.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Minute)
	for {
		got, err := cs.CoreV1().Pods("default").Get(ctx, "p", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if got.Status.Phase == corev1.PodFailed {
			st := got.Status.ContainerStatuses[0].State.Terminated
			if st == nil || st.ExitCode != 3 || strings.TrimSpace(st.Message) != "done: hello" {
				t.Fatalf("container state %+v", got.Status.ContainerStatuses[0].State)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("pod phase %s, statuses %+v", got.Status.Phase, got.Status.ContainerStatuses)
		}
		time.Sleep(200 * time.Millisecond)
	}
	node, err := cs.CoreV1().Nodes().Get(ctx, "n1", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(node.Status.Conditions) == 0 || node.Status.Conditions[0].Status != corev1.ConditionTrue {
		t.Errorf("node conditions %+v", node.Status.Conditions)
	}
	if _, err := cs.CoordinationV1().Leases(corev1.NamespaceNodeLease).Get(ctx, "n1", metav1.GetOptions{}); err != nil {
		t.Errorf("lease: %v", err)
	}
	// The API server taints a new Node not-ready; with no node lifecycle
	// controller here, the stand-in lifts it, or nothing would schedule.
	node.Spec.Taints = append(node.Spec.Taints, corev1.Taint{Key: corev1.TaintNodeNotReady, Effect: corev1.TaintEffectNoSchedule})
	if _, err := cs.CoreV1().Nodes().Update(ctx, node, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	for deadline = time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		node, err = cs.CoreV1().Nodes().Get(ctx, "n1", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if len(node.Spec.Taints) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a Ready node keeps taints %+v", node.Spec.Taints)
		}
	}
	if err := cs.CoreV1().Pods("default").Delete(ctx, "p", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	for deadline = time.Now().Add(time.Minute); ; time.Sleep(200 * time.Millisecond) {
		_, err := cs.CoreV1().Pods("default").Get(ctx, "p", metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("pod not removed: %v", err)
		}
	}
	// The runner removes the directory once it sees the deletion.
	for deadline = time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		if _, err := os.Stat(kl.podDir(created.UID)); os.IsNotExist(err) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("pod directory %s kept after deletion", kl.podDir(created.UID))
		}
	}
}

// TestDownwardAPIVolume: a downward API volume's files hold the pod's own
// fields, an annotation's value as it is (the job pod's inline input).
func TestDownwardAPIVolume(t *testing.T) {
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "job-1", Namespace: "ns", UID: "u-1",
		Annotations: map[string]string{"aivm.dev/input": "hello\nworld"}, Labels: map[string]string{"app": "x"}}}
	w := &podWorker{pod: pod, dir: t.TempDir()}
	dir := w.volumeDir("input")
	err := w.writeDownwardAPI(dir, []corev1.DownwardAPIVolumeFile{
		{Path: "input", FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.annotations['aivm.dev/input']"}},
		{Path: "meta/app", FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.labels['app']"}},
		{Path: "name", FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]string{"input": "hello\nworld", "meta/app": "x", "name": "job-1"} {
		got, err := os.ReadFile(dir + "/" + path)
		if err != nil || string(got) != want {
			t.Errorf("%s = %q (%v), want %q", path, got, err, want)
		}
	}
	if err := w.writeDownwardAPI(dir, []corev1.DownwardAPIVolumeFile{
		{Path: "x", FieldRef: &corev1.ObjectFieldSelector{FieldPath: "spec.nodeName"}},
	}); err == nil || !strings.Contains(err.Error(), "spec.nodeName") {
		t.Errorf("unsupported field path: err %v, want one naming it", err)
	}
}
