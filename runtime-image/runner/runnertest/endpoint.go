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

// Package runnertest is a real result endpoint for tests of runtimes: an
// HTTPS server with its own CA that checks the bearer token and records the
// envelopes posted to it, as the manager's endpoint would take them.
package runnertest

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/aivm-dev/aivm-operator/runtime-image/envelope"
)

// Endpoint is a fake of the manager's result endpoint over real TLS.
type Endpoint struct {
	*httptest.Server
	// URL is the /v1/results URL; CAFile holds the PEM CA that signed the
	// server's certificate (for 127.0.0.1).
	URL, CAFile string

	token string
	mu    sync.Mutex
	// script answers the next requests with these statuses; then 200.
	script    []int
	envelopes []envelope.Envelope
	requests  int
}

// NewEndpoint starts an endpoint that accepts the bearer token.
func NewEndpoint(t testing.TB, token string) *Endpoint {
	t.Helper()
	caPEM, cert := NewCA(t)
	e := &Endpoint{token: token}
	e.Server = httptest.NewUnstartedServer(http.HandlerFunc(e.serve))
	e.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	e.StartTLS()
	t.Cleanup(e.Close)
	e.URL = e.Server.URL + "/v1/results"
	e.CAFile = filepath.Join(t.TempDir(), "ca.crt")
	if err := os.WriteFile(e.CAFile, caPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	return e
}

// Script makes the next requests answer these statuses (a refusal body
// with reason "Scripted"); 429 and 503 carry Retry-After: 1.
func (e *Endpoint) Script(statuses ...int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.script = append(e.script, statuses...)
}

// Envelopes returns the accepted envelopes.
func (e *Endpoint) Envelopes() []envelope.Envelope {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]envelope.Envelope(nil), e.envelopes...)
}

// Requests counts every request that reached the handler.
func (e *Endpoint) Requests() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.requests
}

func refuse(w http.ResponseWriter, status int, reason, msg string) {
	w.Header().Set("Content-Type", "application/json")
	if status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "1")
	}
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"reason": reason, "message": msg})
}

func (e *Endpoint) serve(w http.ResponseWriter, r *http.Request) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.requests++
	if r.Method != http.MethodPost || r.URL.Path != "/v1/results" {
		refuse(w, http.StatusNotFound, "NotFound", r.Method+" "+r.URL.Path)
		return
	}
	if r.Header.Get("Authorization") != "Bearer "+e.token {
		refuse(w, http.StatusUnauthorized, "Unauthorized", "bearer token not accepted")
		return
	}
	if len(e.script) > 0 {
		status := e.script[0]
		e.script = e.script[1:]
		refuse(w, status, "Scripted", fmt.Sprintf("scripted %d", status))
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, envelope.MaxBodyBytes+1))
	if err != nil || len(body) > envelope.MaxBodyBytes {
		refuse(w, http.StatusRequestEntityTooLarge, "OutputTooLarge", "body over the limit")
		return
	}
	var env envelope.Envelope
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&env); err != nil {
		refuse(w, http.StatusBadRequest, "BadEnvelope", err.Error())
		return
	}
	if env.Version != envelope.Version || envelope.Digest([]byte(env.Output)) != env.Digests.Output {
		refuse(w, http.StatusBadRequest, "DigestMismatch", "output digest does not match the output")
		return
	}
	e.envelopes = append(e.envelopes, env)
	w.WriteHeader(http.StatusOK)
	_, _ = io.WriteString(w, `{}`)
}

// NewCA returns a fresh CA's PEM and a serving certificate it signed for
// 127.0.0.1 and localhost.
func NewCA(t testing.TB) ([]byte, tls.Certificate) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "aivm test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	leafTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "aivm-result"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost"},
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafTmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		tls.Certificate{Certificate: [][]byte{leafDER}, PrivateKey: key}
}
