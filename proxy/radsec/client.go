package radsec

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mxedge/mxedge/proxy/packet"
)

// Errors returned by Exchange.
var (
	ErrTimeout    = errors.New("radsec: upstream timeout")
	ErrClosed     = errors.New("radsec: client closed")
	ErrNoUpstream = errors.New("radsec: no upstream is up")
	ErrRequest    = errors.New("radsec: malformed request")
	// errMoved tells Exchange that its connection went away and the
	// request must be sent again on another one.
	errMoved = errors.New("radsec: connection lost, request moved")
)

// Server states. Unknown (before the first dial settles) counts as usable,
// so requests made at start-up wait for the first connection instead of
// failing.
const (
	stateUnknown int32 = iota
	stateUp
	stateDown
)

// Client is a pool of RadSec connections to an ordered list of servers.
// It is safe for concurrent use.
//
// A server is up once a connection to it has carried a verified reply (a
// Status-Server is sent as soon as a connection opens), and down when a
// dial fails with no connection left, or when its last connection dies of
// a watchdog or write timeout or before any reply. A connection the peer
// closes cleanly (an idle timeout, a restart) does not make it down: the
// redial decides. Requests go to the first server not down, so traffic
// fails over at once and returns to the first server when it is back.
type Client struct {
	cfg     Config
	ups     []*upstream
	log     *slog.Logger
	closed  chan struct{}
	ctx     context.Context // cancelled by Close, for dials
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	once    sync.Once
	tick    time.Duration
	bufs    sync.Pool // *[]byte of packet.MaxLen capacity
	calls   sync.Pool // *call
	metrics *clientMetrics
	flushes atomic.Int64 // writes to the network, for the benchmark
}

// call is one request in flight. A connection slot points at it; whoever
// clears the slot (reply, timeout sweep, connection loss) finishes it, so
// it is finished exactly once per arming.
type call struct {
	auth     [16]byte
	seq      uint64 // bumped on each arming, to ignore replies to an earlier one
	armed    bool   // auth and sent are set; guarded by the conn's mu
	deadline int64  // unix nanoseconds, kept across moves
	sent     time.Time
	reply    []byte
	err      error
	done     chan struct{}
}

// upstream is one server and its connections.
type upstream struct {
	c     *Client
	addr  string
	tls   *tls.Config
	m     upstreamMetrics
	state atomic.Int32
	conns atomic.Pointer[[]*conn] // copy on write, read lock-free by Exchange
	kickc chan struct{}

	mu         sync.Mutex
	changed    chan struct{} // closed and replaced on any change waiters care about
	waiters    int
	nextDial   time.Time
	fails      int
	attempts   int
	dialStart  time.Time               // of the dial in flight; zero when none
	dialCancel context.CancelCauseFunc // of the dial in flight

	reportMu sync.Mutex
	reported int32 // last state reported, stateUnknown at first
}

// New starts a pool; connections are opened in the background.
func New(cfg Config) (*Client, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &Client{
		cfg:     cfg,
		log:     cfg.Logger,
		closed:  make(chan struct{}),
		ctx:     ctx,
		cancel:  cancel,
		metrics: newClientMetrics(cfg.Registerer),
	}
	c.tick = min(cfg.Timeout, cfg.StatusInterval) / 4
	c.tick = max(min(c.tick, 250*time.Millisecond), time.Millisecond)
	c.bufs.New = func() any { b := make([]byte, 0, packet.MaxLen); return &b }
	c.calls.New = func() any { return &call{done: make(chan struct{}, 1)} }
	for _, s := range cfg.Servers {
		u := &upstream{
			c:       c,
			addr:    s,
			tls:     tlsFor(cfg.TLS, s),
			m:       c.metrics.forUpstream(s),
			kickc:   make(chan struct{}, 1),
			changed: make(chan struct{}),
		}
		u.conns.Store(&[]*conn{})
		c.ups = append(c.ups, u)
	}
	for _, u := range c.ups {
		c.wg.Add(1)
		go u.run()
	}
	return c, nil
}

