package nac

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	decisions   *prometheus.CounterVec
	eventErrors prometheus.Counter
	dropped     *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer, sessions func() int) (*metrics, error) {
	m := &metrics{
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mxedge_nac_decisions_total",
			Help: "Local NAC decisions by auth type (eap-tls, mab, password), result (accept, reject) and authorization source (cache, default, none).",
		}, []string{"auth_type", "result", "source"}),
		eventErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mxedge_nac_event_errors_total",
			Help: "NAC events the store refused to keep.",
		}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mxedge_nac_dropped_total",
			Help: "Requests the local NAC answered with silence, by reason.",
		}, []string{"reason"}),
	}
	gauge := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "mxedge_nac_sessions",
		Help: "EAP conversations in progress.",
	}, func() float64 { return float64(sessions()) })
	for _, c := range []prometheus.Collector{m.decisions, m.eventErrors, m.dropped, gauge} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// Decisions exposes one decisions counter, for tests and the status command.
func (a *Authenticator) Decisions(authType, result, source string) prometheus.Counter {
	return a.m.decisions.WithLabelValues(authType, result, source)
}
