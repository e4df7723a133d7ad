package eaptls

import (
	"context"
	"crypto/tls"

	"github.com/mxedge/mxedge/edge/nac/eaptls/internal/flight"
)

// engine runs one server-side crypto/tls conversation on its own goroutine
// and exchanges whole flights with the EAP state machine through a
// flight.Pipe (see there for how a flight's end is found). The fields
// below the pipe are guarded by its lock.
type engine struct {
	p *flight.Pipe

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
	e := &engine{p: flight.New(), done: make(chan struct{})}
	e.tc = tls.Server(e.p, cfg)
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
	if err != nil {
		e.p.Do(func() { e.err, e.finished = err, true })
		return
	}
	e.p.Do(func() { e.state, e.keys, e.hsDone = st, keys, true })

	// The peer's last message is normally an empty ACK and never reaches
	// us; if it carries a record instead, it should be close_notify.
	var one [1]byte
	_, rerr := e.tc.Read(one[:])
	e.p.Do(func() { e.postRead, e.finished = rerr, true })
}

// step feeds one reassembled peer message and waits until the TLS stack
// has either finished the handshake, ended, or asked for more input. It
// returns the bytes to send.
func (e *engine) step(in []byte) []byte {
	var wasDone bool
	e.p.Do(func() { wasDone = e.hsDone })
	return e.p.Step(in, func() bool { return e.finished || (e.hsDone && !wasDone) })
}

// close stops the goroutine: Read and Write fail, HandshakeContext returns.
func (e *engine) close() {
	e.cancel()
	e.p.Close()
}
