package edge

import (
	"log/slog"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mxedge/mxedge/cache"
	"github.com/mxedge/mxedge/proxy"
)

// beatLog records what a loop reported to the watchdog, in order.
type beatLog struct {
	mu     sync.Mutex
	name   string
	events []string
}

func (b *beatLog) add(ev string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.events = append(b.events, ev)
}

func (b *beatLog) Beat() { b.add("beat") }
func (b *beatLog) Idle() { b.add("idle") }
func (b *beatLog) Done() { b.add("done") }

func (b *beatLog) snapshot() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.events)
}

// TestLearnerReportsToWatchdog: the learner registers once, idles on an
// empty queue, beats for each batch it takes (so a write stuck on the
// disk withholds the ping), idles again when written, and unregisters at
// stop.
func TestLearnerReportsToWatchdog(t *testing.T) {
	store, err := cache.Open(filepath.Join(t.TempDir(), "cache.db"), cache.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	var regs int
	hb := &beatLog{}
	beats := func(loop string) proxy.Heartbeat {
		regs++
		hb.name = loop
		return hb
	}
	panics := prometheus.NewCounter(prometheus.CounterOpts{Name: "p", Help: "p"})
	l := newLearner(store, slog.New(slog.DiscardHandler), prometheus.NewRegistry(), panics, beats, time.Now)
	if regs != 1 || hb.name != "cache learner" {
		t.Fatalf("registered %d loops, last %q", regs, hb.name)
	}
	until := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s: %v", what, hb.snapshot())
			}
		}
	}
	until("the learner idle", func() bool { return slices.Equal(hb.snapshot(), []string{"idle"}) })
	l.offer(cache.Entry{MAC: "020000000001", AuthType: cache.AuthMAB})
	until("the entry written", func() bool { return slices.Equal(hb.snapshot(), []string{"idle", "beat", "idle"}) })
	l.stop()
	if got, want := hb.snapshot(), []string{"idle", "beat", "idle", "done"}; !slices.Equal(got, want) {
		t.Fatalf("reports %v, want %v", got, want)
	}
}
