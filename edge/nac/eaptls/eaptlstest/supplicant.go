package eaptlstest

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/mxedge/mxedge/edge/nac/eap"
	"github.com/mxedge/mxedge/edge/nac/eaptls"
	"github.com/mxedge/mxedge/edge/nac/eaptls/internal/flight"
)

const (
	flagL = 0x80
	flagM = 0x40
	flagS = 0x20
)

// Config configures a Supplicant.
type Config struct {
	// TLS is the client config (client certificate, RootCAs, ServerName
	// or InsecureSkipVerify). It is cloned.
	TLS *tls.Config
	// Version pins the TLS version (tls.VersionTLS12 or VersionTLS13);
	// 0 keeps TLS's MinVersion/MaxVersion.
	Version uint16
	// FragmentSize is the TLS payload per EAP-TLS Response; default 1020.
	FragmentSize int
	// Identity is sent in EAP-Response/Identity.
	Identity string
	// CloseNotify makes the peer answer the server's last flight with a
	// close_notify alert instead of an empty ACK (RFC 9190 allows both).
	CloseNotify bool
}

// Supplicant is one peer conversation. Not safe for concurrent use.
type Supplicant struct {
	cfg  Config
	tcfg *tls.Config
	eng  *engine

	pending []byte
	in      []byte

	done    bool
	success bool
}

// Errors.
var (
	ErrNotDone       = errors.New("eaptlstest: conversation not finished")
	ErrNoCommitment  = errors.New("eaptlstest: EAP-Success before the TLS 1.3 commitment")
	ErrUnexpectedEAP = errors.New("eaptlstest: unexpected EAP packet")
)

// New returns a Supplicant.
func New(cfg Config) *Supplicant {
	if cfg.FragmentSize <= 0 {
		cfg.FragmentSize = eaptls.DefaultFragmentSize
	}
	t := cfg.TLS.Clone()
	if cfg.Version != 0 {
		t.MinVersion, t.MaxVersion = cfg.Version, cfg.Version
	}
	return &Supplicant{cfg: cfg, tcfg: t}
}

// IdentityResponse returns an EAP-Response/Identity with identifier id, as
// a NAS forwards it in the first Access-Request.
func (p *Supplicant) IdentityResponse(id uint8) []byte {
	b, _ := eap.Packet{Code: eap.CodeResponse, Identifier: id, Type: eap.TypeIdentity, Data: []byte(p.cfg.Identity)}.Encode()
	return b
}

// Handle answers one EAP packet from the server. On EAP-Success or
// EAP-Failure it returns nil and Done reports true.
func (p *Supplicant) Handle(req []byte) ([]byte, error) {
	pk, err := eap.Parse(req)
	if err != nil {
		return nil, err
	}
	switch pk.Code {
	case eap.CodeSuccess:
		p.done = true
		p.success = true
		if p.eng != nil {
			var ok bool
			p.eng.p.Do(func() { ok = p.eng.hsDone && (p.eng.state.Version != tls.VersionTLS13 || p.eng.committed) })
			if !ok {
				p.success = false
				return nil, ErrNoCommitment
			}
		}
		return nil, nil
	case eap.CodeFailure:
		p.done = true
		return nil, nil
	case eap.CodeRequest:
	default:
		return nil, ErrUnexpectedEAP
	}
	switch pk.Type {
	case eap.TypeIdentity:
		return p.IdentityResponse(pk.Identifier), nil
	case eap.TypeTLS:
	default:
		return p.resp(pk.Identifier, eap.TypeNak, []byte{byte(eap.TypeTLS)}), nil
	}
	if len(pk.Data) == 0 {
		return nil, fmt.Errorf("%w: EAP-TLS without flags", ErrUnexpectedEAP)
	}
	flags, d := pk.Data[0], pk.Data[1:]
	if flags&flagL != 0 {
		if len(d) < 4 {
			return nil, fmt.Errorf("%w: short L", ErrUnexpectedEAP)
		}
		d = d[4:]
	}
	if flags&flagS != 0 {
		if p.eng != nil {
			p.eng.close()
		}
		p.eng = startEngine(p.tcfg, p.cfg.CloseNotify)
		return p.flight(pk.Identifier, p.eng.step(nil)), nil
	}
	if p.eng == nil {
		return nil, fmt.Errorf("%w: EAP-TLS data before Start", ErrUnexpectedEAP)
	}
	if len(p.pending) > 0 {
		if len(d) > 0 {
			return nil, fmt.Errorf("%w: server data while we fragment", ErrUnexpectedEAP)
		}
		return p.nextFragment(pk.Identifier), nil
	}
	p.in = append(p.in, d...)
	if flags&flagM != 0 {
		return p.resp(pk.Identifier, eap.TypeTLS, []byte{0}), nil
	}
	msg := p.in
	p.in = nil
	return p.flight(pk.Identifier, p.eng.step(msg)), nil
}

