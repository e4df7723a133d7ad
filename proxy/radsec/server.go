package radsec

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mxedge/mxedge/proxy"
	"github.com/mxedge/mxedge/proxy/packet"
	"github.com/mxedge/mxedge/proxy/ratelog"
)

// ErrServerClosed is returned by Serve after Shutdown.
var ErrServerClosed = errors.New("radsec: server closed")

// Server answers RadSec connections from managed devices and the cloud.
//
// Serve takes a listener that yields *tls.Conn, normally
// tls.NewListener(ln, cfg) with cfg.ClientAuth = tls.RequireAndVerifyClientCert,
// cfg.ClientCAs set to the device/cloud CA and MinVersion TLS 1.2 (see
// ServerTLS). Connections that are not TLS, or whose peer presented no
// certificate, are closed.
type Server struct {
	cfg      ServerConfig
	log      *slog.Logger
	m        *serverMetrics
	outMu    sync.RWMutex
	outcomes map[proxy.Outcome]prometheus.Counter
	bufs     sync.Pool
	reqs     sync.Pool
	ctx      context.Context // cancelled when Shutdown gives up
	cancel   context.CancelFunc
	closing  atomic.Bool
	wg       sync.WaitGroup

	mu        sync.Mutex
	listeners map[net.Listener]struct{}
	conns     map[*serverConn]struct{}
	// open counts accepted connections, handshakes included, in total and
	// per source address, for MaxConns and MaxConnsPerSource.
	open     int
	perSrc   map[netip.Addr]int
	refusals atomic.Int64 // connections closed at accept, for rate-limited logs
	// warn limits the lines a peer can cause per connection or request
	// (refused certificates, handler panics) to logBurst per kind in each
	// logInterval, and reports how many it suppressed.
	warn *ratelog.Limiter
}

// ServerTLS returns a server TLS config with the RadSec requirements
// (bis §3.2–3.3): mutual authentication against clientCAs, TLS 1.2 minimum,
// no ALPN so Go does not abort on a peer advertising "radius/1.0".
func ServerTLS(certs []tls.Certificate, clientCAs *x509.CertPool) *tls.Config {
	return &tls.Config{
		Certificates: certs,
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    clientCAs,
		MinVersion:   tls.VersionTLS12,
	}
}

// NewServer validates cfg and returns a Server; it listens on nothing
// until Serve is called.
func NewServer(cfg ServerConfig) (*Server, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{
		cfg:       cfg,
		log:       cfg.Logger,
		m:         newServerMetrics(cfg.Registerer),
		ctx:       ctx,
		cancel:    cancel,
		outcomes:  map[proxy.Outcome]prometheus.Counter{},
		listeners: map[net.Listener]struct{}{},
		conns:     map[*serverConn]struct{}{},
		perSrc:    map[netip.Addr]int{},
	}
	s.bufs.New = func() any { b := make([]byte, 0, packet.MaxLen); return &b }
	s.reqs.New = func() any { return new(inbound) }
	s.warn = ratelog.New(cfg.Logger, logInterval, logBurst, nil)
	go s.warn.Run(ctx) // ends, reporting what it held back, at Shutdown
	return s, nil
}

// Per-connection and per-request warnings: logBurst per kind in each
// logInterval, the rest counted (see ratelog).
const (
	logInterval = 10 * time.Second
	logBurst    = 5
)

// Serve accepts connections on ln until Shutdown; it always returns a
// non-nil error, ErrServerClosed after Shutdown. The caller owns ln.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.closing.Load() {
		s.mu.Unlock()
		return ErrServerClosed
	}
	s.listeners[ln] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, ln)
		s.mu.Unlock()
	}()
	var delay time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if s.closing.Load() {
				return ErrServerClosed
			}
			if errors.Is(err, net.ErrClosed) {
				return err
			}
			// Out of descriptors and the like: back off rather than spin.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			s.log.Warn("radsec accept failed", "err", err, "retry_in", delay)
			t := time.NewTimer(delay)
			select {
			case <-t.C:
			case <-s.ctx.Done():
				t.Stop()
				return ErrServerClosed
			}
			continue
		}
		delay = 0
		// A connection accepted as Shutdown began must not be added to
		// the group Shutdown is already waiting on.
		s.mu.Lock()
		if s.closing.Load() {
			s.mu.Unlock()
			nc.Close()
			return ErrServerClosed
		}
		src := addrPort(nc.RemoteAddr()).Addr().Unmap()
		if reason := s.admit(src); reason != "" {
			s.mu.Unlock()
			s.m.drops.WithLabelValues(reason).Inc()
			// A flood must not become a flood of log lines: the first
			// refusal and then one in a thousand.
			if n := s.refusals.Add(1); n == 1 || n%1000 == 0 {
				s.log.Warn("radsec connection refused at accept", "peer", nc.RemoteAddr(), "reason", reason, "refused_so_far", n)
			}
			nc.Close()
			continue
		}
		s.wg.Add(1)
		s.m.conns.Inc()
		s.mu.Unlock()
		go s.serveConn(nc, src)
	}
}

