package radsec

import (
	"bufio"
	"errors"
	"io"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mxedge/mxedge/proxy/packet"
)

var (
	errWatchdog = errors.New("radsec: no reply to Status-Server")
	errIdle     = errors.New("radsec: idle timeout")
	errBacklog  = errors.New("radsec: write queue full")
)

// statusID is the identifier reserved for Status-Server (bis §3.8).
const statusID = 0

// quarantineFactor times Config.Timeout is how long the identifier of a
// request that timed out is held back on its connection before it is used
// again. A reply can only come late, not never, while the connection lives:
// the peer either answers the request (FreeRADIUS gives up on one after its
// max_request_time, 30 s by default, but a frozen or backlogged peer works
// through its queue in order once it runs), or the connection dies. Reusing
// the identifier early would let that late reply meet a new request: it
// would fail verification and, before quarantine, cost the whole
// connection. Four timeouts (12 s by default) cover a peer stalled for
// longer than the watchdog lets a silent connection live
// (StatusInterval + Timeout), so on a stalled connection held identifiers
// outlive the connection; on a merely slow one they come back a little
// later. A reply later still is dropped like any unmatched reply, and the
// request that reused the identifier keeps waiting for its own.
const quarantineFactor = 4

// writeQueue is larger than the 256 identifiers so that a writer stuck
// behind a slow peer while timed-out slots are reused does not make send
// block; when it is full the connection is failed instead.
const writeQueue = 512

func newReader(r io.Reader) *bufio.Reader { return bufio.NewReaderSize(r, 16<<10) }

// conn is one upstream TLS connection: a reader goroutine that matches
// replies to slots, and a writer goroutine that coalesces queued packets
// into as few TLS records as the burst allows and sweeps expired slots.
type conn struct {
	up       *upstream
	nc       net.Conn
	br       *bufio.Reader
	raw      *batchConn // under TLS: one record per packet, one syscall per burst
	wch      chan *[]byte
	quit     chan struct{}
	failOnce sync.Once
	cause    error // set once, before quit is closed
	inflight atomic.Int32
	lastRead atomic.Int64 // unix nanoseconds
	replied  atomic.Bool  // a verified reply (or Status-Server answer) arrived
	held     atomic.Int32 // identifiers in quarantine; inflight+held <= 255
	batch    batcher[*[]byte]

	mu         sync.Mutex
	slots      [256]*call
	heldUntil  [256]int64    // unix nanoseconds; 0 = not quarantined
	heldAuth   [256][16]byte // authenticator of the timed-out request
	next       uint8
	dead       bool
	wantFree   bool // a request found this conn full and waits for a slot
	lastUse    int64
	statusAuth [16]byte
	statusDue  int64 // unix nanoseconds; 0 = no Status-Server outstanding
	statusSent int64
}

// newConn wraps an established TLS connection nc whose transport is raw.
func newConn(s *upstream, nc net.Conn, raw *batchConn) *conn {
	now := time.Now().UnixNano()
	cn := &conn{
		up:      s,
		nc:      nc,
		raw:     raw,
		br:      newReader(nc),
		wch:     make(chan *[]byte, writeQueue),
		quit:    make(chan struct{}),
		next:    1,
		lastUse: now,
	}
	cn.lastRead.Store(now)
	cn.batch = batcher[*[]byte]{
		ch: cn.wch,
		write: func(bp *[]byte) error {
			_, err := cn.nc.Write(*bp)
			s.c.bufs.Put(bp)
			return err
		},
		flush: func() error {
			s.c.flushes.Add(1)
			return cn.raw.flush()
		},
	}
	return cn
}

func (cn *conn) start() {
	cn.up.c.wg.Add(2)
	go cn.readLoop()
	go cn.writeLoop()
}

// alloc reserves a free identifier for cl, round-robin so that a freed
// identifier is not reused at once.
func (cn *conn) alloc(cl *call) (uint8, bool) {
	cn.mu.Lock()
	defer cn.mu.Unlock()
	if cn.dead || cn.busy() >= 255 {
		cn.wantFree = !cn.dead
		return 0, false
	}
	id := cn.next
	for cn.slots[id] != nil || cn.heldUntil[id] != 0 || id == statusID {
		id++
	}
	cn.next = id + 1
	cl.armed = false
	cn.slots[id] = cl
	cn.inflight.Add(1)
	return id, true
}