// Exchange sends a signed request upstream and returns the verified reply,
// which the caller owns. req may carry any identifier; it is copied and
// re-signed with the identifier of the connection that carries it, so the
// caller's buffer is not modified.
func (c *Client) Exchange(ctx context.Context, req []byte) ([]byte, error) {
	code, _, n, err := packet.Header(req)
	if err != nil || n != len(req) || !code.IsRequest() {
		return nil, ErrRequest
	}
	cl := c.calls.Get().(*call)
	deadline := time.Now().Add(c.cfg.Timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	cl.deadline = deadline.UnixNano()
	for {
		cn, id, err := c.acquire(ctx, cl, deadline)
		if err != nil {
			c.calls.Put(cl)
			return nil, err
		}
		up := cn.up
		bp := c.bufs.Get().(*[]byte)
		b := append((*bp)[:0], req...)
		if err := packet.Resign(b, id, secret); err != nil {
			cn.release(cl, id)
			c.calls.Put(cl)
			return nil, fmt.Errorf("radsec: %w", err)
		}
		*bp = b
		if cn.arm(cl, id, b) {
			cn.send(bp)
		} else {
			c.bufs.Put(bp) // timed out or moved already; cl.done says which
		}
		select {
		case <-cl.done:
		case <-ctx.Done():
			// The slot keeps the identifier until a reply or the sweep
			// frees it; cl is abandoned to it, not reused.
			return nil, ctx.Err()
		}
		switch cl.err {
		case nil:
			r := cl.reply
			cl.reply = nil
			c.calls.Put(cl)
			return r, nil
		case errMoved:
			up.m.moved.Inc()
			continue
		default:
			err := cl.err
			cl.err = nil
			c.calls.Put(cl)
			return nil, err
		}
	}
}

// downPoll is how often a request held while every server is down looks
// again.
const downPoll = 50 * time.Millisecond

// acquire finds a connection with a free identifier on the first server
// that is not down, waiting for one to be opened or freed until deadline.
func (c *Client) acquire(ctx context.Context, cl *call, deadline time.Time) (*conn, uint8, error) {
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		select {
		case <-c.closed:
			return nil, 0, ErrClosed
		default:
		}
		var s *upstream
		for _, u := range c.ups {
			if u.state.Load() != stateDown {
				s = u
				break
			}
		}
		if s == nil {
			// Every server is down. A restart or a brief outage heals in
			// well under a request's lifetime, and failing now would cost
			// the device a full retransmission timeout, so hold the
			// request while the dialers try, until its own deadline.
			wait := time.Until(deadline)
			if wait <= 0 {
				return nil, 0, ErrNoUpstream
			}
			for _, u := range c.ups {
				u.kick()
			}
			if timer == nil {
				timer = time.NewTimer(min(wait, downPoll))
			} else {
				timer.Reset(min(wait, downPoll))
			}
			select {
			case <-timer.C:
			case <-ctx.Done():
				return nil, 0, ctx.Err()
			case <-c.closed:
				return nil, 0, ErrClosed
			}
			continue
		}
		if cn, id, ok := s.alloc(cl); ok {
			return cn, id, nil
		}
		wait := time.Until(deadline)
		if wait <= 0 {
			s.m.timeout.Inc()
			return nil, 0, ErrTimeout
		}
		s.mu.Lock()
		ch := s.changed
		s.waiters++
		s.mu.Unlock()
		s.kick()
		// A change between the failed alloc and taking ch would be missed.
		cn, id, ok := s.alloc(cl)
		if !ok {
			if timer == nil {
				timer = time.NewTimer(wait)
			} else {
				timer.Reset(wait)
			}
			select {
			case <-ch:
			case <-timer.C:
			case <-ctx.Done():
			case <-c.closed:
			}
		}
		s.mu.Lock()
		s.waiters--
		s.mu.Unlock()
		if ok {
			return cn, id, nil
		}
		if err := ctx.Err(); err != nil {
			return nil, 0, err
		}
	}
}

func (s *upstream) alloc(cl *call) (*conn, uint8, bool) {
	for _, cn := range *s.conns.Load() {
		if id, ok := cn.alloc(cl); ok {
			return cn, id, true
		}
	}
	return nil, 0, false
}

func (s *upstream) kick() {
	select {
	case s.kickc <- struct{}{}:
	default:
	}
}

