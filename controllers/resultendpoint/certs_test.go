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
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"net"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	testclock "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// certs reads the self-managed Secret and parses what it holds.
type secretCerts struct {
	data    map[string][]byte
	bundle  []*x509.Certificate
	serving *x509.Certificate
}

func readCerts(t *testing.T, key client.ObjectKey) secretCerts {
	t.Helper()
	sec := &corev1.Secret{}
	if err := k8sClient.Get(context.Background(), key, sec); err != nil {
		t.Fatal(err)
	}
	c := secretCerts{data: sec.Data}
	rest := sec.Data[KeyCACert]
	for {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			break
		}
		ca, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		c.bundle = append(c.bundle, ca)
	}
	leaf, err := firstCert(sec.Data[KeyTLSCert])
	if err != nil {
		t.Fatal(err)
	}
	c.serving = leaf
	return c
}

// verifies reports whether the serving certificate verifies for dnsName
// against a pool of the bundle's CAs, at now.
func verifies(serving *x509.Certificate, bundle []*x509.Certificate, dnsName string, now time.Time) bool {
	pool := x509.NewCertPool()
	for _, c := range bundle {
		pool.AddCert(c)
	}
	_, err := serving.Verify(x509.VerifyOptions{Roots: pool, DNSName: dnsName, CurrentTime: now})
	return err == nil
}

// TestCertRotation walks a self-managed certificate through its CA's life
// on a fake clock: the serving certificate is renewed under the same CA;
// the next CA is published in the bundle caPublishAhead before it signs,
// so a pod holding the bundle from then trusts the certificate after the
// CA changes; the replaced CA stays in the bundle.
func TestCertRotation(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t)
	key := client.ObjectKey{Namespace: ns, Name: "result-tls"}
	dns := ServiceDNSNames("aivm-operator-result", ns)
	clk := testclock.NewFakeClock(time.Now())
	m := NewSelfManagedCerts(k8sClient, k8sClient, key, dns, clk, testLogger())
	if err := m.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	first := readCerts(t, key)
	ca := first.bundle[0]
	if len(first.bundle) != 1 || first.data[KeyCANextCert] != nil || !verifies(first.serving, first.bundle, dns[0], clk.Now()) {
		t.Fatalf("first issue: %d CAs, next %v", len(first.bundle), first.data[KeyCANextCert] != nil)
	}
	if string(m.CABundle()) != string(first.data[KeyCACert]) {
		t.Error("CABundle is not the Secret's ca.crt")
	}
	if cert, err := m.GetCertificate(nil); err != nil || string(cert.Certificate[0]) != string(first.serving.Raw) {
		t.Errorf("served certificate is not the Secret's: %v", err)
	}

	// A sync with nothing due changes nothing.
	if err := m.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if again := readCerts(t, key); !again.serving.Equal(first.serving) {
		t.Error("a sync with nothing due reissued the serving certificate")
	}

	// Serving renewal: same CA, new leaf.
	clk.SetTime(first.serving.NotAfter.Add(-servingRenewBefore + time.Hour))
	if err := m.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	renewed := readCerts(t, key)
	if renewed.serving.Equal(first.serving) || !renewed.bundle[0].Equal(ca) || !verifies(renewed.serving, first.bundle, dns[0], clk.Now()) {
		t.Fatal("serving certificate not renewed under the same CA")
	}

	// caPublishAhead before the CA is due: the next CA joins the bundle
	// but signs nothing yet.
	clk.SetTime(ca.NotAfter.Add(-caRenewBefore - caPublishAhead + time.Hour))
	if err := m.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	published := readCerts(t, key)
	next, err := firstCert(published.data[KeyCANextCert])
	if err != nil {
		t.Fatalf("no next CA published: %v", err)
	}
	if len(published.bundle) != 2 || !published.bundle[0].Equal(ca) || !published.bundle[1].Equal(next) {
		t.Fatalf("bundle after publishing: %d CAs, want the current then the next", len(published.bundle))
	}
	if err := published.serving.CheckSignatureFrom(ca); err != nil {
		t.Errorf("serving certificate not signed by the current CA while the next is only published: %v", err)
	}
	podBundle := published.bundle // what a pod holds from now on

	// Rotation: the published CA signs; pods holding the week-old bundle
	// verify the new certificate; the old CA stays in the bundle.
	clk.SetTime(ca.NotAfter.Add(-caRenewBefore + time.Hour))
	if err := m.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	rotated := readCerts(t, key)
	if !rotated.bundle[0].Equal(next) || rotated.data[KeyCANextCert] != nil {
		t.Fatalf("the published CA did not become the current one")
	}
	if err := rotated.serving.CheckSignatureFrom(next); err != nil {
		t.Fatalf("serving certificate not signed by the new CA: %v", err)
	}
	if !verifies(rotated.serving, podBundle, dns[0], clk.Now()) {
		t.Error("a pod holding the bundle published a week earlier does not trust the rotated certificate")
	}
	if len(rotated.bundle) != 2 || !rotated.bundle[1].Equal(ca) {
		t.Errorf("the replaced CA left the bundle while still valid (%d CAs)", len(rotated.bundle))
	}

	// Once the old CA expired, it leaves the bundle.
	clk.SetTime(ca.NotAfter.Add(time.Hour))
	if err := m.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if err := m.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	for _, c := range readCerts(t, key).bundle {
		if c.Equal(ca) {
			t.Error("an expired CA stays in the bundle")
		}
	}
}

