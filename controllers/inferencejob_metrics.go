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

package controllers

import (
	"context"
	"errors"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/aivm-dev/aivm-operator/api/v1alpha1"
)

// Job metrics, served on the manager's metrics endpoint.
var (
	jobCompletionSeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "aivm_inferencejob_completion_seconds",
		Help:    "Time from an InferenceJob's creation to its success or failure, by outcome.",
		Buckets: prometheus.ExponentialBuckets(1, 2, 14), // 1 s .. ~2.3 h
	}, []string{"outcome"})
	jobFailures = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "aivm_inferencejob_failures_total",
		Help: "InferenceJobs that failed for good, by reason.",
	}, []string{"reason"})
	attemptFailures = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "aivm_inferencejob_placement_failures_total",
		Help: "Job pods (placements) that ended Failed, by reason.",
	}, []string{"reason"})
)

var registerMetricsOnce sync.Once

// registerJobMetrics registers the job metrics and a collector of jobs by
// condition read from reader (the manager's cache) on the controller-runtime
// registry, once per process.
func registerJobMetrics(reader client.Reader) {
	registerMetricsOnce.Do(func() {
		for _, c := range []prometheus.Collector{jobCompletionSeconds, jobFailures, attemptFailures, &jobConditionCollector{reader: reader}} {
			if err := ctrlmetrics.Registry.Register(c); err != nil && !errors.As(err, &prometheus.AlreadyRegisteredError{}) {
				panic(err)
			}
		}
	})
}

// observeJobMetrics counts what changed between two saved statuses.
func observeJobMetrics(before, after *v1alpha1.InferenceJob) {
	ended := map[[2]int32]bool{}
	for _, p := range before.Status.Placements {
		if p.Outcome != "" {
			ended[[2]int32{p.Attempt, p.Member}] = true
		}
	}
	for _, p := range after.Status.Placements {
		if p.Outcome == v1alpha1.PlacementFailed && !ended[[2]int32{p.Attempt, p.Member}] {
			attemptFailures.WithLabelValues(p.Reason).Inc()
		}
	}
	if finished(before) || !finished(after) || after.Status.CompletionTime == nil {
		return
	}
	elapsed := after.Status.CompletionTime.Sub(after.CreationTimestamp.Time).Seconds()
	if c := meta.FindStatusCondition(after.Status.Conditions, v1alpha1.ConditionFailed); c != nil && c.Status == metav1.ConditionTrue {
		jobFailures.WithLabelValues(c.Reason).Inc()
		jobCompletionSeconds.WithLabelValues("Failed").Observe(elapsed)
		return
	}
	jobCompletionSeconds.WithLabelValues("Succeeded").Observe(elapsed)
}

// jobConditionCollector reports the number of jobs per condition type and
// status at scrape time, from the cache, so it is never out of step.
type jobConditionCollector struct {
	reader client.Reader
}

var jobsByConditionDesc = prometheus.NewDesc("aivm_inferencejobs",
	"InferenceJobs by condition type and status.", []string{"condition", "status"}, nil)

func (c *jobConditionCollector) Describe(ch chan<- *prometheus.Desc) { ch <- jobsByConditionDesc }

func (c *jobConditionCollector) Collect(ch chan<- prometheus.Metric) {
	var jobs v1alpha1.InferenceJobList
	if err := c.reader.List(context.Background(), &jobs); err != nil {
		return
	}
	counts := map[[2]string]int{}
	for _, t := range []string{v1alpha1.ConditionAdmitted, v1alpha1.ConditionScheduled, v1alpha1.ConditionRunning,
		v1alpha1.ConditionSucceeded, v1alpha1.ConditionFailed, v1alpha1.ConditionReported} {
		for _, s := range []metav1.ConditionStatus{metav1.ConditionTrue, metav1.ConditionFalse} {
			counts[[2]string{t, string(s)}] = 0
		}
	}
	for i := range jobs.Items {
		for _, cond := range jobs.Items[i].Status.Conditions {
			counts[[2]string{cond.Type, string(cond.Status)}]++
		}
	}
	for k, n := range counts {
		ch <- prometheus.MustNewConstMetric(jobsByConditionDesc, prometheus.GaugeValue, float64(n), k[0], k[1])
	}
}
