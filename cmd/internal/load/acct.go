package load

import (
	"context"
	"encoding/binary"
	"errors"
	"time"

	"github.com/mxedge/mxedge/proxy/packet"
)

// AcctStatus is Acct-Status-Type (RFC 2866 §5.1).
type AcctStatus uint32

const (
	AcctStart   AcctStatus = 1
	AcctStop    AcctStatus = 2
	AcctInterim AcctStatus = 3 // Interim-Update
)

// Acct is one accounting record as a switch reports a port's session.
type Acct struct {
	Status    AcctStatus
	SessionID string // Acct-Session-Id
	MAC       string // User-Name; dashed as Calling-Station-Id
	// SessionTime is Acct-Session-Time in seconds. It only grows within a
	// session, which makes it the per-session sequence a test checks the
	// upstream order by.
	SessionTime uint32
	// Event is Event-Timestamp; the time of the first transmission when
	// zero.
	Event time.Time
	// Class is echoed from the session's Access-Accept, as switches do.
	Class []byte
}

// AcctRec is one Accounting-Request's fate.
type AcctRec struct {
	Acct
	Start time.Time // first transmission
	// Try is the transmission during whose wait the answer came, 1..Tries,
	// or 0 when none came.
	Try    int
	Answer time.Time // zero when not answered
	// Delays are the Acct-Delay-Time of each transmission made.
	Delays []uint32
	// Err is set when the request was cut short rather than lost.
	Err error
}

// Answered reports whether an Accounting-Response came.
func (r AcctRec) Answered() bool { return r.Try > 0 }

// Lost reports whether the request exhausted its retries unanswered.
func (r AcctRec) Lost() bool { return r.Try == 0 && r.Err == nil }

// Account sends a as an Accounting-Request (Acct-Delay-Time 0) and
// retransmits it until answered or out of tries. Each retransmission
// carries Acct-Delay-Time raised to the seconds since the first (at least
// one more than the last, so it always differs) and so is a new packet:
// new identifier, new Request Authenticator (RFC 2866 §5.2, RFC 5080
// §2.2.1). An answer to any of its transmissions counts.
func (s *Switch) Account(ctx context.Context, a Acct) AcctRec {
	rec := AcctRec{Acct: a, Start: time.Now()}
	if s.cfg.Acct == "" {
		rec.Err = errors.New("load: switch has no accounting server")
		return rec
	}
	if rec.Event.IsZero() {
		rec.Event = rec.Start
	}
	replies := make(chan []byte, 4)
	// The authenticator of each identifier this request used.
	sent := map[uint8][16]byte{}
	var slots []slot
	defer func() {
		for _, sl := range slots {
			s.acct.release(sl)
		}
	}()
	var reply packet.Packet
	timer := time.NewTimer(s.cfg.Timeout)
	defer timer.Stop()
	var delay uint32
	for try := 1; try <= s.cfg.Tries; try++ {
		sl, err := s.acct.acquire(replies)
		if err != nil {
			rec.Err = err
			return rec
		}
		slots = append(slots, sl)
		if try > 1 {
			delay = max(delay+1, uint32(time.Since(rec.Start)/time.Second))
			timer.Reset(s.cfg.Timeout)
		}
		req, err := acctRequest(sl.id, rec.Acct, delay, s.cfg.Secret)
		if err != nil {
			rec.Err = err
			return rec
		}
		sent[sl.id] = [16]byte(req[4:20])
		rec.Delays = append(rec.Delays, delay)
		sl.send(req)
		answered, err := awaitReply(ctx, replies, timer, &reply, func(r *packet.Packet) bool {
			ra, ok := sent[r.ID]
			if r.Code != packet.CodeAccountingResponse || !ok {
				return false
			}
			_, err := packet.VerifyResponse(r, ra, s.cfg.Secret)
			return err == nil
		})
		if err != nil {
			rec.Err = err
			return rec
		}
		if answered {
			rec.Try, rec.Answer = try, time.Now()
			return rec
		}
	}
	return rec
}

// acctRequest encodes a signed Accounting-Request.
func acctRequest(id uint8, a Acct, delay uint32, secret []byte) ([]byte, error) {
	u32 := func(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }
	b := packet.Append(make([]byte, 0, 256), packet.CodeAccountingRequest, id, [16]byte{})
	attrs := []packet.Attr{
		{Type: packet.AttrUserName, Value: []byte(a.MAC)},
		{Type: packet.AttrAcctStatusType, Value: u32(uint32(a.Status))},
		{Type: attrAcctSessionID, Value: []byte(a.SessionID)},
		{Type: attrAcctDelayTime, Value: u32(delay)},
		{Type: attrEventTimestamp, Value: u32(uint32(a.Event.Unix()))},
		{Type: attrAcctSessionTime, Value: u32(a.SessionTime)},
		{Type: packet.AttrCallingStationID, Value: []byte(dashed(a.MAC))},
		{Type: packet.AttrNASIPAddress, Value: []byte{127, 0, 0, 1}},
		{Type: packet.AttrNASPortType, Value: u32(15)}, // Ethernet
	}
	if a.Status == AcctStop {
		attrs = append(attrs, packet.Attr{Type: attrAcctTerminateCause, Value: u32(1)}) // User-Request
	}
	if len(a.Class) > 0 {
		attrs = append(attrs, packet.Attr{Type: attrClass, Value: a.Class})
	}
	var err error
	for _, at := range attrs {
		if b, err = packet.AppendAttr(b, at.Type, at.Value); err != nil {
			return nil, err
		}
	}
	return b, packet.Sign(b, secret, nil)
}
