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
		want bool
	}{
		{0, a, true},
		{time.Second, a, false}, // once a minute per source
		{time.Second, b, true},
		{2 * time.Second, c, false}, // full, nothing stale
		{30 * time.Second, c, false},
		{61 * time.Second, a, true},  // a's minute is over
		{62 * time.Second, c, true},  // b is stale and swept
		{62 * time.Second, b, false}, // full again: a and c are fresh
	}
	for i, s := range steps {
		if got := l.allow(s.addr, t0.Add(s.at)); got != s.want {
			t.Errorf("step %d: allow(%s at %v) = %v, want %v", i, s.addr, s.at, got, s.want)
		}
		if len(l.last) > 2 {
			t.Fatalf("step %d: map grew to %d", i, len(l.last))
		}
	}
}
