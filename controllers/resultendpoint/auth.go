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
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	authnv1 "k8s.io/api/authentication/v1"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/aivm-dev/aivm-operator/runtime-image/envelope"
)

// Extra keys of a TokenReview for a pod-bound service-account token.
const (
	extraPodName = "authentication.kubernetes.io/pod-name"
	extraPodUID  = "authentication.kubernetes.io/pod-uid"
)

// maxJobUIDBytes bounds the posted job UID (a UID is 36 bytes).
const maxJobUIDBytes = 128

// identity is who posted: the pod the token is bound to and its service
// account.
type identity struct {
	namespace      string // the service account's namespace
	serviceAccount string
	podName        string
	podUID         string
}

// +kubebuilder:rbac:groups=authentication.k8s.io,resources=tokenreviews,verbs=create

// authenticate reviews the bearer token for Audience. Anything but an
// authenticated, pod-bound service-account token is 401.
func (s *Server) authenticate(ctx context.Context, r *http.Request) (identity, error) {
	h := r.Header.Get("Authorization")
	token, ok := strings.CutPrefix(h, "Bearer ")
	token = strings.TrimSpace(token)
	if !ok || token == "" {
		return identity{}, refuse(http.StatusUnauthorized, ReasonUnauthenticated, "no bearer token")
	}
	// A token that failed lately fails again without a review; any other
	// unknown token spends its source's review budget, given back when it
	// authenticates (guard.go).
	digest, now := sha256.Sum256([]byte(token)), s.clock.Now()
	if s.failed.failed(digest, now) {
		failedTokenHits.Inc()
		return identity{}, refuse(http.StatusUnauthorized, ReasonUnauthenticated, "token not authenticated for audience %s: it failed a review in the last %s", Audience, s.limits.FailedTokenTTL)
	}
	source := sourceOf(r.RemoteAddr)
	if ok, wait := s.reviews.take(source, now); !ok {
		rf := refuse(http.StatusTooManyRequests, ReasonRateLimited, "too many unauthenticated posts from %s; retry", source)
		rf.retryAfter = max(wait, time.Second)
		return identity{}, rf
	}
	id, err := s.review(ctx, token)
	var rf *refusal
	switch {
	case err == nil:
		s.reviews.giveBack(source, s.clock.Now())
	case errors.As(err, &rf):
		s.failed.add(digest, s.clock.Now())
	default:
		// The API server failed: the token may be good; no budget is lost.
		s.reviews.giveBack(source, s.clock.Now())
	}
	return id, err
}

// review sends the TokenReview and reads who the token belongs to.
func (s *Server) review(ctx context.Context, token string) (identity, error) {
	review := &authnv1.TokenReview{Spec: authnv1.TokenReviewSpec{Token: token, Audiences: []string{Audience}}}
	if err := s.client.Create(ctx, review); err != nil {
		tokenReviews.WithLabelValues(reviewError).Inc()
		return identity{}, fmt.Errorf("token review: %w", err)
	}
	st := review.Status
	if st.Authenticated {
		tokenReviews.WithLabelValues(reviewAuthenticated).Inc()
	} else {
		tokenReviews.WithLabelValues(reviewUnauthenticated).Inc()
	}
	if !st.Authenticated {
		// The review's error says why (expired, wrong audience, pod gone);
		// it names no secret.
		return identity{}, refuse(http.StatusUnauthorized, ReasonUnauthenticated, "token not authenticated for audience %s: %s", Audience, st.Error)
	}
	if !contains(st.Audiences, Audience) {
		return identity{}, refuse(http.StatusUnauthorized, ReasonUnauthenticated, "token not valid for audience %s", Audience)
	}
	ns, sa, ok := splitServiceAccount(st.User.Username)
	if !ok {
		return identity{}, refuse(http.StatusUnauthorized, ReasonUnauthenticated, "token does not belong to a service account")
	}
	id := identity{namespace: ns, serviceAccount: sa, podName: first(st.User.Extra[extraPodName]), podUID: first(st.User.Extra[extraPodUID])}
	if id.podName == "" || id.podUID == "" {
		return identity{}, refuse(http.StatusUnauthorized, ReasonUnauthenticated, "token is not bound to a pod")
	}
	return id, nil
}

