package radsec

import (
	"fmt"
	"log/slog"
	"runtime/debug"

	"github.com/prometheus/client_golang/prometheus"
)

// Goroutines of the pool and the listener, the "goroutine" label of
// mxedge_panics_total.
const (
	goRead  = "read"
	goWrite = "write"
	goDial  = "dial"
	goConn  = "conn" // the listener's per-connection handshake and set-up
)

// errPanic is the cause of a connection torn down by a recovered panic in
// one of its loops; the pool redials it with the usual backoff.
var errPanic = fmt.Errorf("radsec: connection loop panicked")

// newPanics is this package's share of mxedge_panics_total, the family
// every package counts its recovered panics in, told apart by component:
// "radsec_client" for the pool, "radsec_server" for the listener, so both
// can share one registry. A pool or listener replacing another on reload
// shares its series.
func newPanics(reg prometheus.Registerer, component string, goroutines ...string) *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name:        "mxedge_panics_total",
		Help:        "Panics recovered in background goroutines, which then restart.",
		ConstLabels: prometheus.Labels{"component": component},
	}, []string{"goroutine"})
	if reg != nil {
		c = reuse(reg, c)
	}
	for _, g := range goroutines {
		c.WithLabelValues(g)
	}
	return c
}

// recovered runs f; a panic in it is counted, logged with its stack, and
// reported so that the caller tears down what f was serving.
func recovered(panics *prometheus.CounterVec, log *slog.Logger, goroutine string, f func()) (panicked bool) {
	defer func() {
		if r := recover(); r != nil {
			panicked = true
			panics.WithLabelValues(goroutine).Inc()
			log.Error("radsec goroutine panicked; tearing down what it served", "goroutine", goroutine,
				"panic", fmt.Sprint(r), "stack", string(debug.Stack()))
		}
	}()
	f()
	return false
}