// admit counts a new connection from src against the limits, or returns
// the reason it is refused. s.mu is held.
func (s *Server) admit(src netip.Addr) string {
	if s.cfg.MaxConns > 0 && s.open >= s.cfg.MaxConns {
		return dropMaxConns
	}
	if s.cfg.MaxConnsPerSource > 0 && s.perSrc[src] >= s.cfg.MaxConnsPerSource {
		return dropMaxConnsSource
	}
	s.open++
	s.perSrc[src]++
	return ""
}

// release undoes admit when a connection ends.
func (s *Server) release(src netip.Addr) {
	s.mu.Lock()
	s.open--
	if s.perSrc[src]--; s.perSrc[src] <= 0 {
		delete(s.perSrc, src)
	}
	s.mu.Unlock()
	s.m.conns.Dec()
}

// Open returns the number of open connections, handshakes included.
func (s *Server) Open() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.open
}

// Shutdown stops accepting, stops reading on every connection so that no
// new request starts, waits for in-flight requests to be answered, and
// closes the connections. If ctx ends first the handlers' context is
// cancelled, every connection is closed, and ctx's error is returned.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closing.Store(true)
	for ln := range s.listeners {
		ln.Close()
	}
	for sc := range s.conns {
		sc.nc.SetReadDeadline(time.Now())
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		s.cancel()
		return nil
	case <-ctx.Done():
		s.cancel()
		s.closeConns()
		<-done
		return ctx.Err()
	}
}

// closeConns closes every connection at once, dropping what is in flight.
func (s *Server) closeConns() {
	s.mu.Lock()
	for sc := range s.conns {
		sc.nc.Close()
	}
	s.mu.Unlock()
}

func (s *Server) count(o proxy.Outcome) {
	s.outMu.RLock()
	c, ok := s.outcomes[o]
	s.outMu.RUnlock()
	if !ok {
		c = s.m.requests.WithLabelValues(string(o))
		s.outMu.Lock()
		s.outcomes[o] = c
		s.outMu.Unlock()
	}
	c.Inc()
}

// serverConn is one inbound connection.
type serverConn struct {
	s      *Server
	nc     net.Conn
	client *proxy.Client
	src    netip.AddrPort
	local  netip.AddrPort
	kind   string
	h      proxy.Handler
	ctx    context.Context // cancelled when the connection is lost (bis §3.11)
	cancel context.CancelFunc
	wch    chan []byte
	stop   chan struct{} // no more replies will be queued
	sem    chan struct{}
	work   sync.WaitGroup

	mu      sync.Mutex
	pending [256]struct {
		auth  [16]byte
		owner *inbound // nil when no request with this identifier is in flight
	}
}

// inbound is one request being handled; pooled.
type inbound struct {
	p   packet.Packet
	req proxy.Request
	buf *[]byte
}

func addrPort(a net.Addr) netip.AddrPort {
	if t, ok := a.(*net.TCPAddr); ok {
		return t.AddrPort()
	}
	return netip.AddrPort{}
}

// serveConn handshakes, identifies the peer and serves the connection. A
// panic anywhere in it (the Identify hook included) costs that connection
// only: it is counted and the connection closed.
func (s *Server) serveConn(nc net.Conn, src netip.Addr) {
	defer s.wg.Done()
	defer s.release(src)
	defer nc.Close()
	recovered(s.m.goPanics, s.log, goConn, func() { s.serveTLS(nc) })
}