// decode reads the envelope strictly: at most envelope.MaxBodyBytes, known
// fields only, one JSON value, the current version.
func decode(w http.ResponseWriter, r *http.Request) (*envelope.Envelope, error) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, envelope.MaxBodyBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, refuse(http.StatusRequestEntityTooLarge, ReasonOutputTooLarge, "body exceeds %d bytes", envelope.MaxBodyBytes)
		}
		return nil, refuse(http.StatusBadRequest, ReasonBadRequest, "read body: %v", err)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	env := &envelope.Envelope{}
	if err := dec.Decode(env); err != nil {
		return nil, refuse(http.StatusBadRequest, ReasonBadRequest, "decode envelope: %v", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, refuse(http.StatusBadRequest, ReasonBadRequest, "trailing data after the envelope")
	}
	switch {
	case env.Version != envelope.Version:
		return nil, refuse(http.StatusBadRequest, ReasonBadRequest, "version %q, want %q", env.Version, envelope.Version)
	case len(env.Output) > envelope.MaxOutputBytes:
		return nil, refuse(http.StatusRequestEntityTooLarge, ReasonOutputTooLarge, "output of %d bytes exceeds %d", len(env.Output), envelope.MaxOutputBytes)
	case !utf8.ValidString(env.Output):
		return nil, refuse(http.StatusBadRequest, ReasonBadRequest, "output is not valid UTF-8")
	case env.Namespace == "" || env.Job == "" || env.JobUID == "":
		return nil, refuse(http.StatusBadRequest, ReasonBadRequest, "namespace, job and jobUID are required")
	case len(validation.IsDNS1123Label(env.Namespace)) > 0:
		return nil, refuse(http.StatusBadRequest, ReasonBadRequest, "namespace %.100q is not a namespace name", env.Namespace)
	case len(validation.IsDNS1123Subdomain(env.Job)) > 0:
		return nil, refuse(http.StatusBadRequest, ReasonBadRequest, "job %.100q is not an InferenceJob name", env.Job)
	case len(env.JobUID) > maxJobUIDBytes:
		return nil, refuse(http.StatusBadRequest, ReasonBadRequest, "jobUID longer than %d bytes", maxJobUIDBytes)
	case env.Attempt < 1 || env.Member < 0:
		return nil, refuse(http.StatusBadRequest, ReasonBadRequest, "attempt must be at least 1 and member at least 0")
	case env.InputTokens < 0 || env.OutputTokens < 0 || env.Timings.PromptMillis < 0 || env.Timings.GenerateMillis < 0 || env.Timings.TotalMillis < 0 || env.Timings.LoadMillis < 0:
		return nil, refuse(http.StatusBadRequest, ReasonBadRequest, "token counts and timings must not be negative")
	case len(env.Engine) > 128 || len(env.GPUUUIDs) > 16:
		return nil, refuse(http.StatusBadRequest, ReasonBadRequest, "engine longer than 128 bytes or more than 16 GPU UUIDs")
	}
	for _, g := range env.GPUUUIDs {
		if len(g) > 128 {
			return nil, refuse(http.StatusBadRequest, ReasonBadRequest, "GPU UUID longer than 128 bytes")
		}
	}
	return env, nil
}

func first(v authnv1.ExtraValue) string {
	if len(v) == 0 {
		return ""
	}
	return v[0]
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// splitServiceAccount splits "system:serviceaccount:<namespace>:<name>".
func splitServiceAccount(user string) (namespace, name string, ok bool) {
	rest, ok := strings.CutPrefix(user, "system:serviceaccount:")
	if !ok {
		return "", "", false
	}
	namespace, name, ok = strings.Cut(rest, ":")
	return namespace, name, ok && namespace != "" && name != "" && !strings.Contains(name, ":")
}
