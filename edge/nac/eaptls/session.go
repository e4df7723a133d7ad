package eaptls

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mxedge/mxedge/edge/nac/eap"
)

// EAP-TLS flags (RFC 5216 §3.1).
const (
	flagL = 0x80 // TLS Message Length present
	flagM = 0x40 // more fragments
	flagS = 0x20 // start
)

// Outcome tells the caller what to do with a Reply.
type Outcome int

// Outcomes.
const (
	// Discard: send nothing (malformed packet, wrong identifier).
	Discard Outcome = iota
	// Challenge: send Reply.EAP in an Access-Challenge.
	Challenge
	// Accept: send Reply.EAP (EAP-Success) in an Access-Accept with the
	// MPPE keys from Reply.Result.Keys.
	Accept
	// Reject: send Reply.EAP (EAP-Failure) in an Access-Reject.
	Reject
)

func (o Outcome) String() string {
	return [...]string{"discard", "challenge", "accept", "reject"}[o]
}

// Reply is what to send back for one EAP-Response.
type Reply struct {
	EAP     []byte
	Outcome Outcome
	Result  *Result // set with Accept and Reject
}

// Result is the end of a conversation.
type Result struct {
	Outcome  Outcome // Accept or Reject
	Reason   Reason  // ReasonNone on Accept
	Err      error   // detail for logs; nil on Accept
	Identity string  // EAP-Response/Identity (the outer, possibly anonymous, identity)
	// Chain is the verified client chain, leaf first, root last.
	Chain       []*x509.Certificate
	Version     uint16
	CipherSuite uint16
	Keys        Keys
	Rounds      int
}

// Leaf is the client certificate, or nil.
func (r *Result) Leaf() *x509.Certificate {
	if len(r.Chain) == 0 {
		return nil
	}
	return r.Chain[0]
}

type phase int

const (
	phNew      phase = iota
	phIdentity       // sent Request/Identity
	phStart          // sent EAP-TLS Start
	phTLS            // handshake running
	phFinal          // our last flight is out; waiting for the peer's ACK
	phAlert          // our alert is out; any answer gets EAP-Failure
	phDone
)

// Session is one EAP-TLS conversation. Handle is safe for concurrent use
// (a NAS retransmission may race the original); calls are serialized.
//
// Identity: the caller may call Start to send EAP-Request/Identity, or
// pass the NAS's first EAP-Response/Identity straight to Handle (the usual
// case: the NAS asked for the identity itself). Either way the next
// Request is an EAP-TLS Start.
type Session struct {
	mu      sync.Mutex
	srv     *Server
	frag    int
	created time.Time

	ph       phase
	after    phase // phase once pending is drained
	reqID    uint8
	haveReq  bool
	lastReq  []byte
	lastResp []byte
	rounds   int
	bytes    int
	starts   int
	identity string

	pending []byte // rest of the flight being fragmented

	in     []byte // peer fragments being reassembled
	inLen  int    // announced TLS Message Length, -1 if none
	inFrag bool

	hs  handshakeInfo
	eng *engine
	// tlsIn counts complete TLS messages from the peer; established is
	// set once the second one (the answer to our first flight) was taken.
	tlsIn       int
	established atomic.Bool
	failR       Reason // reason to report once the alert is ACKed
	failE       error
	result      *Result
}

// Start returns EAP-Request/Identity. Call it only before any Handle, when
// the NAS forwarded an EAP-Start rather than the peer's identity.
func (s *Session) Start() Reply {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ph != phNew {
		return Reply{Outcome: Discard}
	}
	var b [1]byte
	_, _ = rand.Read(b[:])
	s.reqID = b[0] - 1 // request() increments
	s.ph = phIdentity
	return s.request(eap.TypeIdentity, nil)
}