// busy is the number of identifiers in use or in quarantine.
func (cn *conn) busy() int32 { return cn.inflight.Load() + cn.held.Load() }

// release frees a slot that was never sent.
func (cn *conn) release(cl *call, id uint8) {
	cn.mu.Lock()
	if cn.slots[id] == cl {
		cn.slots[id] = nil
		cn.inflight.Add(-1)
	}
	cn.mu.Unlock()
}

// arm records what the reader needs to verify the reply to b. It reports
// false when the slot was taken back (the sweep timed it out, or the
// connection died) before b was sent: b must not be sent then, so that an
// identifier is quarantined only if a request went out on it.
func (cn *conn) arm(cl *call, id uint8, b []byte) bool {
	now := time.Now()
	cn.mu.Lock()
	defer cn.mu.Unlock()
	if cn.slots[id] != cl {
		return false
	}
	copy(cl.auth[:], b[4:20])
	cl.seq++
	cl.armed = true
	cl.sent = now
	cn.lastUse = now.UnixNano()
	return true
}

// send queues a packet for the writer, which returns the buffer to the pool.
func (cn *conn) send(bp *[]byte) {
	select {
	case cn.wch <- bp:
	default:
		cn.up.c.bufs.Put(bp)
		cn.fail(errBacklog)
	}
}

// fail closes the connection once; the reader then moves what is in flight.
func (cn *conn) fail(err error) {
	cn.failOnce.Do(func() {
		cn.cause = err
		close(cn.quit)
		cn.nc.Close()
	})
}

// readLoop reads replies until the connection fails, then moves what was
// in flight and tells the upstream, which redials. A panic while reading
// fails the connection the same way.
func (cn *conn) readLoop() {
	s := cn.up
	c := s.c
	defer c.wg.Done()
	var err error
	if recovered(c.metrics.panics, c.log, goRead, func() { err = cn.readReplies() }) {
		err = errPanic
	}
	cn.fail(err)
	cn.mu.Lock()
	cn.dead = true
	moved := cn.slots
	cn.slots = [256]*call{}
	cn.inflight.Store(0)
	cn.heldUntil = [256]int64{}
	cn.held.Store(0)
	cn.mu.Unlock()
	cause := cn.cause
	switch {
	case cause == ErrClosed:
	case errors.Is(cause, io.EOF):
		c.log.Debug("radsec upstream closed connection", "upstream", s.addr)
	default:
		c.log.Info("radsec connection lost", "upstream", s.addr, "err", cause)
	}
	s.gone(cn, cause)
	for _, cl := range moved {
		if cl != nil {
			cl.reply, cl.err = nil, errMoved
			cl.done <- struct{}{}
		}
	}
}

// readReplies hands each verified reply to its request until a read fails.
func (cn *conn) readReplies() error {
	s := cn.up
	hb := s.c.cfg.Heartbeats.Register("radsec read " + s.addr)
	defer hb.Done()
	var p packet.Packet
	for {
		hb.Idle()
		b, err := ReadPacket(cn.br, nil)
		hb.Beat()
		if err != nil {
			return err
		}
		now := time.Now()
		cn.lastRead.Store(now.UnixNano())
		if err := p.Parse(b); err != nil {
			return err
		}
		if p.ID == statusID {
			cn.statusReply(&p)
			continue
		}
		cn.mu.Lock()
		cl := cn.slots[p.ID]
		if cl == nil || !cl.armed {
			cn.mu.Unlock()
			cn.lateReply(&p)
			continue
		}
		auth, seq := cl.auth, cl.seq
		cn.mu.Unlock()
		if _, verr := packet.VerifyResponse(&p, auth, secret); verr != nil {
			// Inside mutual TLS this is a peer bug, or a reply later than
			// the quarantine: the request keeps waiting for its own reply
			// and the others on the connection are not failed for it.
			cn.drop(dropUnverified, p.ID, verr)
			continue
		}
		cn.mu.Lock()
		if cn.slots[p.ID] != cl || cl.seq != seq {
			cn.mu.Unlock()
			continue
		}
		cn.slots[p.ID] = nil
		cn.inflight.Add(-1)
		wake := cn.wantFree
		cn.wantFree = false
		sent := cl.sent
		cn.mu.Unlock()
		s.m.rtt.Observe(now.Sub(sent).Seconds())
		s.m.ok.Inc()
		if !cn.replied.Load() {
			cn.replied.Store(true)
			s.markUp()
		}
		cl.reply, cl.err = b, nil
		cl.done <- struct{}{}
		if wake {
			s.notify()
		}
	}
}

