package udp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mxedge/mxedge/proxy"
	"github.com/mxedge/mxedge/proxy/internal/dedup"
	"github.com/mxedge/mxedge/proxy/packet"
)

// ErrServerClosed is returned by Serve after Shutdown.
var ErrServerClosed = errors.New("udp: server closed")

// Server answers RADIUS on any number of sockets. One Server per kind
// (auth or acct) shares one duplicate cache and one in-flight bound across
// its sockets.
type Server struct {
	cfg    Config
	log    *slog.Logger
	m      *metrics
	dup    *dedup.Cache
	ctx    context.Context // handlers' context, cancelled by Shutdown
	cancel context.CancelFunc

	inFlight atomic.Int64
	handlers sync.WaitGroup
	// Handler goroutines wait here for the next request when done, up to
	// maxIdle of them, so their grown stacks are reused rather than a new
	// goroutine growing one again for every request.
	jobs      chan job
	idle      atomic.Int32
	closeJobs sync.Once

	mu      sync.Mutex
	closed  bool
	conns   map[net.PacketConn]struct{}
	serving sync.WaitGroup

	unknownLog *limiter // unknown sources
	dropLog    *limiter // known clients' drops
	legacyLog  *limiter // Access-Requests accepted without Message-Authenticator
	writeLog   *limiter // replies the kernel refused, by destination
	readLog    *limiter // transient read errors, by local address
	panicLog   *limiter // recovered panics, by source
	fails      *failLimiter

	// trace, when set by tests, sees every drop reason and outcome.
	trace func(what string)
}

// New checks cfg and returns a Server; metrics are registered here.
func New(cfg Config) (*Server, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, fmt.Errorf("udp: metrics: %w", err)
	}
	m.seed(cfg.Kind, cfg.Clients().Clients())
	ctx, cancel := context.WithCancel(context.Background())
	return &Server{
		cfg: cfg,
		log: cfg.Logger.With("listener", string(cfg.Kind)),
		m:   m,
		dup: dedup.New(dedup.Config{Window: cfg.DuplicateWindow, MaxEntries: cfg.MaxDuplicates,
			MaxBytes: cfg.MaxDuplicateBytes, OnEvict: m.evicted, Now: cfg.Now}),
		ctx:    ctx,
		cancel: cancel,
		conns:  make(map[net.PacketConn]struct{}),
		jobs:   make(chan job),
		// One line a minute per source, and at most 4096 lines a minute
		// per kind, each saying how many it stands for, is plenty of log.
		unknownLog: newLimiter(time.Minute, 4096),
		dropLog:    newLimiter(time.Minute, 4096),
		legacyLog:  newLimiter(time.Minute, 4096),
		writeLog:   newLimiter(time.Minute, 4096),
		readLog:    newLimiter(time.Minute, 64),
		panicLog:   newLimiter(time.Minute, 4096),
		fails:      newFailLimiter(cfg.AuthFailuresPerSecond, 4096),
	}, nil
}

// socket is one PacketConn with its local address, using the
// allocation-free netip methods when it is a *net.UDPConn.
type socket struct {
	conn  net.PacketConn
	udp   *net.UDPConn
	local netip.AddrPort
	// pktinfo is set on a socket bound to a wildcard address whose
	// datagrams carry their destination address (IP_PKTINFO,
	// IPV6_PKTINFO): the reply is sent from it. A host with several
	// addresses would otherwise answer a NAS from whichever address the
	// route prefers, and the NAS drops an answer from an address it did
	// not ask.
	pktinfo bool
	v6      bool // an AF_INET6 socket (dual-stack when wildcard)
}

func newSocket(conn net.PacketConn, log *slog.Logger) *socket {
	s := &socket{conn: conn}
	s.udp, _ = conn.(*net.UDPConn)
	if a, ok := conn.LocalAddr().(*net.UDPAddr); ok {
		ap := a.AddrPort()
		s.local = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
		s.v6 = a.IP.To4() == nil
		if s.udp != nil && a.IP.IsUnspecified() {
			if err := enablePktinfo(s.udp, s.v6); err != nil {
				log.Warn("wildcard socket cannot learn each request's destination; replies leave from the routed address",
					"local", s.local, "err", err)
			} else {
				s.pktinfo = true
			}
		}
	}
	return s
}

