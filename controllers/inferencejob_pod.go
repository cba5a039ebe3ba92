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

package controllers

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/aivm-dev/aivm-operator/api/v1alpha1"
)

// The job pod contract (docs/runtime-contract.md): labels, names, paths
// and environment the runtime relies on.
const (
	// LabelJobNamespace is the namespace of a pod's InferenceJob: pods run
	// in the workload namespace, apart from their jobs.
	LabelJobNamespace = "aivm.dev/job-namespace"
	LabelJobName      = "aivm.dev/job-name"
	LabelJobUID       = "aivm.dev/job-uid"
	LabelAttempt      = "aivm.dev/attempt"
	LabelMember       = "aivm.dev/member"
	// AnnotationInput holds a job's inline input (spec.input.text, at most
	// 64 KiB) on its pod; a downward API volume makes it the input file.
	AnnotationInput = "aivm.dev/input"
	// AnnotationJob is <namespace>/<name> of a pod's InferenceJob, whole
	// (LabelJobName shortens names longer than a label value).
	AnnotationJob = "aivm.dev/job"
	labelManaged  = "app.kubernetes.io/managed-by"
	managedByAIVM = "aivm-operator"

	// RuntimeServiceAccount is the service account of job pods in the
	// workload namespace: no RBAC, no automounted token; it only names the
	// projected result token's subject.
	RuntimeServiceAccount = "aivm-runtime"
	// ResultCAConfigMap holds the result endpoint's CA (key ca.crt) in the
	// workload namespace.
	ResultCAConfigMap = "aivm-result-ca"
	// ResultTokenAudience is the audience of the projected result token.
	ResultTokenAudience = "aivm.dev/result"
	// resultTokenSeconds is the projected token's lifetime; the kubelet
	// rotates it before it expires.
	resultTokenSeconds = 600
	// ModelCSIDriver serves model snapshots as read-only inline volumes.
	ModelCSIDriver = "models.aivm.dev"

	runtimeContainer = "runtime"
	engineContainer  = "engine"
	runtimeUID       = 65532
	nvidiaRuntimeCls = "nvidia"
	nvidiaGPU        = "nvidia.com/gpu"

	modelDir  = "/var/run/aivm/model"
	inputDir  = "/var/run/aivm/input"
	tokenDir  = "/var/run/aivm/token"
	caDir     = "/var/run/aivm/ca"
	inputKey  = "input"
	tokenFile = "token"
	caKey     = "ca.crt"
)

// GPUBinding is how a job pod gets its GPUs.
type GPUBinding string

const (
	// GPUBindingDevicePlugin requests nvidia.com/gpu (or
	// nvidia.com/mig-<profile>) from the NVIDIA device plugin.
	GPUBindingDevicePlugin GPUBinding = "device-plugin"
	// GPUBindingVisibleDevices names the placement's GPU UUIDs in
	// NVIDIA_VISIBLE_DEVICES under the nvidia RuntimeClass, with no
	// extended resource, so several jobs can share one GPU by memory.
	GPUBindingVisibleDevices GPUBinding = "visible-devices"
)

// ParseGPUBinding checks a --gpu-binding value.
func ParseGPUBinding(s string) (GPUBinding, error) {
	switch b := GPUBinding(s); b {
	case GPUBindingDevicePlugin, GPUBindingVisibleDevices:
		return b, nil
	}
	return "", fmt.Errorf("gpu binding %q is not %s or %s", s, GPUBindingDevicePlugin, GPUBindingVisibleDevices)
}

// DefaultWorkloadNamespace is the namespace job pods run in when none is
// set: the namespace the chart installs the operator in.
const DefaultWorkloadNamespace = "aivm-system"

// podConfig is what the pod builder takes from the manager's settings.
type podConfig struct {
	// namespace is the workload namespace: every job pod runs there, where
	// only the manager creates pods, tokens and exec sessions
	// (docs/security.md).
	namespace    string
	runtimeImage string
	binding      GPUBinding
	resultURL    string
}

// maxPodName bounds pod names so they also fit label values and hostnames.
const maxPodName = 63

// shortName returns name when it fits in limit characters, else a prefix
// of it and a hash of the whole name, so distinct long names stay distinct.
func shortName(name string, limit int) string {
	if len(name) <= limit {
		return name
	}
	sum := sha256.Sum256([]byte(name))
	suffix := hex.EncodeToString(sum[:])[:10]
	prefix := strings.TrimRight(name[:limit-len(suffix)-1], "-.")
	return prefix + "-" + suffix
}

