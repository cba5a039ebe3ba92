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

package nodeagent

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the node agent's Prometheus metrics.
type Metrics struct {
	gpus         *prometheus.GaugeVec
	memoryUsed   *prometheus.GaugeVec
	memoryFree   *prometheus.GaugeVec
	nvmlErrors   prometheus.Counter
	lastPoll     prometheus.Gauge
	publishFails prometheus.Counter
	fetches      *prometheus.CounterVec
	evictions    prometheus.Counter
}

// fetchResultOK is the result label of a successful prefetch.
const fetchResultOK = "Fetched"

// NewMetrics creates the agent's metrics and registers them with reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		gpus: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "aivm_node_agent_gpus",
			Help: "GPUs on this node by health (Healthy, Unhealthy, Unknown).",
		}, []string{"health"}),
		memoryUsed: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "aivm_node_agent_gpu_memory_used_bytes",
			Help: "GPU framebuffer memory in use, per GPU.",
		}, []string{"gpu", "uuid"}),
		memoryFree: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "aivm_node_agent_gpu_memory_free_bytes",
			Help: "GPU framebuffer memory free, per GPU.",
		}, []string{"gpu", "uuid"}),
		nvmlErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "aivm_node_agent_nvml_errors_total",
			Help: "NVML calls that failed.",
		}),
		lastPoll: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "aivm_node_agent_last_successful_poll_timestamp_seconds",
			Help: "Unix time of the last poll whose inventory reached the API server.",
		}),
		publishFails: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "aivm_node_agent_publish_errors_total",
			Help: "Polls whose inventory could not be written to the API server.",
		}),
		fetches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "aivm_node_agent_model_prefetches_total",
			Help: "Model prefetches by result: Fetched, or the failure reason (DigestMismatch, SizeMismatch, SourceUnreachable, CredentialsNotFound, FetchFailed).",
		}, []string{"result"}),
		evictions: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "aivm_node_agent_model_cache_evictions_total",
			Help: "Models evicted from the node-local cache to keep it within its size limit.",
		}),
	}
	for _, c := range []prometheus.Collector{m.gpus, m.memoryUsed, m.memoryFree, m.nvmlErrors, m.lastPoll, m.publishFails, m.fetches, m.evictions} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// observe records one poll's inventory.
func (m *Metrics) observe(inv Inventory) {
	if m == nil {
		return
	}
	counts := map[Health]int{HealthHealthy: 0, HealthUnhealthy: 0, HealthUnknown: 0}
	m.memoryUsed.Reset()
	m.memoryFree.Reset()
	for _, g := range inv.GPUs {
		counts[g.Health]++
		idx := strconv.Itoa(g.Index)
		m.memoryUsed.WithLabelValues(idx, g.UUID).Set(float64(g.MemoryUsed))
		m.memoryFree.WithLabelValues(idx, g.UUID).Set(float64(g.MemoryFree))
	}
	for h, n := range counts {
		m.gpus.WithLabelValues(string(h)).Set(float64(n))
	}
	m.nvmlErrors.Add(float64(inv.CallErrors))
}

// published records whether the poll's inventory reached the API server.
func (m *Metrics) published(at time.Time, err error) {
	if m == nil {
		return
	}
	if err != nil {
		m.publishFails.Inc()
		return
	}
	m.lastPoll.Set(float64(at.UnixNano()) / 1e9)
}

// fetched records the result of one prefetch.
func (m *Metrics) fetched(result string) {
	if m == nil {
		return
	}
	m.fetches.WithLabelValues(result).Inc()
}

// evicted records evictions from the model cache.
func (m *Metrics) evicted(n int) {
	if m == nil || n == 0 {
		return
	}
	m.evictions.Add(float64(n))
}
