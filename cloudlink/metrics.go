package cloudlink

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	lastSync   prometheus.Gauge
	errors     *prometheus.CounterVec
	uploaded   prometheus.Counter
	pages      prometheus.Counter
	fullResync prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		lastSync: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "mxedge_cache_last_sync_timestamp_seconds",
			Help: "Unix time of the last complete cache sync with the cloud; 0 before the first.",
		}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mxedge_cloud_sync_errors_total",
			Help: "Failed cloud API rounds, by operation (config, cache, events, heartbeat).",
		}, []string{"op"}),
		uploaded: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mxedge_cloud_events_uploaded_total",
			Help: "NAC events the cloud accepted from the outbox.",
		}),
		pages: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mxedge_cloud_sync_pages_total",
			Help: "Cache sync pages applied.",
		}),
		fullResync: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mxedge_cloud_full_resyncs_total",
			Help: "Full cache resyncs started (first sync, or the cloud forgot our cursor).",
		}),
	}
	for _, op := range []string{opConfig, opCache, opEvents, opHeartbeat} {
		m.errors.WithLabelValues(op)
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.lastSync, m.errors, m.uploaded, m.pages, m.fullResync} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}
