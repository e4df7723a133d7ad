package udpclient

import (
	"fmt"
	"log/slog"
	"runtime/debug"
)

// recovered runs f; a panic in it is counted in
// mxedge_panics_total{component="udpclient",goroutine=name} (when the pool
// has metrics) and logged with its stack, and reported so that the caller
// restarts its loop.
func (m *Metrics) recovered(log *slog.Logger, name string, f func()) (panicked bool) {
	defer func() {
		if r := recover(); r != nil {
			panicked = true
			if m != nil {
				m.panics.WithLabelValues(name).Inc()
			}
			log.Error("federation pool goroutine panicked; restarting it", "goroutine", name,
				"panic", fmt.Sprint(r), "stack", string(debug.Stack()))
		}
	}()
	f()
	return false
}
