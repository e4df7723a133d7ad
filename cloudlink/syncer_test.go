package cloudlink_test

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mxedge/mxedge/cache"
	"github.com/mxedge/mxedge/cloudlink"
)

// signalStore reports a completed sync round and acked events, each on
// its channel if not nil.
type signalStore struct {
	*cache.Store
	synced chan struct{}
	acked  chan struct{}
}

func (s *signalStore) ApplySync(p cache.SyncPage) error {
	err := s.Store.ApplySync(p)
	if p.Final {
		select {
		case s.synced <- struct{}{}:
		default:
		}
	}
	return err
}

func (s *signalStore) AckEvents(ids ...string) error {
	err := s.Store.AckEvents(ids...)
	if s.Store.OutboxLen() == 0 {
		select {
		case s.acked <- struct{}{}:
		default:
		}
	}
	return err
}

func TestSyncerStart(t *testing.T) {
	l := mustLab(t)
	dir, reg, c := mustRegister(t, l)
	l.cloud.UpsertMany(mabEntries(12, "site-lab"))
	st := &signalStore{Store: mustStore(t), synced: make(chan struct{}, 1), acked: make(chan struct{}, 1)}
	for range 3 {
		if err := st.AppendEvent(cache.Event{Type: "NAC Client Access Allowed"}); err != nil {
			t.Fatal(err)
		}
	}
	configs := make(chan *cloudlink.EdgeConfig, 4)
	s := mustSyncer(t, cloudlink.SyncerConfig{
		Client: c, Store: st, EdgeID: reg.EdgeID, StateDir: dir,
		EventInterval: time.Millisecond, Registerer: prometheus.NewRegistry(),
		OnConfig:        func(cfg *cloudlink.EdgeConfig) { configs <- cfg },
		HeartbeatStatus: func() map[string]string { return map[string]string{"mode": "cloud"} },
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	stop := s.Start(ctx)
	for name, ch := range map[string]<-chan struct{}{"sync": st.synced, "events": st.acked} {
		select {
		case <-ch:
		case <-ctx.Done():
			t.Fatalf("no %s before the deadline; status %+v", name, s.Status())
		}
	}
	select {
	case <-configs:
	case <-ctx.Done():
		t.Fatal("no config")
	}
	stop()
	if st.Count() != 12 || l.cloud.Stats().EventsUnique != 3 {
		t.Errorf("entries %d, cloud events %d; want 12, 3", st.Count(), l.cloud.Stats().EventsUnique)
	}
}
