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
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aivm-dev/aivm-operator/internal/testutil"

	authnv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	aivmv1alpha1 "github.com/aivm-dev/aivm-operator/api/v1alpha1"
	"github.com/aivm-dev/aivm-operator/chain-client/keys"
	"github.com/aivm-dev/aivm-operator/chain-client/receipt"
	"github.com/aivm-dev/aivm-operator/controllers"
	"github.com/aivm-dev/aivm-operator/internal/status"
	"github.com/aivm-dev/aivm-operator/internal/testenv"
	"github.com/aivm-dev/aivm-operator/runtime-image/envelope"
)

// The package's tests share one kube-apiserver and etcd and one result
// endpoint, started by TestMain. Tests isolate themselves with their own
// namespaces; the pods, tokens and TokenReviews are real.
var (
	env       *envtest.Environment
	cfg       *rest.Config
	k8sClient client.Client
	// endpoint is the shared server's URL; httpClient trusts its CA.
	endpoint   string
	httpClient *http.Client
	// signer signs the shared server's receipts.
	signer *receipt.KeySigner
)

// certNamespace holds the shared endpoint's self-managed certificate.
const certNamespace = "aivm-system"

// workloadNS is the workload namespace, where every test's job pods run
// with the runtime service account (the server's default).
const workloadNS = controllers.DefaultWorkloadNamespace

// Digests the test Kernels carry: the kernel's prefixed, the model's bare.
var (
	kernelDigest = "sha256:" + strings.Repeat("ab", 32)
	modelDigest  = strings.Repeat("cd", 32)
)

func TestMain(m *testing.M) {
	code, err := run(m)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(code)
}

func run(m *testing.M) (int, error) {
	ctrl.SetLogger(testLogger())
	e, c, err := testenv.Start()
	if err != nil {
		return 0, err
	}
	env, cfg = e, c
	cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper { return countingTransport{rt} })
	defer func() { _ = env.Stop() }()
	if k8sClient, err = client.New(cfg, client.Options{Scheme: testenv.Scheme()}); err != nil {
		return 0, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := k8sClient.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: certNamespace}}); err != nil {
		return 0, err
	}
	if err := k8sClient.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: workloadNS, Name: controllers.RuntimeServiceAccount}}); err != nil {
		return 0, err
	}
	key, err := keys.Generate()
	if err != nil {
		return 0, err
	}
	if signer, err = receipt.NewKeySigner(key, ""); err != nil {
		return 0, err
	}
	srv, certs, err := startServer(ctx, client.ObjectKey{Namespace: certNamespace, Name: "result-tls"}, WithSigner(signer))
	if err != nil {
		return 0, err
	}
	endpoint = "https://" + srv.Addr().String() + Path
	httpClient = tlsClient(certs.CABundle(), certNamespace)
	return m.Run(), nil
}

// startServer starts an endpoint on a free local port with a self-managed
// certificate in the Secret key, until ctx ends.
func startServer(ctx context.Context, key client.ObjectKey, opts ...Option) (*Server, *CertManager, error) {
	certs := NewSelfManagedCerts(k8sClient, k8sClient, key, ServiceDNSNames("aivm-operator-result", key.Namespace), clock.RealClock{}, testLogger())
	if err := certs.Sync(ctx); err != nil {
		return nil, nil, err
	}
	cached, err := cachedClient(ctx)
	if err != nil {
		return nil, nil, err
	}
	srv := NewServer(cached, k8sClient, certs, "127.0.0.1:0", append([]Option{WithLogger(testLogger())}, opts...)...)
	go func() { _ = srv.Start(ctx) }()
	if srv.Addr() == nil {
		return nil, nil, fmt.Errorf("the result endpoint did not listen")
	}
	return srv, certs, nil
}

// apiRequests counts the requests every client of the suite sent to the
// API server, so a benchmark can report the requests per accepted result.
var apiRequests atomic.Int64

type countingTransport struct{ next http.RoundTripper }

func (t countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	apiRequests.Add(1)
	return t.next.RoundTrip(r)
}

// cachedClient is a client that reads from an informer cache, as the
// manager's is, until ctx ends: the endpoint must tolerate its lag.
func cachedClient(ctx context.Context) (client.Client, error) {
	c, err := cache.New(cfg, cache.Options{Scheme: testenv.Scheme()})
	if err != nil {
		return nil, err
	}
	go func() { _ = c.Start(ctx) }()
	if !c.WaitForCacheSync(ctx) {
		return nil, fmt.Errorf("the cache did not sync")
	}
	return client.New(cfg, client.Options{Scheme: testenv.Scheme(), Cache: &client.CacheOptions{Reader: c}})
}

// tlsClient trusts only bundle and checks the Service name of namespace, as
// a job pod does.
func tlsClient(bundle []byte, namespace string) *http.Client {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(bundle)
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64,
		TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "aivm-operator-result." + namespace + ".svc", MinVersion: tls.VersionTLS12},
	}}
}