// Established reports whether the peer's TLS handshake got past its
// first round: after its ClientHello, the peer answered our first flight
// with a TLS message that the handshake accepted. That takes a completed
// key exchange and, since the client's certificate travels in that
// answer, a certificate that passed verification. A conversation that is
// not established is half-open: it answered no more than the identity
// request, the EAP-TLS Start, our fragments or our first flight, all of
// which a sender can do for free under as many identities as it likes.
// Safe to call without the session lock (the Table does, under its own).
func (s *Session) Established() bool { return s.established.Load() }

// Result returns the outcome once the conversation ended, else nil.
func (s *Session) Result() *Result {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.result
}

// Close ends the conversation and its handshake goroutine. A conversation
// still running is recorded as timed out.
func (s *Session) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.result == nil {
		s.finish(Reject, ReasonTimeout, errors.New("conversation closed before completion"))
	}
	s.stop()
}

// done is closed when the handshake goroutine has returned (or was never
// started).
func (s *Session) done() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.eng == nil {
		c := make(chan struct{})
		close(c)
		return c
	}
	return s.eng.done
}

func (s *Session) stop() {
	if s.eng != nil {
		s.eng.close()
	}
}

// Handle processes one EAP packet from the peer (the reassembled RADIUS
// EAP-Message) and returns what to send back.
func (s *Session) Handle(msg []byte) Reply {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, err := eap.Parse(msg)
	if err != nil || p.Code != eap.CodeResponse {
		return Reply{Outcome: Discard}
	}
	if s.haveReq && p.Identifier != s.reqID {
		// A retransmitted Response: answer with the same Request again,
		// without feeding TLS twice (RFC 3748 §4.1, RFC 3579 §2.6.1).
		if s.lastResp != nil && p.Identifier == s.lastResp[1] && bytes.Equal(msg, s.lastResp) {
			return s.resend()
		}
		return Reply{Outcome: Discard}
	}
	if s.ph == phDone {
		return Reply{Outcome: Discard}
	}
	s.lastResp = append(s.lastResp[:0], msg...)
	s.rounds++
	s.bytes += len(msg)
	switch {
	case s.rounds > s.srv.cfg.MaxRounds:
		return s.fail(ReasonLimitExceeded, fmt.Errorf("more than %d rounds", s.srv.cfg.MaxRounds))
	case s.bytes > s.srv.cfg.MaxBytes:
		return s.fail(ReasonLimitExceeded, fmt.Errorf("more than %d bytes", s.srv.cfg.MaxBytes))
	case s.srv.cfg.Now().Sub(s.created) > s.srv.cfg.Lifetime:
		return s.fail(ReasonTimeout, fmt.Errorf("conversation older than %s", s.srv.cfg.Lifetime))
	}

	switch s.ph {
	case phNew, phIdentity:
		if p.Type == eap.TypeIdentity {
			s.identity = string(p.Data[:min(len(p.Data), 253)])
		}
		// Anything else as a first answer is a legacy Nak in effect:
		// we offer the one method we have.
		return s.start()
	case phStart:
		switch p.Type {
		case eap.TypeTLS:
			s.ph = phTLS
			return s.tlsResponse(p.Data)
		case eap.TypeIdentity:
			return s.start()
		case eap.TypeNak:
			return s.nak(eap.NakTypes(p.Data))
		case eap.TypeExpanded:
			if ts, ok := eap.ExpandedNakTypes(p.Data); ok {
				return s.nak(ts)
			}
		}
		return s.fail(ReasonProtocolError, fmt.Errorf("response of type %s to EAP-TLS Start", p.Type))
	default:
		if p.Type != eap.TypeTLS {
			return s.fail(ReasonProtocolError, fmt.Errorf("response of type %s during EAP-TLS", p.Type))
		}
		return s.tlsResponse(p.Data)
	}
}

func (s *Session) nak(ts []eap.Type) Reply {
	if slices.Contains(ts, eap.TypeTLS) && s.starts < 2 {
		return s.start()
	}
	return s.fail(ReasonPasswordMethodRefused,
		fmt.Errorf("peer wants %v: password methods are not available offline", ts))
}

