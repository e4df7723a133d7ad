package edge

import (
	"context"
	"log/slog"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// A background job that panics is counted and restarted after a backoff;
// one that returns because its context ended is not.
func TestBackgroundJobRestartsAfterPanic(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a := &App{log: slog.New(slog.DiscardHandler), reg: prometheus.NewRegistry()}
		a.registerMetrics()
		ctx, cancel := context.WithCancel(t.Context())
		var runs atomic.Int64
		a.bgGo(ctx, "job", func() {
			if runs.Add(1) <= 2 {
				panic("bug")
			}
			<-ctx.Done()
		})
		time.Sleep(time.Minute)
		if n := runs.Load(); n != 3 {
			t.Fatalf("job ran %d times, want 3 (two panics, then running)", n)
		}
		if got := testutil.ToFloat64(a.panics.WithLabelValues("job")); got != 2 {
			t.Fatalf("panics counted %v", got)
		}
		cancel()
		a.bgWG.Wait()
		if n := runs.Load(); n != 3 {
			t.Fatalf("job restarted after its context ended: %d runs", n)
		}
	})
}
