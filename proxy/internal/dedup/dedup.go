package dedup

import (
	"net/netip"
	"sync"
	"time"
)

// Defaults for Config's zero values.
const (
	DefaultWindow     = 30 * time.Second
	DefaultMaxEntries = 65536
	DefaultMaxBytes   = 64 << 20
)

// EntryOverhead is what one entry is charged besides its reply: its slot,
// its map entry and its share of the owner table, rounded up. Charging it
// makes a client that fills the cache with small entries as much the
// biggest spender as one that fills it with large replies.
const EntryOverhead = 160

// Cause says why entries were evicted.
type Cause string

// Causes.
const (
	CauseEntries Cause = "entries" // MaxEntries reached
	CauseBytes   Cause = "bytes"   // MaxBytes reached
)

// Key names one exchange: the identifier is scoped per local socket and
// client address and port (RFC 2865 §3, RFC 5080 §2.2.2).
type Key struct {
	Local  netip.AddrPort
	Source netip.AddrPort
	ID     uint8
}

// State is what Begin found.
type State uint8

const (
	// Proceed: a new request; handle it, then call Finish.
	Proceed State = iota
	// InProgress: a retransmission of a request still being handled; drop it.
	InProgress
	// Answered: a retransmission of an answered request; resend the reply.
	Answered
)

func (s State) String() string {
	switch s {
	case Proceed:
		return "new"
	case InProgress:
		return "in_progress"
	case Answered:
		return "answered"
	}
	return "unknown"
}

// Config tunes a Cache; zero values take the defaults.
type Config struct {
	// Window is how long an entry is kept after its request arrived or
	// was answered; it should cover the clients' retransmission window.
	Window time.Duration
	// MaxEntries bounds the entry count and MaxBytes the memory charged
	// for them (replies plus EntryOverhead each). When either is reached,
	// room is made by evicting the oldest entries of the source address
	// charged the most, so one client pushing large replies at full rate
	// evicts its own entries, not everyone else's.
	MaxEntries int
	MaxBytes   int64
	// OnEvict, if set, is called (with the cache locked: keep it to a
	// counter) for each entry evicted before its window passed.
	OnEvict func(Cause)
	Now     func() time.Time
}

// Stats are counters for metrics.
type Stats struct {
	Entries int
	Bytes   int64  // charged: replies plus EntryOverhead per entry
	Sources int    // source addresses with entries
	Expired uint64 // dropped because their window passed
	Evicted uint64 // dropped early because the cache was full
}

// ikey is Key without the pointers netip.Addr carries, so the map is not
// scanned by the garbage collector. Zones are ignored.
type ikey struct {
	local, source [16]byte
	lport, sport  uint16
	id            uint8
}

func toIKey(k Key) ikey {
	return ikey{
		local: k.Local.Addr().As16(), source: k.Source.Addr().As16(),
		lport: k.Local.Port(), sport: k.Source.Port(), id: k.ID,
	}
}

const none = -1

type entry struct {
	key        ikey
	auth       [16]byte
	at         time.Time // arrival, or answer once answered
	reply      []byte
	answered   bool
	prev, next int32 // the whole cache's list
	// The owner's list, in the same order: its oldest is evicted first.
	oprev, onext int32
}

// owner is what one source address is charged, with its entries listed
// oldest first.
type owner struct {
	bytes      int64
	entries    int
	head, tail int32
}

func cost(reply []byte) int64 { return EntryOverhead + int64(cap(reply)) }

// Cache is safe for concurrent use.
type Cache struct {
	window   time.Duration
	max      int
	maxBytes int64
	onEvict  func(Cause)
	now      func() time.Time

	mu         sync.Mutex
	index      map[ikey]int32
	slots      []entry
	free       int32 // free slot list, linked by next
	head, tail int32 // oldest and newest
	owners     map[[16]byte]*owner
	bytes      int64
	expired    uint64
	evicted    uint64
}

