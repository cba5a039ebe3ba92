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
	"time"

	"github.com/prometheus/client_golang/prometheus"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
)

// Reasons of the endpoint's answers (the body's "reason", the metrics'
// label).
const (
	ReasonAccepted        = "Accepted"
	ReasonUnauthenticated = "Unauthenticated"
	ReasonNotCurrentPod   = "NotCurrentPod"
	ReasonStaleAttempt    = "StaleAttempt"
	ReasonJobFinished     = "JobFinished"
	ReasonBadRequest      = "BadRequest"
	ReasonOutOfBounds     = "OutOfBounds"
	ReasonOutputTooLarge  = "OutputTooLarge"
	ReasonDigestMismatch  = "DigestMismatch"
	ReasonConflict        = "Conflict"
	ReasonPodNotRecorded  = "PodNotRecorded"
	ReasonRateLimited     = "RateLimited"
	ReasonInternal        = "Internal"
)

var (
	resultsTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "aivm_result_endpoint_requests_total",
		Help: "Result posts by outcome reason (Accepted, or why refused).",
	}, []string{"reason"})
	requestSeconds = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "aivm_result_endpoint_request_duration_seconds",
		Help:    "Time to answer a result post, TokenReview and writes included.",
		Buckets: prometheus.ExponentialBuckets(0.002, 2, 12),
	})
	tokenReviews = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "aivm_result_endpoint_token_reviews_total",
		Help: "TokenReviews the endpoint sent, by result (Authenticated, Unauthenticated, Error).",
	}, []string{"result"})
	failedTokenHits = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "aivm_result_endpoint_failed_token_hits_total",
		Help: "Posts refused without a TokenReview because their token failed one recently.",
	})
	openConnections = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "aivm_result_endpoint_connections",
		Help: "Open connections to the result endpoint.",
	})
	evictedConnections = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "aivm_result_endpoint_connections_evicted_total",
		Help: "Idle connections closed to make room for a new one at the connection cap.",
	})
)

// Results of a TokenReview (the token_reviews_total label).
const (
	reviewAuthenticated   = "Authenticated"
	reviewUnauthenticated = "Unauthenticated"
	reviewError           = "Error"
)

func init() {
	ctrlmetrics.Registry.MustRegister(resultsTotal, requestSeconds, tokenReviews, failedTokenHits, openConnections, evictedConnections)
}

func observe(reason string, d time.Duration) {
	resultsTotal.WithLabelValues(reason).Inc()
	requestSeconds.Observe(d.Seconds())
}
