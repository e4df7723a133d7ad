package load

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/mxedge/mxedge/proxy/packet"
)

// Attribute types a switch sends in accounting or reads from an accept,
// beyond those packet names.
const (
	attrClass              = 25
	attrSessionTimeout     = 27
	attrTerminationAction  = 29
	attrAcctDelayTime      = 41
	attrAcctSessionID      = 44
	attrAcctSessionTime    = 46
	attrAcctTerminateCause = 49
	attrEventTimestamp     = 55
)

// SwitchConfig configures a Switch.
type SwitchConfig struct {
	// Auth and Acct are the authentication and accounting servers'
	// host:port; either may be empty when the test doesn't use it.
	Auth, Acct string
	Secret     []byte
	// Timeout is how long each transmission waits for its answer (5 s
	// when zero, as on common switches).
	Timeout time.Duration
	// Tries is how many times a request is sent in all, the first
	// transmission included, before it is lost (3 when zero).
	Tries int
}

// Switch is a RADIUS client that behaves like an access switch's: each
// request keeps its (source port, identifier) until answered or given up,
// waits Timeout for an answer, and is retransmitted up to Tries times in
// all. A MAB Access-Request is retransmitted byte for byte; an
// Accounting-Request is re-sent with Acct-Delay-Time raised, so under a
// new identifier and re-signed (RFC 2866 §5.2).
//
// Unlike RunLoad it does not wait for one answer before the next request:
// requests run concurrently, as a switch's ports do, which is what a
// failover test needs to see requests pile up behind a WAN cut.
type Switch struct {
	cfg        SwitchConfig
	auth, acct *udpPool
}

// NewSwitch returns a Switch; it opens sockets on first use.
func NewSwitch(cfg SwitchConfig) (*Switch, error) {
	if cfg.Auth == "" && cfg.Acct == "" {
		return nil, errors.New("load: switch needs an auth or accounting server")
	}
	if len(cfg.Secret) == 0 {
		return nil, errors.New("load: switch needs a secret")
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Second
	}
	if cfg.Tries <= 0 {
		cfg.Tries = 3
	}
	return &Switch{cfg: cfg, auth: newUDPPool(cfg.Auth), acct: newUDPPool(cfg.Acct)}, nil
}

// Close closes the switch's sockets. Requests in flight end lost.
func (s *Switch) Close() error {
	s.auth.Close()
	s.acct.Close()
	return nil
}

// Reply is what an answer carried that tells a test who answered: the
// cloud and the local fallback differ in VLAN, Reply-Message or Class.
type Reply struct {
	// VLAN is Tunnel-Private-Group-Id, its tag octet removed.
	VLAN string
	// SessionTimeout and TerminationAction are -1 when absent.
	SessionTimeout    int64
	TerminationAction int64
	// ReplyMessage joins all Reply-Message values (RFC 2865 §5.18).
	ReplyMessage string
	// Class is the first Class value, as octets in a string.
	Class string
	// Attrs are all the reply's attributes, copied.
	Attrs []packet.Attr
}

func parseReply(p *packet.Packet) Reply {
	r := Reply{SessionTimeout: -1, TerminationAction: -1}
	classSeen := false
	for _, a := range p.Attrs {
		v := append([]byte(nil), a.Value...)
		r.Attrs = append(r.Attrs, packet.Attr{Type: a.Type, Value: v})
		switch a.Type {
		case packet.AttrTunnelPrivateGroupID:
			if len(v) > 0 && v[0] <= 0x1f { // RFC 2868 §3.6: a tag
				v = v[1:]
			}
			if r.VLAN == "" {
				r.VLAN = string(v)
			}
		case attrSessionTimeout:
			if len(v) == 4 {
				r.SessionTimeout = int64(binary.BigEndian.Uint32(v))
			}
		case attrTerminationAction:
			if len(v) == 4 {
				r.TerminationAction = int64(binary.BigEndian.Uint32(v))
			}
		case packet.AttrReplyMessage:
			r.ReplyMessage += string(v)
		case attrClass:
			if !classSeen {
				r.Class, classSeen = string(v), true
			}
		}
	}
	return r
}