// Done reports whether Success or Failure arrived.
func (p *Supplicant) Done() bool { return p.done }

// Succeeded reports an EAP-Success after a complete handshake.
func (p *Supplicant) Succeeded() bool { return p.done && p.success }

// Keys returns the peer's MSK/EMSK once the handshake finished.
func (p *Supplicant) Keys() (eaptls.Keys, error) {
	if p.eng == nil {
		return eaptls.Keys{}, ErrNotDone
	}
	var done bool
	var st tls.ConnectionState
	p.eng.p.Do(func() { done, st = p.eng.hsDone, p.eng.state })
	if !done {
		return eaptls.Keys{}, ErrNotDone
	}
	return eaptls.ExportKeys(&st)
}

// HandshakeErr is the peer-side TLS error, if any (e.g. the alert the
// server sent).
func (p *Supplicant) HandshakeErr() error {
	if p.eng == nil {
		return nil
	}
	var err error
	p.eng.p.Do(func() { err = p.eng.err })
	return err
}

// Close stops the TLS goroutine.
func (p *Supplicant) Close() {
	if p.eng != nil {
		p.eng.close()
		<-p.eng.done
	}
}

func (p *Supplicant) resp(id uint8, t eap.Type, data []byte) []byte {
	b, _ := eap.Packet{Code: eap.CodeResponse, Identifier: id, Type: t, Data: data}.Encode()
	return b
}

func (p *Supplicant) flight(id uint8, out []byte) []byte {
	f := p.cfg.FragmentSize
	if len(out) <= f {
		return p.resp(id, eap.TypeTLS, append([]byte{0}, out...))
	}
	d := make([]byte, 5, 5+f)
	d[0] = flagL | flagM
	binary.BigEndian.PutUint32(d[1:], uint32(len(out)))
	d = append(d, out[:f]...)
	p.pending = out[f:]
	return p.resp(id, eap.TypeTLS, d)
}

func (p *Supplicant) nextFragment(id uint8) []byte {
	n := min(len(p.pending), p.cfg.FragmentSize)
	d := []byte{0}
	if n < len(p.pending) {
		d[0] = flagM
	}
	d = append(d, p.pending[:n]...)
	p.pending = p.pending[n:]
	return p.resp(id, eap.TypeTLS, d)
}

// engine is the client side of the flight bridge, over the very
// flight.Pipe the server uses. The fields below the pipe are guarded by
// its lock.
type engine struct {
	p         *flight.Pipe
	hsDone    bool
	committed bool
	finished  bool
	err       error
	state     tls.ConnectionState
	cancel    context.CancelFunc
	done      chan struct{}
}

func startEngine(cfg *tls.Config, closeNotify bool) *engine {
	e := &engine{p: flight.New(), done: make(chan struct{})}
	tc := tls.Client(e.p, cfg)
	ctx, cancel := context.WithCancel(context.Background())
	e.cancel = cancel
	go func() {
		defer close(e.done)
		err := tc.HandshakeContext(ctx)
		if err == nil {
			st := tc.ConnectionState()
			e.p.Do(func() { e.state, e.hsDone = st, true })
			if st.Version == tls.VersionTLS13 {
				var b [1]byte
				var n int
				n, err = tc.Read(b[:])
				if err == nil && (n != 1 || b[0] != 0) {
					err = fmt.Errorf("bad RFC 9190 commitment %x", b[:n])
				}
				if err == nil {
					e.p.Do(func() { e.committed = true })
				}
			}
		}
		if err == nil && closeNotify {
			err = tc.CloseWrite()
		}
		e.p.Do(func() { e.err, e.finished = err, true })
	}()
	return e
}

func (e *engine) step(in []byte) []byte {
	return e.p.Step(in, func() bool { return e.finished })
}

func (e *engine) close() {
	e.cancel()
	e.p.Close()
}

// Authenticate runs a whole conversation in memory between p and s,
// starting from the peer's EAP-Response/Identity, and returns the server's
// result. It gives up after maxRounds exchanges.
func Authenticate(p *Supplicant, s *eaptls.Session, maxRounds int) (*eaptls.Result, error) {
	resp := p.IdentityResponse(1)
	for range maxRounds {
		r := s.Handle(resp)
		if r.Outcome == eaptls.Discard {
			return nil, errors.New("eaptlstest: server discarded a response")
		}
		next, err := p.Handle(r.EAP)
		if r.Result != nil {
			return r.Result, err
		}
		if err != nil {
			return nil, err
		}
		resp = next
	}
	return nil, fmt.Errorf("eaptlstest: no outcome after %d rounds", maxRounds)
}