// notify wakes requests waiting on this server. Called with s.mu held.
func (s *upstream) notifyLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

func (s *upstream) notify() {
	s.mu.Lock()
	s.notifyLocked()
	s.mu.Unlock()
}

// needConn reports whether the server should get another connection.
// Called with s.mu held.
func (s *upstream) needConnLocked() bool {
	conns := *s.conns.Load()
	n := len(conns)
	if n >= s.c.cfg.MaxConnsPerServer {
		return false
	}
	if n == 0 {
		return s.c.cfg.IdleTimeout == 0 || s.waiters > 0 || s.state.Load() != stateUp
	}
	if s.waiters == 0 {
		return false
	}
	for _, cn := range conns {
		if cn.busy() < 255 {
			return false
		}
	}
	return true
}

// run owns dialing for one server, so that however many requests find no
// connection there is at most one dial at a time and the backoff holds.
// A panic in it is counted and the loop restarted after the backoff of a
// failed dial.
func (s *upstream) run() {
	c := s.c
	defer c.wg.Done()
	for recovered(c.metrics.panics, c.log, goDial, s.dialLoop) {
		s.mu.Lock()
		s.fails++
		s.nextDial = time.Now().Add(backoff(s.fails, c.cfg.ReconnectMax, rand.Int64N))
		s.dialStart, s.dialCancel = time.Time{}, nil
		s.mu.Unlock()
	}
}

func (s *upstream) dialLoop() {
	c := s.c
	hb := c.cfg.Heartbeats.Register("radsec dial " + s.addr)
	defer hb.Done()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		hb.Beat()
		select {
		case <-c.closed:
			return
		default:
		}
		s.mu.Lock()
		need := s.needConnLocked()
		wait := time.Until(s.nextDial)
		s.mu.Unlock()
		if need && wait <= 0 {
			s.dial()
			continue
		}
		var tc <-chan time.Time
		if need {
			timer.Reset(wait)
			tc = timer.C
		}
		hb.Idle()
		select {
		case <-s.kickc:
		case <-tc:
		case <-c.closed:
			return
		}
	}
}

// backoff is the delay before the next dial after fails consecutive
// failures: up to 100 ms after losing a connection, then doubling with
// jitter in the upper half, capped at max.
func backoff(fails int, max time.Duration, rnd func(int64) int64) time.Duration {
	const base = 100 * time.Millisecond
	if fails <= 0 {
		return time.Duration(rnd(int64(base)))
	}
	d := max
	if fails < 30 && base<<fails < max {
		d = base << fails
	}
	return d/2 + time.Duration(rnd(int64(d/2)+1))
}

// errSuperseded cancels a dial that a successful Probe started after.
var errSuperseded = errors.New("radsec: dial superseded by a successful probe")

// dial opens one connection. The backoff after a failure counts from when
// the attempt started, not when it ended: against a frozen peer (the
// kernel completes the TCP handshake, nothing answers TLS) each attempt
// hangs for DialTimeout, which is wait enough, and the next starts at once.
// So a dial is nearly always in flight, and the one in flight when the peer
// thaws finishes its handshake within a round trip, instead of the pool
// sleeping through a backoff while requests wait.
func (s *upstream) dial() {
	c := s.c
	ctx, cancel := context.WithCancelCause(c.ctx)
	defer cancel(nil)
	start := time.Now()
	s.mu.Lock()
	s.attempts++
	if s.attempts > 1 {
		s.m.reconnects.Inc()
	}
	s.dialStart, s.dialCancel = start, cancel
	s.mu.Unlock()
	cn, err := s.open(ctx)
	select {
	case <-c.closed:
		if cn != nil {
			cn.nc.Close()
		}
		return
	default:
	}
	var changed bool
	s.mu.Lock()
	s.dialStart, s.dialCancel = time.Time{}, nil
	switch {
	case err != nil && errors.Is(context.Cause(ctx), errSuperseded):
		// A probe got through since this attempt began: dial again now.
		s.nextDial = time.Time{}
	case err != nil:
		s.fails++
		s.nextDial = start.Add(backoff(s.fails, c.cfg.ReconnectMax, rand.Int64N))
		if len(*s.conns.Load()) == 0 && s.state.Load() != stateDown {
			s.state.Store(stateDown)
			changed = true
		}
	default:
		// fails is reset only once the connection has carried a reply
		// (see gone), so a peer that accepts and drops us is not redialled
		// every 100 ms for ever.
		conns := append(append([]*conn(nil), *s.conns.Load()...), cn)
		s.conns.Store(&conns)
		s.m.conns.Inc()
		// The server is marked up by the first reply on the connection
		// (a Status-Server goes out at once): with TLS 1.3 a rejected
		// client certificate is only reported after the handshake.
	}
	s.notifyLocked()
	s.mu.Unlock()
	if err != nil {
		c.log.Debug("radsec dial failed", "upstream", s.addr, "err", err)
	} else {
		cn.start()
		// Close fails the connections it finds in the list; this one
		// may have been added after it looked.
		select {
		case <-c.closed:
			cn.fail(ErrClosed)
		default:
		}
	}
	if changed {
		s.stateChanged(err)
	}
}

