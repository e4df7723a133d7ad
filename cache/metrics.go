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
	sweeps                   *prometheus.CounterVec
	sweepsOK, sweepsFailed   prometheus.Counter
	acctRefused              prometheus.Counter
	faults                   *prometheus.CounterVec
	panics                   *prometheus.CounterVec
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
	m.sweeps = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "mxedge_cache_sweeps_total",
		Help: "Sweeps of expired entries run, by result (ok, error); an idle sweep counts.",
	}, []string{"result"})
	m.sweepsOK = m.sweeps.WithLabelValues("ok")
	m.sweepsFailed = m.sweeps.WithLabelValues("error")
	m.acctRefused = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "mxedge_cache_accounting_refused_total",
		Help: "Accounting records refused because the accounting hold was full.",
	})
	m.faults = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "mxedge_cache_faults_total",
		Help: "Damage found in the cache file, by where (open, read, write, verify); each first one in a minute moves the file aside.",
	}, []string{"reason"})
	for _, r := range []string{FaultOpen, FaultRead, FaultWrite, FaultVerify} {
		m.faults.WithLabelValues(r)
	}
	// The same family as the other packages' recovered panics, told
	// apart by component.
	m.panics = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name:        "mxedge_panics_total",
		Help:        "Panics recovered in background goroutines, which then restart.",
		ConstLabels: prometheus.Labels{"component": "cache"},
	}, []string{"goroutine"})
	m.panics.WithLabelValues("sweeper")
	m.hit = m.lookups.WithLabelValues("hit")
	m.miss = m.lookups.WithLabelValues("miss")
	m.expired = m.lookups.WithLabelValues("expired")
	m.fail = m.lookups.WithLabelValues("error")
	m.collectors = []prometheus.Collector{
		m.lookups, m.swept, m.evictions, m.rejected, m.eventsDropped, m.sweeps, m.acctRefused, m.faults, m.panics,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "mxedge_cache_entries",
			Help: "Client entries stored, including expired ones not yet swept.",
		}, func() float64 { return float64(s.entries.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "mxedge_cache_outbox_events",
			Help: "Events waiting in the outbox for upload.",
		}, func() float64 { return float64(s.events.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "mxedge_cache_accounting_held",
			Help: "Accounting records held for replay to the cloud.",
		}, func() float64 { return float64(s.acctHeld.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "mxedge_cache_accounting_held_bytes",
			Help: "Size of the held accounting records as stored.",
		}, func() float64 { return float64(s.acctBytes.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "mxedge_cache_accounting_oldest_age_seconds",
			Help: "Age of the oldest held accounting record; 0 when none is held.",
		}, func() float64 {
			t := s.oldestHeld()
			if t.IsZero() {
				return 0
			}
			return max(0, s.opts.Now().Sub(t).Seconds())
		}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "mxedge_cache_file_bytes",
			Help: "Size of the cache file; bbolt files only shrink by compaction.",
		}, func() float64 { return float64(fileSize(s.path)) }),
	}
	m.collectors = append(m.collectors, compactionMetrics(s.opts.Compaction)...)
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

// compactionMetrics exports what Compact did before Open: it runs before
// the store, so the store reports it. Without a result (Compact not run)
// (a new file, or Compact failed) every series is present at zero, so a
// dashboard sees the family from start.
func compactionMetrics(res *CompactResult) []prometheus.Collector {
	runs := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "mxedge_cache_compactions_total",
		Help: "Compactions run at start, by result: compacted, or skipped (not sparse enough).",
	}, []string{"result"})
	runs.WithLabelValues("compacted")
	runs.WithLabelValues("skipped")
	switch {
	case res == nil:
		res = &CompactResult{}
	case res.Compacted:
		runs.WithLabelValues("compacted").Inc()
	default:
		runs.WithLabelValues("skipped").Inc()
	}
	gauge := func(name, help string, v float64) prometheus.Collector {
		g := prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: help})
		g.Set(v)
		return g
	}
	return []prometheus.Collector{
		runs,
		gauge("mxedge_cache_compaction_before_bytes", "Cache file size before the compaction at start.", float64(res.Before)),
		gauge("mxedge_cache_compaction_after_bytes", "Cache file size after the compaction at start (the same when skipped).", float64(res.After)),
		gauge("mxedge_cache_compaction_duration_seconds", "Time the compaction at start took.", res.Took.Seconds()),
	}
}
