package udp

import (
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mxedge/mxedge/proxy"
	"github.com/mxedge/mxedge/proxy/packet"
)

// beats is a watchdog registry for tests: which loops are registered and
// which of them are busy (beat since they last went idle).
type beats struct {
	mu    sync.Mutex
	loops map[*beat]bool // → done
}

type beat struct {
	b     *beats
	name  string
	idle  atomic.Bool
	count atomic.Int64
}

func (b *beats) register(name string) proxy.Heartbeat {
	l := &beat{b: b, name: name}
	b.mu.Lock()
	b.loops[l] = false
	b.mu.Unlock()
	return l
}

func (l *beat) Beat() { l.count.Add(1); l.idle.Store(false) }
func (l *beat) Idle() { l.idle.Store(true) }
func (l *beat) Done() { l.b.mu.Lock(); l.b.loops[l] = true; l.b.mu.Unlock() }

// state counts the live loops whose name has prefix, and the busy ones.
func (b *beats) state(prefix string) (live, busy int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for l, done := range b.loops {
		if done || !strings.HasPrefix(l.name, prefix) {
			continue
		}
		live++
		if !l.idle.Load() {
			busy++
		}
	}
	return live, busy
}

// TestReadersReportToWatchdog: every reader registers, idles while it
// waits for a datagram, and shows busy while it answers one inline, so
// the watchdog sees a reader stuck in a handler; Shutdown unregisters them.
func TestReadersReportToWatchdog(t *testing.T) {
	hb := &beats{loops: map[*beat]bool{}}
	release := make(chan struct{})
	h := inliner{acceptAll(func(r *proxy.Request) string {
		if u, _ := r.Packet.Lookup(packet.AttrUserName); string(u) == "inslow" {
			<-release
		}
		return ""
	})}
	ts := startServer(t, Auth, "udp4", []*proxy.Client{loopbackClient("sw")}, h, func(c *Config) {
		c.Readers = 2
		c.Heartbeats = hb.register
	})
	waitUntil(t, "both readers idle", func() bool { live, busy := hb.state("udp reader 127.0.0.1:"); return live == 2 && busy == 0 })

	n := newNAS(t, ts.addr)
	slow := request(t, packet.CodeAccessRequest, 1, secret, true, userName("inslow"))
	n.send(slow)
	waitUntil(t, "one reader busy", func() bool { _, busy := hb.state("udp reader"); return busy == 1 })
	close(release)
	checkReply(t, n.recv(), slow, secret, packet.CodeAccessAccept)
	waitUntil(t, "both readers idle again", func() bool { _, busy := hb.state("udp reader"); return busy == 0 })

	ts.Shutdown(t.Context())
	waitUntil(t, "readers unregistered", func() bool { live, _ := hb.state(""); return live == 0 })
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(waitLimit); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}
