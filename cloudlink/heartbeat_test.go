package cloudlink_test

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mxedge/mxedge/cloudlink"
)

type loopBeat struct {
	beats      atomic.Int32
	idle, done atomic.Bool
}

func (b *loopBeat) Beat() { b.beats.Add(1); b.idle.Store(false) }
func (b *loopBeat) Idle() { b.idle.Store(true) }
func (b *loopBeat) Done() { b.done.Store(true) }

// TestSyncerLoopsReportToWatchdog: every loop registers, beats as a round
// starts, idles while it waits for the next, and unregisters at stop.
func TestSyncerLoopsReportToWatchdog(t *testing.T) {
	l := mustLab(t)
	dir, reg, c := mustRegister(t, l)
	var mu sync.Mutex
	loops := map[string]*loopBeat{}
	s := mustSyncer(t, cloudlink.SyncerConfig{
		Client: c, Store: mustStore(t), EdgeID: reg.EdgeID, StateDir: dir, Registerer: prometheus.NewRegistry(),
		Heartbeats: func(loop string) cloudlink.LoopHeartbeat {
			mu.Lock()
			defer mu.Unlock()
			loops[loop] = &loopBeat{}
			return loops[loop]
		},
	})
	stop := s.Start(context.Background())
	all := func(f func(*loopBeat) bool) bool {
		mu.Lock()
		defer mu.Unlock()
		for _, b := range loops {
			if !f(b) {
				return false
			}
		}
		return len(loops) == 4
	}
	for deadline := time.Now().Add(20 * time.Second); !all(func(b *loopBeat) bool { return b.beats.Load() > 0 && b.idle.Load() }); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the loops did not all run a round and go idle")
		}
	}
	stop()
	if !all(func(b *loopBeat) bool { return b.done.Load() }) {
		t.Fatal("a loop did not unregister at stop")
	}
	var names []string
	for n := range loops {
		names = append(names, n)
	}
	slices.Sort(names)
	if want := []string{"cloudlink cache", "cloudlink config", "cloudlink events", "cloudlink heartbeat"}; !slices.Equal(names, want) {
		t.Fatalf("loops %v, want %v", names, want)
	}
}
