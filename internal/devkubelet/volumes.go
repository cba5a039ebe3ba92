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
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	csipb "github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Volume attributes the kubelet adds for CSI drivers with podInfoOnMount.
const (
	csiPodName      = "csi.storage.k8s.io/pod.name"
	csiPodNamespace = "csi.storage.k8s.io/pod.namespace"
	csiPodUID       = "csi.storage.k8s.io/pod.uid"
	csiPodSA        = "csi.storage.k8s.io/serviceAccount.name"
	csiEphemeral    = "csi.storage.k8s.io/ephemeral"
)

// csiVolume is a published CSI inline volume, to unpublish later.
type csiVolume struct {
	driver, id, target string
}

// volumeDir is the local directory of a pod volume.
func (w *podWorker) volumeDir(name string) string {
	return filepath.Join(w.dir, "volumes", name)
}

// prepareVolumes makes every volume of the pod available as a local
// directory; CSI volumes it published are recorded in w.csi.
func (w *podWorker) prepareVolumes(ctx context.Context) error {
	for i := range w.pod.Spec.Volumes {
		v := &w.pod.Spec.Volumes[i]
		dir := w.volumeDir(v.Name)
		var err error
		switch {
		case v.EmptyDir != nil:
			err = os.MkdirAll(dir, 0o777) //nolint:gosec // scratch space of the pod's processes
		case v.ConfigMap != nil:
			err = w.writeConfigMap(ctx, dir, v.ConfigMap.Name, v.ConfigMap.Items, ptrBool(v.ConfigMap.Optional))
		case v.Secret != nil:
			err = w.writeSecret(ctx, dir, v.Secret.SecretName, v.Secret.Items, ptrBool(v.Secret.Optional))
		case v.Projected != nil:
			err = w.writeProjected(ctx, dir, v.Projected)
		case v.DownwardAPI != nil:
			err = w.writeDownwardAPI(dir, v.DownwardAPI.Items)
		case v.CSI != nil:
			err = w.publishCSI(ctx, v.Name, v.CSI)
		case v.HostPath != nil:
			err = os.Symlink(v.HostPath.Path, dir)
			if os.IsExist(err) {
				err = nil
			}
		default:
			err = fmt.Errorf("volume type is not supported by the dev process runner")
		}
		if err != nil {
			return fmt.Errorf("volume %q: %w", v.Name, err)
		}
	}
	return nil
}

func ptrBool(b *bool) bool { return b != nil && *b }

// writeFiles writes data's keys (or the selected items) into dir, replacing
// what was there.
func writeFiles(dir string, data map[string][]byte, items []corev1.KeyToPath, mode os.FileMode) error {
	if err := os.MkdirAll(dir, 0o755); err != nil { //nolint:gosec // read by the pod's processes
		return err
	}
	write := func(key, path string) error {
		b, ok := data[key]
		if !ok {
			return fmt.Errorf("key %q is missing", key)
		}
		if strings.Contains(path, "..") || filepath.IsAbs(path) {
			return fmt.Errorf("path %q leaves the volume", path)
		}
		p := filepath.Join(dir, path)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil { //nolint:gosec // read by the pod's processes
			return err
		}
		return writeAtomic(p, b, mode)
	}
	if len(items) > 0 {
		for _, it := range items {
			if err := write(it.Key, it.Path); err != nil {
				return err
			}
		}
		return nil
	}
	for key := range data {
		if err := write(key, key); err != nil {
			return err
		}
	}
	return nil
}

// writeDownwardAPI writes the pod's own fields that items select, as the
// kubelet's downward API volume does: metadata.name, namespace, uid and
// single labels or annotations (metadata.annotations['key']).
func (w *podWorker) writeDownwardAPI(dir string, items []corev1.DownwardAPIVolumeFile) error {
	data := map[string][]byte{}
	var keys []corev1.KeyToPath
	for _, it := range items {
		if it.FieldRef == nil {
			return fmt.Errorf("downward API item %q: only fieldRef is supported by the dev process runner", it.Path)
		}
		v, err := podField(w.pod, it.FieldRef.FieldPath)
		if err != nil {
			return fmt.Errorf("downward API item %q: %w", it.Path, err)
		}
		data[it.Path] = []byte(v)
		keys = append(keys, corev1.KeyToPath{Key: it.Path, Path: it.Path})
	}
	return writeFiles(dir, data, keys, 0o644)
}