// probed follows a successful Probe that started at start: a server with
// no connection gets one now, without waiting out its backoff, and a dial
// in flight since before the probe (stuck, say, in a handshake sent while
// the peer was frozen) is abandoned for a fresh one.
func (s *upstream) probed(start time.Time) {
	s.mu.Lock()
	if len(*s.conns.Load()) > 0 {
		s.mu.Unlock()
		return
	}
	s.fails = 0
	s.nextDial = time.Time{}
	if s.dialCancel != nil && s.dialStart.Before(start) {
		s.dialCancel(errSuperseded)
	}
	s.mu.Unlock()
	s.kick()
}

// markUp records that a connection to s has carried a verified reply.
func (s *upstream) markUp() {
	if s.state.Load() == stateUp {
		return
	}
	s.mu.Lock()
	changed := s.state.Swap(stateUp) != stateUp
	s.notifyLocked()
	s.mu.Unlock()
	if changed {
		s.stateChanged(nil)
	}
}

// stateChanged reports the current state to the gauge, the log and the
// hook. Changes are made under s.mu but reported outside it, so reports are
// serialized here and always end on the state as it is now.
func (s *upstream) stateChanged(err error) {
	s.reportMu.Lock()
	defer s.reportMu.Unlock()
	select {
	case <-s.c.closed:
		return // a closed pool (replaced on reload) reports nothing more
	default:
	}
	cur := s.state.Load()
	if cur == stateUnknown || cur == s.reported {
		return
	}
	s.reported = cur
	up := cur == stateUp
	if up {
		s.m.up.Set(1)
		s.c.log.Info("radsec upstream up", "upstream", s.addr)
	} else {
		s.m.up.Set(0)
		s.c.log.Warn("radsec upstream down", "upstream", s.addr, "err", err)
	}
	if f := s.c.cfg.OnStateChange; f != nil {
		f(s.addr, up)
	}
}

// open dials and handshakes one connection.
func (s *upstream) open(ctx context.Context) (*conn, error) {
	c := s.c
	ctx, cancel := context.WithTimeout(ctx, c.cfg.DialTimeout)
	defer cancel()
	nc, err := c.cfg.Dial(ctx, "tcp", s.addr)
	if err != nil {
		return nil, err
	}
	bc := &batchConn{Conn: nc}
	tc := tls.Client(bc, s.tls)
	if err := tc.HandshakeContext(ctx); err != nil {
		nc.Close()
		return nil, err
	}
	return newConn(s, tc, bc), nil
}

// gone removes a dead connection and schedules a quick redial. A watchdog
// or write-timeout failure on the last connection marks the server down so
// that requests fail over now instead of waiting for a dial to time out.
func (s *upstream) gone(cn *conn, cause error) {
	var changed bool
	s.mu.Lock()
	old := *s.conns.Load()
	conns := make([]*conn, 0, len(old))
	for _, x := range old {
		if x != cn {
			conns = append(conns, x)
		}
	}
	s.conns.Store(&conns)
	s.m.conns.Dec()
	replied := cn.replied.Load()
	if replied {
		s.fails = 0
	} else {
		s.fails++
	}
	if next := time.Now().Add(backoff(s.fails, s.c.cfg.ReconnectMax, rand.Int64N)); next.After(s.nextDial) {
		s.nextDial = next
	}
	if len(conns) == 0 && isHardFailure(cause, replied) && s.state.Load() != stateDown {
		s.state.Store(stateDown)
		changed = true
	}
	s.notifyLocked()
	s.mu.Unlock()
	s.kick()
	if changed {
		s.stateChanged(cause)
	}
}

