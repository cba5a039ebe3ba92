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
	"context"
	"fmt"
	"regexp"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/aivm-dev/aivm-operator/api/v1alpha1"
	"github.com/aivm-dev/aivm-operator/controllers/indexer"
	"github.com/aivm-dev/aivm-operator/internal/kerneldigest"
	"github.com/aivm-dev/aivm-operator/internal/modeldigest"
	"github.com/aivm-dev/aivm-operator/internal/status"
)

// KernelReconciler keeps a Kernel's status current: status.kernelDigest
// (see internal/kerneldigest) and the Ready condition, True when the Model
// is ready and the runtime is valid. The digests are set whenever the
// Model exists and the runtime is valid, and cleared otherwise, so they
// never describe a spec or Model that no longer exists. Reasons: InvalidRuntime,
// ModelNotFound, ModelNotVerified (a node reported bytes that do not match
// the Model's sha256), ModelNotReady. It watches Models, so a Kernel
// follows its Model.
type KernelReconciler struct {
	client    client.Client
	apiReader client.Reader
	recorder  events.EventRecorder
	clock     clock.PassiveClock
}

// KernelReconcilerOption configures a KernelReconciler.
type KernelReconcilerOption func(*KernelReconciler)

// WithKernelClock sets the clock for condition times.
func WithKernelClock(c clock.PassiveClock) KernelReconcilerOption {
	return func(r *KernelReconciler) { r.clock = c }
}

// NewKernelReconciler returns a KernelReconciler. apiReader reads a fresh
// copy after a status patch conflicts (mgr.GetAPIReader()).
func NewKernelReconciler(c client.Client, apiReader client.Reader, recorder events.EventRecorder, opts ...KernelReconcilerOption) *KernelReconciler {
	r := &KernelReconciler{client: c, apiReader: apiReader, recorder: recorder, clock: clock.RealClock{}}
	for _, o := range opts {
		o(r)
	}
	return r
}

// +kubebuilder:rbac:groups=aivm.dev,resources=kernels,verbs=get;list;watch
// +kubebuilder:rbac:groups=aivm.dev,resources=kernels/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=aivm.dev,resources=models,verbs=get;list;watch

// Reconcile computes a Kernel's status and patches it when it changed.
func (r *KernelReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	kernel := &v1alpha1.Kernel{}
	if err := r.client.Get(ctx, req.NamespacedName, kernel); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !kernel.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, nil
	}
	model := &v1alpha1.Model{}
	if err := r.client.Get(ctx, types.NamespacedName{Namespace: kernel.Namespace, Name: kernel.Spec.ModelRef.Name}, model); err != nil {
		if !apierrors.IsNotFound(err) {
			return ctrl.Result{}, fmt.Errorf("get model: %w", err)
		}
		model = nil
	}
	before := kernel.DeepCopy()
	changed, err := status.Update(ctx, r.client, r.apiReader, kernel, func(k *v1alpha1.Kernel) error {
		r.setStatus(k, model)
		return nil
	})
	if err != nil {
		return ctrl.Result{}, err
	}
	if changed {
		r.recordEvents(before, kernel)
	}
	return ctrl.Result{}, nil
}

// setStatus writes the digest and Ready condition for kernel given its
// Model (nil when it does not exist).
func (r *KernelReconciler) setStatus(kernel *v1alpha1.Kernel, model *v1alpha1.Model) {
	gen := kernel.Generation
	now := metav1.NewTime(r.clock.Now())
	ready := func(s metav1.ConditionStatus, reason, msg string) {
		meta.SetStatusCondition(&kernel.Status.Conditions, metav1.Condition{
			Type: v1alpha1.ConditionReady, Status: s, Reason: reason, Message: truncateMessage(msg),
			ObservedGeneration: gen, LastTransitionTime: now,
		})
	}
	kernel.Status.ObservedGeneration = gen
	// Cleared until this generation's digest is computed below.
	kernel.Status.KernelDigest, kernel.Status.ModelDigest = "", ""

	if err := validateRuntime(&kernel.Spec, model); err != nil {
		ready(metav1.ConditionFalse, v1alpha1.ReasonInvalidRuntime, err.Error())
		return
	}
	if model == nil {
		ready(metav1.ConditionFalse, v1alpha1.ReasonModelNotFound,
			fmt.Sprintf("model %q not found in namespace %s", kernel.Spec.ModelRef.Name, kernel.Namespace))
		return
	}
	digest, err := kerneldigest.Digest(&kernel.Spec, &model.Spec)
	if err != nil {
		ready(metav1.ConditionFalse, v1alpha1.ReasonInvalidRuntime, err.Error())
		return
	}
	modelDigest, err := modeldigest.Of(&model.Spec)
	if err != nil {
		ready(metav1.ConditionFalse, v1alpha1.ReasonModelNotReady, fmt.Sprintf("model %s: %v", model.Name, err))
		return
	}
	kernel.Status.KernelDigest = digest
	kernel.Status.ModelDigest = modelDigest

	verified := meta.FindStatusCondition(model.Status.Conditions, v1alpha1.ConditionVerified)
	modelReady := meta.FindStatusCondition(model.Status.Conditions, v1alpha1.ConditionReady)
	switch {
	case verified != nil && verified.Status == metav1.ConditionFalse && verified.ObservedGeneration == model.Generation:
		ready(metav1.ConditionFalse, v1alpha1.ReasonModelNotVerified,
			fmt.Sprintf("model %s is not verified (%s): %s", model.Name, verified.Reason, verified.Message))
	case modelReady == nil || model.Status.ObservedGeneration != model.Generation || modelReady.ObservedGeneration != model.Generation:
		ready(metav1.ConditionFalse, v1alpha1.ReasonModelNotReady,
			fmt.Sprintf("model %s has no status for its current generation yet", model.Name))
	case modelReady.Status != metav1.ConditionTrue:
		ready(metav1.ConditionFalse, v1alpha1.ReasonModelNotReady,
			fmt.Sprintf("model %s is not ready (%s): %s", model.Name, modelReady.Reason, modelReady.Message))
	default:
		ready(metav1.ConditionTrue, v1alpha1.ReasonReady,
			fmt.Sprintf("model %s is ready and the runtime is valid", model.Name))
	}
}