func (s *Session) start() Reply {
	s.starts++
	if s.starts > 3 {
		return s.fail(ReasonProtocolError, errors.New("peer keeps ignoring EAP-TLS Start"))
	}
	s.ph = phStart
	return s.request(eap.TypeTLS, []byte{flagS})
}

// tlsResponse handles the type-data of an EAP-TLS Response.
func (s *Session) tlsResponse(d []byte) Reply {
	if len(d) < 1 {
		return s.fail(ReasonProtocolError, errors.New("EAP-TLS response without flags"))
	}
	flags, d := d[0], d[1:]
	announced := -1
	if flags&flagL != 0 {
		if len(d) < 4 {
			return s.fail(ReasonProtocolError, errors.New("EAP-TLS L flag without a TLS Message Length"))
		}
		announced = int(binary.BigEndian.Uint32(d))
		d = d[4:]
		if announced > MaxMessageLen {
			return s.fail(ReasonLimitExceeded, fmt.Errorf("announced TLS Message Length %d", announced))
		}
	}
	if flags&flagS != 0 {
		return s.fail(ReasonProtocolError, errors.New("peer set the Start flag"))
	}
	if len(s.pending) > 0 {
		if len(d) > 0 || flags&flagM != 0 {
			return s.fail(ReasonProtocolError, errors.New("peer sent data while we were fragmenting"))
		}
		return s.nextFragment()
	}

	if !s.inFrag {
		s.inLen = announced
	}
	if len(s.in)+len(d) > MaxMessageLen || (s.inLen >= 0 && len(s.in)+len(d) > s.inLen) {
		return s.fail(ReasonLimitExceeded, errors.New("peer message longer than announced or allowed"))
	}
	s.in = append(s.in, d...)
	if flags&flagM != 0 {
		if len(d) == 0 {
			return s.fail(ReasonProtocolError, errors.New("empty fragment with M flag"))
		}
		s.inFrag = true
		return s.request(eap.TypeTLS, []byte{0}) // ACK
	}
	msg := s.in
	if s.inLen >= 0 && len(msg) != s.inLen {
		return s.fail(ReasonProtocolError, fmt.Errorf("reassembled %d bytes, announced %d", len(msg), s.inLen))
	}
	s.in, s.inFrag, s.inLen = nil, false, -1
	return s.tlsMessage(msg)
}

// tlsMessage handles one complete peer message.
func (s *Session) tlsMessage(msg []byte) Reply {
	switch s.ph {
	case phAlert:
		return s.fail(s.failR, s.failE)
	case phFinal:
		if len(msg) > 0 {
			s.eng.step(msg)
			var perr error
			s.eng.p.Do(func() { perr = s.eng.postRead })
			if !errors.Is(perr, io.EOF) {
				return s.fail(ReasonProtocolError, fmt.Errorf("unexpected data after handshake: %v", perr))
			}
		}
		return s.succeed()
	}
	if len(msg) == 0 {
		return s.fail(ReasonProtocolError, errors.New("empty EAP-TLS response while a TLS flight was expected"))
	}
	if s.eng == nil {
		s.eng = startEngine(s.srv.tlsConfig(&s.hs))
	}
	s.tlsIn++
	out := s.eng.step(msg)
	e := s.eng
	var hsDone, finished bool
	var herr error
	e.p.Do(func() { hsDone, finished, herr = e.hsDone, e.finished, e.err })
	switch {
	case herr != nil || (finished && !hsDone):
		if herr == nil {
			herr = errors.New("handshake ended")
		}
		r := reasonOf(herr, ReasonTLSFailed)
		if len(out) == 0 {
			return s.fail(r, herr)
		}
		// RFC 5216 §2.1.3: the alert goes to the peer, its ACK gets the
		// Failure.
		s.failR, s.failE = r, herr
		return s.flight(out, phAlert)
	case hsDone:
		if len(out) == 0 {
			return s.fail(ReasonProtocolError, errors.New("handshake finished without a final flight"))
		}
		s.established.Store(s.tlsIn >= 2)
		return s.flight(out, phFinal)
	case len(out) == 0:
		return s.fail(ReasonProtocolError, errors.New("peer flight incomplete"))
	}
	s.established.Store(s.tlsIn >= 2)
	return s.flight(out, phTLS)
}