// read reads a datagram into b and returns its source and the local
// address it was sent to (the socket's own when it is not wildcard).
func (s *socket) read(b, oob []byte) (int, netip.AddrPort, netip.AddrPort, error) {
	if s.udp != nil {
		if s.pktinfo {
			n, oobn, _, from, err := s.udp.ReadMsgUDPAddrPort(b, oob)
			local := s.local
			if dst, ok := parseDst(oob[:oobn]); ok {
				local = netip.AddrPortFrom(dst, s.local.Port())
			}
			return n, from, local, err
		}
		n, from, err := s.udp.ReadFromUDPAddrPort(b)
		return n, from, s.local, err
	}
	n, addr, err := s.conn.ReadFrom(b)
	if ua, ok := addr.(*net.UDPAddr); ok {
		return n, ua.AddrPort(), s.local, err
	}
	return n, netip.AddrPort{}, s.local, err
}

// write sends b to to, from the local address the request came to.
func (s *socket) write(b []byte, to, local netip.AddrPort) error {
	if s.udp != nil {
		if s.pktinfo && local.Addr().IsValid() && !local.Addr().IsUnspecified() {
			var buf [64]byte
			oob := appendSrc(buf[:0], local.Addr(), s.v6)
			if _, _, err := s.udp.WriteMsgUDPAddrPort(b, oob, to); err == nil {
				return nil
			}
			// A source the kernel refuses (a zoned link-local address,
			// an address gone since the request): let it choose.
		}
		_, err := s.udp.WriteToUDPAddrPort(b, to)
		return err
	}
	_, err := s.conn.WriteTo(b, net.UDPAddrFromAddrPort(to))
	return err
}

// work is one datagram's buffers, pooled: the read buffer, the parsed view
// and the Request the handler gets all alias buf, so the whole struct goes
// back to the pool only after the handler has returned.
type work struct {
	buf [packet.MaxLen]byte
	pkt packet.Packet
	req proxy.Request
	out [64]byte // Status-Server answers
}

var workPool = sync.Pool{New: func() any {
	w := &work{}
	w.pkt.Attrs = make([]packet.Attr, 0, 32)
	return w
}}

func putWork(w *work) {
	w.req = proxy.Request{}
	w.pkt.Raw = nil
	if cap(w.pkt.Attrs) > 256 {
		w.pkt.Attrs = nil // don't pool a pathological attribute list
	}
	workPool.Put(w)
}

// Serve reads datagrams from conn until Shutdown (then it returns
// ErrServerClosed) or a permanent read error. The caller owns conn and
// closes it after Serve returns. Serve may be called for several sockets
// at once.
func (s *Server) Serve(conn net.PacketConn) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrServerClosed
	}
	s.conns[conn] = struct{}{}
	s.serving.Add(1)
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.conns, conn)
		s.mu.Unlock()
		s.serving.Done()
	}()

	sk := newSocket(conn, s.log)
	if sk.udp != nil && s.cfg.ReceiveBuffer > 0 {
		s.sizeReceiveBuffer(sk)
	}
	var readers sync.WaitGroup
	errs := make(chan error, s.cfg.Readers)
	for range s.cfg.Readers {
		readers.Go(func() { errs <- s.read(sk) })
	}
	readers.Wait()
	return <-errs
}

// sizeReceiveBuffer asks for Config.ReceiveBuffer and logs what the
// kernel granted, loudly when it is less than asked: a small buffer
// overflows under a flood and devices' requests are lost with it.
func (s *Server) sizeReceiveBuffer(sk *socket) {
	got, err := setReceiveBuffer(sk.udp, s.cfg.ReceiveBuffer)
	switch {
	case err != nil:
		s.log.Warn("cannot size the socket receive buffer", "local", sk.local, "want", s.cfg.ReceiveBuffer, "err", err)
	case got > 0 && got < s.cfg.ReceiveBuffer:
		s.log.Warn("socket receive buffer smaller than asked: raise net.core.rmem_max or grant CAP_NET_ADMIN, or floods will cost devices more requests",
			"local", sk.local, "want", s.cfg.ReceiveBuffer, "got", got)
	default:
		s.log.Info("socket receive buffer", "local", sk.local, "want", s.cfg.ReceiveBuffer, "got", got)
	}
	s.m.rcvbuf.Set(float64(got))
}

