package nac_test

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/mxedge/mxedge/cache"
	"github.com/mxedge/mxedge/edge/nac"
	"github.com/mxedge/mxedge/proxy"
)

// slowStore holds every event write until released, as a stuck disk would.
type slowStore struct {
	*fakeStore
	release chan struct{}
}

func (s *slowStore) AppendEvent(ev cache.Event) error {
	<-s.release
	return s.fakeStore.AppendEvent(ev)
}

type writerBeat struct {
	name          string
	idle, done    atomic.Bool
	registrations *atomic.Int32
}

func (b *writerBeat) Beat() { b.idle.Store(false) }
func (b *writerBeat) Idle() { b.idle.Store(true) }
func (b *writerBeat) Done() { b.done.Store(true) }

// TestEventWriterReportsToWatchdog: the event writer idles on an empty
// queue, shows busy while a write is stuck, and unregisters at Close.
func TestEventWriterReportsToWatchdog(t *testing.T) {
	var regs atomic.Int32
	hb := &writerBeat{registrations: &regs}
	store := &slowStore{fakeStore: newFakeStore(), release: make(chan struct{})}
	f := newFixtureStore(t, store, func(c *nac.Config) {
		c.BatchedEvents = true // answer without waiting for the stuck write
		c.Heartbeats = func(loop string) proxy.Heartbeat {
			regs.Add(1)
			hb.name = loop
			return hb
		}
	})
	until := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
		}
	}
	until("the writer idle", hb.idle.Load)
	if regs.Load() != 1 || hb.name != "nac event writer" {
		t.Fatalf("registered %d loops, last %q", regs.Load(), hb.name)
	}
	f.serve(t, mabRequest(t, "aabbcc000001")) // answered; its event waits on the disk
	until("the writer busy", func() bool { return !hb.idle.Load() })
	close(store.release)
	until("the writer idle again", hb.idle.Load)
	f.close(t)
	if !hb.done.Load() {
		t.Fatal("the writer did not unregister at Close")
	}
}