// flight starts sending out, fragmented; ph becomes after once the last
// fragment is out.
func (s *Session) flight(out []byte, after phase) Reply {
	s.after = after
	if len(out) <= s.frag {
		s.ph = after
		return s.request(eap.TypeTLS, append([]byte{0}, out...))
	}
	d := make([]byte, 5, 5+s.frag)
	d[0] = flagL | flagM
	binary.BigEndian.PutUint32(d[1:], uint32(len(out)))
	d = append(d, out[:s.frag]...)
	s.pending = out[s.frag:]
	return s.request(eap.TypeTLS, d)
}

func (s *Session) nextFragment() Reply {
	n := min(len(s.pending), s.frag)
	d := make([]byte, 1, 1+n)
	if n < len(s.pending) {
		d[0] = flagM
	}
	d = append(d, s.pending[:n]...)
	s.pending = s.pending[n:]
	if len(s.pending) == 0 {
		s.pending = nil
		s.ph = s.after
	}
	return s.request(eap.TypeTLS, d)
}

// request sends a new Request with a fresh identifier.
func (s *Session) request(t eap.Type, data []byte) Reply {
	if s.lastResp != nil {
		s.reqID = s.lastResp[1] + 1
	} else {
		s.reqID++
	}
	s.haveReq = true
	b, _ := eap.Packet{Code: eap.CodeRequest, Identifier: s.reqID, Type: t, Data: data}.Encode()
	s.lastReq = b
	return Reply{EAP: b, Outcome: Challenge}
}

func (s *Session) resend() Reply {
	r := Reply{EAP: s.lastReq, Outcome: Challenge}
	if s.result != nil {
		r.Outcome, r.Result = s.result.Outcome, s.result
	}
	return r
}

func (s *Session) succeed() Reply {
	e := s.eng
	var st tls.ConnectionState
	var keys Keys
	e.p.Do(func() { st, keys = e.state, e.keys })
	s.finish(Accept, ReasonNone, nil)
	s.result.Chain, s.result.Keys = s.hs.chain, keys
	s.result.Version, s.result.CipherSuite = st.Version, st.CipherSuite
	return s.final(eap.CodeSuccess)
}

func (s *Session) fail(r Reason, err error) Reply {
	s.finish(Reject, r, err)
	return s.final(eap.CodeFailure)
}

func (s *Session) finish(o Outcome, r Reason, err error) {
	s.ph = phDone
	s.pending, s.in = nil, nil
	s.result = &Result{Outcome: o, Reason: r, Err: err, Identity: s.identity, Rounds: s.rounds}
	s.stop()
	lvl := "accept"
	if o != Accept {
		lvl = "reject"
	}
	if log := s.srv.cfg.Logger; log.Enabled(context.Background(), slog.LevelDebug) {
		log.Debug("eap-tls conversation ended", "outcome", lvl, "reason", string(r),
			"identity", s.identity, "rounds", s.rounds, "err", err)
	}
}

// final encodes Success or Failure. Its identifier is the Response's
// (RFC 3748 §4.2).
func (s *Session) final(c eap.Code) Reply {
	id := s.reqID
	if s.lastResp != nil {
		id = s.lastResp[1]
	}
	b, _ := eap.Packet{Code: c, Identifier: id}.Encode()
	s.lastReq = b
	s.reqID = id + 1 // nothing valid can carry this id any more
	s.haveReq = true
	return Reply{EAP: b, Outcome: s.result.Outcome, Result: s.result}
}