// Inliner is a Handler that can tell, before serving a request, that it
// will answer from memory without waiting on the network or another
// goroutine (the local NAC's MAB and accounting answers). Such requests
// are answered on the goroutine that read them: handing each to a worker
// cost a wake-up, and at a few tens of thousands of answers a second
// those wake-ups were most of the tail latency.
type Inliner interface {
	Inline(*proxy.Request) bool
}

// read is one reader of sk; Serve runs Config.Readers of them.
func (s *Server) read(sk *socket) error {
	hb := s.cfg.Heartbeats.Register("udp reader " + sk.local.String())
	defer hb.Done()
	var backoff time.Duration
	var oob [128]byte
	for {
		w := workPool.Get().(*work)
		hb.Idle()
		n, src, local, err := sk.read(w.buf[:], oob[:])
		hb.Beat()
		if err != nil {
			putWork(w)
			if s.isClosed() {
				return ErrServerClosed
			}
			if errors.Is(err, net.ErrClosed) {
				return err
			}
			// Transient (ENOBUFS, ICMP errors reported on the socket, a
			// deadline someone else set): back off so it cannot spin.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			if q := s.readLog.allow(sk.local.Addr(), s.cfg.Now()); q.Log {
				s.log.Warn("read failed (logged once a minute per socket address)",
					append([]any{"local", sk.local, "err", err, "retry_in", backoff}, q.attrs()...)...)
			}
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		s.datagram(sk, w, n, src, local)
	}
}

func (s *Server) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// Shutdown stops reading on every socket, then waits for requests in
// progress until ctx ends; at that point their context is cancelled and
// ctx's error is returned. Sockets are left open for the caller to close.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closed = true
	past := time.Unix(1, 0)
	for c := range s.conns {
		// A deadline in the past unblocks a ReadFrom in progress.
		c.SetReadDeadline(past)
	}
	s.mu.Unlock()

	done := make(chan struct{})
	go func() {
		// No handler starts once every read loop has returned.
		s.serving.Wait()
		s.closeJobs.Do(func() { close(s.jobs) })
		s.handlers.Wait()
		close(done)
	}()
	select {
	case <-done:
		s.cancel()
		return nil
	case <-ctx.Done():
		s.cancel()
		return ctx.Err()
	}
}

// datagram takes one datagram from the read loop. It owns w and must
// either put it back or hand it to a handler goroutine that will.
func (s *Server) datagram(sk *socket, w *work, n int, from, local netip.AddrPort) {
	handedOff := false
	defer func() {
		if r := recover(); r != nil {
			s.drop(reasonPanic)
			if q := s.panicLog.allow(from.Addr(), s.cfg.Now()); q.Log {
				s.log.Error("panic handling datagram (logged once a minute per source)",
					append([]any{"source", from, "panic", r, "stack", string(debug.Stack())}, q.attrs()...)...)
			}
			if !handedOff {
				putWork(w)
			}
		}
	}()
	handedOff = s.check(sk, w, n, from, local)
	if !handedOff {
		putWork(w)
	}
}