// statusReply checks the answer to our watchdog Status-Server. One that
// does not verify is dropped; the watchdog then decides.
func (cn *conn) statusReply(p *packet.Packet) {
	cn.mu.Lock()
	due, auth := cn.statusDue, cn.statusAuth
	cn.mu.Unlock()
	if due == 0 {
		cn.drop(dropUnmatched, p.ID, nil)
		return
	}
	if _, err := packet.VerifyResponse(p, auth, secret); err != nil {
		cn.drop(dropUnverified, p.ID, err)
		return
	}
	cn.mu.Lock()
	if cn.statusAuth == auth {
		cn.statusDue = 0
	}
	cn.mu.Unlock()
	if !cn.replied.Load() {
		cn.replied.Store(true)
		cn.up.markUp()
	}
}

// Reasons a reply is dropped.
const (
	dropLate       = "late"       // answers a request that timed out
	dropUnmatched  = "unmatched"  // no request on that identifier
	dropUnverified = "unverified" // authenticator or Message-Authenticator wrong
)

// lateReply handles a reply on an identifier with no request armed: the
// answer to a request that timed out frees its quarantined identifier
// early; anything else is dropped.
func (cn *conn) lateReply(p *packet.Packet) {
	cn.mu.Lock()
	if cn.heldUntil[p.ID] == 0 {
		cn.mu.Unlock()
		cn.drop(dropUnmatched, p.ID, nil)
		return
	}
	auth := cn.heldAuth[p.ID]
	cn.mu.Unlock()
	if _, err := packet.VerifyResponse(p, auth, secret); err != nil {
		cn.drop(dropUnverified, p.ID, err)
		return
	}
	cn.mu.Lock()
	wake := false
	if cn.heldUntil[p.ID] != 0 && cn.heldAuth[p.ID] == auth {
		cn.heldUntil[p.ID] = 0
		cn.held.Add(-1)
		wake = cn.wantFree
		cn.wantFree = false
	}
	cn.mu.Unlock()
	cn.drop(dropLate, p.ID, nil)
	if wake {
		cn.up.notify()
	}
}

// drop counts a reply that is not delivered. The connection stays up:
// only a framing error loses the stream.
func (cn *conn) drop(reason string, id uint8, err error) {
	s := cn.up
	s.m.dropped(reason).Inc()
	if err != nil {
		s.c.log.Debug("radsec reply dropped", "upstream", s.addr, "id", id, "reason", reason, "err", err)
	}
}

// writeLoop writes queued requests and runs the sweep until the
// connection fails; a panic in it fails the connection, and the reader
// then moves what was in flight.
func (cn *conn) writeLoop() {
	c := cn.up.c
	defer c.wg.Done()
	if recovered(c.metrics.panics, c.log, goWrite, cn.writeRequests) {
		cn.fail(errPanic)
	}
}

func (cn *conn) writeRequests() {
	c := cn.up.c
	hb := c.cfg.Heartbeats.Register("radsec write " + cn.up.addr)
	defer hb.Done()
	tick := time.NewTicker(c.tick)
	defer tick.Stop()
	// Probe at once: the answer is what marks the server up.
	if err := cn.sendStatus(time.Now()); err != nil {
		cn.fail(err)
		return
	}
	for {
		hb.Beat() // the tick wakes it at least every c.tick
		select {
		case bp := <-cn.wch:
			if err := cn.writeBatch(bp); err != nil {
				cn.fail(err)
				return
			}
		case now := <-tick.C:
			if err := cn.sweep(now); err != nil {
				cn.fail(err)
				return
			}
		case <-cn.quit:
			return
		}
	}
}

