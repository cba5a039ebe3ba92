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
	"flag"
	"fmt"
	"net/http"
	"net/url"
	"time"

	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/aivm-dev/aivm-operator/artifact"
	"github.com/aivm-dev/aivm-operator/controllers"
	"github.com/aivm-dev/aivm-operator/controllers/indexer"
	"github.com/aivm-dev/aivm-operator/controllers/reporter"
	"github.com/aivm-dev/aivm-operator/controllers/resultendpoint"
)

// controllerOptions are the reconcilers' command-line settings.
type controllerOptions struct {
	hfBaseURL           string
	sourceCheckTimeout  time.Duration
	sourceRecheck       time.Duration
	modelWorkers        int
	heartbeatStaleAfter time.Duration
	chain               reporter.Config
	jobs                jobOptions
}

// jobOptions are the InferenceJob controller's settings.
type jobOptions struct {
	runtimeImage     string
	gpuBinding       string
	nodeFailureGrace time.Duration
	imagePullGrace   time.Duration
	resultURL        string
	workers          int
}

func (o *controllerOptions) bindFlags(fs *flag.FlagSet) {
	fs.StringVar(&o.hfBaseURL, "hf-base-url", "https://huggingface.co", "Base URL that hf:// model URIs resolve against (a mirror works).")
	fs.DurationVar(&o.sourceCheckTimeout, "model-source-check-timeout", controllers.DefaultSourceCheckTimeout, "Timeout of one reachability check of a Model's source.")
	fs.DurationVar(&o.sourceRecheck, "model-source-recheck-interval", controllers.DefaultSourceRecheckInterval, "How long a successful source check of a Model stays valid.")
	fs.IntVar(&o.modelWorkers, "model-concurrent-reconciles", controllers.DefaultModelMaxConcurrentReconciles, "Models reconciled (and their sources checked) at once.")
	o.chain.BindFlags(fs)
	fs.DurationVar(&o.heartbeatStaleAfter, "gpunode-heartbeat-stale-after", controllers.DefaultHeartbeatStaleAfter, "Age of a node agent heartbeat after which its GPUNode turns Ready=False; 0 disables.")
	fs.StringVar(&o.jobs.runtimeImage, "runtime-image", "ghcr.io/aivm-dev/aivm-runtime:latest", "Image of the runtime container of job pods (pin it by digest).")
	fs.StringVar(&o.jobs.gpuBinding, "gpu-binding", string(controllers.GPUBindingDevicePlugin), "How job pods get GPUs: device-plugin (request nvidia.com/gpu or nvidia.com/mig-<profile>) or visible-devices (NVIDIA_VISIBLE_DEVICES with the nvidia RuntimeClass).")
	fs.DurationVar(&o.jobs.nodeFailureGrace, "node-failure-grace", controllers.DefaultNodeFailureGrace, "How long a node may be NotReady (or its GPU agent's heartbeat stale) before its running jobs fail over.")
	fs.DurationVar(&o.jobs.imagePullGrace, "image-pull-grace", controllers.DefaultImagePullGrace, "How long a job pod may fail to pull an image before the attempt fails.")
	fs.IntVar(&o.jobs.workers, "job-concurrent-reconciles", controllers.DefaultJobMaxConcurrentReconciles, "InferenceJobs reconciled (pods created, outcomes written) at once.")
	fs.StringVar(&o.jobs.resultURL, "result-url", controllers.DefaultResultURL, "URL job pods post results to (AIVM_RESULT_URL): the result endpoint's Service.")
}

