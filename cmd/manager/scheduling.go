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
	"flag"
	"fmt"

	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/aivm-dev/aivm-operator/controllers"
	"github.com/aivm-dev/aivm-operator/controllers/scheduler"
)

// Defaults of the API client rate. A job costs four writes from its
// creation to a pod on its node (the placement with its admission, the
// pod, the pod's UID in status, one event), so 2,000 a second lets
// through about 500 jobs a second, above kube-scheduler's rate with a
// high client rate.
// The API server protects itself with priority and fairness.
const (
	defaultKubeAPIQPS   = 2000
	defaultKubeAPIBurst = 4000
)

// schedulingOptions are the scheduler's and the API client's settings.
type schedulingOptions struct {
	policy       string
	kubeAPIQPS   float64
	kubeAPIBurst int
	workers      int
}

func (o *schedulingOptions) bindFlags(fs *flag.FlagSet) {
	fs.StringVar(&o.policy, "scheduling-policy", string(scheduler.PolicyBinpack), "How jobs are placed among GPUs that fit: binpack (fill partly used GPUs, keep whole GPUs free) or spread (the emptiest GPUs).")
	fs.Float64Var(&o.kubeAPIQPS, "kube-api-qps", defaultKubeAPIQPS, "Queries per second the manager's API client may send.")
	fs.IntVar(&o.kubeAPIBurst, "kube-api-burst", defaultKubeAPIBurst, "Burst of queries the manager's API client may send above --kube-api-qps.")
	fs.IntVar(&o.workers, "scheduling-workers", controllers.DefaultSchedulingWorkers, "Placements recorded in job status at once.")
}

func (o *schedulingOptions) validate() error {
	if p := scheduler.Policy(o.policy); p != scheduler.PolicyBinpack && p != scheduler.PolicySpread {
		return fmt.Errorf("--scheduling-policy %q is not binpack or spread", o.policy)
	}
	if o.kubeAPIQPS <= 0 {
		return fmt.Errorf("--kube-api-qps %v is not positive", o.kubeAPIQPS)
	}
	if o.kubeAPIBurst < 1 {
		return fmt.Errorf("--kube-api-burst %d is below 1", o.kubeAPIBurst)
	}
	if o.workers < 1 {
		return fmt.Errorf("--scheduling-workers %d is below 1", o.workers)
	}
	return nil
}

// withRate returns a copy of cfg with the flags' client rate.
func (o *schedulingOptions) withRate(cfg *rest.Config) *rest.Config {
	if cfg == nil {
		return nil
	}
	c := rest.CopyConfig(cfg)
	c.QPS, c.Burst = float32(o.kubeAPIQPS), o.kubeAPIBurst
	return c
}

// setupScheduling registers the scheduling controller (setupControllers
// registered the field indexes it lists by).
func setupScheduling(mgr ctrl.Manager, opts options) error {
	binding, _ := controllers.ParseGPUBinding(opts.controllers.jobs.gpuBinding) // checked by validate
	sched, err := scheduler.New(scheduler.Options{
		Policy:              scheduler.Policy(opts.scheduling.policy),
		HeartbeatStaleAfter: opts.controllers.heartbeatStaleAfter,
		// The device plugin hands out whole GPUs: sharing one by memory
		// would place pods the kubelet refuses.
		WholeGPUs: binding == controllers.GPUBindingDevicePlugin,
	})
	if err != nil {
		return err
	}
	if err := controllers.NewSchedulingReconciler(mgr.GetClient(), mgr.GetAPIReader(), mgr.GetEventRecorder("scheduler"), sched,
		controllers.WithSchedulingWorkers(opts.scheduling.workers),
	).SetupWithManager(mgr); err != nil {
		return fmt.Errorf("set up the scheduler: %w", err)
	}
	return nil
}
