package radsec

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// clientMetrics are the pool's collectors; per-upstream children are
// resolved once so the request path does no label lookups.
type clientMetrics struct {
	up         *prometheus.GaugeVec
	rtt        *prometheus.HistogramVec
	requests   *prometheus.CounterVec
	conns      *prometheus.GaugeVec
	reconnects *prometheus.CounterVec
	dropped    *prometheus.CounterVec
	panics     *prometheus.CounterVec // mxedge_panics_total{component="radsec_client"}
}

func newClientMetrics(reg prometheus.Registerer) *clientMetrics {
	m := &clientMetrics{
		up: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "mxedge_upstream_up",
			Help: "1 when the RadSec upstream is reachable.",
		}, []string{"upstream"}),
		rtt: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "mxedge_upstream_rtt_seconds",
			Help:    "Time from writing a request to its verified reply.",
			Buckets: prometheus.ExponentialBucketsRange(100e-6, 5, 16),
		}, []string{"upstream"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mxedge_upstream_requests_total",
			Help: "Requests sent upstream by result: ok, timeout, moved (to another connection).",
		}, []string{"upstream", "result"}),
		conns: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "mxedge_upstream_connections",
			Help: "Open RadSec connections to the upstream.",
		}, []string{"upstream"}),
		reconnects: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mxedge_upstream_reconnects_total",
			Help: "Connection attempts after the first one, successful or not.",
		}, []string{"upstream"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mxedge_upstream_dropped_replies_total",
			Help: "Replies dropped without closing the connection, by reason: late (to a request that had timed out), unmatched (no request on that identifier), unverified (authenticator or Message-Authenticator wrong).",
		}, []string{"upstream", "reason"}),
	}
	if reg != nil {
		// A pool that replaces another on reload shares its series.
		m.up = reuse(reg, m.up)
		m.rtt = reuse(reg, m.rtt)
		m.requests = reuse(reg, m.requests)
		m.conns = reuse(reg, m.conns)
		m.reconnects = reuse(reg, m.reconnects)
		m.dropped = reuse(reg, m.dropped)
	}
	m.panics = newPanics(reg, "radsec_client", goRead, goWrite, goDial)
	return m
}

// reuse registers c, or returns the identical collector already
// registered under its name.
func reuse[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if old, ok := are.ExistingCollector.(C); ok {
				return old
			}
		}
		panic(err)
	}
	return c
}

// upstreamMetrics are one upstream's children.
type upstreamMetrics struct {
	up         prometheus.Gauge
	rtt        prometheus.Observer
	ok         prometheus.Counter
	timeout    prometheus.Counter
	moved      prometheus.Counter
	conns      prometheus.Gauge
	reconnects prometheus.Counter
	late       prometheus.Counter
	unmatched  prometheus.Counter
	unverified prometheus.Counter
}

// dropped is the counter of replies dropped for reason.
func (m *upstreamMetrics) dropped(reason string) prometheus.Counter {
	switch reason {
	case dropLate:
		return m.late
	case dropUnmatched:
		return m.unmatched
	}
	return m.unverified
}

func (m *clientMetrics) forUpstream(name string) upstreamMetrics {
	return upstreamMetrics{
		up:         m.up.WithLabelValues(name),
		rtt:        m.rtt.WithLabelValues(name),
		ok:         m.requests.WithLabelValues(name, "ok"),
		timeout:    m.requests.WithLabelValues(name, "timeout"),
		moved:      m.requests.WithLabelValues(name, "moved"),
		conns:      m.conns.WithLabelValues(name),
		reconnects: m.reconnects.WithLabelValues(name),
		late:       m.dropped.WithLabelValues(name, dropLate),
		unmatched:  m.dropped.WithLabelValues(name, dropUnmatched),
		unverified: m.dropped.WithLabelValues(name, dropUnverified),
	}
}