// validate refuses settings the reconcilers cannot run with.
func (o *controllerOptions) validate() error {
	if o.modelWorkers < 1 {
		return fmt.Errorf("--model-concurrent-reconciles %d is below 1", o.modelWorkers)
	}
	if o.jobs.workers < 1 {
		return fmt.Errorf("--job-concurrent-reconciles %d is below 1", o.jobs.workers)
	}
	if o.sourceCheckTimeout <= 0 {
		return fmt.Errorf("--model-source-check-timeout %s is not positive", o.sourceCheckTimeout)
	}
	if o.sourceRecheck <= 0 {
		return fmt.Errorf("--model-source-recheck-interval %s is not positive", o.sourceRecheck)
	}
	if o.heartbeatStaleAfter < 0 {
		return fmt.Errorf("--gpunode-heartbeat-stale-after %s is negative", o.heartbeatStaleAfter)
	}
	if _, err := controllers.ParseGPUBinding(o.jobs.gpuBinding); err != nil {
		return fmt.Errorf("--gpu-binding: %w", err)
	}
	if o.jobs.runtimeImage == "" {
		return fmt.Errorf("--runtime-image is empty")
	}
	if o.jobs.nodeFailureGrace <= 0 {
		return fmt.Errorf("--node-failure-grace %s is not positive", o.jobs.nodeFailureGrace)
	}
	if o.jobs.imagePullGrace <= 0 {
		return fmt.Errorf("--image-pull-grace %s is not positive", o.jobs.imagePullGrace)
	}
	u, err := url.Parse(o.jobs.resultURL)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return fmt.Errorf("--result-url %q is not an https URL", o.jobs.resultURL)
	}
	if u.Path != resultendpoint.Path {
		return fmt.Errorf("--result-url %q: the result endpoint serves %s, so the URL's path must be %s", o.jobs.resultURL, resultendpoint.Path, resultendpoint.Path)
	}
	return nil
}

// setupControllers registers every reconciler with the manager. ca is the
// result endpoint's CA bundle, which job pods trust (nil: the endpoint is
// disabled and pods get no bundle).
func setupControllers(mgr ctrl.Manager, opts options, ca controllers.CABundleSource) error {
	checker, err := artifact.NewChecker(
		artifact.WithHFBaseURL(opts.controllers.hfBaseURL),
		artifact.WithHTTPClient(&http.Client{Timeout: opts.controllers.sourceCheckTimeout}),
	)
	if err != nil {
		return fmt.Errorf("model source checker: %w", err)
	}
	// Every field index the controllers list with, registered once.
	if err := indexer.Setup(context.Background(), mgr.GetFieldIndexer()); err != nil {
		return err
	}
	if err := controllers.NewModelReconciler(mgr.GetClient(), mgr.GetAPIReader(), mgr.GetEventRecorder("model-controller"), checker,
		controllers.WithSourceRecheck(opts.controllers.sourceRecheck, controllers.DefaultSourceRetryInterval),
		controllers.WithSourceCheckTimeout(opts.controllers.sourceCheckTimeout),
		controllers.WithModelMaxConcurrentReconciles(opts.controllers.modelWorkers),
	).SetupWithManager(mgr); err != nil {
		return fmt.Errorf("set up the Model controller: %w", err)
	}
	if err := controllers.NewKernelReconciler(mgr.GetClient(), mgr.GetAPIReader(), mgr.GetEventRecorder("kernel-controller")).SetupWithManager(mgr); err != nil {
		return fmt.Errorf("set up the Kernel controller: %w", err)
	}
	if err := controllers.NewGPUNodeGCReconciler(mgr.GetClient(), mgr.GetAPIReader(), mgr.GetEventRecorder("gpunode-controller"),
		controllers.WithHeartbeatStaleAfter(opts.controllers.heartbeatStaleAfter),
	).SetupWithManager(mgr); err != nil {
		return fmt.Errorf("set up the GPUNode controller: %w", err)
	}
	if _, err := reporter.Setup(mgr, opts.controllers.chain); err != nil {
		return err
	}
	binding, _ := controllers.ParseGPUBinding(opts.controllers.jobs.gpuBinding) // checked by validate
	if err := controllers.NewInferenceJobReconciler(mgr.GetClient(), mgr.GetAPIReader(), mgr.GetEventRecorder("inferencejob-controller"),
		controllers.WithRuntimeImage(opts.controllers.jobs.runtimeImage),
		controllers.WithGPUBinding(binding),
		controllers.WithNodeFailureGrace(opts.controllers.jobs.nodeFailureGrace),
		controllers.WithImagePullGrace(opts.controllers.jobs.imagePullGrace),
		controllers.WithResultURL(opts.controllers.jobs.resultURL),
		controllers.WithWorkloadNamespace(opts.workloadNS()),
		controllers.WithReporting(opts.controllers.chain.Enabled),
		controllers.WithCABundle(ca),
		controllers.WithJobMaxConcurrentReconciles(opts.controllers.jobs.workers),
	).SetupWithManager(mgr); err != nil {
		return fmt.Errorf("set up the InferenceJob controller: %w", err)
	}
	return nil
}