// check runs the per-datagram checks, answers what is answered locally and
// starts a handler for the rest; it reports whether it handed w off.
func (s *Server) check(sk *socket, w *work, n int, from, local netip.AddrPort) bool {
	now := s.cfg.Now()
	src := netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
	client := s.cfg.Clients().Lookup(src.Addr())
	if client == nil {
		s.drop(reasonUnknownClient)
		if q := s.unknownLog.allow(src.Addr(), now); q.Log {
			s.log.Warn("datagram from unknown client dropped (logged once a minute per source)",
				append([]any{"source", src, "local", local}, q.attrs()...)...)
		}
		return false
	}
	if s.fails.limited(src, now) {
		s.dropClient(reasonAuthRateLimited, client, src, now, nil)
		return false
	}
	p := &w.pkt
	if err := p.Parse(w.buf[:n]); err != nil {
		s.dropClient(reasonMalformed, client, src, now, err)
		return false
	}
	switch {
	case p.Code == packet.CodeStatusServer:
	case p.Code == packet.CodeAccessRequest && s.cfg.Kind == Auth:
	case p.Code == packet.CodeAccountingRequest && s.cfg.Kind == Acct:
	default:
		s.dropClient(reasonUnexpectedCode, client, src, now, fmt.Errorf("code %v", p.Code))
		return false
	}

	nMA := p.Count(packet.AttrMessageAuthenticator)
	if nMA > 1 { // RFC 3579 §3.2: at most one
		s.fails.failed(src, now)
		s.dropClient(reasonDuplicateMA, client, src, now, nil)
		return false
	}
	hasMA := nMA == 1
	// BlastRADIUS: the policy checks come before any crypto, in this order.
	switch p.Code {
	case packet.CodeAccessRequest:
		s.m.messageAuthenticator(client.Name, hasMA).Inc()
		if !hasMA {
			switch {
			case client.RequireMessageAuthenticator:
				s.dropClient(reasonMissingMA, client, src, now, nil)
				return false
			case client.LimitProxyState && p.Count(packet.AttrProxyState) > 0:
				s.dropClient(reasonProxyStateWithoutMA, client, src, now, nil)
				return false
			case p.Count(packet.AttrEAPMessage) > 0: // RFC 3579 §3.2
				s.dropClient(reasonEAPWithoutMA, client, src, now, nil)
				return false
			}
			if q := s.legacyLog.allow(src.Addr(), now); q.Log {
				s.log.Warn("accepting Access-Request without Message-Authenticator: the client is exposed to BlastRADIUS (CVE-2024-3596) until it sends one and require_message_authenticator is set",
					append([]any{"client", client.Name, "source", src}, q.attrs()...)...)
			}
		}
	case packet.CodeStatusServer:
		if !hasMA { // RFC 5997 §3
			s.dropClient(reasonMissingMA, client, src, now, nil)
			return false
		}
	}
	if _, err := packet.VerifyRequest(p, client.Secret); err != nil {
		r := reasonMalformed
		switch {
		case errors.Is(err, packet.ErrMessageAuth), errors.Is(err, packet.ErrMessageAuthLen):
			r = reasonBadMA
		case errors.Is(err, packet.ErrMessageAuthDup):
			r = reasonDuplicateMA
		case errors.Is(err, packet.ErrAuthenticator):
			r = reasonBadAuthenticator
		}
		s.fails.failed(src, now)
		s.dropClient(r, client, src, now, err)
		return false
	}

	if p.Code == packet.CodeStatusServer {
		s.statusServer(sk, w, client, from, local, now)
		return false
	}

	key := dedup.Key{Local: local, Source: src, ID: p.ID}
	switch st, cached := s.dup.Begin(key, p.Authenticator); st {
	case dedup.InProgress:
		s.count(client, p.Code, outcomeDuplicateInProgress)
		return false
	case dedup.Answered:
		if err := sk.write(cached, from, local); err != nil {
			s.writeFailed(client, from, err)
		}
		s.count(client, p.Code, outcomeDuplicateAnswered)
		return false
	}
	if s.inFlight.Add(1) > int64(s.cfg.MaxInFlight) {
		s.inFlight.Add(-1)
		s.dup.Finish(key, p.Authenticator, nil) // let the retransmission in
		s.dropClient(reasonOverloaded, client, src, now, nil)
		return false
	}
	w.req = proxy.Request{
		Packet:                  p,
		Client:                  client,
		Source:                  src,
		Local:                   local,
		Received:                now,
		HasMessageAuthenticator: hasMA,
	}
	s.handlers.Add(1)
	if in, ok := s.cfg.Handler.(Inliner); ok && in.Inline(&w.req) {
		s.handle(sk, w, key, from)
		return true
	}
	j := job{sk: sk, w: w, key: key, to: from}
	select {
	case s.jobs <- j: // an idle worker took it
	default:
		go s.worker(j)
	}
	return true
}

// maxIdle bounds the handler goroutines kept waiting for work.
const maxIdle = 128

// job is one request for a worker.
type job struct {
	sk  *socket
	w   *work
	key dedup.Key
	to  netip.AddrPort
}

