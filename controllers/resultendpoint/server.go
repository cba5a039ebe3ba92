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

// Package resultendpoint is the manager's HTTPS result endpoint: job pods
// post their result envelope (runtime-image/envelope) to POST /v1/results
// with a projected service-account token. The endpoint authenticates the
// token (TokenReview, audience aivm.dev/result), accepts the post only from
// the current attempt's pod of that job, recomputes every digest it can,
// stores the output in the ConfigMap <job>-result and writes
// status.memberResults and, once the committee agrees, status.result with a
// signed receipt. See docs/result-endpoint.md.
package resultendpoint

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"mime"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/aivm-dev/aivm-operator/chain-client/aivmv1"
	"github.com/aivm-dev/aivm-operator/chain-client/receipt"
	"github.com/aivm-dev/aivm-operator/controllers"
)

// Path is where results are posted.
const Path = "/v1/results"

// Audience is the token audience the endpoint requires.
const Audience = "aivm.dev/result"

// DefaultBindAddress is the endpoint's default listen address.
const DefaultBindAddress = ":9443"

// Timeouts of the HTTP server: a slow client cannot hold a connection.
// Reading a request's headers, and waiting for one, is bounded by
// Limits.IdleTimeout, well under readTimeout.
const (
	readTimeout     = 60 * time.Second
	writeTimeout    = 60 * time.Second
	shutdownTimeout = 10 * time.Second
)

// Signer signs result records as the provider (receipt.KeySigner and the
// chain client satisfy it).
type Signer interface {
	SignReceipt(r *aivmv1.ResultRecord) (*receipt.Receipt, error)
}

// CertSource serves the endpoint's TLS certificate.
type CertSource interface {
	GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error)
}

// Server is the result endpoint. It is a manager Runnable that runs on every
// replica (no leader election): any replica behind the Service accepts.
type Server struct {
	client client.Client
	reader client.Reader
	signer Signer
	certs  CertSource
	clock  clock.PassiveClock
	log    logr.Logger
	addr   string
	// workloadNamespace is where job pods run (WithWorkloadNamespace).
	workloadNamespace string
	// gpuBinding is how the manager gives job pods their GPUs: it decides
	// which GPU UUIDs a pod can honestly report (bounds.go).
	gpuBinding controllers.GPUBinding

	// limits and what enforces them (guard.go, conns.go).
	limits  Limits
	reviews *reviewLimiter
	failed  *failedTokens
	logs    *logLimiter
	conns   *connLimiter

	// listening is closed once Start bound the listener or failed to
	// (tests read Addr then).
	listening     chan struct{}
	listeningOnce sync.Once
	bound         net.Addr
}

// Option configures a Server.
type Option func(*Server)

// WithSigner signs results with s (none: results carry no receipt).
func WithSigner(s Signer) Option { return func(srv *Server) { srv.signer = s } }

// WithClock sets the clock of receivedTime and decidedTime.
func WithClock(c clock.PassiveClock) Option { return func(srv *Server) { srv.clock = c } }

// WithLogger sets the logger.
func WithLogger(l logr.Logger) Option { return func(srv *Server) { srv.log = l } }

// WithGPUBinding tells the endpoint how job pods get their GPUs (default
// device-plugin): under visible-devices a pod sees exactly its placement's
// GPUs, so it may report no others.
func WithGPUBinding(b controllers.GPUBinding) Option { return func(srv *Server) { srv.gpuBinding = b } }

// NewServer returns an endpoint listening on addr with certificates from
// certs. c writes (ConfigMaps, job status, TokenReviews); reader reads jobs,
// Kernels and inputs uncached, so a check never acts on a stale placement
// and user Secrets are never cached.
func NewServer(c client.Client, reader client.Reader, certs CertSource, addr string, opts ...Option) *Server {
	s := &Server{client: c, reader: reader, certs: certs, addr: addr, clock: clock.RealClock{}, log: logr.Discard(), workloadNamespace: controllers.DefaultWorkloadNamespace, gpuBinding: controllers.GPUBindingDevicePlugin, listening: make(chan struct{})}
	s.limits = DefaultLimits()
	for _, o := range opts {
		o(s)
	}
	s.reviews = newReviewLimiter(s.limits.ReviewsPerSecond, s.limits.ReviewBurst)
	s.failed = newFailedTokens(s.limits.FailedTokenTTL)
	s.logs = newLogLimiter(s.limits.LogLines, s.limits.LogInterval)
	return s
}

// NeedLeaderElection is false: every replica serves.
func (s *Server) NeedLeaderElection() bool { return false }

// Addr waits until Start has tried to listen and returns the bound
// address, or nil when listening failed.
func (s *Server) Addr() net.Addr {
	<-s.listening
	return s.bound
}