// PodName is the deterministic name of a placement's pod in the workload
// namespace: <job>-<uid>-<attempt>, plus -<member> in a committee, where
// <uid> is 8 hex digits of a hash of the job's UID. Pods of every tenant
// namespace share the workload namespace, and job names alone collide
// there (job "a" attempt 1 member 2 and job "a-1" attempt 2 were both
// "a-1-2"); the UID makes each job's names its own. A long job name is
// shortened first, so the whole name fits 63 characters.
func PodName(job *v1alpha1.InferenceJob, attempt, member int32, committee bool) string {
	sum := sha256.Sum256([]byte(job.UID))
	suffix := "-" + hex.EncodeToString(sum[:4]) + "-" + strconv.Itoa(int(attempt))
	if committee {
		suffix += "-" + strconv.Itoa(int(member))
	}
	return shortName(job.Name, maxPodName-len(suffix)) + suffix
}

// InputConfigMapName is the ConfigMap that held a job's inline input
// before the input travelled in the pod (AnnotationInput); a finished
// job's TTL still removes it.
func InputConfigMapName(job string) string { return shortName(job+"-input", 253) }

// JobNameLabel is the value of a job's LabelJobName: the name, shortened
// to a label value's 63 characters when longer.
func JobNameLabel(job string) string { return shortName(job, 63) }

// InputSecretName is the Secret in the workload namespace holding the copy
// of a job's ConfigMap or Secret input that the pod named pod reads.
func InputSecretName(pod string) string { return pod + "-input" }

// InputSecretKey is the key of the input in the InputSecretName Secret.
const InputSecretKey = inputKey

// ResultConfigMapName is the ConfigMap the result endpoint stores a job's output in.
func ResultConfigMapName(job string) string { return shortName(job+"-result", 253) }

// PlacementPodName is the name of placement p's pod in job.
func PlacementPodName(job *v1alpha1.InferenceJob, p *v1alpha1.Placement) string {
	return placementPodName(job, p)
}

// placementPodName is the name of placement p's pod in job.
func placementPodName(job *v1alpha1.InferenceJob, p *v1alpha1.Placement) string {
	return PodName(job, p.Attempt, p.Member, isCommittee(job, p.Attempt))
}

// isCommittee reports whether the attempt has more than one member, which
// decides the pod names; the scheduler places all members at once.
func isCommittee(job *v1alpha1.InferenceJob, attempt int32) bool {
	n := 0
	for _, p := range job.Status.Placements {
		if p.Attempt == attempt {
			n++
			if p.Member > 0 || n > 1 {
				return true
			}
		}
	}
	return false
}

// buildPod returns the runtime pod of one placement. The kernel must be
// Ready (it carries the digests the runtime checks).
func buildPod(job *v1alpha1.InferenceJob, kernel *v1alpha1.Kernel, p v1alpha1.Placement, cfg podConfig) (*corev1.Pod, error) {
	return buildPodNamed(job, kernel, p, placementPodName(job, &p), cfg)
}

