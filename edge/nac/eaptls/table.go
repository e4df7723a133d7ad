package eaptls

import (
	"container/list"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"sync"
	"time"
)

// Table defaults.
const (
	DefaultIdleTimeout = 30 * time.Second
	// DefaultHalfOpenTimeout is how long a conversation may take from its
	// first packet to become established (see Session.Established): a
	// supplicant gets there in well under a second, and one lost packet
	// and the NAS's retransmission (3 to 5 s) still fit.
	DefaultHalfOpenTimeout = 10 * time.Second
	DefaultMaxSessions     = 4096
	// DefaultMaxPerClient is a quarter of the table: one RADIUS client
	// (a switch or controller) cannot hold more, however many stations
	// it claims to speak for.
	DefaultMaxPerClient = 1024
	// DefaultMaxPerPort bounds the conversations behind one NAS port: a
	// port has a handful of supplicants, a flood on it has thousands.
	DefaultMaxPerPort   = 16
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

// Table errors: a cap was reached and nothing in its scope was half-open
// to make room.
var (
	ErrTableFull  = errors.New("eaptls: too many EAP sessions")
	ErrClientFull = errors.New("eaptls: too many EAP sessions for this RADIUS client")
	ErrPortFull   = errors.New("eaptls: too many EAP sessions for this NAS port")
	ErrDeviceFull = errors.New("eaptls: too many EAP sessions for this device")
)

// TableConfig configures a Table.
type TableConfig struct {
	IdleTimeout time.Duration // established conversations; default 30 s
	// HalfOpenTimeout is the time a conversation has from its admission
	// to become established; default 10 s.
	HalfOpenTimeout time.Duration
	MaxSessions     int              // global cap, default 4096
	MaxPerClient    int              // cap per Owner.Client, default 1024
	MaxPerPort      int              // cap per Owner.Client and Owner.Port, default 16
	MaxPerDevice    int              // cap per Owner.Device, default 8
	Now             func() time.Time // default time.Now
	// StatePrefix starts every State issued; default StatePrefix. A NAC
	// that is not the edge's local one (the lab cloud's) sets another, so
	// that an edge in front of it does not take its conversations for
	// its own.
	StatePrefix string
	// OnEvict, if set, is called (with the table locked: count, don't
	// call back) when a half-open conversation is closed to admit a new
	// one, with the scope that was full: "global", "client", "port" or
	// "device".
	OnEvict func(scope string)
}

// Owner says whom a conversation belongs to, for the caps and the State
// binding. An empty Client or Port is no scope: its cap does not apply.
type Owner struct {
	Client string // RADIUS client (NAS) name
	Port   string // NAS-Port / NAS-Port-Id, within Client
	// Device binds the State: Get returns the session only for the same
	// Device. The caller makes it unique per client (e.g. client name and
	// Calling-Station-Id).
	Device string
}

// scope is a set of conversations that share a cap.
type scope int

const (
	scGlobal scope = iota
	scClient
	scPort
	scDevice
	nScopes
)

var scopeNames = [nScopes]string{"global", "client", "port", "device"}

// EvictScopes names every scope OnEvict may be called with, so that a
// counter keyed by it can show each at zero from start.
func EvictScopes() []string { return append([]string(nil), scopeNames[:]...) }

// Table holds running conversations keyed by the RADIUS State the caller
// echoes in each Access-Challenge, under a global cap and caps per RADIUS
// client, per NAS port and per device.
//
// Admission cannot be monopolised by one sender: a cap that is reached
// closes the oldest half-open conversation in its scope (the sender's own
// scope first, the table's last) before it refuses a new one, and
// half-open conversations expire after HalfOpenTimeout. Established
// conversations are never closed to admit new ones; they idle out after
// IdleTimeout. Expired or removed sessions are closed, which ends their
// goroutine.
type Table struct {
	cfg      TableConfig
	caps     [nScopes]int
	mu       sync.Mutex
	sessions map[string]*entry
	count    [nScopes]map[string]int
	// half lists the conversations of each scope key that were half-open
	// when last looked at, oldest first. An entry that became established
	// since is dropped from the lists when next met (Get, eviction or
	// sweep).
	half [nScopes]map[string]*list.List
}

type entry struct {
	s       *Session
	state   string
	keys    [nScopes]string
	in      [nScopes]bool // counted in scope
	elems   [nScopes]*list.Element
	created time.Time
	seen    time.Time
}

// NewTable returns an empty Table.
func NewTable(cfg TableConfig) *Table {
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = DefaultIdleTimeout
	}
	if cfg.HalfOpenTimeout <= 0 {
		cfg.HalfOpenTimeout = DefaultHalfOpenTimeout
	}
	if cfg.MaxSessions <= 0 {
		cfg.MaxSessions = DefaultMaxSessions
	}
	if cfg.MaxPerClient <= 0 {
		cfg.MaxPerClient = DefaultMaxPerClient
	}
	if cfg.MaxPerPort <= 0 {
		cfg.MaxPerPort = DefaultMaxPerPort
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
	t := &Table{cfg: cfg, sessions: make(map[string]*entry)}
	t.caps = [nScopes]int{cfg.MaxSessions, cfg.MaxPerClient, cfg.MaxPerPort, cfg.MaxPerDevice}
	for i := range nScopes {
		t.count[i] = make(map[string]int)
		t.half[i] = make(map[string]*list.List)
	}
	return t
}

// Add is Admit for a caller that caps and binds on one device key only.
func (t *Table) Add(device string, s *Session) (string, error) {
	return t.Admit(Owner{Device: device}, s)
}

// Admit stores s for o and returns a fresh State value: StatePrefix and
// 18 random bytes in base64url (37 characters in all). Half-open
// conversations past their time are closed first. Where a cap is reached
// (device, port, client, then global), the oldest half-open conversation
// in that scope is closed to make room; if it has none, Admit refuses
// with that scope's error.
func (t *Table) Admit(o Owner, s *Session) (string, error) {
	var b [stateRandom]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	state := t.cfg.StatePrefix + base64.RawURLEncoding.EncodeToString(b[:])
	e := &entry{s: s, state: state}
	e.keys[scGlobal] = "" // one scope key for all
	e.in[scGlobal] = true
	e.keys[scClient], e.in[scClient] = o.Client, o.Client != ""
	e.keys[scPort], e.in[scPort] = o.Client+"\x00"+o.Port, o.Port != ""
	e.keys[scDevice], e.in[scDevice] = o.Device, true

	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.cfg.Now()
	t.expireHalfOpenLocked(now)
	for _, sc := range [...]scope{scDevice, scPort, scClient, scGlobal} {
		if !e.in[sc] {
			continue
		}
		k := e.keys[sc]
		if t.count[sc][k] < t.caps[sc] {
			continue
		}
		if sc == scGlobal {
			// Established conversations idle out only in a sweep; one
			// may be due.
			t.sweepLocked(now)
			if t.count[sc][k] < t.caps[sc] {
				continue
			}
		}
		if !t.evictLocked(sc, k) {
			return "", [nScopes]error{ErrTableFull, ErrClientFull, ErrPortFull, ErrDeviceFull}[sc]
		}
	}
	e.created, e.seen = now, now
	t.sessions[state] = e
	for sc := range nScopes {
		if !e.in[sc] {
			continue
		}
		k := e.keys[sc]
		t.count[sc][k]++
		l := t.half[sc][k]
		if l == nil {
			l = list.New()
			t.half[sc][k] = l
		}
		e.elems[sc] = l.PushBack(e)
	}
	return state, nil
}

// Get returns the session for state if it exists, belongs to device and
// has not run out of time, and marks it used.
func (t *Table) Get(state, device string) (*Session, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	e, ok := t.sessions[state]
	if !ok || e.keys[scDevice] != device {
		return nil, false
	}
	now := t.cfg.Now()
	if t.expiredLocked(e, now) {
		t.removeLocked(e)
		return nil, false
	}
	if e.elems[scGlobal] != nil && e.s.Established() {
		t.unlinkLocked(e)
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
		t.removeLocked(e)
	}
}

// Sweep closes and drops idle and overdue half-open sessions and returns
// how many went.
func (t *Table) Sweep() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.sweepLocked(t.cfg.Now())
}