// fixture is one test's namespace with a Kernel, an InferenceJob placed
// on attempt 1, member 0, and that placement's pod, recorded.
type fixture struct {
	t   testing.TB
	ns  string
	job *aivmv1alpha1.InferenceJob
	pod *corev1.Pod
}

// newFixture creates the namespace, a Kernel with digests, a job with
// inline input "hello" and its recorded pod in the workload namespace.
// change edits the job before it is created.
func newFixture(t testing.TB, change func(*aivmv1alpha1.InferenceJob)) *fixture {
	t.Helper()
	f := &fixture{t: t, ns: newNamespace(t)}
	f.kernel("k", 1)
	f.job = testutil.MakeInferenceJob(f.ns, "story", "k", "hello").Obj()
	if change != nil {
		change(f.job)
	}
	mustCreate(t, f.job)
	f.place(1, 0)
	f.pod = f.newPod(1, 0)
	f.record(f.pod)
	return f
}

// kernel creates a Kernel with the test digests and a committee of replicas.
func (f *fixture) kernel(name string, replicas int32) {
	f.t.Helper()
	k := &aivmv1alpha1.Kernel{
		ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: name},
		Spec: aivmv1alpha1.KernelSpec{
			ModelRef: aivmv1alpha1.LocalObjectReference{Name: "tiny"},
			Runtime:  aivmv1alpha1.KernelRuntime{Image: "registry.example/engine:1"},
		},
	}
	if replicas > 1 {
		k.Spec.Committee.Replicas = replicas
		k.Spec.Committee.Aggregation = aivmv1alpha1.AggregationMajority
	}
	mustCreate(f.t, k)
	k.Status.KernelDigest, k.Status.ModelDigest = kernelDigest, modelDigest
	if err := k8sClient.Status().Update(context.Background(), k); err != nil {
		f.t.Fatalf("kernel status: %v", err)
	}
}

// writeStatus changes the job's status as the scheduler and job
// controller would.
func (f *fixture) writeStatus(mutate func(*aivmv1alpha1.InferenceJob)) {
	f.t.Helper()
	cur := f.get()
	if _, err := status.Update(context.Background(), k8sClient, k8sClient, cur, func(j *aivmv1alpha1.InferenceJob) error {
		mutate(j)
		return nil
	}); err != nil {
		f.t.Fatalf("write job status: %v", err)
	}
}

// place makes attempt the job's current one and places member on it.
func (f *fixture) place(attempt, member int32) {
	f.writeStatus(func(j *aivmv1alpha1.InferenceJob) {
		j.Status.Attempts = attempt
		j.Status.Placements = append(j.Status.Placements, aivmv1alpha1.Placement{
			Attempt: attempt, Member: member, Node: "n0", KernelDigest: kernelDigest, ModelDigest: modelDigest})
	})
}

// newPod creates the pod of a placement as the job controller would: in
// the workload namespace, its name, labels and the runtime service account.
func (f *fixture) newPod(attempt, member int32) *corev1.Pod {
	f.t.Helper()
	committee := false
	for _, p := range f.get().Status.Placements {
		committee = committee || (p.Attempt == attempt && p.Member > 0)
	}
	committee = committee || member > 0
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: workloadNS, Name: controllers.PodName(f.job, attempt, member, committee),
			Labels: map[string]string{
				controllers.LabelJobNamespace: f.ns, controllers.LabelJobUID: string(f.job.UID),
				controllers.LabelAttempt: strconv.Itoa(int(attempt)), controllers.LabelMember: strconv.Itoa(int(member)),
			},
		},
		Spec: corev1.PodSpec{
			ServiceAccountName: controllers.RuntimeServiceAccount, AutomountServiceAccountToken: ptr.To(false),
			Containers: []corev1.Container{{Name: "runtime", Image: "registry.example/aivm-runtime:test"}},
		},
	}
	mustCreate(f.t, pod)
	return pod
}

// record writes the pod into its placement, as the job controller does
// once it sees the pod.
func (f *fixture) record(pod *corev1.Pod) {
	attempt, _ := strconv.Atoi(pod.Labels[controllers.LabelAttempt])
	member, _ := strconv.Atoi(pod.Labels[controllers.LabelMember])
	f.writeStatus(func(j *aivmv1alpha1.InferenceJob) {
		for i := range j.Status.Placements {
			p := &j.Status.Placements[i]
			if p.Attempt == int32(attempt) && p.Member == int32(member) {
				p.Pod, p.PodUID = pod.Name, string(pod.UID)
			}
		}
	})
}

// get reads the job.
func (f *fixture) get() *aivmv1alpha1.InferenceJob {
	f.t.Helper()
	j := &aivmv1alpha1.InferenceJob{}
	if err := k8sClient.Get(context.Background(), client.ObjectKeyFromObject(f.job), j); err != nil {
		f.t.Fatalf("get job: %v", err)
	}
	return j
}