// isHardFailure tells a dead peer from a connection that was merely
// closed: a watchdog or write timeout, or an error other than a clean close
// on a connection that never got a reply (with TLS 1.3 a rejected client
// certificate shows up only after the handshake, as such an error).
func isHardFailure(err error, replied bool) bool {
	var ne net.Error
	switch {
	case errors.Is(err, errWatchdog), errors.As(err, &ne) && ne.Timeout():
		return true
	case replied, errors.Is(err, io.EOF), errors.Is(err, errIdle), errors.Is(err, ErrClosed):
		return false
	}
	return true
}

// Up reports whether server (as given in Config.Servers) is up.
func (c *Client) Up(server string) bool {
	for _, u := range c.ups {
		if u.addr == server {
			return u.state.Load() == stateUp
		}
	}
	return false
}

// Healthy reports whether any server is up.
func (c *Client) Healthy() bool {
	for _, u := range c.ups {
		if u.state.Load() == stateUp {
			return true
		}
	}
	return false
}

// Probe opens a separate connection to server, sends one Status-Server
// (RFC 5997) and returns the round-trip time of its verified reply. It
// does not use the pool's connections, so it works on servers that are
// down.
//
// A successful probe of a server that has no pool connection resets that
// server's dial backoff and starts a dial at once (abandoning one in flight
// since before the probe), so the pool follows a health checker's verdict
// that the server is back instead of its own backoff.
func (c *Client) Probe(ctx context.Context, server string) (time.Duration, error) {
	start := time.Now()
	rtt, u, err := c.probe(ctx, server)
	if err == nil {
		u.probed(start)
	}
	return rtt, err
}

func (c *Client) probe(ctx context.Context, server string) (time.Duration, *upstream, error) {
	var u *upstream
	for _, x := range c.ups {
		if x.addr == server {
			u = x
		}
	}
	if u == nil {
		return 0, nil, fmt.Errorf("radsec: unknown server %q", server)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.cfg.DialTimeout+c.cfg.Timeout)
		defer cancel()
	}
	nc, err := c.cfg.Dial(ctx, "tcp", server)
	if err != nil {
		return 0, nil, err
	}
	defer nc.Close()
	tc := tls.Client(nc, u.tls)
	if err := tc.HandshakeContext(ctx); err != nil {
		return 0, nil, err
	}
	stop := context.AfterFunc(ctx, func() { nc.SetDeadline(time.Now()) })
	defer stop()
	req := packet.NewStatusServer(nil, 0, secret)
	start := time.Now()
	if _, err := tc.Write(req); err != nil {
		return 0, nil, err
	}
	br := newReader(tc)
	b, err := ReadPacket(br, nil)
	if err != nil {
		return 0, nil, err
	}
	rtt := time.Since(start)
	var p packet.Packet
	if err := p.Parse(b); err != nil {
		return 0, nil, err
	}
	var auth [16]byte
	copy(auth[:], req[4:20])
	if p.ID != 0 {
		return 0, nil, errors.New("radsec: Status-Server reply with wrong identifier")
	}
	if _, err := packet.VerifyResponse(&p, auth, secret); err != nil {
		return 0, nil, err
	}
	return rtt, u, nil
}

// Close stops the pool: pending requests fail with ErrClosed and all
// goroutines have exited when it returns.
func (c *Client) Close() error {
	c.once.Do(func() {
		close(c.closed)
		c.cancel()
		for _, u := range c.ups {
			for _, cn := range *u.conns.Load() {
				cn.fail(ErrClosed)
			}
		}
	})
	c.wg.Wait()
	return nil
}

// Timeout is the per-request timeout in force, so an owner retiring the
// pool knows how long its last requests may take.
func (c *Client) Timeout() time.Duration { return c.cfg.Timeout }
