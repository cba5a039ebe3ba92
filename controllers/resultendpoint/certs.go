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

package resultendpoint

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Lifetimes of the self-managed certificates. A serving certificate is
// renewed when less than servingRenewBefore is left; the CA when it would
// expire before a new serving certificate does. The next CA is created and
// published in the bundle caPublishAhead before it signs anything, so every
// job pod (its CA ConfigMap follows the bundle) trusts it by the time the
// serving certificate changes; a replaced CA stays in the bundle while it
// is valid.
const (
	caValidity         = 5 * 365 * 24 * time.Hour
	servingValidity    = 90 * 24 * time.Hour
	servingRenewBefore = 30 * 24 * time.Hour
	caRenewBefore      = servingValidity + servingRenewBefore
	caPublishAhead     = 7 * 24 * time.Hour
)

// CertSyncInterval is how often the certificate Secret is read again: a
// user Secret's change, or another replica's rotation, is picked up then.
const CertSyncInterval = time.Minute

// Keys of the certificate Secret. A user Secret needs tls.crt and tls.key
// (kubernetes.io/tls); its ca.crt, when present, is the CA bundle.
const (
	KeyCACert  = "ca.crt"
	KeyCAKey   = "ca.key"
	KeyTLSCert = corev1.TLSCertKey
	KeyTLSKey  = corev1.TLSPrivateKeyKey
	// KeyCANextCert and KeyCANextKey hold the published next CA of a
	// self-managed Secret until it replaces the current one.
	KeyCANextCert = "ca-next.crt"
	KeyCANextKey  = "ca-next.key"
)

// CertManager keeps the endpoint's serving certificate: from a user's
// Secret (reloaded when it changes), or from a CA and serving certificate it
// creates itself and stores in a Secret in the manager's namespace, so all
// replicas serve the same one, renewed before expiry. It is a manager
// Runnable on every replica.
type CertManager struct {
	client      client.Client
	reader      client.Reader
	key         client.ObjectKey
	selfManaged bool
	dnsNames    []string
	clock       clock.PassiveClock
	log         logr.Logger

	mu       sync.RWMutex
	cert     *tls.Certificate
	caBundle []byte
	version  string
	loaded   chan struct{}
	once     sync.Once
}

// NewSelfManagedCerts returns a CertManager that creates and renews a CA and
// a serving certificate for dnsNames in the Secret key.
func NewSelfManagedCerts(c client.Client, reader client.Reader, key client.ObjectKey, dnsNames []string, clk clock.PassiveClock, log logr.Logger) *CertManager {
	return &CertManager{client: c, reader: reader, key: key, selfManaged: true, dnsNames: dnsNames, clock: clk, log: log, loaded: make(chan struct{})}
}

// NewSecretCerts returns a CertManager serving the user's Secret key.
func NewSecretCerts(reader client.Reader, key client.ObjectKey, clk clock.PassiveClock, log logr.Logger) *CertManager {
	return &CertManager{reader: reader, key: key, clock: clk, log: log, loaded: make(chan struct{})}
}

// NeedLeaderElection is false: every replica serves.
func (m *CertManager) NeedLeaderElection() bool { return false }