// worker handles j, then further requests while fewer than maxIdle
// workers are waiting; the rest exit. Shutdown closes jobs to end them.
func (s *Server) worker(j job) {
	for {
		s.handle(j.sk, j.w, j.key, j.to)
		if s.idle.Add(1) > maxIdle {
			s.idle.Add(-1)
			return
		}
		var ok bool
		j, ok = <-s.jobs
		s.idle.Add(-1)
		if !ok {
			return
		}
	}
}

// handle runs the handler for one request in a worker goroutine.
func (s *Server) handle(sk *socket, w *work, key dedup.Key, to netip.AddrPort) {
	auth, code, client := w.pkt.Authenticator, w.pkt.Code, w.req.Client
	// The in-flight slot is freed as soon as the handler returns, before
	// the answer goes out: a NAS that has its answer must find room for
	// its next request (or a retransmission of one dropped as overloaded).
	released := false
	release := func() {
		if !released {
			released = true
			s.inFlight.Add(-1)
		}
	}
	defer func() {
		if r := recover(); r != nil {
			s.dup.Finish(key, auth, nil)
			s.drop(reasonPanic)
			s.count(client, code, string(proxy.OutcomePanic))
			if q := s.panicLog.allow(w.req.Source.Addr(), s.cfg.Now()); q.Log {
				s.log.Error("panic in handler (logged once a minute per source)",
					append([]any{"client", client.Name, "source", w.req.Source,
						"panic", r, "stack", string(debug.Stack())}, q.attrs()...)...)
			}
		}
		putWork(w)
		release()
		s.handlers.Done()
	}()
	reply, outcome := s.cfg.Handler.ServeRADIUS(s.ctx, &w.req)
	release()
	if !s.dup.Finish(key, auth, reply) {
		s.count(client, code, outcomeAbandoned)
		return
	}
	if reply != nil {
		if err := sk.write(reply, to, w.req.Local); err != nil {
			s.writeFailed(client, to, err)
		}
		s.m.duration(code).Observe(s.cfg.Now().Sub(w.req.Received).Seconds())
	}
	s.count(client, code, string(outcome))
}

// statusServer answers a verified Status-Server locally (RFC 5997 §4: a
// proxy never forwards it) with the Message-Authenticator first.
func (s *Server) statusServer(sk *socket, w *work, client *proxy.Client, to, local netip.AddrPort, now time.Time) {
	p := &w.pkt
	code := packet.CodeAccessAccept
	if s.cfg.Kind == Acct {
		code = packet.CodeAccountingResponse
	}
	b := packet.Append(w.out[:0], code, p.ID, p.Authenticator)
	b = packet.AppendMessageAuthenticator(b)
	if err := packet.Sign(b, client.Secret, &p.Authenticator); err != nil {
		panic(err) // a fixed 38-octet packet cannot fail to sign
	}
	if err := sk.write(b, to, local); err != nil {
		s.writeFailed(client, to, err)
	}
	s.m.durStatus.Observe(s.cfg.Now().Sub(now).Seconds())
	s.count(client, packet.CodeStatusServer, string(proxy.OutcomeLocal))
}

func (s *Server) count(c *proxy.Client, code packet.Code, outcome string) {
	s.m.request(c.Name, code, outcome).Inc()
	if s.trace != nil {
		s.trace(outcome)
	}
}

func (s *Server) drop(r reason) {
	s.m.drops[r].Inc()
	if s.trace != nil {
		s.trace(r.String())
	}
}

// dropClient counts a drop from a known client and logs it, at most once
// a minute per source so a misconfigured device cannot flood the log.
func (s *Server) dropClient(r reason, c *proxy.Client, src netip.AddrPort, now time.Time, err error) {
	s.drop(r)
	if q := s.dropLog.allow(src.Addr(), now); q.Log {
		attrs := []any{"reason", r.String(), "client", c.Name, "source", src}
		if err != nil {
			attrs = append(attrs, "err", err)
		}
		s.log.Warn("request dropped (logged once a minute per source)", append(attrs, q.attrs()...)...)
	}
}

func (s *Server) writeFailed(c *proxy.Client, to netip.AddrPort, err error) {
	s.drop(reasonWriteError)
	if q := s.writeLog.allow(to.Addr(), s.cfg.Now()); q.Log {
		s.log.Warn("sending reply failed (logged once a minute per destination)",
			append([]any{"client", c.Name, "to", to, "err", err}, q.attrs()...)...)
	}
}