// Run sweeps every interval until ctx ends, then closes everything.
// Between full sweeps, which walk every session, overdue half-open ones
// go every interval/5 (cheaply: they are listed oldest first).
func (t *Table) Run(ctx context.Context, interval time.Duration) {
	tk := time.NewTicker(max(interval/5, time.Millisecond))
	defer tk.Stop()
	for i := 1; ; i++ {
		select {
		case <-ctx.Done():
			t.Close()
			return
		case <-tk.C:
			if i%5 == 0 {
				t.Sweep()
			} else {
				t.mu.Lock()
				t.expireHalfOpenLocked(t.cfg.Now())
				t.mu.Unlock()
			}
		}
	}
}

// Close closes and drops every session.
func (t *Table) Close() {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, e := range t.sessions {
		t.removeLocked(e)
	}
}

// Len is the number of sessions held.
func (t *Table) Len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.sessions)
}

// expiredLocked reports whether e ran out of time: half-open past
// HalfOpenTimeout from admission, or idle past IdleTimeout.
func (t *Table) expiredLocked(e *entry, now time.Time) bool {
	if now.Sub(e.seen) > t.cfg.IdleTimeout {
		return true
	}
	return !e.s.Established() && now.Sub(e.created) > t.cfg.HalfOpenTimeout
}

