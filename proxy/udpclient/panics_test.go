package udpclient

import (
	"log/slog"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestRecoveredCountsPanics: the wrapper the reader and prober loops run
// under turns a panic into a count and a restart, with or without metrics.
func TestRecoveredCountsPanics(t *testing.T) {
	m := NewMetrics(prometheus.NewRegistry())
	log := slog.New(slog.DiscardHandler)
	if !m.recovered(log, "read", func() { panic("injected") }) {
		t.Fatal("a panic was not reported")
	}
	if m.recovered(log, "read", func() {}) {
		t.Fatal("a clean return was reported as a panic")
	}
	if got := testutil.ToFloat64(m.panics.WithLabelValues("read")); got != 1 {
		t.Fatalf("panics = %v", got)
	}
	var none *Metrics
	if !none.recovered(log, "probe", func() { panic("injected") }) {
		t.Fatal("a panic without metrics was not reported")
	}
}
