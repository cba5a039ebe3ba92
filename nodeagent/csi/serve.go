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

package csi

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	csipb "github.com/container-storage-interface/spec/lib/go/csi"
	"github.com/go-logr/logr"
	"google.golang.org/grpc"
	registerapi "k8s.io/kubelet/pkg/apis/pluginregistration/v1"
)

// RegistrationSocketName is the socket the kubelet's plugin watcher finds in
// its registration directory (as node-driver-registrar names it).
const RegistrationSocketName = DriverName + "-reg.sock"

// supportedVersions are the CSI versions announced to the kubelet.
var supportedVersions = []string{"1.0.0"}

// stopTimeout bounds how long in-flight calls may finish at shutdown.
const stopTimeout = 10 * time.Second

// Options configure Serve.
type Options struct {
	DriverOptions
	// Endpoint is the CSI socket: a path or unix:///path. The kubelet
	// dials the same path, so it must be the same inside the agent's
	// container and on the host (the kubelet plugin directory mounted at
	// its host path). Required.
	Endpoint string
	// RegistrationDir is the kubelet's plugin registration directory
	// (/var/lib/kubelet/plugins_registry); empty registers nothing, for
	// a separate node-driver-registrar or tests.
	RegistrationDir string
}

// Serve reconciles the recorded volumes, serves the CSI identity and node
// services on Endpoint and the kubelet registration service in
// RegistrationDir until ctx is done, then removes both sockets.
func Serve(ctx context.Context, opts Options) error {
	log := opts.Log
	path, err := socketPath(opts.Endpoint)
	if err != nil {
		return err
	}
	d, err := NewDriver(opts.DriverOptions)
	if err != nil {
		return err
	}
	if err := d.Reconcile(ctx); err != nil {
		return err
	}

	csiLn, err := listenUnix(path)
	if err != nil {
		return fmt.Errorf("csi endpoint: %w", err)
	}
	srv := grpc.NewServer(grpc.UnaryInterceptor(logCalls(log)))
	csipb.RegisterIdentityServer(srv, d)
	csipb.RegisterNodeServer(srv, d)
	errc := make(chan error, 2)
	go func() { errc <- srv.Serve(csiLn) }()
	defer stopServer(srv, path)
	log.Info("Serving CSI driver", "driver", DriverName, "endpoint", path, "node", opts.NodeID)

	if opts.RegistrationDir != "" {
		regPath := filepath.Join(opts.RegistrationDir, RegistrationSocketName)
		regLn, err := listenUnix(regPath)
		if err != nil {
			return fmt.Errorf("kubelet registration socket: %w", err)
		}
		reg := grpc.NewServer()
		registerapi.RegisterRegistrationServer(reg, &registration{endpoint: path, log: log.WithName("registration")})
		go func() { errc <- reg.Serve(regLn) }()
		// Removed first on return, so the kubelet deregisters the driver
		// before its endpoint goes away.
		defer stopServer(reg, regPath)
		log.Info("Waiting for the kubelet to register the CSI driver", "socket", regPath)
	}

	select {
	case <-ctx.Done():
		return nil
	case err := <-errc:
		return fmt.Errorf("csi server stopped: %w", err)
	}
}

// socketPath accepts a path or a unix:// URL.
func socketPath(endpoint string) (string, error) {
	p := strings.TrimPrefix(endpoint, "unix://")
	if p == "" || !filepath.IsAbs(p) {
		return "", fmt.Errorf("csi endpoint %q: want an absolute unix socket path or unix:///path", endpoint)
	}
	return p, nil
}

// listenUnix listens on a unix socket, replacing a stale socket a previous
// run left; any other file there is refused.
func listenUnix(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, err
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode().Type() != fs.ModeSocket {
			return nil, fmt.Errorf("%s exists and is not a socket", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("remove stale socket: %w", err)
		}
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", path, err)
	}
	return ln, nil
}

// stopServer removes the socket and stops the server, letting calls in
// progress finish for a while.
func stopServer(srv *grpc.Server, path string) {
	_ = os.Remove(path)
	done := make(chan struct{})
	go func() { srv.GracefulStop(); close(done) }()
	select {
	case <-done:
	case <-time.After(stopTimeout):
		srv.Stop()
	}
}

// logCalls puts the logger into each call's context and logs failed calls
// with their code. Requests are not logged: they may carry secrets.
func logCalls(log logr.Logger) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		l := log.WithValues("method", info.FullMethod)
		resp, err := handler(logr.NewContext(ctx, l), req)
		if err != nil {
			l.Info("CSI call failed", "err", err.Error())
		} else {
			l.V(2).Info("CSI call")
		}
		return resp, err
	}
}

// registration answers the kubelet's plugin watcher, as node-driver-registrar does.
type registration struct {
	registerapi.UnimplementedRegistrationServer
	endpoint string
	log      logr.Logger
}

// GetInfo tells the kubelet the driver's name and endpoint.
func (r *registration) GetInfo(context.Context, *registerapi.InfoRequest) (*registerapi.PluginInfo, error) {
	return &registerapi.PluginInfo{
		Type:              registerapi.CSIPlugin,
		Name:              DriverName,
		Endpoint:          r.endpoint,
		SupportedVersions: supportedVersions,
	}, nil
}

// NotifyRegistrationStatus logs the kubelet's verdict.
func (r *registration) NotifyRegistrationStatus(_ context.Context, st *registerapi.RegistrationStatus) (*registerapi.RegistrationStatusResponse, error) {
	if st.GetPluginRegistered() {
		r.log.Info("The kubelet registered the CSI driver", "driver", DriverName)
	} else {
		r.log.Error(errors.New(st.GetError()), "The kubelet refused to register the CSI driver; pods cannot mount models on this node", "driver", DriverName)
	}
	return &registerapi.RegistrationStatusResponse{}, nil
}
