// Package flight is the in-memory net.Conn that runs a blocking
// crypto/tls conversation in EAP's turns, shared by the EAP-TLS server
// (eaptls) and its test supplicant (eaptlstest), so that the test peer
// exercises the very bridge the server uses.
//
// crypto/tls is blocking, EAP is turn-based. Write only buffers, and a Read
// on an empty input is the signal that the TLS stack has produced
// everything it will produce for this flight and now needs the peer's
// next one. Flushing per Write would split a flight that Go writes as
// several records.
package flight

import (
	"net"
	"sync"
	"time"
)

// Pipe is one side's bridge. Its mutex also guards the caller's own state
// about the conversation (see Do), so that Step can wait on it.
type Pipe struct {
	mu      sync.Mutex
	cond    *sync.Cond
	in, out []byte
	closed  bool
	reading bool // blocked in Read with nothing to read: end of flight
}

// New returns an open Pipe.
func New() *Pipe {
	p := &Pipe{}
	p.cond = sync.NewCond(&p.mu)
	return p
}

// Do runs f under the Pipe's lock and wakes Step, for the TLS goroutine
// to publish what Step's stop condition reads.
func (p *Pipe) Do(f func()) {
	p.mu.Lock()
	f()
	p.cond.Broadcast()
	p.mu.Unlock()
}

// Step feeds one reassembled peer flight and waits until the TLS stack
// asks for more input or stop (called under the lock) holds, and returns
// the bytes it wrote meanwhile.
func (p *Pipe) Step(in []byte, stop func() bool) []byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.in = append(p.in, in...)
	p.cond.Broadcast()
	for !stop() && !(p.reading && len(p.in) == 0) {
		p.cond.Wait()
	}
	out := p.out
	p.out = nil
	return out
}

// Read takes the peer's flight; on an empty input it reports the end of
// ours and waits.
func (p *Pipe) Read(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for len(p.in) == 0 && !p.closed {
		p.reading = true
		p.cond.Broadcast()
		p.cond.Wait()
	}
	p.reading = false
	if len(p.in) == 0 {
		// Not io.EOF: that would be indistinguishable from the peer's
		// close_notify after the handshake.
		return 0, net.ErrClosed
	}
	n := copy(b, p.in)
	p.in = p.in[n:]
	if len(p.in) == 0 {
		p.in = nil
	}
	return n, nil
}

// Write buffers b for the flight Step returns.
func (p *Pipe) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return 0, net.ErrClosed
	}
	p.out = append(p.out, b...)
	return len(b), nil
}

// Close fails Read and Write from now on, which ends the TLS goroutine.
func (p *Pipe) Close() error {
	p.Do(func() { p.closed = true })
	return nil
}

type addr struct{}

func (addr) Network() string { return "eap" }
func (addr) String() string  { return "eap" }

func (*Pipe) LocalAddr() net.Addr              { return addr{} }
func (*Pipe) RemoteAddr() net.Addr             { return addr{} }
func (*Pipe) SetDeadline(time.Time) error      { return nil }
func (*Pipe) SetReadDeadline(time.Time) error  { return nil }
func (*Pipe) SetWriteDeadline(time.Time) error { return nil }
