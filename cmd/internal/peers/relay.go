package peers

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// CutMode is how Relay.Cut breaks the link, the two ways a WAN goes down.
type CutMode int

const (
	// CutRST resets every open connection on both sides (SO_LINGER 0, then
	// close: each peer gets a RST) and closes the listener, so new connects
	// are refused (ECONNREFUSED): on loopback that is exactly what a client
	// sees when a firewall or a dead next hop answers its SYN with a RST.
	// Accepting and then resetting would have let the client's connect
	// succeed, which no downed network does.
	CutRST CutMode = iota + 1
	// CutBlackhole forwards nothing any more, in either direction, and
	// closes nothing: open connections stay established while their bytes
	// (and FINs) vanish, and new connections complete the TCP handshake but
	// everything they send is read and discarded, never reaching the
	// target. It is the common real failure, and the one only a client's
	// own timers can detect.
	CutBlackhole
)

func (m CutMode) String() string {
	switch m {
	case CutRST:
		return "rst"
	case CutBlackhole:
		return "blackhole"
	}
	return fmt.Sprintf("CutMode(%d)", int(m))
}

// RelayStats are a Relay's counters since it started.
type RelayStats struct {
	// Accepted counts TCP connections accepted, blackholed ones included.
	Accepted int64
	// Open is how many client connections the relay holds now.
	Open int
	// ToTarget and FromTarget count bytes forwarded each way; Discarded
	// counts bytes read and dropped while blackholed.
	ToTarget, FromTarget, Discarded int64
}

// Relay is a loopback TCP relay a test controls to simulate the WAN
// between mxedge and its cloud: it forwards every connection to a target
// until Cut, and forwards new connections again after Restore.
type Relay struct {
	addr   string // the listen address, fixed so Restore can listen again
	target string
	dialer net.Dialer
	ctx    context.Context // cancelled by Close, ends dials in progress
	cancel context.CancelFunc
	wg     sync.WaitGroup // the accept loop and every connection

	mu     sync.Mutex
	ln     net.Listener // nil while cut by CutRST, or closed
	mode   CutMode      // 0: forwarding
	closed bool
	conns  map[*relayConn]struct{}

	accepted, toTarget, fromTarget, discarded atomic.Int64
}

// relayConn is one relayed connection. Once dead (blackholed) it never
// forwards again, even after Restore: the bytes it dropped are gone, so
// the stream could not be resumed anyway, and a real network after a long
// blackhole leaves such connections dead for the endpoints' own timers to
// find. It is closed only when both its peers closed, or by Close.
type relayConn struct {
	client   *net.TCPConn
	upstream *net.TCPConn // nil until dialled, and for connections accepted while blackholed
	dead     atomic.Bool
}

// StartRelay listens on listen (a loopback host:port; port 0 picks a free
// one) and forwards every accepted connection to target, both ways.
func StartRelay(listen, target string) (*Relay, error) {
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return nil, err
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return nil, fmt.Errorf("peers: relay listen address %q is not loopback", listen)
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return nil, err
	}
	r := &Relay{
		addr:   ln.Addr().String(),
		target: target,
		dialer: net.Dialer{Timeout: 5 * time.Second},
		ln:     ln,
		conns:  map[*relayConn]struct{}{},
	}
	r.ctx, r.cancel = context.WithCancel(context.Background())
	r.wg.Add(1)
	go r.acceptLoop(ln)
	return r, nil
}

// Addr is the relay's host:port; it stays the same across Cut and Restore.
func (r *Relay) Addr() string { return r.addr }

// Stats returns the counters.
func (r *Relay) Stats() RelayStats {
	r.mu.Lock()
	open := len(r.conns)
	r.mu.Unlock()
	return RelayStats{
		Accepted:   r.accepted.Load(),
		Open:       open,
		ToTarget:   r.toTarget.Load(),
		FromTarget: r.fromTarget.Load(),
		Discarded:  r.discarded.Load(),
	}
}

// Cut breaks the link as mode says. Cutting again with another mode
// applies that mode on top: CutRST after CutBlackhole resets the
// blackholed connections too.
func (r *Relay) Cut(mode CutMode) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return net.ErrClosed
	}
	switch mode {
	case CutRST:
		if r.ln != nil {
			r.ln.Close()
			r.ln = nil
		}
		for rc := range r.conns {
			reset(rc.client)
			reset(rc.upstream)
			delete(r.conns, rc)
		}
	case CutBlackhole:
		if err := r.listenLocked(); err != nil {
			return err
		}
		past := time.Unix(1, 0)
		for rc := range r.conns {
			rc.dead.Store(true)
			// A write blocked on a full buffer would hold its bytes; fail it
			// so they are dropped. Reads go on, to discard.
			rc.client.SetWriteDeadline(past)
			if rc.upstream != nil {
				rc.upstream.SetWriteDeadline(past)
			}
		}
	default:
		return fmt.Errorf("peers: unknown cut mode %v", mode)
	}
	r.mode = mode
	return nil
}