// Start syncs the certificate now and every CertSyncInterval until ctx ends.
// A failed sync keeps the certificate in use and is retried.
func (m *CertManager) Start(ctx context.Context) error {
	t := time.NewTicker(CertSyncInterval)
	defer t.Stop()
	for {
		if err := m.Sync(ctx); err != nil {
			m.log.Error(err, "Result endpoint certificate not synced", "secret", m.key.String())
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// GetCertificate serves the current certificate (tls.Config).
func (m *CertManager) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.cert == nil {
		return nil, errors.New("the result endpoint's certificate is not loaded yet")
	}
	return m.cert, nil
}

// CABundle is the PEM bundle job pods trust the endpoint with (nil until
// the certificate is loaded).
func (m *CertManager) CABundle() []byte {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return bytes.Clone(m.caBundle)
}

// Loaded is closed once a certificate is served.
func (m *CertManager) Loaded() <-chan struct{} { return m.loaded }

// Sync reads the Secret and, when self-managed, creates or renews it.
func (m *CertManager) Sync(ctx context.Context) error {
	sec := &corev1.Secret{}
	err := m.reader.Get(ctx, m.key, sec)
	if err != nil && (!apierrors.IsNotFound(err) || !m.selfManaged) {
		return fmt.Errorf("get certificate Secret %s: %w", m.key, err)
	}
	exists := err == nil
	if !m.selfManaged {
		return m.load(sec)
	}
	if exists && !m.needsRenewal(sec) {
		return m.load(sec)
	}
	data, err := m.issue(sec.Data)
	if err != nil {
		return err
	}
	if exists {
		sec.Data = data
		err = m.client.Update(ctx, sec)
	} else {
		sec = &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: m.key.Namespace, Name: m.key.Name}, Type: corev1.SecretTypeOpaque, Data: data}
		err = m.client.Create(ctx, sec)
	}
	if apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err) {
		// Another replica wrote first: serve what it wrote.
		if err := m.reader.Get(ctx, m.key, sec); err != nil {
			return fmt.Errorf("get certificate Secret %s: %w", m.key, err)
		}
		return m.load(sec)
	}
	if err != nil {
		return fmt.Errorf("write certificate Secret %s: %w", m.key, err)
	}
	m.log.Info("Issued the result endpoint's serving certificate", "secret", m.key.String())
	return m.load(sec)
}

// load serves the Secret's certificate when it changed.
func (m *CertManager) load(sec *corev1.Secret) error {
	m.mu.RLock()
	same := m.cert != nil && m.version == sec.ResourceVersion
	m.mu.RUnlock()
	if same {
		return nil
	}
	cert, err := tls.X509KeyPair(sec.Data[KeyTLSCert], sec.Data[KeyTLSKey])
	if err != nil {
		return fmt.Errorf("certificate Secret %s: %w", m.key, err)
	}
	bundle := sec.Data[KeyCACert]
	if len(bundle) == 0 {
		bundle = sec.Data[KeyTLSCert]
	}
	m.mu.Lock()
	m.cert, m.caBundle, m.version = &cert, bytes.Clone(bundle), sec.ResourceVersion
	m.mu.Unlock()
	m.once.Do(func() { close(m.loaded) })
	return nil
}

// needsRenewal is true when the self-managed Secret is unusable, its
// serving certificate expires within servingRenewBefore or lacks a DNS
// name, its CA expires within caRenewBefore, or the next CA is due to be
// published and is not.
func (m *CertManager) needsRenewal(sec *corev1.Secret) bool {
	now := m.clock.Now()
	ca, _, err := parseCA(sec.Data)
	if err != nil || now.Add(caRenewBefore).After(ca.NotAfter) {
		return true
	}
	if now.Add(caRenewBefore+caPublishAhead).After(ca.NotAfter) && !m.nextUsable(sec.Data, now) {
		return true
	}
	leaf, err := firstCert(sec.Data[KeyTLSCert])
	if err != nil || now.Add(servingRenewBefore).After(leaf.NotAfter) || !slices.Equal(leaf.DNSNames, m.dnsNames) {
		return true
	}
	if _, err := tls.X509KeyPair(sec.Data[KeyTLSCert], sec.Data[KeyTLSKey]); err != nil {
		return true
	}
	return leaf.CheckSignatureFrom(ca) != nil
}

// nextUsable is true when data holds a next CA that is good for a whole
// renewal period more.
func (m *CertManager) nextUsable(data map[string][]byte, now time.Time) bool {
	next, _, err := parseKeyPair(data[KeyCANextCert], data[KeyCANextKey])
	return err == nil && now.Add(caRenewBefore+caPublishAhead).Before(next.NotAfter)
}