// New returns an empty cache.
func New(cfg Config) *Cache {
	if cfg.Window <= 0 {
		cfg.Window = DefaultWindow
	}
	if cfg.MaxEntries <= 0 {
		cfg.MaxEntries = DefaultMaxEntries
	}
	if cfg.MaxBytes <= 0 {
		cfg.MaxBytes = DefaultMaxBytes
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Cache{
		window:   cfg.Window,
		max:      cfg.MaxEntries,
		maxBytes: cfg.MaxBytes,
		onEvict:  cfg.OnEvict,
		now:      cfg.Now,
		owners:   make(map[[16]byte]*owner),
		index:    make(map[ikey]int32),
		free:     none,
		head:     none,
		tail:     none,
	}
}

// Begin records the arrival of request id from key with Request
// Authenticator auth and says what to do with it. For Answered it returns
// the cached reply, which the caller must not modify.
func (c *Cache) Begin(k Key, auth [16]byte) (State, []byte) {
	ik := toIKey(k)
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.expire(now)
	if i, ok := c.index[ik]; ok {
		e := &c.slots[i]
		if e.auth == auth {
			if e.answered {
				return Answered, e.reply
			}
			return InProgress, nil
		}
		// The NAS reused the identifier: it has given up on the old
		// request, whose Finish will now find a different authenticator.
		c.setReply(i, nil)
		e.auth, e.answered, e.at = auth, false, now
		c.moveToBack(i)
		return Proceed, nil
	}
	for len(c.index) > 0 && (len(c.index) >= c.max || c.bytes+EntryOverhead > c.maxBytes) {
		cause := CauseEntries
		if len(c.index) < c.max {
			cause = CauseBytes
		}
		c.evict(cause)
	}
	i := c.alloc()
	c.slots[i] = entry{key: ik, auth: auth, at: now, prev: none, next: none, oprev: none, onext: none}
	c.pushBack(i)
	c.index[ik] = i
	return Proceed, nil
}

// Finish records the reply to a request for which Begin said Proceed and reports
// whether to send it. It returns false when the request was abandoned (the
// same key has since been reused with another authenticator). The cache
// keeps reply, which the caller must not modify afterwards. A nil reply
// (nothing sent) forgets the request, so a later retransmission is handled
// afresh rather than ignored for the whole window. A request the cache has
// already forgotten (expired or evicted) is answered but not cached.
func (c *Cache) Finish(k Key, auth [16]byte, reply []byte) bool {
	ik := toIKey(k)
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	i, ok := c.index[ik]
	if !ok {
		return true
	}
	e := &c.slots[i]
	if e.auth != auth || e.answered {
		return false
	}
	if reply == nil {
		c.remove(i)
		return true
	}
	if EntryOverhead+int64(cap(reply)) > c.maxBytes/2 {
		// Larger than any fair share: answer it, keep nothing.
		c.remove(i)
		return true
	}
	e.answered, e.at = true, now
	c.setReply(i, reply)
	c.moveToBack(i)
	for c.bytes > c.maxBytes {
		c.evict(CauseBytes)
	}
	return true
}

// setReply replaces entry i's reply, moving the charge.
func (c *Cache) setReply(i int32, reply []byte) {
	e := &c.slots[i]
	d := int64(cap(reply)) - int64(cap(e.reply))
	e.reply = reply
	c.bytes += d
	c.owners[e.key.source].bytes += d
}

// evict removes the oldest entry of the source charged the most. The scan
// is over sources with entries, which only sources inside a configured
// client's prefix that know its secret (or, for in-progress entries, send
// from its address) can add to.
func (c *Cache) evict(cause Cause) {
	var big *owner
	for _, o := range c.owners {
		if big == nil || o.bytes > big.bytes {
			big = o
		}
	}
	c.remove(big.head)
	c.evicted++
	if c.onEvict != nil {
		c.onEvict(cause)
	}
}

// Stats returns current counters.
func (c *Cache) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return Stats{Entries: len(c.index), Bytes: c.bytes, Sources: len(c.owners), Expired: c.expired, Evicted: c.evicted}
}

// Len returns the number of entries, expired ones not yet swept included.
func (c *Cache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.index)
}

// expire drops entries whose window has passed. The list is in time order,
// so it stops at the first live one.
func (c *Cache) expire(now time.Time) {
	for c.head != none && now.Sub(c.slots[c.head].at) >= c.window {
		c.remove(c.head)
		c.expired++
	}
}

func (c *Cache) alloc() int32 {
	if c.free != none {
		i := c.free
		c.free = c.slots[i].next
		return i
	}
	c.slots = append(c.slots, entry{})
	return int32(len(c.slots) - 1)
}

func (c *Cache) remove(i int32) {
	c.unlink(i)
	e := &c.slots[i]
	o := c.owners[e.key.source]
	c.ounlink(o, i)
	c.bytes -= cost(e.reply)
	o.bytes -= cost(e.reply)
	if o.entries--; o.entries == 0 {
		delete(c.owners, e.key.source)
	}
	delete(c.index, e.key)
	c.slots[i] = entry{next: c.free, prev: none} // drop the reply for the GC
	c.free = i
}

func (c *Cache) ounlink(o *owner, i int32) {
	e := &c.slots[i]
	if e.oprev != none {
		c.slots[e.oprev].onext = e.onext
	} else {
		o.head = e.onext
	}
	if e.onext != none {
		c.slots[e.onext].oprev = e.oprev
	} else {
		o.tail = e.oprev
	}
	e.oprev, e.onext = none, none
}

func (c *Cache) opushBack(o *owner, i int32) {
	e := &c.slots[i]
	e.oprev, e.onext = o.tail, none
	if o.tail != none {
		c.slots[o.tail].onext = i
	} else {
		o.head = i
	}
	o.tail = i
}

func (c *Cache) unlink(i int32) {
	e := &c.slots[i]
	if e.prev != none {
		c.slots[e.prev].next = e.next
	} else {
		c.head = e.next
	}
	if e.next != none {
		c.slots[e.next].prev = e.prev
	} else {
		c.tail = e.prev
	}
	e.prev, e.next = none, none
}

// pushBack appends a new entry to both lists and charges its owner.
func (c *Cache) pushBack(i int32) {
	e := &c.slots[i]
	o := c.owners[e.key.source]
	if o == nil {
		o = &owner{head: none, tail: none}
		c.owners[e.key.source] = o
	}
	o.entries++
	o.bytes += EntryOverhead
	c.bytes += EntryOverhead
	c.opushBack(o, i)
	c.link(i)
}

func (c *Cache) link(i int32) {
	e := &c.slots[i]
	e.prev, e.next = c.tail, none
	if c.tail != none {
		c.slots[c.tail].next = i
	} else {
		c.head = i
	}
	c.tail = i
}

func (c *Cache) moveToBack(i int32) {
	if c.tail != i {
		c.unlink(i)
		c.link(i)
	}
	o := c.owners[c.slots[i].key.source]
	if o.tail != i {
		c.ounlink(o, i)
		c.opushBack(o, i)
	}
}