func (s *Server) serveTLS(nc net.Conn) {
	tc, ok := nc.(*tls.Conn)
	if !ok {
		s.m.drops.WithLabelValues("not_tls").Inc()
		s.warn.Log(slog.LevelError, "not_tls", "radsec listener is not a TLS listener; closing connection", "peer", nc.RemoteAddr())
		return
	}
	hctx, cancel := context.WithTimeout(s.ctx, s.cfg.HandshakeTimeout)
	err := tc.HandshakeContext(hctx)
	timedOut := hctx.Err() != nil
	cancel()
	if err != nil {
		reason := dropHandshake
		if timedOut {
			reason = dropHandshakeTimeout
		}
		s.m.drops.WithLabelValues(reason).Inc()
		// A stalled handshake is what a flood is made of: counted, and
		// logged only when debugging.
		level := slog.LevelInfo
		if timedOut {
			level = slog.LevelDebug
		}
		s.log.Log(context.Background(), level, "radsec handshake failed", "peer", nc.RemoteAddr(), "reason", reason, "err", err)
		return
	}
	st := tc.ConnectionState()
	if len(st.PeerCertificates) == 0 {
		s.m.drops.WithLabelValues("no_client_cert").Inc()
		s.warn.Log(slog.LevelWarn, "no_client_cert", "radsec peer without client certificate; is ClientAuth set?", "peer", nc.RemoteAddr())
		return
	}
	peer, err := s.cfg.Identify(st)
	if err == nil && peer.Client == nil {
		err = errors.New("no client")
	}
	if err != nil {
		s.m.drops.WithLabelValues(dropRefused).Inc()
		s.warn.Log(slog.LevelWarn, "refused", "radsec peer refused", "peer", nc.RemoteAddr(), "cn", st.PeerCertificates[0].Subject.CommonName, "err", err)
		return
	}
	if peer.Handler == nil {
		peer.Handler = s.cfg.Handler
	}
	if peer.Kind == "" {
		peer.Kind = "device"
	}
	ctx, cancelConn := context.WithCancel(s.ctx)
	sc := &serverConn{
		s:      s,
		nc:     tc,
		client: peer.Client,
		kind:   peer.Kind,
		h:      peer.Handler,
		src:    addrPort(nc.RemoteAddr()),
		local:  addrPort(nc.LocalAddr()),
		ctx:    ctx,
		cancel: cancelConn,
		wch:    make(chan []byte, s.cfg.MaxInFlight+1),
		stop:   make(chan struct{}),
		sem:    make(chan struct{}, s.cfg.MaxInFlight),
	}
	s.mu.Lock()
	if s.closing.Load() {
		s.mu.Unlock()
		cancelConn()
		return
	}
	s.conns[sc] = struct{}{}
	s.mu.Unlock()
	s.m.accepted.WithLabelValues(peer.Kind).Inc()
	s.log.Info("radsec connection", "peer", sc.src, "kind", peer.Kind, "client", peer.Client.Name, "site", peer.Client.Site,
		"tls", tls.VersionName(st.Version))

	wdone := make(chan struct{})
	go func() {
		defer close(wdone)
		if recovered(s.m.goPanics, s.log, goWrite, sc.writeLoop) {
			// Handlers queue with the context, so none waits on the
			// writer that is gone; the reader then stops.
			sc.cancel()
			sc.nc.Close()
		}
	}()
	graceful := false // and so after a panic
	recovered(s.m.goPanics, s.log, goRead, func() { graceful = sc.readLoop() })
	if !graceful {
		cancelConn()
	}
	sc.work.Wait()
	close(sc.stop)
	<-wdone
	cancelConn()
	nc.Close()
	s.mu.Lock()
	delete(s.conns, sc)
	s.mu.Unlock()
	s.log.Info("radsec connection closed", "peer", sc.src, "kind", sc.kind, "client", sc.client.Name)
}

// readLoop reads and dispatches requests. It reports whether it stopped
// because of Shutdown, in which case in-flight requests still get answers.
func (sc *serverConn) readLoop() (graceful bool) {
	s := sc.s
	br := bufio.NewReaderSize(sc.nc, 16<<10)
	for {
		if s.cfg.IdleTimeout > 0 {
			sc.nc.SetReadDeadline(time.Now().Add(s.cfg.IdleTimeout))
		}
		// Checked after setting the deadline so Shutdown's deadline wins.
		if s.closing.Load() {
			return true
		}
		bp := s.bufs.Get().(*[]byte)
		b, err := ReadPacket(br, (*bp)[:0])
		if err != nil {
			s.bufs.Put(bp)
			var ne net.Error
			timeout := errors.As(err, &ne) && ne.Timeout()
			switch {
			case timeout && s.closing.Load():
				// Shutdown's deadline: the peer is still there to be answered.
				return true
			case timeout:
				s.m.drops.WithLabelValues(dropIdle).Inc()
				s.log.Debug("radsec connection idle; closing", "peer", sc.src)
			case errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed):
			default:
				s.m.drops.WithLabelValues(dropMalformed).Inc()
				s.log.Info("radsec read failed; closing connection", "peer", sc.src, "err", err)
			}
			return false
		}
		*bp = b
		in := s.reqs.Get().(*inbound)
		in.buf = bp
		if !sc.accept(in, b) {
			return false
		}
	}
}

