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
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/aivm-dev/aivm-operator/controllers/scheduler"
)

// Scheduler metrics. Queue depth and reserved memory are read from the
// scheduler when Prometheus scrapes, so they cost nothing between scrapes.
var (
	timeToPlacement = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "aivm_scheduler_time_to_placement_seconds",
		Help:    "Time from an InferenceJob's creation to the placement of its attempt.",
		Buckets: prometheus.ExponentialBuckets(0.01, 2, 16),
	})
	placementsByNode = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "aivm_scheduler_placements_total",
		Help: "Committee members placed, by node.",
	}, []string{"node"})
	unplaceable = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "aivm_scheduler_unschedulable_total",
		Help: "Decisions that found no place for a job, by reason.",
	}, []string{"reason"})

	queueDepthDesc  = prometheus.NewDesc("aivm_scheduler_queue_depth", "InferenceJobs waiting for placement, by priority.", []string{"priority"}, nil)
	reservedMemDesc = prometheus.NewDesc("aivm_scheduler_gpu_memory_reserved_bytes", "GPU memory reserved by placed jobs, by node.", []string{"node"}, nil)

	// current is the scheduler the scrape-time metrics read.
	current         atomic.Pointer[scheduler.Scheduler]
	registerMetrics sync.Once
)

// stateCollector reports the current scheduler's queue and reservations.
type stateCollector struct{}

func (stateCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- queueDepthDesc
	ch <- reservedMemDesc
}

func (stateCollector) Collect(ch chan<- prometheus.Metric) {
	s := current.Load()
	if s == nil {
		return
	}
	st := s.Stats()
	for p, n := range st.Pending {
		ch <- prometheus.MustNewConstMetric(queueDepthDesc, prometheus.GaugeValue, float64(n), strconv.Itoa(int(p)))
	}
	for node, b := range st.ReservedBytes {
		ch <- prometheus.MustNewConstMetric(reservedMemDesc, prometheus.GaugeValue, float64(b), node)
	}
}

// useSchedulerMetrics registers the metrics once and points the
// scrape-time ones at s.
func useSchedulerMetrics(s *scheduler.Scheduler) {
	registerMetrics.Do(func() {
		ctrlmetrics.Registry.MustRegister(timeToPlacement, placementsByNode, unplaceable, stateCollector{})
	})
	current.Store(s)
}