// buildPodNamed is buildPod with the pod's name given: the placement's
// name depends on the attempt's other placements (isCommittee).
func buildPodNamed(job *v1alpha1.InferenceJob, kernel *v1alpha1.Kernel, p v1alpha1.Placement, name string, cfg podConfig) (*corev1.Pod, error) {
	params, err := parametersJSON(job, kernel)
	if err != nil {
		return nil, err
	}
	engine := kernel.Spec.Runtime.Engine
	if engine == "" {
		engine = v1alpha1.EngineBuiltin
	}
	env := []corev1.EnvVar{
		{Name: "AIVM_JOB_NAMESPACE", Value: job.Namespace},
		{Name: "AIVM_JOB_NAME", Value: job.Name},
		{Name: "AIVM_JOB_UID", Value: string(job.UID)},
		{Name: "AIVM_ATTEMPT", Value: strconv.Itoa(int(p.Attempt))},
		{Name: "AIVM_MEMBER", Value: strconv.Itoa(int(p.Member))},
		{Name: "AIVM_KERNEL_DIGEST", Value: kernel.Status.KernelDigest},
		{Name: "AIVM_MODEL_DIGEST", Value: kernel.Status.ModelDigest},
		{Name: "AIVM_ENGINE", Value: string(engine)},
		{Name: "AIVM_PARAMETERS", Value: params},
		{Name: "AIVM_STARTUP_TIMEOUT", Value: seconds(kernel.Spec.Timeouts.StartupSeconds, 900)},
		{Name: "AIVM_INFERENCE_TIMEOUT", Value: seconds(kernel.Spec.Timeouts.InferenceSeconds, 300)},
		{Name: "AIVM_RESULT_URL", Value: cfg.resultURL},
		{Name: "AIVM_MODEL_DIR", Value: modelDir},
		{Name: "AIVM_INPUT_FILE", Value: inputDir + "/" + inputKey},
		{Name: "AIVM_RESULT_TOKEN_FILE", Value: tokenDir + "/" + tokenFile},
		{Name: "AIVM_RESULT_CA_FILE", Value: caDir + "/" + caKey},
	}
	if engine == v1alpha1.EngineOpenAI {
		env = append(env, corev1.EnvVar{Name: "AIVM_ENGINE_URL", Value: fmt.Sprintf("http://127.0.0.1:%d", ptr.Deref(kernel.Spec.Runtime.Port, 8000))})
	}
	modelMount := corev1.VolumeMount{Name: "model", MountPath: modelDir, ReadOnly: true}
	tmpMount := corev1.VolumeMount{Name: "tmp", MountPath: "/tmp"}
	runtime := corev1.Container{
		Name:            runtimeContainer,
		Image:           cfg.runtimeImage,
		Args:            []string{"run"},
		Env:             env,
		SecurityContext: restrictedContainer(),
		VolumeMounts: []corev1.VolumeMount{
			modelMount, tmpMount,
			{Name: "input", MountPath: inputDir, ReadOnly: true},
			{Name: "token", MountPath: tokenDir, ReadOnly: true},
			{Name: "ca", MountPath: caDir, ReadOnly: true},
		},
		TerminationMessagePolicy: corev1.TerminationMessageReadFile,
	}
	containers := []corev1.Container{runtime}
	gpu := &containers[0]
	if engine == v1alpha1.EngineOpenAI {
		containers = append(containers, corev1.Container{
			Name:            engineContainer,
			Image:           kernel.Spec.Runtime.Image,
			Args:            kernel.Spec.Runtime.Args,
			Env:             kernel.Spec.Runtime.Env,
			ImagePullPolicy: kernel.Spec.Runtime.ImagePullPolicy,
			Ports: []corev1.ContainerPort{{
				Name: "engine", ContainerPort: ptr.Deref(kernel.Spec.Runtime.Port, 8000), Protocol: corev1.ProtocolTCP,
			}},
			SecurityContext:          restrictedContainer(),
			VolumeMounts:             []corev1.VolumeMount{modelMount, tmpMount},
			TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
		})
		gpu = &containers[1]
	} else {
		// The builtin engine runs inside the runtime container, so the
		// Kernel's environment goes there; the contract's variables win.
		for _, e := range kernel.Spec.Runtime.Env {
			if !strings.HasPrefix(e.Name, "AIVM_") {
				gpu.Env = append(gpu.Env, e)
			}
		}
	}
	gpu.Resources = resources(kernel)
	pod := &corev1.Pod{
		// The job is in another namespace, so no owner reference: the
		// labels name it, and the job controller removes pods whose job
		// is gone (docs/security.md).
		ObjectMeta: metav1.ObjectMeta{
			Name:      name,
			Namespace: cfg.namespace,
			Labels: map[string]string{
				LabelJobNamespace: job.Namespace,
				LabelJobName:      JobNameLabel(job.Name),
				LabelJobUID:       string(job.UID),
				LabelAttempt:      strconv.Itoa(int(p.Attempt)),
				LabelMember:       strconv.Itoa(int(p.Member)),
				labelManaged:      managedByAIVM,
			},
		},
		Spec: corev1.PodSpec{
			NodeName:                     p.Node,
			RestartPolicy:                corev1.RestartPolicyNever,
			ServiceAccountName:           RuntimeServiceAccount,
			AutomountServiceAccountToken: ptr.To(false),
			EnableServiceLinks:           ptr.To(false),
			Tolerations:                  kernel.Spec.Tolerations,
			SecurityContext: &corev1.PodSecurityContext{
				RunAsNonRoot:   ptr.To(true),
				RunAsUser:      ptr.To[int64](runtimeUID),
				RunAsGroup:     ptr.To[int64](runtimeUID),
				FSGroup:        ptr.To[int64](runtimeUID),
				SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
			},
			Containers: containers,
			Volumes:    volumes(job, kernel, name),
		},
	}
	pod.Annotations = map[string]string{AnnotationJob: job.Namespace + "/" + job.Name}
	if t := job.Spec.Input.Text; t != nil {
		pod.Annotations[AnnotationInput] = *t
	}
	switch {
	case cfg.binding == GPUBindingVisibleDevices:
		pod.Spec.RuntimeClassName = ptr.To(nvidiaRuntimeCls)
		uuids := strings.Join(p.GPUUUIDs, ",")
		for i := range pod.Spec.Containers {
			pod.Spec.Containers[i].Env = append(pod.Spec.Containers[i].Env, corev1.EnvVar{Name: "NVIDIA_VISIBLE_DEVICES", Value: uuids})
		}
	case kernel.Spec.GPU.MIGProfile != "":
		setGPULimit(gpu, corev1.ResourceName("nvidia.com/mig-"+kernel.Spec.GPU.MIGProfile), 1)
	default:
		setGPULimit(gpu, nvidiaGPU, int64(max(kernel.Spec.GPU.Count, 1)))
	}
	return pod, nil
}

