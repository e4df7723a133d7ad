package udp

import (
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// failLimiter sheds forged packets cheaply. Each source address and port
// that sends packets failing authentication (bad Request Authenticator,
// bad or duplicate Message-Authenticator) gets a token bucket of rate
// failures a second, burst twice that; while its bucket is empty, its
// datagrams are dropped before they are parsed or verified, so a flood of
// forgeries spoofing a known device costs a map lookup each instead of an
// HMAC. It is keyed by port as well as address so that a forger spoofing
// the device's address from another port does not silence the device; a
// forger that also matches the port competes with it for the bucket.
//
// The map is bounded like limiter's: when full, stale buckets are swept at
// most once a second, and a new source that finds no room is not limited
// (it still pays for its verification).
type failLimiter struct {
	rate  float64 // tokens per second; 0 disables
	burst float64
	max   int

	n         atomic.Int32 // len(m), read without the lock on the fast path
	mu        sync.Mutex
	m         map[netip.AddrPort]*bucket
	lastSweep time.Time
}

type bucket struct {
	tokens float64
	at     time.Time
}

func newFailLimiter(perSecond int, max int) *failLimiter {
	l := &failLimiter{max: max, m: make(map[netip.AddrPort]*bucket)}
	if perSecond > 0 {
		l.rate, l.burst = float64(perSecond), 2*float64(perSecond)
	}
	return l
}

// limited reports whether src's bucket is empty. A source that has not
// failed costs one atomic load while no source has.
func (l *failLimiter) limited(src netip.AddrPort, now time.Time) bool {
	if l.rate == 0 || l.n.Load() == 0 {
		return false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.m[src]
	if !ok {
		return false
	}
	l.refill(b, now)
	return b.tokens < 1
}

// failed charges src one token for a packet that failed authentication.
func (l *failLimiter) failed(src netip.AddrPort, now time.Time) {
	if l.rate == 0 {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.m[src]
	if !ok {
		if len(l.m) >= l.max && !l.sweep(now) {
			return
		}
		b = &bucket{tokens: l.burst, at: now}
		l.m[src] = b
		l.n.Store(int32(len(l.m)))
	}
	l.refill(b, now)
	b.tokens = max(b.tokens-1, 0)
}

func (l *failLimiter) refill(b *bucket, now time.Time) {
	if d := now.Sub(b.at); d > 0 {
		b.tokens = min(b.tokens+d.Seconds()*l.rate, l.burst)
		b.at = now
	}
}

// sweep drops full buckets (sources that stopped failing) and reports
// whether there is room.
func (l *failLimiter) sweep(now time.Time) bool {
	if now.Sub(l.lastSweep) < time.Second {
		return false
	}
	l.lastSweep = now
	for k, b := range l.m {
		if l.refill(b, now); b.tokens >= l.burst {
			delete(l.m, k)
		}
	}
	l.n.Store(int32(len(l.m)))
	return len(l.m) < l.max
}
