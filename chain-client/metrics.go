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

package chainclient

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the client's Prometheus series.
type metrics struct {
	results      *prometheus.CounterVec
	transactions *prometheus.CounterVec
	inFlight     prometheus.Gauge
	up           prometheus.Gauge
	expires      prometheus.Gauge
	// batched counts the results in unsettled transactions; the pending
	// count is read from the outbox when Prometheus scrapes.
	batched   prometheus.Gauge
	pending   prometheus.GaugeFunc
	commitLag prometheus.Histogram
	oldestAge prometheus.Gauge
}

// outboxResultsHelp describes aivm_chain_outbox_results.
const outboxResultsHelp = "Results in the outbox by state: Pending (waiting for a batch) or Batched (in a transaction not yet settled)."

// newMetrics creates the client's series and registers them with reg (when
// set); pending reports the outbox's Pending results at scrape time.
func newMetrics(reg prometheus.Registerer, pending func() float64) (*metrics, error) {
	m := &metrics{
		batched: prometheus.NewGauge(prometheus.GaugeOpts{
			Name:        "aivm_chain_outbox_results",
			Help:        outboxResultsHelp,
			ConstLabels: prometheus.Labels{"state": "Batched"},
		}),
		pending: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name:        "aivm_chain_outbox_results",
			Help:        outboxResultsHelp,
			ConstLabels: prometheus.Labels{"state": "Pending"},
		}, pending),
		commitLag: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "aivm_chain_commit_lag_blocks",
			Help:    "Blocks from a batch's first broadcast round to the block that committed it (after a restart, from the first block the client saw).",
			Buckets: []float64{1, 2, 3, 5, 10, 20, 50, 100, 200, 500},
		}),
		oldestAge: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "aivm_chain_oldest_inflight_age_blocks",
			Help: "Blocks since the oldest unsettled result transaction was batched (0: none in flight).",
		}),
		results: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "aivm_chain_results_total",
			Help: "Results settled by the chain client, by outcome (committed, rejected, resigned).",
		}, []string{"outcome"}),
		transactions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "aivm_chain_transactions_total",
			Help: "Transactions sent by the chain client, by outcome (broadcast, committed, rejected, resigned, registration).",
		}, []string{"outcome"}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "aivm_chain_inflight_transactions",
			Help: "Result transactions broadcast and not yet settled.",
		}),
		up: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "aivm_chain_up",
			Help: "1 when the chain client's latest round succeeded, 0 while it is stalled (see the manager's log for why).",
		}),
		expires: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "aivm_chain_registration_expires_height",
			Help: "Block height at which the provider registration expires (0: not registered).",
		}),
	}
	if reg == nil {
		return m, nil
	}
	var err error
	if m.results, err = register(reg, m.results); err != nil {
		return nil, err
	}
	if m.transactions, err = register(reg, m.transactions); err != nil {
		return nil, err
	}
	if m.inFlight, err = register(reg, m.inFlight); err != nil {
		return nil, err
	}
	if m.up, err = register(reg, m.up); err != nil {
		return nil, err
	}
	if m.expires, err = register(reg, m.expires); err != nil {
		return nil, err
	}
	if m.batched, err = register(reg, m.batched); err != nil {
		return nil, err
	}
	if m.pending, err = register(reg, m.pending); err != nil {
		return nil, err
	}
	if m.commitLag, err = register(reg, m.commitLag); err != nil {
		return nil, err
	}
	if m.oldestAge, err = register(reg, m.oldestAge); err != nil {
		return nil, err
	}
	return m, nil
}

// register adds c to reg, or returns the collector already registered under
// its name (a second client in one process shares the series).
func register[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing, nil
			}
		}
		return c, err
	}
	return c, nil
}
