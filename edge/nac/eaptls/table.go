package eaptls

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"sync"
	"time"
)

// Table defaults.
const (
	DefaultIdleTimeout  = 30 * time.Second
	DefaultMaxSessions  = 4096
	DefaultMaxPerDevice = 8
)

// StatePrefix starts every State a Table issues. The edge's router reads
// it to keep a conversation on the path that began it (local NAC or cloud)
// without asking the table: a cloud's State is its own random bytes, and
// the chance that one starts with these 13 octets is 2^-104.
const StatePrefix = "mxedge-local:"

// stateRandom is the random part of a State: 18 bytes, 24 base64url
// characters. With the prefix a State is 37 octets, far below the 253 a
// RADIUS attribute holds.
const stateRandom = 18

// Table errors.
var (
	ErrTableFull  = errors.New("eaptls: too many EAP sessions")
	ErrDeviceFull = errors.New("eaptls: too many EAP sessions for this device")
)

// TableConfig configures a Table.
type TableConfig struct {
	IdleTimeout  time.Duration    // default 30 s
	MaxSessions  int              // global cap, default 4096
	MaxPerDevice int              // cap per device key, default 8
	Now          func() time.Time // default time.Now
	// StatePrefix starts every State issued; default StatePrefix. A NAC
	// that is not the edge's local one (the lab cloud's) sets another, so
	// that an edge in front of it does not take its conversations for
	// its own.
	StatePrefix string
}

// Table holds running conversations keyed by the RADIUS State the caller
// echoes in each Access-Challenge. The device key is whatever the caller
// wants to cap and bind on: Calling-Station-Id, NAS address, or both.
// Expired or removed sessions are closed, which ends their goroutine.
type Table struct {
	cfg      TableConfig
	mu       sync.Mutex
	sessions map[string]*entry
	devices  map[string]int
}

type entry struct {
	s      *Session
	device string
	seen   time.Time
}

// NewTable returns an empty Table.
func NewTable(cfg TableConfig) *Table {
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = DefaultIdleTimeout
	}
	if cfg.MaxSessions <= 0 {
		cfg.MaxSessions = DefaultMaxSessions
	}
	if cfg.MaxPerDevice <= 0 {
		cfg.MaxPerDevice = DefaultMaxPerDevice
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.StatePrefix == "" {
		cfg.StatePrefix = StatePrefix
	}
	return &Table{cfg: cfg, sessions: make(map[string]*entry), devices: make(map[string]int)}
}

// Add stores s for device and returns a fresh State value: StatePrefix
// and 18 random bytes in base64url (37 characters in all). Expired
// sessions are swept first so a busy table frees room before refusing.
func (t *Table) Add(device string, s *Session) (string, error) {
	var b [stateRandom]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	state := t.cfg.StatePrefix + base64.RawURLEncoding.EncodeToString(b[:])
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.cfg.Now()
	if len(t.sessions) >= t.cfg.MaxSessions {
		t.sweepLocked(now)
	}
	if len(t.sessions) >= t.cfg.MaxSessions {
		return "", ErrTableFull
	}
	if t.devices[device] >= t.cfg.MaxPerDevice {
		t.sweepLocked(now)
		if t.devices[device] >= t.cfg.MaxPerDevice {
			return "", ErrDeviceFull
		}
	}
	t.sessions[state] = &entry{s: s, device: device, seen: now}
	t.devices[device]++
	return state, nil
}

// Get returns the session for state if it exists, belongs to device and is
// not idle too long, and marks it used.
func (t *Table) Get(state, device string) (*Session, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	e, ok := t.sessions[state]
	if !ok || e.device != device {
		return nil, false
	}
	now := t.cfg.Now()
	if now.Sub(e.seen) > t.cfg.IdleTimeout {
		t.removeLocked(state, e)
		return nil, false
	}
	e.seen = now
	return e.s, true
}

// Remove drops and closes the session for state (call it after Accept or
// Reject once retransmissions no longer matter, or let it idle out).
func (t *Table) Remove(state string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if e, ok := t.sessions[state]; ok {
		t.removeLocked(state, e)
	}
}

// Sweep closes and drops idle sessions and returns how many went.
func (t *Table) Sweep() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.sweepLocked(t.cfg.Now())
}

// Run sweeps every interval until ctx ends, then closes everything.
func (t *Table) Run(ctx context.Context, interval time.Duration) {
	tk := time.NewTicker(interval)
	defer tk.Stop()
	for {
		select {
		case <-ctx.Done():
			t.Close()
			return
		case <-tk.C:
			t.Sweep()
		}
	}
}

// Close closes and drops every session.
func (t *Table) Close() {
	t.mu.Lock()
	defer t.mu.Unlock()
	for k, e := range t.sessions {
		t.removeLocked(k, e)
	}
}

// Len is the number of sessions held.
func (t *Table) Len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.sessions)
}

func (t *Table) sweepLocked(now time.Time) int {
	n := 0
	for k, e := range t.sessions {
		if now.Sub(e.seen) > t.cfg.IdleTimeout {
			t.removeLocked(k, e)
			n++
		}
	}
	return n
}

func (t *Table) removeLocked(state string, e *entry) {
	delete(t.sessions, state)
	if t.devices[e.device]--; t.devices[e.device] <= 0 {
		delete(t.devices, e.device)
	}
	// Session.Close takes the session lock; a Handle in progress finishes
	// first. Closing outside t.mu would be nicer under contention but
	// Handle never takes t.mu, so there is no lock-order cycle.
	e.s.Close()
}