// setGPULimit requests n of an extended resource (limit only: the API
// server copies it to requests).
func setGPULimit(c *corev1.Container, name corev1.ResourceName, n int64) {
	if c.Resources.Limits == nil {
		c.Resources.Limits = corev1.ResourceList{}
	}
	c.Resources.Limits[name] = *resource.NewQuantity(n, resource.DecimalSI)
}

// resources are the Kernel's CPU and memory requests; memory is also the
// limit, so running out of it is an OOMKilled the job can report.
func resources(kernel *v1alpha1.Kernel) corev1.ResourceRequirements {
	var rr corev1.ResourceRequirements
	res := kernel.Spec.Resources
	if res == nil {
		return rr
	}
	rr.Requests = corev1.ResourceList{}
	if res.CPU != nil {
		rr.Requests[corev1.ResourceCPU] = res.CPU.DeepCopy()
	}
	if res.Memory != nil {
		rr.Requests[corev1.ResourceMemory] = res.Memory.DeepCopy()
		rr.Limits = corev1.ResourceList{corev1.ResourceMemory: res.Memory.DeepCopy()}
	}
	return rr
}

func restrictedContainer() *corev1.SecurityContext {
	return &corev1.SecurityContext{
		RunAsNonRoot:             ptr.To(true),
		RunAsUser:                ptr.To[int64](runtimeUID),
		ReadOnlyRootFilesystem:   ptr.To(true),
		AllowPrivilegeEscalation: ptr.To(false),
		Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
		SeccompProfile:           &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
	}
}

// volumes are the pod's model, input, token, CA and scratch volumes; every
// type is allowed under Pod Security restricted. A ConfigMap or Secret
// input is read from the manager's copy in the workload namespace
// (InputSecretName), so the pod never reads the tenant's namespace.
func volumes(job *v1alpha1.InferenceJob, kernel *v1alpha1.Kernel, pod string) []corev1.Volume {
	var input corev1.VolumeSource
	switch in := job.Spec.Input; {
	case in.ConfigMapKeyRef != nil || in.SecretKeyRef != nil:
		input.Secret = &corev1.SecretVolumeSource{SecretName: InputSecretName(pod), Items: []corev1.KeyToPath{{Key: inputKey, Path: inputKey}}}
	default:
		// Inline text is the pod's own annotation: no object to create
		// per job, and the file the runtime reads is the same.
		input.DownwardAPI = &corev1.DownwardAPIVolumeSource{Items: []corev1.DownwardAPIVolumeFile{{
			Path: inputKey, FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: "metadata.annotations['" + AnnotationInput + "']"},
		}}}
	}
	return []corev1.Volume{
		{Name: "model", VolumeSource: corev1.VolumeSource{CSI: &corev1.CSIVolumeSource{
			Driver:   ModelCSIDriver,
			ReadOnly: ptr.To(true),
			VolumeAttributes: map[string]string{
				"model.aivm.dev/namespace": kernel.Namespace,
				"model.aivm.dev/name":      kernel.Spec.ModelRef.Name,
				"model.aivm.dev/digest":    kernel.Status.ModelDigest,
			},
		}}},
		{Name: "input", VolumeSource: input},
		{Name: "token", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
			Sources: []corev1.VolumeProjection{{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{
				Audience: ResultTokenAudience, ExpirationSeconds: ptr.To[int64](resultTokenSeconds), Path: tokenFile,
			}}},
		}}},
		{Name: "ca", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
			LocalObjectReference: corev1.LocalObjectReference{Name: ResultCAConfigMap},
			Items:                []corev1.KeyToPath{{Key: caKey, Path: caKey}},
		}}},
		{Name: "tmp", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
	}
}

// parametersJSON is AIVM_PARAMETERS: the job's parameters, with the
// Kernel's determinism seed when the job sets none.
func parametersJSON(job *v1alpha1.InferenceJob, kernel *v1alpha1.Kernel) (string, error) {
	params := job.Spec.Parameters.DeepCopy()
	if params.Seed == nil && kernel.Spec.Determinism.Seed != nil {
		params.Seed = ptr.To(*kernel.Spec.Determinism.Seed)
	}
	b, err := json.Marshal(params)
	if err != nil {
		return "", fmt.Errorf("encode parameters: %w", err)
	}
	return string(b), nil
}

// seconds renders a Kernel timeout as a Go duration, def when unset.
func seconds(s, def int32) string {
	if s <= 0 {
		s = def
	}
	return (time.Duration(s) * time.Second).String()
}