// AuthRec is one MAB request's fate.
type AuthRec struct {
	// Seq is the request's place in its stream (0 for a lone MAB call).
	Seq   int
	MAC   string
	Start time.Time // first transmission
	// Try is the transmission during whose wait the answer came, 1..Tries
	// (above 1: it needed a retry; retransmissions are identical, so which
	// copy was answered can't be told), or 0 when none came.
	Try    int
	Answer time.Time // zero when not answered
	Code   packet.Code
	Reply  Reply
	// Err is set when the request was cut short rather than lost: the
	// context ended, the switch was closed, or no identifier was free.
	Err error
}

// Answered reports whether an answer came.
func (r AuthRec) Answered() bool { return r.Try > 0 }

// Lost reports whether the request exhausted its retries unanswered.
func (r AuthRec) Lost() bool { return r.Try == 0 && r.Err == nil }

// Latency is from the first transmission to the answer (0 when none).
func (r AuthRec) Latency() time.Duration {
	if !r.Answered() {
		return 0
	}
	return r.Answer.Sub(r.Start)
}

// MAB sends one MAB Access-Request for mac (with Message-Authenticator,
// like MABRequest) and retransmits it until answered or out of tries.
func (s *Switch) MAB(ctx context.Context, mac string) AuthRec {
	rec := AuthRec{MAC: mac, Start: time.Now()}
	if s.cfg.Auth == "" {
		rec.Err = errors.New("load: switch has no auth server")
		return rec
	}
	replies := make(chan []byte, 4)
	sl, err := s.auth.acquire(replies)
	if err != nil {
		rec.Err = err
		return rec
	}
	defer s.auth.release(sl)
	req := newMABEncoder().request(nil, sl.id, mac, dashed(mac), s.cfg.Secret)
	ra := [16]byte(req[4:20])
	var reply packet.Packet
	timer := time.NewTimer(s.cfg.Timeout)
	defer timer.Stop()
	for try := 1; try <= s.cfg.Tries; try++ {
		if try == 1 {
			rec.Start = time.Now()
		} else {
			timer.Reset(s.cfg.Timeout)
		}
		sl.send(req)
		answered, err := awaitReply(ctx, replies, timer, &reply, func(r *packet.Packet) bool {
			switch r.Code {
			case packet.CodeAccessAccept, packet.CodeAccessReject, packet.CodeAccessChallenge:
			default:
				return false
			}
			if r.ID != sl.id {
				return false
			}
			// A late reply to the identifier's previous holder fails here.
			_, err := packet.VerifyResponse(r, ra, s.cfg.Secret)
			return err == nil
		})
		if err != nil {
			rec.Err = err
			return rec
		}
		if answered {
			rec.Try, rec.Answer, rec.Code, rec.Reply = try, time.Now(), reply.Code, parseReply(&reply)
			return rec
		}
	}
	return rec
}

// awaitReply reads replies into reply until one that match accepts
// arrives (true), the timer fires (false: time to retransmit or give up)
// or ctx ends (its error). Replies that don't parse are skipped.
func awaitReply(ctx context.Context, replies <-chan []byte, timer *time.Timer, reply *packet.Packet, match func(*packet.Packet) bool) (bool, error) {
	for {
		select {
		case b := <-replies:
			if reply.Parse(b) == nil && match(reply) {
				return true, nil
			}
		case <-timer.C:
			return false, nil
		case <-ctx.Done():
			return false, ctx.Err()
		}
	}
}

