package udpclient

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the collectors every pool of a process shares, labelled by
// pool and server. Create them once per registry.
type Metrics struct {
	up       *prometheus.GaugeVec
	requests *prometheus.CounterVec
	probes   *prometheus.CounterVec
	dropped  *prometheus.CounterVec
	panics   *prometheus.CounterVec // mxedge_panics_total{component="udpclient"}
}

// NewMetrics registers the pool collectors with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		up: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "mxedge_federation_server_up",
			Help: "1 while a federation server answers (Status-Server or requests), 0 while it is down.",
		}, []string{"pool", "server"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mxedge_federation_server_requests_total",
			Help: "Requests sent to a federation server, by result (answered, timeout, error).",
		}, []string{"pool", "server", "result"}),
		probes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mxedge_federation_status_probes_total",
			Help: "Status-Server probes of a federation server, by result (ok, fail).",
		}, []string{"pool", "server", "result"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mxedge_federation_replies_dropped_total",
			Help: "Replies from a federation server discarded, by reason (unexpected, bad_authenticator, missing_message_authenticator, malformed).",
		}, []string{"pool", "server", "reason"}),
	}
	m.panics = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name:        "mxedge_panics_total",
		Help:        "Panics recovered in background goroutines, which then restart.",
		ConstLabels: prometheus.Labels{"component": "udpclient"},
	}, []string{"goroutine"})
	m.panics.WithLabelValues("read")
	m.panics.WithLabelValues("probe")
	reg.MustRegister(m.up, m.requests, m.probes, m.dropped, m.panics)
	return m
}

// seed creates, at zero, a server's series for every result and reason,
// so that dashboards see zeros from start rather than nothing until its
// first request, probe or dropped reply.
func (m *Metrics) seed(pool, server string) {
	if m == nil {
		return
	}
	for _, r := range []string{"answered", "timeout", "error"} {
		m.requests.WithLabelValues(pool, server, r)
	}
	for _, r := range []string{"ok", "fail"} {
		m.probes.WithLabelValues(pool, server, r)
	}
	for _, r := range []string{"unexpected", "bad_authenticator", "missing_message_authenticator", "malformed"} {
		m.dropped.WithLabelValues(pool, server, r)
	}
}

func (m *Metrics) forget(pool, server string) {
	if m == nil {
		return
	}
	l := prometheus.Labels{"pool": pool, "server": server}
	m.up.DeletePartialMatch(l)
	m.requests.DeletePartialMatch(l)
	m.probes.DeletePartialMatch(l)
	m.dropped.DeletePartialMatch(l)
}