// podField is the value of a downward API field path of pod.
func podField(pod *corev1.Pod, path string) (string, error) {
	for prefix, m := range map[string]map[string]string{"metadata.annotations": pod.Annotations, "metadata.labels": pod.Labels} {
		if rest, ok := strings.CutPrefix(path, prefix+"['"); ok {
			key, ok := strings.CutSuffix(rest, "']")
			if !ok {
				return "", fmt.Errorf("field path %q is malformed", path)
			}
			return m[key], nil
		}
	}
	switch path {
	case "metadata.name":
		return pod.Name, nil
	case "metadata.namespace":
		return pod.Namespace, nil
	case "metadata.uid":
		return string(pod.UID), nil
	}
	return "", fmt.Errorf("field path %q is not supported by the dev process runner", path)
}

// writeAtomic replaces path with b through a rename, as the kubelet's
// atomic writer updates volume files.
func writeAtomic(path string, b []byte, mode os.FileMode) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, mode); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func (w *podWorker) configMapData(ctx context.Context, name string) (map[string][]byte, error) {
	cm, err := w.k.cfg.Client.CoreV1().ConfigMaps(w.pod.Namespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("configmap %s: %w", name, err)
	}
	data := make(map[string][]byte, len(cm.Data)+len(cm.BinaryData))
	for k, v := range cm.Data {
		data[k] = []byte(v)
	}
	for k, v := range cm.BinaryData {
		data[k] = v
	}
	return data, nil
}

func (w *podWorker) secretData(ctx context.Context, name string) (map[string][]byte, error) {
	s, err := w.k.cfg.Client.CoreV1().Secrets(w.pod.Namespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("secret %s: %w", name, err)
	}
	return s.Data, nil
}

func (w *podWorker) writeConfigMap(ctx context.Context, dir, name string, items []corev1.KeyToPath, optional bool) error {
	data, err := w.configMapData(ctx, name)
	if err != nil {
		if optional {
			return os.MkdirAll(dir, 0o755) //nolint:gosec // read by the pod's processes
		}
		return err
	}
	return writeFiles(dir, data, items, 0o644)
}

func (w *podWorker) writeSecret(ctx context.Context, dir, name string, items []corev1.KeyToPath, optional bool) error {
	data, err := w.secretData(ctx, name)
	if err != nil {
		if optional {
			return os.MkdirAll(dir, 0o755) //nolint:gosec // read by the pod's processes
		}
		return err
	}
	return writeFiles(dir, data, items, 0o600)
}

