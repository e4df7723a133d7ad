package radsec

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/mxedge/mxedge/proxy"
)

// Reasons a connection or packet is dropped before the handler, the
// "reason" label of mxedge_radsec_drops_total.
const (
	dropMaxConns         = "max_connections"
	dropMaxConnsSource   = "max_connections_per_source"
	dropHandshake        = "handshake"
	dropHandshakeTimeout = "handshake_timeout"
	dropRefused          = "refused"
	dropMalformed        = "malformed"
	dropIdle             = "idle"
)

// serverMetrics are the listener's collectors.
type serverMetrics struct {
	conns    prometheus.Gauge
	accepted *prometheus.CounterVec
	requests *prometheus.CounterVec
	drops    *prometheus.CounterVec
	panics   prometheus.Counter
	goPanics *prometheus.CounterVec // mxedge_panics_total{component="radsec_server"}
	status   prometheus.Counter
}

func newServerMetrics(reg prometheus.Registerer) *serverMetrics {
	m := &serverMetrics{
		conns: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "mxedge_radsec_connections",
			Help: "Open inbound RadSec connections, handshakes included.",
		}),
		accepted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mxedge_radsec_connections_established_total",
			Help: "Inbound RadSec connections that completed the handshake and were identified, by peer kind (device, cloud).",
		}, []string{"peer"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mxedge_radsec_requests_total",
			Help: "Inbound RadSec requests by handler outcome.",
		}, []string{"outcome"}),
		drops: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mxedge_radsec_drops_total",
			Help: "Inbound packets or connections dropped before the handler, by reason.",
		}, []string{"reason"}),
		panics: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mxedge_radsec_panics_total",
			Help: "Handler panics recovered.",
		}),
		status: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mxedge_radsec_status_server_total",
			Help: "Status-Server requests answered locally.",
		}),
	}
	// Present from the start, so that dashboards see zeros, not gaps.
	for _, r := range []string{dropMaxConns, dropMaxConnsSource, dropHandshake, dropHandshakeTimeout, dropRefused, dropMalformed, dropIdle} {
		m.drops.WithLabelValues(r)
	}
	for _, k := range []string{"device", "cloud"} {
		m.accepted.WithLabelValues(k)
	}
	// The handler may report any proxy.Outcome; these are the ones the
	// listener's handlers (forwarding to the cloud, answering locally)
	// and its panic recovery report.
	for _, o := range []proxy.Outcome{proxy.OutcomeAnswered, proxy.OutcomeUpstreamTimeout, proxy.OutcomeUpstreamError,
		proxy.OutcomeNoUpstream, proxy.OutcomeBadReply, proxy.OutcomeDropped, proxy.OutcomeLocal, proxy.OutcomePanic} {
		m.requests.WithLabelValues(string(o))
	}
	if reg != nil {
		reg.MustRegister(m.conns, m.accepted, m.requests, m.drops, m.panics, m.status)
	}
	m.goPanics = newPanics(reg, "radsec_server", goConn, goRead, goWrite)
	return m
}
