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

// Command manager runs the aivm-operator controllers: Models, Kernels,
// InferenceJobs, GPUNode housekeeping, the result endpoint and the chain
// reporter.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"

	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
	"k8s.io/client-go/rest"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/aivm-dev/aivm-operator/controllers"
	"github.com/aivm-dev/aivm-operator/internal/scheme"
)

// options are the manager's command-line settings.
type options struct {
	metricsAddr             string
	probeAddr               string
	leaderElect             bool
	leaderElectionNamespace string
	// workloadNamespace is where job pods run (--workload-namespace).
	workloadNamespace string
	controllers       controllerOptions
	scheduling        schedulingOptions
	results           resultOptions
}

func main() {
	var opts options
	zapOpts := zap.Options{}
	opts.bindFlags(flag.CommandLine, &zapOpts)
	flag.Parse()
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&zapOpts)))
	klog.SetLogger(ctrl.Log)

	cfg, err := ctrl.GetConfig()
	if err != nil {
		ctrl.Log.Error(err, "Cannot load a kubeconfig or in-cluster config")
		os.Exit(1)
	}
	if err := run(ctrl.SetupSignalHandler(), cfg, opts); err != nil {
		ctrl.Log.Error(err, "Manager stopped")
		os.Exit(1)
	}
}

// bindFlags registers the manager's command-line flags on fs: opts's and
// the logger's.
func (o *options) bindFlags(fs *flag.FlagSet, zapOpts *zap.Options) {
	fs.StringVar(&o.metricsAddr, "metrics-bind-address", ":8080", "Address the Prometheus metrics endpoint binds to; \"0\" disables it.")
	fs.StringVar(&o.probeAddr, "health-probe-bind-address", ":8081", "Address the /healthz and /readyz endpoints bind to.")
	fs.BoolVar(&o.leaderElect, "leader-elect", false, "Elect a leader so only one manager replica reconciles at a time.")
	fs.StringVar(&o.leaderElectionNamespace, "leader-election-namespace", "", "Namespace of the leader election Lease (default: the manager's namespace).")
	fs.StringVar(&o.workloadNamespace, "workload-namespace", "", "Namespace every job pod runs in, apart from the tenants' namespaces: grant tenants no role there (docs/security.md). Default: the manager's namespace ($POD_NAMESPACE).")
	o.controllers.bindFlags(fs)
	o.scheduling.bindFlags(fs)
	o.results.bindFlags(fs)
	zapOpts.BindFlags(fs)
}

// jobPods selects the pods the job controller made, so the manager caches
// those and not every pod of the cluster.
var jobPods = func() labels.Selector {
	req, err := labels.NewRequirement(controllers.LabelJobUID, selection.Exists, nil)
	if err != nil {
		panic(err)
	}
	return labels.NewSelector().Add(*req)
}()

// workloadNS is --workload-namespace, else the manager's namespace.
func (o *options) workloadNS() string {
	if o.workloadNamespace != "" {
		return o.workloadNamespace
	}
	return managerNamespace()
}

// managedByAIVM selects the objects the manager made
// (app.kubernetes.io/managed-by=aivm-operator).
var managedByAIVM = labels.SelectorFromSet(labels.Set{"app.kubernetes.io/managed-by": "aivm-operator"})

// run starts the manager on cfg and blocks until ctx ends or it fails.
func run(ctx context.Context, cfg *rest.Config, opts options) error {
	mgr, err := newManager(cfg, opts)
	if err != nil {
		return err
	}
	ctrl.Log.Info("Starting manager")
	return mgr.Start(ctx)
}

// newManager checks opts and returns the manager on cfg with every
// controller, the result endpoint and the reporter registered, not started.
func newManager(cfg *rest.Config, opts options) (ctrl.Manager, error) {
	if err := opts.controllers.validate(); err != nil {
		return nil, err
	}
	if err := opts.scheduling.validate(); err != nil {
		return nil, err
	}
	if err := opts.results.validate(); err != nil {
		return nil, err
	}
	mgr, err := ctrl.NewManager(opts.scheduling.withRate(cfg), ctrl.Options{
		Scheme:                  scheme.New(),
		Metrics:                 metricsserver.Options{BindAddress: opts.metricsAddr},
		HealthProbeBindAddress:  opts.probeAddr,
		LeaderElection:          opts.leaderElect,
		LeaderElectionID:        "manager.aivm.dev",
		LeaderElectionNamespace: opts.leaderElectionNamespace,
		Cache:                   cacheOptions(opts.workloadNS()),
	})
	if err != nil {
		return nil, fmt.Errorf("create manager: %w", err)
	}
	// The provider key is loaded once here, before the reporter uses it.
	_, certs, err := setupResults(mgr, &opts)
	if err != nil {
		return nil, err
	}
	var ca controllers.CABundleSource
	if certs != nil {
		ca = certs
	}
	if err := setupControllers(mgr, opts, ca); err != nil {
		return nil, err
	}
	if err := setupScheduling(mgr, opts); err != nil {
		return nil, err
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return nil, fmt.Errorf("add health check: %w", err)
	}
	if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
		return nil, fmt.Errorf("add ready check: %w", err)
	}
	return mgr, nil
}
