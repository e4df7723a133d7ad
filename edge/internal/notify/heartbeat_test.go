package notify

import (
	"slices"
	"testing"
	"time"
)

func TestHeartbeats(t *testing.T) {
	clock := time.Unix(1000, 0)
	h := NewHeartbeats(func() time.Time { return clock })
	busy := h.Register("busy", time.Second)
	idle := h.Register("idle", time.Second)
	silent := h.Register("silent", time.Second)
	gone := h.Register("gone", time.Second)
	gone.Done()
	if h.Len() != 3 {
		t.Fatalf("Len = %d", h.Len())
	}
	step := func(d time.Duration, want ...string) {
		t.Helper()
		clock = clock.Add(d)
		if got := h.Stalled(); !slices.Equal(got, want) {
			t.Fatalf("at +%v: stalled %v, want %v", d, got, want)
		}
	}
	idle.Beat()
	idle.Idle() // waits for work from here on
	step(500 * time.Millisecond)
	busy.Beat()
	step(900*time.Millisecond, "silent") // 1.4 s since it registered, no beat
	step(200*time.Millisecond, "silent") // busy's beat was seen 0.2 s ago
	step(time.Second, "busy", "silent")
	busy.Beat()
	silent.Idle()
	step(time.Minute) // idle for a minute: not stalled
	idle.Beat()       // busy again, and then nothing
	step(0)
	step(2*time.Second, "busy", "idle")

	var none *Heartbeats
	var l *Loop = none.Register("x", time.Second)
	l.Beat()
	l.Idle()
	l.Done()
	if none.Stalled() != nil || none.Len() != 0 {
		t.Fatal("a nil registry reports loops")
	}
}
