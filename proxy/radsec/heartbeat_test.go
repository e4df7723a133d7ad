package radsec

import (
	"context"
	"sort"
	"sync"
	"testing"

	"github.com/mxedge/mxedge/proxy"
)

// liveLoops is a watchdog registry for tests: the names of the loops
// registered and not done.
type liveLoops struct {
	mu   sync.Mutex
	live map[*loopBeat]bool
}

type loopBeat struct {
	l    *liveLoops
	name string
}

func (l *liveLoops) register(name string) proxy.Heartbeat {
	b := &loopBeat{l, name}
	l.mu.Lock()
	l.live[b] = true
	l.mu.Unlock()
	return b
}

func (*loopBeat) Beat() {}
func (*loopBeat) Idle() {}
func (b *loopBeat) Done() {
	b.l.mu.Lock()
	delete(b.l.live, b)
	b.l.mu.Unlock()
}

func (l *liveLoops) names() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for b := range l.live {
		out = append(out, b.name)
	}
	sort.Strings(out)
	return out
}

// TestPoolReportsToWatchdog: the dial loop and each connection's reader
// and writer register with the watchdog, and unregister when they end.
func TestPoolReportsToWatchdog(t *testing.T) {
	srv := startServer(t, "", echo("A"), nil)
	hb := &liveLoops{live: map[*loopBeat]bool{}}
	c, _ := newClient(t, []string{srv.addr}, func(cfg *Config) { cfg.Heartbeats = hb.register })
	if _, err := c.Exchange(context.Background(), accessRequest(t, 1, "a")); err != nil {
		t.Fatal(err)
	}
	want := []string{"radsec dial " + srv.addr, "radsec read " + srv.addr, "radsec write " + srv.addr}
	if got := hb.names(); len(got) != 3 || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] {
		t.Fatalf("loops %v, want %v", got, want)
	}
	c.Close()
	if got := hb.names(); len(got) != 0 {
		t.Fatalf("after Close: %v", got)
	}
}
