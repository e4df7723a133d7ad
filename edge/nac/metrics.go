package nac

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mxedge/mxedge/edge/nac/eaptls"
)

type metrics struct {
	decisions   *prometheus.CounterVec
	eventErrors prometheus.Counter
	dropped     *prometheus.CounterVec
	evicted     *prometheus.CounterVec
	panics      *prometheus.CounterVec // mxedge_panics_total{component="nac"}
}

// NewDecisions returns the decisions counter, mxedge_nac_decisions_total.
// The edge's router registers it first and counts the cloud's answers in
// it (source "cloud"); an Authenticator on the same registry then shares
// it, so one family says who was let in, and on whose authority.
func NewDecisions() *prometheus.CounterVec {
	return prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "mxedge_nac_decisions_total",
		Help: "Access decisions by auth type (eap-tls, mab, password; eap for the cloud's), result (accept, reject) and source: cloud, or the local NAC's cache, default VLAN or none.",
	}, []string{"auth_type", "result", "source"})
}

// dropReasons is every reason Authenticator.drop is called with.
var dropReasons = []string{"eap_discard", "eap_without_message_authenticator", "encode", "session", "sessions_full", "unsupported_code"}

func newMetrics(reg prometheus.Registerer, sessions func() int) (*metrics, error) {
	m := &metrics{
		decisions: NewDecisions(),
		eventErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mxedge_nac_event_errors_total",
			Help: "NAC events the store refused to keep.",
		}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mxedge_nac_dropped_total",
			Help: "Requests the local NAC answered with silence, by reason.",
		}, []string{"reason"}),
		evicted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mxedge_nac_eap_evicted_total",
			Help: "Half-open EAP conversations closed to admit a new one, by the scope whose cap was reached (global, client, port, device).",
		}, []string{"scope"}),
		// The same family as the other packages' recovered panics, told
		// apart by component.
		panics: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name:        "mxedge_panics_total",
			Help:        "Panics recovered in background goroutines, which then restart.",
			ConstLabels: prometheus.Labels{"component": "nac"},
		}, []string{"goroutine"}),
	}
	gauge := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "mxedge_nac_sessions",
		Help: "EAP conversations in progress.",
	}, func() float64 { return float64(sessions()) })
	// An authenticator rebuilt on reload shares the counters of the one it
	// replaces; the sessions gauge is taken over, since it reads the new
	// session table.
	var err error
	if m.decisions, err = reuse(reg, m.decisions); err != nil {
		return nil, err
	}
	if m.eventErrors, err = reuse(reg, m.eventErrors); err != nil {
		return nil, err
	}
	if m.dropped, err = reuse(reg, m.dropped); err != nil {
		return nil, err
	}
	if m.evicted, err = reuse(reg, m.evicted); err != nil {
		return nil, err
	}
	if m.panics, err = reuse(reg, m.panics); err != nil {
		return nil, err
	}
	for _, g := range []string{"event_writer", "session_sweeper"} {
		m.panics.WithLabelValues(g)
	}
	// Every reason and scope at zero from start: an alert on a rise sees a
	// series before the first drop.
	for _, r := range dropReasons {
		m.dropped.WithLabelValues(r)
	}
	for _, sc := range eaptls.EvictScopes() {
		m.evicted.WithLabelValues(sc)
	}
	if err := reg.Register(gauge); err != nil {
		var are prometheus.AlreadyRegisteredError
		if !errors.As(err, &are) {
			return nil, err
		}
		reg.Unregister(are.ExistingCollector)
		if err := reg.Register(gauge); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// reuse registers c, or returns the identical collector already registered.
func reuse[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if old, ok := are.ExistingCollector.(C); ok {
				return old, nil
			}
		}
		return c, err
	}
	return c, nil
}

// Decisions exposes one decisions counter, for tests and the status command.
func (a *Authenticator) Decisions(authType, result, source string) prometheus.Counter {
	return a.m.decisions.WithLabelValues(authType, result, source)
}
