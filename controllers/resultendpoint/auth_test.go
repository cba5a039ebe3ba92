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
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
	authnv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	aivmv1alpha1 "github.com/aivm-dev/aivm-operator/api/v1alpha1"
)

// TestAuthRefusals: every post that is not from the current attempt's pod
// of the job, with a pod-bound token for the result audience, is refused
// with 401 or 403, and nothing is written.
func TestAuthRefusals(t *testing.T) {
	f := newFixture(t, nil)
	env := f.envelope(1, 0, " world")

	other := newFixture(t, nil) // another namespace's job
	stranger := f.newPod(1, 7)  // a pod of this job that no placement records
	unbound := f.token(nil)

	cases := []struct {
		name          string
		token         string
		code          int
		reason, inMsg string
	}{
		{"no token", "", http.StatusUnauthorized, ReasonUnauthenticated, "no bearer token"},
		{"garbage token", "not-a-jwt", http.StatusUnauthorized, ReasonUnauthenticated, "not authenticated"},
		{"wrong audience", f.token(f.pod, "https://kubernetes.default.svc"), http.StatusUnauthorized, ReasonUnauthenticated, "not authenticated"},
		{"token not bound to a pod", unbound, http.StatusUnauthorized, ReasonUnauthenticated, "not bound to a pod"},
		{"expired token", resign(t, f.token(f.pod), -time.Hour, false), http.StatusUnauthorized, ReasonUnauthenticated, "not authenticated"},
		{"foreign signer", resign(t, f.token(f.pod), time.Hour, true), http.StatusUnauthorized, ReasonUnauthenticated, "not authenticated"},
		{"another job's pod", other.token(other.pod), http.StatusForbidden, ReasonNotCurrentPod, "is not the pod of attempt 1 member 0"},
		{"a pod no placement records", f.token(stranger), http.StatusForbidden, ReasonNotCurrentPod, "pod " + stranger.Name + " is not the pod of attempt 1 member 0"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			post(t, c.token, env).want(t, c.code, c.reason, c.inMsg)
		})
	}
	f.nothingWritten()
	other.nothingWritten()
}

// TestAuthDeletedPod: a token bound to a pod that is gone no longer
// authenticates, even though it has not expired.
func TestAuthDeletedPod(t *testing.T) {
	f := newFixture(t, nil)
	tok := f.token(f.pod)
	if err := k8sClient.Delete(context.Background(), f.pod, client.GracePeriodSeconds(0)); err != nil {
		t.Fatal(err)
	}
	// The API server's token authenticator sees the deletion through its
	// own informer: wait until a review says so, then post.
	deadline := time.Now().Add(30 * time.Second)
	for {
		review := &authnv1.TokenReview{Spec: authnv1.TokenReviewSpec{Token: tok, Audiences: []string{Audience}}}
		if err := k8sClient.Create(context.Background(), review); err != nil {
			t.Fatal(err)
		}
		if !review.Status.Authenticated {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the token of a deleted pod still authenticates after 30s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	post(t, tok, f.envelope(1, 0, " world")).want(t, http.StatusUnauthorized, ReasonUnauthenticated, "not authenticated")
	f.nothingWritten()
}

// TestAuthEarlierAttempt: once attempt 2 is current, attempt 1's pod is
// refused, both for its own attempt and when it claims attempt 2; the
// current pod is then accepted.
func TestAuthEarlierAttempt(t *testing.T) {
	f := newFixture(t, nil)
	old := f.token(f.pod)
	f.place(2, 0)
	second := f.newPod(2, 0)
	f.record(second)

	post(t, old, f.envelope(1, 0, " world")).want(t, http.StatusForbidden, ReasonStaleAttempt, "attempt 1 is not the job's current attempt 2")
	post(t, old, f.envelope(2, 0, " world")).want(t, http.StatusForbidden, ReasonNotCurrentPod, "is not the pod of attempt 2 member 0")
	f.nothingWritten()
	post(t, f.token(second), f.envelope(2, 0, " world")).want(t, http.StatusOK, ReasonAccepted, "")
}

// TestAuthOtherJob: a pod of one job cannot post for another job in the
// same namespace, nor for a job whose UID it does not know.
func TestAuthOtherJob(t *testing.T) {
	f := newFixture(t, nil)
	g := &aivmv1alpha1.InferenceJob{ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: "other"}, Spec: f.job.Spec}
	mustCreate(t, g)

	env := f.envelope(1, 0, " world")
	env.Job, env.JobUID = g.Name, string(g.UID)
	post(t, f.token(f.pod), env).want(t, http.StatusForbidden, ReasonStaleAttempt, "attempt 1 is not the job's current attempt 0")

	env = f.envelope(1, 0, " world")
	env.JobUID = string(g.UID)
	post(t, f.token(f.pod), env).want(t, http.StatusForbidden, ReasonNotCurrentPod, "is not the UID of InferenceJob")

	env = f.envelope(1, 0, " world")
	env.Job = "missing"
	post(t, f.token(f.pod), env).want(t, http.StatusForbidden, ReasonNotCurrentPod, "does not exist")
	f.nothingWritten()
}

// TestPodNotRecorded: a result that arrives before the job controller
// recorded its pod is a retryable 503 with Retry-After, not a refusal;
// once the pod is recorded the same post is accepted. A pod of another
// job's labels gets 403 in the same window.
func TestPodNotRecorded(t *testing.T) {
	f := newFixture(t, nil)
	f.place(2, 0)
	early := f.newPod(2, 0)
	env := f.envelope(2, 0, " world")

	a := post(t, f.token(early), env)
	a.want(t, http.StatusServiceUnavailable, ReasonPodNotRecorded, "not recorded in the job's status yet")
	if a.retryAfter != "2" {
		t.Errorf("Retry-After %q, want 2", a.retryAfter)
	}
	// A pod without the job's labels and owner: refused outright.
	impostor := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: workloadNS, Name: "impostor", Labels: early.Labels}, Spec: early.Spec}
	mustCreate(t, impostor)
	post(t, f.token(impostor), env).want(t, http.StatusForbidden, ReasonNotCurrentPod, "is not the pod of attempt 2 member 0")
	f.nothingWritten()

	f.record(early)
	post(t, f.token(early), env).want(t, http.StatusOK, ReasonAccepted, "")
}

