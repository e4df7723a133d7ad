package notify

import (
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Heartbeats is the registry of the loops that do the daemon's work (UDP
// readers, the cache and event writers, the syncer, the RadSec pool). Each
// registered loop calls [Loop.Beat] when it makes progress and [Loop.Idle]
// before it blocks waiting for work; the watchdog pings systemd only while
// [Heartbeats.Stalled] is empty. A loop is stalled when it was busy (it
// beat, and did not go idle since) and has not beaten again within its
// deadline: stuck in a handler, a lock or a write, not waiting for
// packets that do not come.
//
// Beat and Idle are two atomic stores and no clock read, cheap enough for
// a UDP reader's per-datagram path; the watchdog's tick does the timing.
type Heartbeats struct {
	now func() time.Time

	mu    sync.Mutex
	loops map[*Loop]*seen
}

// seen is the watchdog's memory of one loop.
type seen struct {
	seq   uint64
	since time.Time // when seq last changed or the loop was last idle
}

// Loop is one registered loop. The zero of *Loop (nil) does nothing, for
// loops started without a watchdog.
type Loop struct {
	h        *Heartbeats
	name     string
	deadline time.Duration
	seq      atomic.Uint64
	idle     atomic.Bool
}

// NewHeartbeats returns an empty registry; now is its clock (time.Now when
// nil).
func NewHeartbeats(now func() time.Time) *Heartbeats {
	if now == nil {
		now = time.Now
	}
	return &Heartbeats{now: now, loops: map[*Loop]*seen{}}
}

// Register adds a loop that must beat at least once per deadline while it
// is busy. It starts busy: a loop that never beats nor idles is stalled
// once deadline has passed. Call Done when the loop ends.
func (h *Heartbeats) Register(name string, deadline time.Duration) *Loop {
	if h == nil {
		return nil
	}
	l := &Loop{h: h, name: name, deadline: deadline}
	h.mu.Lock()
	h.loops[l] = &seen{since: h.now()}
	h.mu.Unlock()
	return l
}

// Beat records progress: a round of work done or begun.
func (l *Loop) Beat() {
	if l == nil {
		return
	}
	l.seq.Add(1)
	if l.idle.Load() {
		l.idle.Store(false)
	}
}

// Idle records that the loop is about to wait for work: it is not stalled
// however long it waits. The next Beat makes it busy again.
func (l *Loop) Idle() {
	if l == nil {
		return
	}
	l.idle.Store(true)
}

// Done unregisters the loop, which has ended.
func (l *Loop) Done() {
	if l == nil {
		return
	}
	l.h.mu.Lock()
	delete(l.h.loops, l)
	l.h.mu.Unlock()
}

// Stalled returns the names of the loops busy without a beat for longer
// than their deadline, sorted; empty when every loop is well.
func (h *Heartbeats) Stalled() []string {
	if h == nil {
		return nil
	}
	now := h.now()
	var out []string
	h.mu.Lock()
	defer h.mu.Unlock()
	for l, s := range h.loops {
		seq := l.seq.Load()
		switch {
		case l.idle.Load(), seq != s.seq:
			s.seq, s.since = seq, now
		case now.Sub(s.since) > l.deadline:
			out = append(out, l.name)
		}
	}
	slices.Sort(out)
	return out
}

// Len is the number of loops registered.
func (h *Heartbeats) Len() int {
	if h == nil {
		return 0
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.loops)
}
