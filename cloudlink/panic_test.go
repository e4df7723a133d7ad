package cloudlink_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mxedge/mxedge/cache"
	"github.com/mxedge/mxedge/cloudlink"
)

// panicStore panics in PendingEvents the first times it is called, as
// bbolt's cursor did on a damaged page, then behaves; it signals acks as
// signalStore does.
type panicStore struct {
	*signalStore
	panics atomic.Int32 // left to throw
}

func (s *panicStore) PendingEvents(max int) ([]cache.Event, error) {
	if s.panics.Add(-1) >= 0 {
		panic("unexpected fault address 0x7f0000000000")
	}
	return s.Store.PendingEvents(max)
}

// A panic in a background loop is recovered and counted, and the loop
// runs again after its backoff: the events still reach the cloud.
func TestSyncerLoopRecoversPanic(t *testing.T) {
	l := mustLab(t)
	_, reg, c := mustRegister(t, l)
	st := &panicStore{signalStore: &signalStore{Store: mustStore(t), acked: make(chan struct{}, 1)}}
	st.panics.Store(2)
	if err := st.AppendEvent(cache.Event{Type: "NAC Client Access Allowed"}); err != nil {
		t.Fatal(err)
	}
	mreg := prometheus.NewRegistry()
	s := mustSyncer(t, cloudlink.SyncerConfig{Client: c, Store: st, EdgeID: reg.EdgeID,
		EventInterval: time.Millisecond, MaxBackoff: 10 * time.Millisecond, Registerer: mreg})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	stop := s.Start(ctx)
	defer stop()
	select {
	case <-st.acked:
	case <-ctx.Done():
		t.Fatalf("events never uploaded after the panics; status %+v", s.Status())
	}
	if got := metricValue(t, mreg, "mxedge_panics_total"); got != 2 {
		t.Errorf("mxedge_panics_total %v, want 2", got)
	}
	if l.cloud.Stats().EventsUnique != 1 {
		t.Errorf("cloud has %d events, want 1", l.cloud.Stats().EventsUnique)
	}
}

// ResyncCache runs a cache sync now, not at the next interval: a store
// just replaced by an empty one is refilled at once.
func TestResyncCacheRunsNow(t *testing.T) {
	l := mustLab(t)
	_, reg, c := mustRegister(t, l)
	s := mustSyncer(t, cloudlink.SyncerConfig{Client: c, Store: mustStore(t), EdgeID: reg.EdgeID,
		SyncInterval: time.Hour, Registerer: prometheus.NewRegistry()})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	stop := s.Start(ctx)
	defer stop()
	first := waitSync(ctx, t, s, time.Time{})
	s.ResyncCache()
	waitSync(ctx, t, s, first)
}

func waitSync(ctx context.Context, t *testing.T, s *cloudlink.Syncer, after time.Time) time.Time {
	t.Helper()
	for {
		if st := s.Status(); st.LastSync.After(after) {
			return st.LastSync
		}
		select {
		case <-ctx.Done():
			t.Fatalf("no cache sync after %v; status %+v", after, s.Status())
		case <-time.After(20 * time.Millisecond):
		}
	}
}