// TestCertRepair: a self-managed Secret whose data is damaged (a key that
// does not match its CA) is reissued rather than served.
func TestCertRepair(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t)
	key := client.ObjectKey{Namespace: ns, Name: "result-tls"}
	m := NewSelfManagedCerts(k8sClient, k8sClient, key, ServiceDNSNames("svc", ns), testclock.NewFakeClock(time.Now()), testLogger())
	if err := m.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	before := readCerts(t, key)
	other := NewSelfManagedCerts(k8sClient, k8sClient, client.ObjectKey{Namespace: ns, Name: "other"}, ServiceDNSNames("svc", ns), testclock.NewFakeClock(time.Now()), testLogger())
	if err := other.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	sec := &corev1.Secret{}
	if err := k8sClient.Get(ctx, key, sec); err != nil {
		t.Fatal(err)
	}
	sec.Data[KeyCAKey] = readCerts(t, client.ObjectKey{Namespace: ns, Name: "other"}).data[KeyCAKey]
	if err := k8sClient.Update(ctx, sec); err != nil {
		t.Fatal(err)
	}
	if err := m.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	after := readCerts(t, key)
	if after.serving.Equal(before.serving) || !verifies(after.serving, after.bundle, "svc."+ns+".svc", time.Now()) {
		t.Error("a Secret with a mismatched CA key was not reissued")
	}
}

// TestSecretCerts: a user's kubernetes.io/tls Secret is served as is, its
// tls.crt is the bundle when it has no ca.crt, and a change of it is
// picked up by the next sync.
func TestSecretCerts(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t)
	gen := func(name string) map[string][]byte {
		src := NewSelfManagedCerts(k8sClient, k8sClient, client.ObjectKey{Namespace: ns, Name: name}, ServiceDNSNames("svc", ns), testclock.NewFakeClock(time.Now()), testLogger())
		if err := src.Sync(ctx); err != nil {
			t.Fatal(err)
		}
		return readCerts(t, client.ObjectKey{Namespace: ns, Name: name}).data
	}
	a, b := gen("a"), gen("b")
	user := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "user"}, Type: corev1.SecretTypeTLS,
		Data: map[string][]byte{KeyTLSCert: a[KeyTLSCert], KeyTLSKey: a[KeyTLSKey]}}
	mustCreate(t, user)
	m := NewSecretCerts(k8sClient, client.ObjectKeyFromObject(user), testclock.NewFakeClock(time.Now()), testLogger())
	if err := m.Checker(nil); err == nil {
		t.Error("ready before a certificate is loaded")
	}
	if err := m.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if string(m.CABundle()) != string(a[KeyTLSCert]) || m.Checker(nil) != nil {
		t.Error("a Secret without ca.crt: the bundle is not its tls.crt, or not ready")
	}
	user.Data = map[string][]byte{KeyTLSCert: b[KeyTLSCert], KeyTLSKey: b[KeyTLSKey], KeyCACert: b[KeyCACert]}
	if err := k8sClient.Update(ctx, user); err != nil {
		t.Fatal(err)
	}
	if err := m.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	cert, err := m.GetCertificate(&tls.ClientHelloInfo{})
	if err != nil || string(m.CABundle()) != string(b[KeyCACert]) || string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Certificate[0]})) != string(b[KeyTLSCert]) {
		t.Errorf("the changed Secret is not served: %v", err)
	}
	// A broken Secret keeps the last good certificate.
	user.Data[KeyTLSKey] = []byte("not a key")
	if err := k8sClient.Update(ctx, user); err != nil {
		t.Fatal(err)
	}
	if err := m.Sync(ctx); err == nil {
		t.Error("a Secret with a broken key synced")
	}
	if got, err := m.GetCertificate(nil); err != nil || got != cert {
		t.Error("a broken Secret replaced the served certificate")
	}
}

// TestAddrAfterListenFailure: Addr returns nil, rather than waiting
// forever, when Start could not listen.
func TestAddrAfterListenFailure(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = ln.Close() }()
	srv := NewServer(k8sClient, k8sClient, NewSecretCerts(k8sClient, client.ObjectKey{Namespace: "x", Name: "y"}, testclock.NewFakeClock(time.Now()), testLogger()), ln.Addr().String())
	if err := srv.Start(context.Background()); err == nil {
		t.Fatal("Start on a taken port succeeded")
	}
	done := make(chan net.Addr, 1)
	go func() { done <- srv.Addr() }()
	select {
	case a := <-done:
		if a != nil {
			t.Errorf("Addr %v after a failed listen, want nil", a)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Addr still waiting 10s after Start failed to listen")
	}
}