// Restore forwards new connections again (listening again after CutRST,
// on the same address). Connections blackholed before stay dead.
func (r *Relay) Restore() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return net.ErrClosed
	}
	if err := r.listenLocked(); err != nil {
		return err
	}
	r.mode = 0
	return nil
}

// listenLocked listens on the relay's address again if CutRST closed it.
func (r *Relay) listenLocked() error {
	if r.ln != nil {
		return nil
	}
	ln, err := net.Listen("tcp", r.addr)
	if err != nil {
		return fmt.Errorf("peers: relay listen again on %s: %w", r.addr, err)
	}
	r.ln = ln
	r.wg.Add(1)
	go r.acceptLoop(ln)
	return nil
}

// Close stops listening, closes every connection it holds (both sides)
// and waits for its goroutines to exit.
func (r *Relay) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	if r.ln != nil {
		r.ln.Close()
		r.ln = nil
	}
	for rc := range r.conns {
		rc.client.Close()
		if rc.upstream != nil {
			rc.upstream.Close()
		}
		delete(r.conns, rc)
	}
	r.mu.Unlock()
	r.cancel()
	r.wg.Wait()
	return nil
}

func (r *Relay) acceptLoop(ln net.Listener) {
	defer r.wg.Done()
	for {
		c, err := ln.Accept()
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil { // e.g. out of file descriptors: don't spin
			select {
			case <-r.ctx.Done():
				return
			case <-time.After(10 * time.Millisecond):
			}
			continue
		}
		r.accepted.Add(1)
		r.wg.Add(1)
		go r.serve(c.(*net.TCPConn))
	}
}

// serve relays one accepted connection until both sides are done.
func (r *Relay) serve(client *net.TCPConn) {
	defer r.wg.Done()
	rc := &relayConn{client: client}
	r.mu.Lock()
	if r.closed || r.mode == CutRST {
		r.mu.Unlock()
		reset(client)
		return
	}
	r.conns[rc] = struct{}{}
	blackholed := r.mode == CutBlackhole
	r.mu.Unlock()
	defer r.forget(rc)

	if blackholed {
		rc.dead.Store(true)
		r.pipe(rc, client, nil, nil)
		return
	}
	c, err := r.dialer.DialContext(r.ctx, "tcp", r.target)
	if err != nil {
		reset(client) // the target refused: so does the relay
		return
	}
	up := c.(*net.TCPConn)
	r.mu.Lock()
	_, live := r.conns[rc] // CutRST or Close during the dial dropped it
	dead := rc.dead.Load() // blackholed during the dial: the SYN would have vanished
	if live && !dead {
		rc.upstream = up
	}
	r.mu.Unlock()
	switch {
	case !live:
		reset(up)
		return
	case dead:
		reset(up)
		r.pipe(rc, client, nil, nil)
		return
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.pipe(rc, up, client, &r.fromTarget)
	}()
	r.pipe(rc, client, up, &r.toTarget)
	<-done
}

// forget drops rc from the open set and closes both its sockets.
func (r *Relay) forget(rc *relayConn) {
	r.mu.Lock()
	delete(r.conns, rc)
	up := rc.upstream
	r.mu.Unlock()
	rc.client.Close()
	if up != nil {
		up.Close()
	}
}

// pipe copies src to dst until src ends, or discards while rc is dead.
// Forwarding, an EOF is passed on as a half-close and an error as a
// reset of both sides; dead, nothing is passed on, not even the close.
func (r *Relay) pipe(rc *relayConn, src, dst *net.TCPConn, n *atomic.Int64) {
	buf := make([]byte, 32<<10)
	for {
		m, err := src.Read(buf)
		if m > 0 {
			if rc.dead.Load() || dst == nil {
				r.discarded.Add(int64(m))
			} else if _, werr := dst.Write(buf[:m]); werr != nil {
				if !rc.dead.Load() {
					reset(src)
					reset(dst)
					return
				}
				r.discarded.Add(int64(m))
			} else {
				n.Add(int64(m))
			}
		}
		if err == nil {
			continue
		}
		if rc.dead.Load() || dst == nil {
			return
		}
		if errors.Is(err, io.EOF) {
			dst.CloseWrite()
			return
		}
		reset(src)
		reset(dst)
		return
	}
}

// reset closes c with SO_LINGER 0, so the peer gets a RST, not a FIN.
func reset(c *net.TCPConn) {
	if c == nil {
		return
	}
	c.SetLinger(0)
	c.Close()
}
