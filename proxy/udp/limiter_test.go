package udp

import (
	"net/netip"
	"testing"
	"time"
)

func TestLimiter(t *testing.T) {
	t0 := time.Unix(1_800_000_000, 0)
	a, b, c := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2"), netip.MustParseAddr("10.0.0.3")
	l := newLimiter(time.Minute, 2)
	steps := []struct {
		at   time.Duration
		addr netip.Addr
		want quota
	}{
		{0, a, quota{Log: true}},
		{time.Second, a, quota{}}, // once a minute per source
		{time.Second, b, quota{Log: true}},
		{2 * time.Second, c, quota{}}, // full, nothing stale
		{30 * time.Second, c, quota{}},
		{31 * time.Second, a, quota{}},
		{61 * time.Second, a, quota{Log: true, Suppressed: 2, Untracked: 2}}, // a's minute is over
		{62 * time.Second, c, quota{Log: true}},                              // b is stale and swept
		{62 * time.Second, b, quota{}},                                       // full again: a and c are fresh
		{63 * time.Second, b, quota{}},                                       // the window's 2 lines are spent
		{122 * time.Second, c, quota{Log: true, Untracked: 2}},
	}
	for i, s := range steps {
		if got := l.allow(s.addr, t0.Add(s.at)); got != s.want {
			t.Errorf("step %d: allow(%s at %v) = %+v, want %+v", i, s.addr, s.at, got, s.want)
		}
		if len(l.last) > 2 {
			t.Fatalf("step %d: map grew to %d", i, len(l.last))
		}
	}
}

// TestLimiterCapsLinesAcrossSources: a flood from many sources gets at
// most max lines per interval, and the next line counts the rest.
func TestLimiterCapsLinesAcrossSources(t *testing.T) {
	t0 := time.Unix(1_800_000_000, 0)
	l := newLimiter(time.Minute, 100)
	logged := 0
	for i := range 1000 {
		a := netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)})
		if l.allow(a, t0.Add(time.Duration(i)*time.Millisecond)).Log {
			logged++
		}
	}
	if logged != 100 {
		t.Fatalf("logged %d lines, want 100", logged)
	}
	q := l.allow(netip.MustParseAddr("10.2.0.1"), t0.Add(2*time.Minute))
	if !q.Log || q.Untracked != 900 {
		t.Fatalf("next line = %+v, want logged with 900 suppressed", q)
	}
}