// resign returns the token's claims with exp moved by d from now, signed
// again (ES256, as envtest's API server signs): with the API server's
// service-account key (a token the server issued, but expired when d < 0),
// or with a fresh key (foreign).
func resign(t testing.TB, token string, d time.Duration, foreign bool) string {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("token is not a JWT")
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	claims := map[string]any{}
	if err := json.Unmarshal(raw, &claims); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	claims["exp"] = now.Add(d).Unix()
	claims["iat"] = now.Add(d - 10*time.Minute).Unix()
	claims["nbf"] = now.Add(d - 10*time.Minute).Unix()
	body, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	key := apiServerSigningKey(t)
	if foreign {
		if key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
			t.Fatal(err)
		}
	}
	signed := parts[0] + "." + base64.RawURLEncoding.EncodeToString(body)
	sum := sha256.Sum256([]byte(signed))
	r, sv, err := ecdsa.Sign(rand.Reader, key, sum[:])
	if err != nil {
		t.Fatal(err)
	}
	// JWS ES256: r and s, 32 bytes each.
	sig := make([]byte, 64)
	r.FillBytes(sig[:32])
	sv.FillBytes(sig[32:])
	return signed + "." + base64.RawURLEncoding.EncodeToString(sig)
}

// apiServerSigningKey is the ECDSA P-256 key envtest's kube-apiserver
// signs service-account tokens with (ES256).
func apiServerSigningKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(env.ControlPlane.APIServer.CertDir, "sa-signer.key"))
	if err != nil {
		t.Fatal(err)
	}
	p, _ := pem.Decode(b)
	if p == nil {
		t.Fatal("sa-signer.key is not PEM")
	}
	k, err := x509.ParsePKCS8PrivateKey(p.Bytes)
	if err != nil {
		if k, err = x509.ParseECPrivateKey(p.Bytes); err != nil {
			t.Fatal(err)
		}
	}
	ek, ok := k.(*ecdsa.PrivateKey)
	if !ok || ek.Curve != elliptic.P256() {
		t.Fatalf("sa-signer.key is %T, not ECDSA P-256", k)
	}
	return ek
}

// testLogger logs to stderr when AIVM_TEST_LOG is set and discards
// otherwise.
func testLogger() logr.Logger {
	if os.Getenv("AIVM_TEST_LOG") == "" {
		return logr.Discard()
	}
	return funcr.New(func(prefix, args string) { _, _ = os.Stderr.WriteString(prefix + " " + args + "\n") }, funcr.Options{Verbosity: 1})
}
