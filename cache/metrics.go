package cache

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	reg        prometheus.Registerer
	collectors []prometheus.Collector
	lookups    *prometheus.CounterVec
	// The children of lookups, resolved once: Lookup is the hot path.
	hit, miss, expired, fail prometheus.Counter
	swept                    prometheus.Counter
	evictions                prometheus.Counter
	rejected                 prometheus.Counter
	eventsDropped            prometheus.Counter
}

// newMetrics builds the store's collectors and registers them with reg, if
// any. Gauges read the store's counters at scrape time, so they can't drift.
func newMetrics(s *Store, reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		reg: reg,
		lookups: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mxedge_cache_lookups_total",
			Help: "Cache lookups by result (hit, miss, expired, error).",
		}, []string{"result"}),
		swept: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mxedge_cache_swept_total",
			Help: "Expired entries removed by the sweeper.",
		}),
		evictions: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mxedge_cache_evictions_total",
			Help: "Entries evicted, soonest-expiring first, to stay within the size bound.",
		}),
		rejected: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mxedge_cache_sync_rejected_total",
			Help: "Sync entries and tombstones refused as invalid.",
		}),
		eventsDropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mxedge_cache_outbox_dropped_total",
			Help: "Oldest outbox events dropped because the outbox was full.",
		}),
	}
	m.hit = m.lookups.WithLabelValues("hit")
	m.miss = m.lookups.WithLabelValues("miss")
	m.expired = m.lookups.WithLabelValues("expired")
	m.fail = m.lookups.WithLabelValues("error")
	m.collectors = []prometheus.Collector{
		m.lookups, m.swept, m.evictions, m.rejected, m.eventsDropped,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "mxedge_cache_entries",
			Help: "Client entries stored, including expired ones not yet swept.",
		}, func() float64 { return float64(s.entries.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "mxedge_cache_outbox_events",
			Help: "Events waiting in the outbox for upload.",
		}, func() float64 { return float64(s.events.Load()) }),
	}
	if reg == nil {
		return m, nil
	}
	for i, c := range m.collectors {
		if err := reg.Register(c); err != nil {
			for _, c := range m.collectors[:i] {
				reg.Unregister(c)
			}
			return nil, err
		}
	}
	return m, nil
}

// unregister lets a store be reopened against the same registry.
func (m *metrics) unregister() {
	if m.reg == nil {
		return
	}
	for _, c := range m.collectors {
		m.reg.Unregister(c)
	}
}