// writeBatch writes bp and whatever else is queued, each packet in its own
// TLS record, then flushes once, so a burst shares one syscall.
func (cn *conn) writeBatch(bp *[]byte) error {
	cn.nc.SetWriteDeadline(time.Now().Add(DefaultWriteTimeout))
	cn.raw.begin()
	err := cn.batch.run(bp)
	if ferr := cn.raw.flush(); err == nil {
		err = ferr
	}
	return err
}

// sweep times out expired requests, runs the Status-Server watchdog and
// closes the connection when idle.
func (cn *conn) sweep(t time.Time) error {
	c := cn.up.c
	now := t.UnixNano()
	var expired [255]*call
	n := 0
	freed := false
	cn.mu.Lock()
	if cn.held.Load() > 0 {
		for i := 1; i < len(cn.heldUntil); i++ {
			if u := cn.heldUntil[i]; u != 0 && u <= now {
				cn.heldUntil[i] = 0
				cn.held.Add(-1)
				freed = true
			}
		}
	}
	if cn.inflight.Load() > 0 {
		hold := now + quarantineFactor*int64(c.cfg.Timeout)
		for i := 1; i < len(cn.slots); i++ {
			if cl := cn.slots[i]; cl != nil && cl.deadline <= now {
				cn.slots[i] = nil
				cn.inflight.Add(-1)
				if cl.armed {
					// It went out: hold the identifier until its reply
					// cannot be mistaken for the next request's.
					cn.heldUntil[i] = hold
					cn.heldAuth[i] = cl.auth
					cn.held.Add(1)
				} else {
					freed = true
				}
				expired[n] = cl
				n++
			}
		}
	}
	wake := freed && cn.wantFree
	if wake {
		cn.wantFree = false
	}
	statusDue := cn.statusDue
	idle := cn.inflight.Load() == 0 && c.cfg.IdleTimeout > 0 && now-cn.lastUse >= int64(c.cfg.IdleTimeout)
	sendStatus := statusDue == 0 && now-cn.lastRead.Load() >= int64(c.cfg.StatusInterval) &&
		now-cn.statusSent >= int64(c.cfg.StatusInterval)
	cn.mu.Unlock()
	for _, cl := range expired[:n] {
		cn.up.m.timeout.Inc()
		cl.reply, cl.err = nil, ErrTimeout
		cl.done <- struct{}{}
	}
	if wake {
		cn.up.notify()
	}
	switch {
	case statusDue != 0 && statusDue <= now:
		return errWatchdog
	case idle:
		return errIdle
	case sendStatus:
		return cn.sendStatus(t)
	}
	return nil
}

func (cn *conn) sendStatus(t time.Time) error {
	c := cn.up.c
	bp := c.bufs.Get().(*[]byte)
	defer c.bufs.Put(bp)
	b := packet.NewStatusServer((*bp)[:0], statusID, secret)
	*bp = b
	cn.mu.Lock()
	copy(cn.statusAuth[:], b[4:20])
	cn.statusDue = t.Add(c.cfg.Timeout).UnixNano()
	cn.statusSent = t.UnixNano()
	cn.mu.Unlock()
	cn.nc.SetWriteDeadline(t.Add(DefaultWriteTimeout))
	_, err := cn.nc.Write(b)
	return err
}

// batcher writes a queued item and everything queued behind it before one
// flush. It yields once before flushing so that goroutines already runnable
// (replies just woken, requests just signed) join the batch: at 32 requests
// in flight that turns about one syscall per request into one per dozen.
type batcher[T any] struct {
	ch    <-chan T
	write func(T) error
	flush func() error
}

func (b *batcher[T]) run(first T) error {
	if err := b.write(first); err != nil {
		return err
	}
	yielded := false
	for {
		select {
		case v := <-b.ch:
			if err := b.write(v); err != nil {
				return err
			}
			continue
		default:
		}
		if yielded {
			return b.flush()
		}
		yielded = true
		runtime.Gosched()
	}
}