// writeProjected writes a projected volume; service account tokens come
// from the TokenRequest API, bound to the pod.
func (w *podWorker) writeProjected(ctx context.Context, dir string, p *corev1.ProjectedVolumeSource) error {
	for _, src := range p.Sources {
		var err error
		switch {
		case src.ServiceAccountToken != nil:
			err = w.writeToken(ctx, dir, src.ServiceAccountToken)
		case src.ConfigMap != nil:
			err = w.writeConfigMap(ctx, dir, src.ConfigMap.Name, src.ConfigMap.Items, ptrBool(src.ConfigMap.Optional))
		case src.Secret != nil:
			err = w.writeSecret(ctx, dir, src.Secret.Name, src.Secret.Items, ptrBool(src.Secret.Optional))
		default:
			err = fmt.Errorf("projected source is not supported by the dev process runner")
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// writeToken requests a token for the pod's service account, bound to the
// pod, and writes it; it returns when it should be refreshed in w.refresh.
func (w *podWorker) writeToken(ctx context.Context, dir string, src *corev1.ServiceAccountTokenProjection) error {
	req := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{
		ExpirationSeconds: src.ExpirationSeconds,
		BoundObjectRef:    &authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: w.pod.Name, UID: w.pod.UID},
	}}
	if src.Audience != "" {
		req.Spec.Audiences = []string{src.Audience}
	}
	sa := w.pod.Spec.ServiceAccountName
	if sa == "" {
		sa = "default"
	}
	tr, err := w.k.cfg.Client.CoreV1().ServiceAccounts(w.pod.Namespace).CreateToken(ctx, sa, req, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("request a token for service account %s: %w", sa, err)
	}
	// Refresh at 80% of the lifetime, as the kubelet does.
	life := time.Until(tr.Status.ExpirationTimestamp.Time)
	w.tokenRefresh = time.Now().Add(life * 4 / 5)
	return writeFiles(dir, map[string][]byte{src.Path: []byte(tr.Status.Token)}, nil, 0o600)
}

// csiTarget is the kubelet's target path of a CSI inline volume.
func (w *podWorker) csiTarget(volume string) string {
	return filepath.Join(w.dir, "volumes", "kubernetes.io~csi", volume, "mount")
}

// csiVolumeID is the kubelet's handle of an inline volume: a hash of the
// pod UID and volume name.
func csiVolumeID(podUID, volume string) string {
	sum := sha256.Sum256([]byte(podUID + "/" + volume))
	return "csi-" + hex.EncodeToString(sum[:])[:40]
}

// dialCSI connects to a driver's node plugin socket.
func (k *Kubelet) dialCSI(driver string) (*grpc.ClientConn, error) {
	sock, ok := k.cfg.CSIDrivers[driver]
	if !ok {
		return nil, fmt.Errorf("CSI driver %s is not registered on this node", driver)
	}
	if !strings.HasPrefix(sock, "unix://") {
		sock = "unix://" + sock
	}
	return grpc.NewClient(sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
}

// publishCSI calls NodePublishVolume for an inline volume, as the kubelet
// does: the volume attributes plus the pod's identity, ephemeral=true.
func (w *podWorker) publishCSI(ctx context.Context, name string, src *corev1.CSIVolumeSource) error {
	conn, err := w.k.dialCSI(src.Driver)
	if err != nil {
		return err
	}
	defer func() { _ = conn.Close() }()
	vc := map[string]string{
		csiPodName: w.pod.Name, csiPodNamespace: w.pod.Namespace, csiPodUID: string(w.pod.UID),
		csiPodSA: w.pod.Spec.ServiceAccountName, csiEphemeral: "true",
	}
	for k, v := range src.VolumeAttributes {
		vc[k] = v
	}
	fsType := ""
	if src.FSType != nil {
		fsType = *src.FSType
	}
	vol := csiVolume{driver: src.Driver, id: csiVolumeID(string(w.pod.UID), name), target: w.csiTarget(name)}
	if err := os.MkdirAll(filepath.Dir(vol.target), 0o750); err != nil {
		return err
	}
	cctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	_, err = csipb.NewNodeClient(conn).NodePublishVolume(cctx, &csipb.NodePublishVolumeRequest{
		VolumeId:   vol.id,
		TargetPath: vol.target,
		Readonly:   ptrBool(src.ReadOnly),
		VolumeCapability: &csipb.VolumeCapability{
			AccessType: &csipb.VolumeCapability_Mount{Mount: &csipb.VolumeCapability_MountVolume{FsType: fsType}},
			AccessMode: &csipb.VolumeCapability_AccessMode{Mode: csipb.VolumeCapability_AccessMode_SINGLE_NODE_READER_ONLY},
		},
		VolumeContext: vc,
	})
	if err != nil {
		return fmt.Errorf("NodePublishVolume on %s: %w", src.Driver, err)
	}
	w.csi = append(w.csi, vol)
	// The container sees the mount through the volume directory.
	link := w.volumeDir(name)
	if err := os.Symlink(vol.target, link); err != nil && !os.IsExist(err) {
		return err
	}
	return nil
}

// unpublishCSI unpublishes every CSI volume the worker published.
func (w *podWorker) unpublishCSI() {
	for _, vol := range w.csi {
		conn, err := w.k.dialCSI(vol.driver)
		if err == nil {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			_, err = csipb.NewNodeClient(conn).NodeUnpublishVolume(ctx, &csipb.NodeUnpublishVolumeRequest{VolumeId: vol.id, TargetPath: vol.target})
			cancel()
			_ = conn.Close()
		}
		if err != nil {
			w.log.Error(err, "NodeUnpublishVolume failed", "volume", vol.id, "driver", vol.driver)
		}
	}
	w.csi = nil
}