// accept checks one packet and dispatches it; false closes the connection.
func (sc *serverConn) accept(in *inbound, b []byte) bool {
	s := sc.s
	p := &in.p
	if err := p.Parse(b); err != nil {
		s.m.drops.WithLabelValues("malformed").Inc()
		s.log.Info("radsec malformed packet; closing connection", "peer", sc.src, "err", err)
		sc.free(in)
		return false
	}
	if !p.Code.IsRequest() {
		s.m.drops.WithLabelValues("not_request").Inc()
		sc.free(in)
		return true
	}
	hasMA, err := packet.VerifyRequest(p, secret)
	if err != nil {
		s.m.drops.WithLabelValues("bad_authenticator").Inc()
		s.log.Info("radsec request does not verify; closing connection", "peer", sc.src, "code", p.Code, "err", err)
		sc.free(in)
		return false
	}
	if p.Code == packet.CodeStatusServer {
		s.m.status.Inc()
		sc.queue(statusReply(p))
		sc.free(in)
		return true
	}
	sc.mu.Lock()
	slot := &sc.pending[p.ID]
	if slot.owner != nil && slot.auth == p.Authenticator {
		sc.mu.Unlock()
		s.m.drops.WithLabelValues("duplicate").Inc()
		sc.free(in)
		return true
	}
	slot.owner, slot.auth = in, p.Authenticator
	sc.mu.Unlock()
	select {
	case sc.sem <- struct{}{}:
	case <-sc.ctx.Done():
		sc.done(in)
		return false
	}
	in.req = proxy.Request{
		Packet:                  p,
		Client:                  sc.client,
		Source:                  sc.src,
		Local:                   sc.local,
		Received:                time.Now(),
		HasMessageAuthenticator: hasMA,
	}
	sc.work.Add(1)
	go sc.handle(in)
	return true
}

func (sc *serverConn) handle(in *inbound) {
	s := sc.s
	defer func() {
		if r := recover(); r != nil {
			s.m.panics.Inc()
			s.count(proxy.OutcomePanic)
			s.warn.Log(slog.LevelError, "handler_panic", "radsec handler panic", "peer", sc.src, "panic", fmt.Sprint(r))
		}
		<-sc.sem
		sc.done(in)
		sc.work.Done()
	}()
	reply, outcome := sc.h.ServeRADIUS(sc.ctx, &in.req)
	s.count(outcome)
	// Before the reply leaves: the peer may reuse the identifier and, for
	// a request moved back to us, the authenticator as soon as it has it.
	sc.untrack(in)
	if reply != nil {
		sc.queue(reply)
	}
}

// untrack ends duplicate tracking for in.
func (sc *serverConn) untrack(in *inbound) {
	sc.mu.Lock()
	if slot := &sc.pending[in.p.ID]; slot.owner == in {
		slot.owner = nil
	}
	sc.mu.Unlock()
}

// done ends duplicate tracking for in and recycles it.
func (sc *serverConn) done(in *inbound) {
	sc.untrack(in)
	sc.free(in)
}

func (sc *serverConn) free(in *inbound) {
	sc.s.bufs.Put(in.buf)
	in.buf = nil
	in.req = proxy.Request{}
	in.p.Raw = nil
	sc.s.reqs.Put(in)
}

// queue hands a reply to the writer. The channel holds one reply per
// handler slot plus one, so it blocks only if Status-Server floods it.
func (sc *serverConn) queue(b []byte) {
	select {
	case sc.wch <- b:
	case <-sc.ctx.Done():
	}
}

func (sc *serverConn) writeLoop() {
	// One TLS record per reply: RadSec peers such as FreeRADIUS 3.x read
	// one RADIUS packet per record, so replies are never coalesced above
	// TLS.
	b := batcher[[]byte]{
		ch:    sc.wch,
		write: func(p []byte) error { _, err := sc.nc.Write(p); return err },
		flush: func() error { return nil },
	}
	var err error
	for {
		select {
		case p := <-sc.wch:
			if err != nil {
				continue // keep draining so that handlers never block
			}
			sc.nc.SetWriteDeadline(time.Now().Add(sc.s.cfg.WriteTimeout))
			if err = b.run(p); err != nil {
				sc.s.log.Info("radsec write failed; closing connection", "peer", sc.src, "err", err)
				sc.cancel()
				sc.nc.Close()
			}
		case <-sc.stop:
			// Handlers are done; write what they left.
			select {
			case p := <-sc.wch:
				if err == nil {
					sc.nc.SetWriteDeadline(time.Now().Add(sc.s.cfg.WriteTimeout))
					b.run(p)
				}
			default:
			}
			return
		}
	}
}

// statusReply answers a Status-Server locally (RFC 5997) with an
// Access-Accept carrying the Message-Authenticator first.
func statusReply(p *packet.Packet) []byte {
	b := packet.Append(make([]byte, 0, packet.HeaderLen+18), packet.CodeAccessAccept, p.ID, p.Authenticator)
	b = packet.AppendMessageAuthenticator(b)
	_ = packet.Sign(b, secret, &p.Authenticator)
	return b
}
