package udp

import (
	"net/netip"
	"sync"
	"time"
)

// limiter allows one log line per source address per interval. Its map is
// bounded: a flood of spoofed sources must not grow memory, so when it is
// full, stale entries are swept at most once per second and, failing that,
// new sources are not logged (they are still counted).
type limiter struct {
	every time.Duration
	max   int

	mu        sync.Mutex
	last      map[netip.Addr]time.Time
	lastSweep time.Time
}

func newLimiter(every time.Duration, max int) *limiter {
	return &limiter{every: every, max: max, last: make(map[netip.Addr]time.Time)}
}

func (l *limiter) allow(a netip.Addr, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	t, ok := l.last[a]
	if ok && now.Sub(t) < l.every {
		return false
	}
	if !ok && len(l.last) >= l.max {
		if now.Sub(l.lastSweep) < time.Second {
			return false
		}
		l.lastSweep = now
		for k, t := range l.last {
			if now.Sub(t) >= l.every {
				delete(l.last, k)
			}
		}
		if len(l.last) >= l.max {
			return false
		}
	}
	l.last[a] = now
	return true
}
