package udpclient

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mxedge/mxedge/proxy"
	"github.com/mxedge/mxedge/proxy/packet"
)

// maxSockets bounds the sockets per server: 256 identifiers each, so
// 4096 requests in flight to one server before new ones are refused.
const maxSockets = 16

// errBusy is returned when every identifier of every socket is in use.
var errBusy = errors.New("udpclient: all identifiers in flight")

// Server is one RADIUS server: a proxy.Exchanger that signs each request
// with the server's secret and an identifier of its own.
type Server struct {
	addr      string
	raddr     *net.UDPAddr
	secret    []byte
	requireMA bool
	timeout   time.Duration
	retries   int
	pool      string
	m         *Metrics
	log       *slog.Logger
	fwd       *proxy.Forwarder

	mu     sync.Mutex
	socks  []*sock
	closed bool

	up        atomic.Bool
	timeouts  atomic.Int32 // request timeouts in a row (probes off)
	downUntil atomic.Int64 // unix nanos; probes off
	kick      chan struct{}
}

type sock struct {
	conn     *net.UDPConn
	next     uint8
	inflight int
	pending  [256]*pending
}

type pending struct {
	auth [16]byte
	ch   chan []byte
}

func newServer(cfg ServerConfig, pc *Config) (*Server, error) {
	ra, err := net.ResolveUDPAddr("udp", cfg.Address)
	if err != nil {
		return nil, fmt.Errorf("udpclient: %s: %w", cfg.Address, err)
	}
	s := &Server{
		addr: cfg.Address, raddr: ra, secret: cfg.Secret, requireMA: cfg.RequireMessageAuthenticator,
		timeout: pc.Timeout, retries: pc.Retries, pool: pc.Name, m: pc.Metrics,
		log:  pc.Logger.With("server", cfg.Address),
		fwd:  proxy.NewForwarder(cfg.Secret, 0),
		kick: make(chan struct{}, 1),
	}
	pc.Metrics.seed(s.pool, s.addr)
	s.setUp(true)
	return s, nil
}

// Address is the server's host:port as configured.
func (s *Server) Address() string { return s.addr }

// Up reports whether the server is taking requests.
func (s *Server) Up() bool { return s.up.Load() }

func (s *Server) setUp(up bool) {
	if s.up.Swap(up) != up {
		s.log.Info("federation server state", "pool", s.pool, "up", up)
	}
	if s.m != nil {
		v := 0.0
		if up {
			v = 1
		}
		s.m.up.WithLabelValues(s.pool, s.addr).Set(v)
	}
}

func (s *Server) count(result string) {
	if s.m != nil {
		s.m.requests.WithLabelValues(s.pool, s.addr, result).Inc()
	}
}

func (s *Server) drop(reason string) {
	if s.m != nil {
		s.m.dropped.WithLabelValues(s.pool, s.addr, reason).Inc()
	}
}

// alloc reserves an identifier on a socket, opening a socket when every
// identifier of the open ones is in flight.
func (s *Server) alloc() (*sock, uint8, *pending, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, 0, nil, net.ErrClosed
	}
	pd := &pending{ch: make(chan []byte, 1)}
	for _, sk := range s.socks {
		if sk.inflight == 256 {
			continue
		}
		for range 256 {
			id := sk.next
			sk.next++
			if sk.pending[id] == nil {
				sk.pending[id] = pd
				sk.inflight++
				return sk, id, pd, nil
			}
		}
	}
	if len(s.socks) >= maxSockets {
		return nil, 0, nil, errBusy
	}
	conn, err := net.DialUDP("udp", nil, s.raddr)
	if err != nil {
		return nil, 0, nil, err
	}
	sk := &sock{conn: conn, next: 1}
	sk.pending[0] = pd
	sk.inflight = 1
	s.socks = append(s.socks, sk)
	go s.read(sk)
	return sk, 0, pd, nil
}

func (s *Server) free(sk *sock, id uint8) {
	s.mu.Lock()
	sk.pending[id] = nil
	sk.inflight--
	s.mu.Unlock()
}

// read delivers the replies arriving on one socket to their requests,
// each checked against the request it answers.
// A panic costs the datagram being read; the loop restarts at once.
func (s *Server) read(sk *sock) {
	buf := make([]byte, packet.MaxLen+1)
	for s.m.recovered(s.log, "read", func() { s.readReplies(sk, buf) }) {
	}
}

func (s *Server) readReplies(sk *sock, buf []byte) {
	for {
		n, err := sk.conn.Read(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue // ICMP port unreachable and friends: the timer decides
		}
		p, err := packet.Parse(buf[:n])
		if err != nil {
			s.drop("malformed")
			continue
		}
		s.mu.Lock()
		pd := sk.pending[p.ID]
		var auth [16]byte
		if pd != nil {
			auth = pd.auth
		}
		s.mu.Unlock()
		if pd == nil {
			s.drop("unexpected")
			continue
		}
		hasMA, err := packet.VerifyResponse(p, auth, s.secret)
		if err != nil {
			s.drop("bad_authenticator")
			continue
		}
		if !hasMA && (s.requireMA || p.Count(packet.AttrEAPMessage) > 0) {
			s.drop("missing_message_authenticator")
			continue
		}
		select {
		case pd.ch <- append([]byte(nil), p.Raw...):
		default: // a duplicate reply
		}
	}
}

// Exchange sends req (signed for any secret; it is re-signed here with
// this server's secret and a fresh identifier) and waits for the reply,
// resending the same bytes at even intervals within the timeout.
func (s *Server) Exchange(ctx context.Context, req []byte) ([]byte, error) {
	b := append([]byte(nil), req...)
	if len(b) < packet.HeaderLen {
		return nil, packet.ErrShort
	}
	sk, id, pd, err := s.alloc()
	if err != nil {
		s.count("error")
		return nil, err
	}
	defer s.free(sk, id)
	if err := packet.Resign(b, id, s.secret); err != nil {
		return nil, err
	}
	// Replies are checked against the authenticator the request carries:
	// kept for Access-Request and Status-Server, computed for the rest.
	s.mu.Lock()
	pd.auth = [16]byte(b[4:20])
	s.mu.Unlock()
	interval := s.timeout / time.Duration(s.retries+1)
	t := time.NewTimer(interval)
	defer t.Stop()
	for try := 0; ; try++ {
		if _, err := sk.conn.Write(b); err != nil {
			s.log.Debug("send failed", "err", err) // e.g. ICMP refused: the timer decides
		}
		select {
		case r := <-pd.ch:
			s.count("answered")
			s.timeouts.Store(0)
			return r, nil
		case <-ctx.Done():
			s.count("timeout")
			return nil, ctx.Err()
		case <-t.C:
			if try >= s.retries {
				s.count("timeout")
				return nil, fmt.Errorf("%s: %w", s.addr, proxy.ErrTimeout)
			}
			t.Reset(interval)
		}
	}
}

func (s *Server) close() {
	s.mu.Lock()
	s.closed = true
	socks := s.socks
	s.socks = nil
	s.mu.Unlock()
	for _, sk := range socks {
		sk.conn.Close()
	}
}

// probe sends one Status-Server (RFC 5997) and reports whether a checked
// reply came back.
func (s *Server) probe(ctx context.Context) bool {
	req := packet.NewStatusServer(nil, 0, s.secret)
	_, err := s.Exchange(ctx, req)
	ok := err == nil
	if s.m != nil {
		r := "ok"
		if !ok {
			r = "fail"
		}
		s.m.probes.WithLabelValues(s.pool, s.addr, r).Inc()
	}
	return ok
}
