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
	"math"
	"os"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/aivm-dev/aivm-operator/chain-client/receipt"
	"github.com/aivm-dev/aivm-operator/controllers"
	"github.com/aivm-dev/aivm-operator/controllers/reporter"
	"github.com/aivm-dev/aivm-operator/controllers/resultendpoint"
)

// PodNamespaceEnv is the manager's namespace (downward API); the
// self-managed certificate Secret lives there.
const PodNamespaceEnv = "POD_NAMESPACE"

// defaultNamespace is the manager's namespace when POD_NAMESPACE is unset
// (config/default installs there).
const defaultNamespace = "aivm-system"

// resultOptions configure the result endpoint.
type resultOptions struct {
	bindAddress string
	tlsSecret   string
	serviceName string
	certSecret  string
	limits      resultendpoint.Limits
}

func (o *resultOptions) bindFlags(fs *flag.FlagSet) {
	fs.StringVar(&o.bindAddress, "result-bind-address", resultendpoint.DefaultBindAddress, "Address the HTTPS result endpoint binds to; \"0\" disables it.")
	fs.StringVar(&o.tlsSecret, "result-tls-secret", "", "namespace/name of a kubernetes.io/tls Secret serving the result endpoint (reloaded when it changes; its ca.crt, else tls.crt, is the CA bundle). Empty: the manager issues and renews its own CA and certificate.")
	fs.StringVar(&o.serviceName, "result-service-name", "aivm-operator-result", "Service that fronts the result endpoint in the manager's namespace: the self-managed certificate's DNS names.")
	fs.StringVar(&o.certSecret, "result-cert-secret", "aivm-operator-result-tls", "Secret in the manager's namespace holding the self-managed CA and certificate, shared by all replicas.")
	o.limits = resultendpoint.DefaultLimits()
	fs.IntVar(&o.limits.MaxConnections, "result-max-connections", o.limits.MaxConnections, "Open connections the result endpoint holds at most; at the cap a new connection replaces the least recently idle one.")
	fs.DurationVar(&o.limits.IdleTimeout, "result-idle-timeout", o.limits.IdleTimeout, "The result endpoint closes a connection that sends no request for this long (before its first request, and between two).")
	fs.Float64Var(&o.limits.ReviewsPerSecond, "result-unauthenticated-rate", o.limits.ReviewsPerSecond, "TokenReviews per second per source address for tokens that fail (an authenticated token costs nothing); past it posts are answered 429 without a review.")
	fs.IntVar(&o.limits.ReviewBurst, "result-unauthenticated-burst", o.limits.ReviewBurst, "Burst of --result-unauthenticated-rate.")
	fs.DurationVar(&o.limits.FailedTokenTTL, "result-failed-token-ttl", o.limits.FailedTokenTTL, "How long a token that failed its TokenReview is refused without another review; 0 turns the cache off.")
}

func (o *resultOptions) validate() error {
	if o.tlsSecret != "" {
		if _, err := parseObjectKey(o.tlsSecret); err != nil {
			return fmt.Errorf("--result-tls-secret: %w", err)
		}
	}
	if o.bindAddress != "0" && o.tlsSecret == "" && (o.serviceName == "" || o.certSecret == "") {
		return fmt.Errorf("--result-service-name and --result-cert-secret must be set for a self-managed certificate")
	}
	switch l := o.limits; {
	case l.MaxConnections < 1:
		return fmt.Errorf("--result-max-connections %d: at least 1", l.MaxConnections)
	case l.IdleTimeout <= 0 || l.IdleTimeout > time.Minute:
		return fmt.Errorf("--result-idle-timeout %s: above 0 and at most 1m (the read timeout)", l.IdleTimeout)
	case !(l.ReviewsPerSecond > 0) || math.IsInf(l.ReviewsPerSecond, 0):
		return fmt.Errorf("--result-unauthenticated-rate %v: a number above 0", l.ReviewsPerSecond)
	case l.ReviewBurst < 1:
		return fmt.Errorf("--result-unauthenticated-burst %d: at least 1", l.ReviewBurst)
	case l.FailedTokenTTL < 0:
		return fmt.Errorf("--result-failed-token-ttl %s: not negative", l.FailedTokenTTL)
	}
	return nil
}

func parseObjectKey(s string) (types.NamespacedName, error) {
	ns, name, ok := strings.Cut(s, "/")
	if !ok || ns == "" || name == "" || strings.Contains(name, "/") {
		return types.NamespacedName{}, fmt.Errorf("%q is not namespace/name", s)
	}
	return types.NamespacedName{Namespace: ns, Name: name}, nil
}

// managerNamespace is POD_NAMESPACE, else defaultNamespace.
func managerNamespace() string {
	if ns := os.Getenv(PodNamespaceEnv); ns != "" {
		return ns
	}
	return defaultNamespace
}

// setupResults loads the provider key once (for the endpoint's signer and
// the chain reporter alike) and registers the result endpoint and its
// certificate manager. It returns the key's signer (nil: none configured)
// and the certificate manager, the CA bundle source (nil: disabled).
func setupResults(mgr ctrl.Manager, opts *options) (*receipt.KeySigner, *resultendpoint.CertManager, error) {
	key, err := reporter.LoadProviderKey(opts.controllers.chain)
	if err != nil {
		return nil, nil, err
	}
	var signer *receipt.KeySigner
	if key != nil {
		if signer, err = receipt.NewKeySigner(key, opts.controllers.chain.Prefix); err != nil {
			return nil, nil, fmt.Errorf("provider key: %w", err)
		}
		opts.controllers.chain.Key = key
	}
	if opts.results.bindAddress == "0" {
		return signer, nil, nil
	}
	log := mgr.GetLogger().WithName("result-endpoint")
	var certs *resultendpoint.CertManager
	if opts.results.tlsSecret != "" {
		key, _ := parseObjectKey(opts.results.tlsSecret)
		certs = resultendpoint.NewSecretCerts(mgr.GetAPIReader(), key, clock.RealClock{}, log)
	} else {
		ns := managerNamespace()
		certs = resultendpoint.NewSelfManagedCerts(mgr.GetClient(), mgr.GetAPIReader(), types.NamespacedName{Namespace: ns, Name: opts.results.certSecret},
			resultendpoint.ServiceDNSNames(opts.results.serviceName, ns), clock.RealClock{}, log)
	}
	binding, _ := controllers.ParseGPUBinding(opts.controllers.jobs.gpuBinding) // checked by validate
	srvOpts := []resultendpoint.Option{resultendpoint.WithLogger(log), resultendpoint.WithWorkloadNamespace(opts.workloadNS()),
		resultendpoint.WithLimits(opts.results.limits), resultendpoint.WithGPUBinding(binding)}
	if signer != nil {
		srvOpts = append(srvOpts, resultendpoint.WithSigner(signer))
	}
	srv := resultendpoint.NewServer(mgr.GetClient(), mgr.GetAPIReader(), certs, opts.results.bindAddress, srvOpts...)
	if err := mgr.Add(certs); err != nil {
		return nil, nil, fmt.Errorf("result endpoint: %w", err)
	}
	if err := mgr.Add(srv); err != nil {
		return nil, nil, fmt.Errorf("result endpoint: %w", err)
	}
	if err := mgr.AddReadyzCheck("result-certificate", certs.Checker); err != nil {
		return nil, nil, fmt.Errorf("result endpoint: %w", err)
	}
	return signer, certs, nil
}