// StreamSpec is a paced MAB stream: one request every 1/Rate seconds,
// cycling through MACs, until Count requests were started or Duration
// passed, whichever comes first. Requests in flight then run to their
// answer or last retry, so a stream ends at most Timeout×Tries after its
// last start.
type StreamSpec struct {
	Rate     float64 // requests per second
	Count    int
	Duration time.Duration
	MACs     []string
	// OnRecord, if set, is called with each request's record as soon as
	// it is final, from the request's goroutine (concurrently, in no
	// particular order): a test can watch answers as they come.
	OnRecord func(AuthRec)
}

// StreamResult holds every started request's record, in Seq order.
type StreamResult struct {
	Recs       []AuthRec
	Start, End time.Time
}

// Stream runs spec. It returns ctx's error when ctx ended the stream;
// requests cut short then carry it in Err.
func (s *Switch) Stream(ctx context.Context, spec StreamSpec) (StreamResult, error) {
	if spec.Rate <= 0 || spec.Count <= 0 || spec.Duration <= 0 {
		return StreamResult{}, fmt.Errorf("load: stream needs Rate, Count and Duration above zero (got %v, %d, %v)", spec.Rate, spec.Count, spec.Duration)
	}
	if len(spec.MACs) == 0 {
		return StreamResult{}, errors.New("load: no MACs to send")
	}
	n := spec.Count
	if max := int(spec.Rate*spec.Duration.Seconds()) + 1; max < n {
		n = max
	}
	recs := make([]AuthRec, n)
	res := StreamResult{Start: time.Now()}
	end := res.Start.Add(spec.Duration)
	var wg sync.WaitGroup
	timer := time.NewTimer(0)
	defer timer.Stop()
	started := 0
pace:
	for i := 0; i < n; i++ {
		due := res.Start.Add(time.Duration(float64(i) / spec.Rate * float64(time.Second)))
		if !due.Before(end) {
			break
		}
		timer.Reset(time.Until(due))
		select {
		case <-ctx.Done():
			break pace
		case <-timer.C:
		}
		started++
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			r := s.MAB(ctx, spec.MACs[i%len(spec.MACs)])
			r.Seq = i
			recs[i] = r
			if spec.OnRecord != nil {
				spec.OnRecord(r)
			}
		}(i)
	}
	wg.Wait()
	res.End = time.Now()
	res.Recs = recs[:started]
	return res, ctx.Err()
}

// Answered counts answered requests.
func (r StreamResult) Answered() int {
	n := 0
	for _, x := range r.Recs {
		if x.Answered() {
			n++
		}
	}
	return n
}

// Lost returns the requests that exhausted their retries unanswered.
func (r StreamResult) Lost() []AuthRec {
	return r.filter(AuthRec.Lost)
}

// Retried returns the answered requests that needed a retransmission.
func (r StreamResult) Retried() []AuthRec {
	return r.filter(func(x AuthRec) bool { return x.Try > 1 })
}

// Failed returns the requests cut short (Err set).
func (r StreamResult) Failed() []AuthRec {
	return r.filter(func(x AuthRec) bool { return x.Err != nil })
}

func (r StreamResult) filter(keep func(AuthRec) bool) []AuthRec {
	var out []AuthRec
	for _, x := range r.Recs {
		if keep(x) {
			out = append(out, x)
		}
	}
	return out
}

// FirstAnswerAfter returns the earliest answer that came after t and
// satisfies pred (nil: any answer), e.g. the first answer after a cut, or
// the first cloud answer after a restore.
func (r StreamResult) FirstAnswerAfter(t time.Time, pred func(AuthRec) bool) (AuthRec, bool) {
	var best AuthRec
	found := false
	for _, x := range r.Recs {
		if !x.Answered() || !x.Answer.After(t) || (pred != nil && !pred(x)) {
			continue
		}
		if !found || x.Answer.Before(best.Answer) {
			best, found = x, true
		}
	}
	return best, found
}

// ByAnswer returns the answered records ordered by answer time.
func (r StreamResult) ByAnswer() []AuthRec {
	out := r.filter(AuthRec.Answered)
	sort.SliceStable(out, func(i, j int) bool { return out[i].Answer.Before(out[j].Answer) })
	return out
}
