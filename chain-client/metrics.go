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
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
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