// Start serves HTTPS until ctx ends.
func (s *Server) Start(ctx context.Context) error {
	ln, err := net.Listen("tcp", s.addr)
	if err != nil {
		s.listeningOnce.Do(func() { close(s.listening) })
		return fmt.Errorf("result endpoint: listen on %s: %w", s.addr, err)
	}
	s.bound = ln.Addr()
	s.conns = newConnLimiter(ln, s.limits.MaxConnections)
	s.listeningOnce.Do(func() { close(s.listening) })
	mux := http.NewServeMux()
	mux.Handle(Path, s)
	srv := &http.Server{
		Handler: mux,
		// The TLS handshake is bounded by the smallest of these too.
		ReadHeaderTimeout: s.limits.IdleTimeout,
		IdleTimeout:       s.limits.IdleTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		ConnState:         s.conns.connState,
		ErrorLog:          log.New(connErrorLog{s}, "", 0),
		TLSConfig:         &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: s.certs.GetCertificate},
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.ServeTLS(s.conns, "", "") }()
	s.log.Info("Serving results", "address", s.bound.String())
	select {
	case err := <-errc:
		return fmt.Errorf("result endpoint: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("result endpoint: shut down: %w", err)
	}
	return nil
}

// refusal is a post the endpoint turns away, with the HTTP status and the
// reason the runtime maps. retryAfter, when set, is sent as Retry-After
// with a 503: the post may pass later.
type refusal struct {
	code       int
	reason     string
	message    string
	retryAfter time.Duration
}

func (r *refusal) Error() string { return r.reason + ": " + r.message }

func refuse(code int, reason, format string, args ...any) *refusal {
	return &refusal{code: code, reason: reason, message: fmt.Sprintf(format, args...)}
}

// response is the JSON body of every answer.
type response struct {
	Reason  string `json:"reason"`
	Message string `json:"message"`
}

// ServeHTTP handles POST /v1/results.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	code, reason, msg := http.StatusOK, ReasonAccepted, "Result accepted"
	if err := s.handle(r.Context(), w, r); err != nil {
		var rf *refusal
		if errors.As(err, &rf) {
			code, reason, msg = rf.code, rf.reason, rf.message
			if rf.retryAfter > 0 {
				w.Header().Set("Retry-After", strconv.Itoa(int(rf.retryAfter.Round(time.Second)/time.Second)))
			}
		} else {
			// API errors: the runtime may retry a 5xx.
			code, reason, msg = http.StatusServiceUnavailable, ReasonInternal, "The result could not be stored; retry"
			s.log.Error(err, "Result not stored")
		}
	}
	observe(reason, time.Since(start))
	if code != http.StatusOK {
		s.logRefusal(r, code, reason, msg)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(response{Reason: reason, Message: msg})
}

// logRefusal logs a refusal at the default verbosity, at most
// Limits.LogLines per Limits.LogInterval; the refusals past that are
// counted in one line when the next interval begins. Messages never hold
// the token or the input.
func (s *Server) logRefusal(r *http.Request, code int, reason, msg string) {
	ok, suppressed := s.logs.allow(reason, s.clock.Now())
	s.logSuppressed(suppressed)
	if ok {
		s.log.Info("Result refused", "code", code, "reason", reason, "message", msg, "source", sourceOf(r.RemoteAddr))
	}
}

// logSuppressed logs the count of the lines the last interval left out.
func (s *Server) logSuppressed(suppressed map[string]int) {
	if len(suppressed) == 0 {
		return
	}
	n := 0
	for _, c := range suppressed {
		n += c
	}
	s.log.Info("Result refusals not logged", "count", n, "byReason", suppressed, "interval", s.limits.LogInterval)
}

// connErrorLog takes the http.Server's connection errors (failed TLS
// handshakes, resets) into the refusal log's limit: a flood of bad
// connections cannot flood the log.
type connErrorLog struct{ s *Server }

func (w connErrorLog) Write(p []byte) (int, error) {
	ok, suppressed := w.s.logs.allow(reasonConnectionError, w.s.clock.Now())
	w.s.logSuppressed(suppressed)
	if ok {
		w.s.log.Info("Connection failed", "error", strings.TrimSpace(string(p)))
	}
	return len(p), nil
}

// reasonConnectionError counts connection errors in the log summary.
const reasonConnectionError = "ConnectionError"

// handle authenticates, checks and stores one post.
func (s *Server) handle(ctx context.Context, w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		return refuse(http.StatusMethodNotAllowed, ReasonBadRequest, "use POST")
	}
	id, err := s.authenticate(ctx, r)
	if err != nil {
		return err
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		return refuse(http.StatusUnsupportedMediaType, ReasonBadRequest, "Content-Type %.100q is not application/json", r.Header.Get("Content-Type"))
	}
	env, err := decode(w, r)
	if err != nil {
		return err
	}
	job, target, err := s.authorize(ctx, id, env)
	if err != nil {
		return err
	}
	if err := s.checkBounds(ctx, job, target, env); err != nil {
		return err
	}
	checked, err := s.check(ctx, job, target, env)
	if err != nil {
		return err
	}
	return s.accept(ctx, job, id, checked)
}

// attemptLabel formats an attempt/member pair for messages.
func attemptLabel(attempt, member int32) string {
	return "attempt " + strconv.Itoa(int(attempt)) + " member " + strconv.Itoa(int(member))
}