func (t *Table) sweepLocked(now time.Time) int {
	n := 0
	for _, e := range t.sessions {
		if t.expiredLocked(e, now) {
			t.removeLocked(e)
			n++
		}
	}
	return n
}

// expireHalfOpenLocked closes the half-open conversations past their
// time, from the front of the global list (admission order), dropping
// established ones from the lists on the way.
func (t *Table) expireHalfOpenLocked(now time.Time) {
	l := t.half[scGlobal][""]
	for l != nil && l.Len() > 0 {
		e := l.Front().Value.(*entry)
		switch {
		case e.s.Established():
			t.unlinkLocked(e)
		case now.Sub(e.created) > t.cfg.HalfOpenTimeout:
			t.removeLocked(e)
		default:
			return
		}
	}
}

// evictLocked closes the oldest half-open conversation of scope sc, key
// k, and reports whether there was one.
func (t *Table) evictLocked(sc scope, k string) bool {
	l := t.half[sc][k]
	for l != nil && l.Len() > 0 {
		e := l.Front().Value.(*entry)
		if e.s.Established() {
			t.unlinkLocked(e)
			continue
		}
		t.removeLocked(e)
		if t.cfg.OnEvict != nil {
			t.cfg.OnEvict(scopeNames[sc])
		}
		return true
	}
	return false
}

// unlinkLocked takes e off the half-open lists.
func (t *Table) unlinkLocked(e *entry) {
	for sc := range nScopes {
		el := e.elems[sc]
		if el == nil {
			continue
		}
		k := e.keys[sc]
		l := t.half[sc][k]
		l.Remove(el)
		e.elems[sc] = nil
		if l.Len() == 0 {
			delete(t.half[sc], k)
		}
	}
}

func (t *Table) removeLocked(e *entry) {
	if t.sessions[e.state] != e {
		return
	}
	delete(t.sessions, e.state)
	t.unlinkLocked(e)
	for sc := range nScopes {
		if !e.in[sc] {
			continue
		}
		k := e.keys[sc]
		if t.count[sc][k]--; t.count[sc][k] <= 0 {
			delete(t.count[sc], k)
		}
	}
	// Session.Close takes the session lock; a Handle in progress finishes
	// first. Closing outside t.mu would be nicer under contention but
	// Handle never takes t.mu, so there is no lock-order cycle.
	e.s.Close()
}