// kernelEvents: Ready transitions, True as Normal and otherwise Warning.
var kernelEvents = status.EventRule{Types: []string{v1alpha1.ConditionReady}}

// recordEvents emits events for Ready and digest changes, after the status is saved.
func (r *KernelReconciler) recordEvents(before, after *v1alpha1.Kernel) {
	if r.recorder != nil && after.Status.KernelDigest != "" && before.Status.KernelDigest != after.Status.KernelDigest {
		r.recorder.Eventf(after, nil, corev1.EventTypeNormal, "DigestComputed", "ComputeDigest",
			"kernel digest is %s", after.Status.KernelDigest)
	}
	status.RecordTransitions(r.recorder, after, before.Status.Conditions, after.Status.Conditions, kernelEvents)
}

// SetupWithManager registers the watches: Kernels, and Models (each mapped
// to the Kernels that reference it, through indexer.KernelModelRef).
func (r *KernelReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		For(&v1alpha1.Kernel{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Watches(&v1alpha1.Model{}, handler.EnqueueRequestsFromMapFunc(r.kernelsForModel)).
		Named("kernel").
		Complete(r)
}

func (r *KernelReconciler) kernelsForModel(ctx context.Context, o client.Object) []reconcile.Request {
	var kernels v1alpha1.KernelList
	if err := r.client.List(ctx, &kernels, client.InNamespace(o.GetNamespace()), client.MatchingFields{indexer.KernelModelRef: o.GetName()}); err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "Could not list kernels for model", "model", klog.KObj(o))
		return nil
	}
	reqs := make([]reconcile.Request, 0, len(kernels.Items))
	for _, k := range kernels.Items {
		reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&k)})
	}
	return reqs
}

// validateRuntime checks what the schema cannot: the image reference
// grammar, the engine's port, and, when the Model is known, that the GPUs
// asked for can hold it.
func validateRuntime(spec *v1alpha1.KernelSpec, model *v1alpha1.Model) error {
	rt := spec.Runtime
	if err := validateImageRef(rt.Image); err != nil {
		return fmt.Errorf("runtime.image: %w", err)
	}
	switch rt.Engine {
	case "", v1alpha1.EngineBuiltin:
	case v1alpha1.EngineOpenAI:
		if rt.Port == nil {
			return fmt.Errorf("runtime.port is required for the openai engine")
		}
	default:
		return fmt.Errorf("runtime.engine %q is not builtin or openai", rt.Engine)
	}
	if model != nil && spec.GPU.Memory != nil && spec.GPU.MIGProfile == "" {
		count := int64(max(spec.GPU.Count, 1))
		total := spec.GPU.Memory.DeepCopy()
		total.Mul(count)
		if total.Cmp(model.Spec.GPUMemory) < 0 {
			return fmt.Errorf("gpu.memory %s × gpu.count %d = %s is less than model %s's gpuMemory %s",
				spec.GPU.Memory.String(), count, total.String(), model.Name, model.Spec.GPUMemory.String())
		}
	}
	return nil
}

// Image reference grammar (the distribution reference grammar):
// [host[:port]/]path[:tag][@algorithm:hex].
var imageRefRE = func() *regexp.Regexp {
	const (
		pathComp   = `[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*`
		domainComp = `(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])`
		host       = `(?:` + domainComp + `(?:\.` + domainComp + `)*|\[[a-fA-F0-9:]+\])`
		domain     = host + `(?::[0-9]+)?`
		name       = `(?:` + domain + `/)?` + pathComp + `(?:/` + pathComp + `)*`
		tag        = `[\w][\w.-]{0,127}`
		digest     = `[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+`
	)
	return regexp.MustCompile(`^(` + name + `)(?::(` + tag + `))?(?:@(` + digest + `))?$`)
}()

// validateImageRef reports why ref is not a valid image reference.
func validateImageRef(ref string) error {
	m := imageRefRE.FindStringSubmatch(ref)
	if m == nil {
		return fmt.Errorf("%q is not a valid image reference ([registry/]repository[:tag][@sha256:<hex>], lowercase repository)", ref)
	}
	if len(m[1]) > 255 {
		return fmt.Errorf("repository name of %q is longer than 255 characters", ref)
	}
	if d := m[3]; d != "" {
		alg, hex, _ := strings.Cut(d, ":")
		if alg == "sha256" && !isLowerHex(hex, 64) {
			return fmt.Errorf("image digest %q is not sha256 with 64 lowercase hexadecimal characters", d)
		}
	}
	return nil
}

func isLowerHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}