// issue returns new Secret data and a serving certificate signed by the
// current CA. The current CA is kept while it is good for caRenewBefore
// more; then the published next CA (or, without one, a new CA) replaces
// it. Within caPublishAhead of that, a next CA is created and published.
// The bundle is the current CA, the next one, and every other CA of the
// old bundle that is still valid.
func (m *CertManager) issue(old map[string][]byte) (map[string][]byte, error) {
	now := m.clock.Now()
	ca, caKey, err := parseCA(old)
	next, nextKey, nextErr := parseKeyPair(old[KeyCANextCert], old[KeyCANextKey])
	if nextErr == nil && !m.nextUsable(old, now) {
		next, nextKey, nextErr = nil, nil, errors.New("next CA expires too soon")
	}
	if err != nil || now.Add(caRenewBefore).After(ca.NotAfter) {
		if nextErr == nil {
			ca, caKey = next, nextKey
		} else if ca, caKey, err = newCA(now); err != nil {
			return nil, err
		}
		next, nextKey, nextErr = nil, nil, errors.New("promoted")
	}
	if nextErr != nil && now.Add(caRenewBefore+caPublishAhead).After(ca.NotAfter) {
		if next, nextKey, err = newCA(now); err != nil {
			return nil, err
		}
		nextErr = nil
	}
	bundle := pemCert(ca.Raw)
	keep := []*x509.Certificate{ca}
	if nextErr == nil {
		bundle = append(bundle, pemCert(next.Raw)...)
		keep = append(keep, next)
	}
	bundle = append(bundle, stillValid(old[KeyCACert], keep, now)...)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate serving key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: m.dnsNames[0]},
		DNSNames:     m.dnsNames,
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(servingValidity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("sign serving certificate: %w", err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, err
	}
	caKeyPEM, err := pemKey(caKey)
	if err != nil {
		return nil, err
	}
	data := map[string][]byte{
		KeyCACert:  bundle,
		KeyCAKey:   caKeyPEM,
		KeyTLSCert: pemCert(der),
		KeyTLSKey:  pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}),
	}
	if nextErr == nil {
		nextKeyPEM, err := pemKey(nextKey)
		if err != nil {
			return nil, err
		}
		data[KeyCANextCert], data[KeyCANextKey] = pemCert(next.Raw), nextKeyPEM
	}
	return data, nil
}

func pemKey(k *ecdsa.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), nil
}

// newCA creates a self-signed ECDSA P-256 CA.
func newCA(now time.Time) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generate CA key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "aivm-operator result endpoint CA", Organization: []string{"aivm.dev"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(caValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("create CA: %w", err)
	}
	ca, err := x509.ParseCertificate(der)
	return ca, key, err
}

// parseCA returns the Secret's signing CA (the first of ca.crt) and key.
func parseCA(data map[string][]byte) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	return parseKeyPair(data[KeyCACert], data[KeyCAKey])
}

// parseKeyPair returns the first certificate of certPEM, a CA, and its
// key from keyPEM.
func parseKeyPair(certPEM, keyPEM []byte) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	ca, err := firstCert(certPEM)
	if err != nil {
		return nil, nil, err
	}
	if !ca.IsCA {
		return nil, nil, errors.New("not a CA certificate")
	}
	b, _ := pem.Decode(keyPEM)
	if b == nil {
		return nil, nil, errors.New("no CA key")
	}
	key, err := x509.ParseECPrivateKey(b.Bytes)
	if err != nil {
		return nil, nil, err
	}
	if !key.PublicKey.Equal(ca.PublicKey) {
		return nil, nil, errors.New("CA key does not match the CA")
	}
	return ca, key, nil
}

func firstCert(p []byte) (*x509.Certificate, error) {
	b, _ := pem.Decode(p)
	if b == nil || b.Type != "CERTIFICATE" {
		return nil, errors.New("no PEM certificate")
	}
	return x509.ParseCertificate(b.Bytes)
}

// stillValid returns the PEM of the bundle's certificates other than
// those in keep that are still valid at now.
func stillValid(bundle []byte, keep []*x509.Certificate, now time.Time) []byte {
	var out []byte
	for {
		var b *pem.Block
		b, bundle = pem.Decode(bundle)
		if b == nil {
			return out
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil || slices.ContainsFunc(keep, c.Equal) || now.After(c.NotAfter) {
			continue
		}
		out = append(out, pemCert(c.Raw)...)
	}
}

func pemCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	return n
}

// ServiceDNSNames are the names a Service reaches the endpoint by.
func ServiceDNSNames(service, namespace string) []string {
	return []string{
		service + "." + namespace + ".svc",
		service + "." + namespace + ".svc.cluster.local",
		service + "." + namespace,
		service,
	}
}

// +kubebuilder:rbac:groups="",namespace=aivm-system,resources=secrets,verbs=create;update

// Checker is a readyz check: ready once a certificate is served.
func (m *CertManager) Checker(*http.Request) error {
	select {
	case <-m.loaded:
		return nil
	default:
		return errors.New("result endpoint certificate not loaded")
	}
}
