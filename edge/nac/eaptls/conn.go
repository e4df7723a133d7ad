package eaptls

import (
	"context"
	"crypto/tls"
	"net"
	"sync"
	"time"
)

// engine runs one server-side crypto/tls conversation on its own goroutine
// and exchanges whole flights with the EAP state machine.
//
// crypto/tls is blocking, EAP is turn-based. The bridge is memConn: Write
// only buffers, and Read on an empty input is the signal that the TLS stack
// has produced everything it will produce for this flight and now needs the
// peer's next one. Flushing per Write would split a flight that Go writes as
// several records.
type engine struct {
	mu      sync.Mutex
	cond    *sync.Cond
	in      []byte
	out     []byte
	closed  bool
	reading bool // blocked in Read with nothing to read: end of flight

	hsDone   bool  // handshake finished successfully (keys are set)
	finished bool  // goroutine returned
	err      error // handshake or post-handshake error
	postRead error // result of the Read after the handshake (io.EOF = close_notify)

	state tls.ConnectionState
	keys  Keys

	tc     *tls.Conn
	cancel context.CancelFunc
	done   chan struct{}
}

func startEngine(cfg *tls.Config) *engine {
	e := &engine{done: make(chan struct{})}
	e.cond = sync.NewCond(&e.mu)
	e.tc = tls.Server(memConn{e}, cfg)
	ctx, cancel := context.WithCancel(context.Background())
	e.cancel = cancel
	go e.run(ctx)
	return e
}

func (e *engine) run(ctx context.Context) {
	defer close(e.done)
	err := e.tc.HandshakeContext(ctx)
	var st tls.ConnectionState
	var keys Keys
	if err == nil {
		st = e.tc.ConnectionState()
		keys, err = exportKeys(&st)
	}
	if err == nil && st.Version == tls.VersionTLS13 {
		// RFC 9190 §2.1.1: the protected success indication. It rides in
		// the same flight as whatever the handshake left in the buffer.
		_, err = e.tc.Write([]byte{0x00})
	}
	e.mu.Lock()
	if err != nil {
		e.err = err
		e.finished = true
		e.cond.Broadcast()
		e.mu.Unlock()
		return
	}
	e.state, e.keys, e.hsDone = st, keys, true
	e.cond.Broadcast()
	e.mu.Unlock()

	// The peer's last message is normally an empty ACK and never reaches
	// us; if it carries a record instead, it should be close_notify.
	var one [1]byte
	_, rerr := e.tc.Read(one[:])
	e.mu.Lock()
	e.postRead = rerr
	e.finished = true
	e.cond.Broadcast()
	e.mu.Unlock()
}

// step feeds one reassembled peer message and waits until the TLS stack
// has either finished the handshake, ended, or asked for more input. It
// returns the bytes to send.
func (e *engine) step(in []byte) []byte {
	e.mu.Lock()
	defer e.mu.Unlock()
	wasDone := e.hsDone
	e.in = append(e.in, in...)
	e.cond.Broadcast()
	for {
		if e.finished || (e.hsDone && !wasDone) || (e.reading && len(e.in) == 0) {
			out := e.out
			e.out = nil
			return out
		}
		e.cond.Wait()
	}
}

// close stops the goroutine: Read and Write fail, HandshakeContext returns.
func (e *engine) close() {
	e.cancel()
	e.mu.Lock()
	e.closed = true
	e.cond.Broadcast()
	e.mu.Unlock()
}

// memConn is the net.Conn crypto/tls sees.
type memConn struct{ e *engine }

func (c memConn) Read(p []byte) (int, error) {
	e := c.e
	e.mu.Lock()
	defer e.mu.Unlock()
	for len(e.in) == 0 && !e.closed {
		e.reading = true
		e.cond.Broadcast()
		e.cond.Wait()
	}
	e.reading = false
	if len(e.in) == 0 {
		// Not io.EOF: that would be indistinguishable from the peer's
		// close_notify after the handshake.
		return 0, net.ErrClosed
	}
	n := copy(p, e.in)
	e.in = e.in[n:]
	if len(e.in) == 0 {
		e.in = nil
	}
	return n, nil
}

func (c memConn) Write(p []byte) (int, error) {
	e := c.e
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return 0, net.ErrClosed
	}
	e.out = append(e.out, p...)
	return len(p), nil
}

func (c memConn) Close() error {
	e := c.e
	e.mu.Lock()
	e.closed = true
	e.cond.Broadcast()
	e.mu.Unlock()
	return nil
}

type memAddr struct{}

func (memAddr) Network() string { return "eap" }
func (memAddr) String() string  { return "eap" }

func (memConn) LocalAddr() net.Addr              { return memAddr{} }
func (memConn) RemoteAddr() net.Addr             { return memAddr{} }
func (memConn) SetDeadline(time.Time) error      { return nil }
func (memConn) SetReadDeadline(time.Time) error  { return nil }
func (memConn) SetWriteDeadline(time.Time) error { return nil }