// token requests a real token for the runtime service account, bound to
// pod (nil: unbound), for the audiences.
func (f *fixture) token(pod *corev1.Pod, audiences ...string) string {
	f.t.Helper()
	return requestToken(f.t, workloadNS, pod, audiences...)
}

func requestToken(t testing.TB, ns string, pod *corev1.Pod, audiences ...string) string {
	t.Helper()
	if len(audiences) == 0 {
		audiences = []string{Audience}
	}
	tr := &authnv1.TokenRequest{Spec: authnv1.TokenRequestSpec{Audiences: audiences, ExpirationSeconds: ptr.To[int64](600)}}
	if pod != nil {
		tr.Spec.BoundObjectRef = &authnv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: pod.Name, UID: pod.UID}
	}
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: controllers.RuntimeServiceAccount}}
	if err := k8sClient.SubResource("token").Create(context.Background(), sa, tr); err != nil {
		t.Fatalf("token request: %v", err)
	}
	return tr.Status.Token
}

// envelope is the valid envelope of the placement's pod for output.
func (f *fixture) envelope(attempt, member int32, output string) *envelope.Envelope {
	return &envelope.Envelope{
		Version: envelope.Version, JobUID: string(f.job.UID), Namespace: f.ns, Job: f.job.Name,
		Attempt: attempt, Member: member, Output: output, FinishReason: "length",
		InputTokens: 1, OutputTokens: 3,
		Timings: envelope.Timings{LoadMillis: 5, PromptMillis: 2, GenerateMillis: 30, TotalMillis: 40},
		Engine:  "builtin/test", GPUUUIDs: []string{"GPU-0"},
		Digests: envelope.Digests{Input: envelope.Digest([]byte("hello")), Output: envelope.Digest([]byte(output)), Model: "sha256:" + modelDigest, Kernel: kernelDigest},
	}
}

// answer is the endpoint's reply.
type answer struct {
	code       int
	reason     string
	message    string
	retryAfter string
}

// post sends env (or raw bytes) with the token as a job pod does.
func post(t testing.TB, token string, body any) answer {
	t.Helper()
	return postAs(t, token, "application/json", body)
}

func postAs(t testing.TB, token, contentType string, body any) answer {
	t.Helper()
	a, err := send(token, contentType, body)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// send posts body (an envelope, or raw bytes) and reads the answer.
func send(token, contentType string, body any) (answer, error) {
	b, ok := body.([]byte)
	if !ok {
		var err error
		if b, err = json.Marshal(body); err != nil {
			return answer{}, err
		}
	}
	req, err := http.NewRequest(http.MethodPost, endpoint, bytes.NewReader(b))
	if err != nil {
		return answer{}, err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return answer{}, fmt.Errorf("post: %w", err)
	}
	defer func() { _ = resp.Body.Close() }()
	raw, _ := io.ReadAll(resp.Body)
	var r response
	if err := json.Unmarshal(raw, &r); err != nil {
		return answer{}, fmt.Errorf("reply %d is not the endpoint's JSON: %q", resp.StatusCode, raw)
	}
	return answer{code: resp.StatusCode, reason: r.Reason, message: r.Message, retryAfter: resp.Header.Get("Retry-After")}, nil
}

// want fails unless the answer has the code and reason and its message
// contains msg.
func (a answer) want(t testing.TB, code int, reason, msg string) {
	t.Helper()
	if a.code != code || a.reason != reason || !strings.Contains(a.message, msg) {
		t.Errorf("answer %d %s %q, want %d %s containing %q", a.code, a.reason, a.message, code, reason, msg)
	}
}

// nothingWritten fails when the job has a member result or a result, or
// its result ConfigMap exists.
func (f *fixture) nothingWritten() {
	f.t.Helper()
	j := f.get()
	if len(j.Status.MemberResults) != 0 || j.Status.Result != nil {
		f.t.Errorf("refused post wrote status: memberResults %+v result %+v", j.Status.MemberResults, j.Status.Result)
	}
	cm := &corev1.ConfigMap{}
	err := k8sClient.Get(context.Background(), types.NamespacedName{Namespace: f.ns, Name: controllers.ResultConfigMapName(f.job.Name)}, cm)
	if !apierrors.IsNotFound(err) {
		f.t.Errorf("refused post left the result ConfigMap (err %v): %v", err, cm.Data)
	}
}

// newNamespace creates a namespace deleted when the test ends.
func newNamespace(t testing.TB) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "ep-"}}
	if err := k8sClient.Create(context.Background(), ns); err != nil {
		t.Fatalf("create namespace: %v", err)
	}
	t.Cleanup(func() { _ = k8sClient.Delete(context.Background(), ns) })
	return ns.Name
}

func mustCreate(t testing.TB, obj client.Object) {
	t.Helper()
	if err := k8sClient.Create(context.Background(), obj); err != nil {
		t.Fatalf("create %T %s: %v", obj, obj.GetName(), err)
	}
}
