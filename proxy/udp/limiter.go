package udp

import (
	"net/netip"
	"sync"
	"time"
)

// limiter allows one log line per source address per interval, and at
// most max lines per interval in all, and counts what it suppressed so
// the line that is logged can say how many were not. Its map is bounded:
// a flood of spoofed sources must not grow memory, so when it is full,
// stale entries are swept at most once per second and, failing that, new
// sources are not logged; their lines are counted as untracked and
// reported with the next line logged.
type limiter struct {
	every time.Duration
	max   int

	mu          sync.Mutex
	last        map[netip.Addr]*limited
	lastSweep   time.Time
	windowStart time.Time
	inWindow    int    // lines logged since windowStart
	untracked   uint64 // suppressed lines not charged to a tracked source
}

type limited struct {
	at         time.Time
	suppressed uint64
}

// quota says what allow decided: Log, and if so how many lines for this
// source (Suppressed) and for sources not tracked (Untracked) were not
// logged since its last line.
type quota struct {
	Log                   bool
	Suppressed, Untracked uint64
}

// attrs are the log attributes that report suppressed lines, if any.
func (q quota) attrs() []any {
	var a []any
	if q.Suppressed > 0 {
		a = append(a, "suppressed", q.Suppressed)
	}
	if q.Untracked > 0 {
		a = append(a, "suppressed_other_sources", q.Untracked)
	}
	return a
}

func newLimiter(every time.Duration, max int) *limiter {
	return &limiter{every: every, max: max, last: make(map[netip.Addr]*limited)}
}

func (l *limiter) allow(a netip.Addr, now time.Time) quota {
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.windowStart) >= l.every {
		l.windowStart, l.inWindow = now, 0
	}
	e, ok := l.last[a]
	if ok && now.Sub(e.at) < l.every {
		e.suppressed++
		return quota{}
	}
	if !ok && len(l.last) >= l.max {
		if now.Sub(l.lastSweep) < time.Second {
			l.untracked++
			return quota{}
		}
		l.lastSweep = now
		for k, e := range l.last {
			if now.Sub(e.at) >= l.every {
				l.untracked += e.suppressed
				delete(l.last, k)
			}
		}
		if len(l.last) >= l.max {
			l.untracked++
			return quota{}
		}
	}
	if l.inWindow >= l.max {
		if ok {
			e.suppressed++
		} else {
			l.untracked++
		}
		return quota{}
	}
	l.inWindow++
	q := quota{Log: true, Untracked: l.untracked}
	l.untracked = 0
	if ok {
		q.Suppressed, e.at, e.suppressed = e.suppressed, now, 0
	} else {
		l.last[a] = &limited{at: now}
	}
	return q
}
