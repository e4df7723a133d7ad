package load

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"reflect"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/mxedge/mxedge/proxy/packet"
)

// lossyServer answers Access-Requests with an Accept carrying cloud-like
// attributes and Accounting-Requests with a Response, dropping the
// transmissions drop picks, and records every transmission it received.
type lossyServer struct {
	pc     net.PacketConn
	secret []byte
	// drop is told the request and how many copies of it (this one
	// included) arrived; a copy is the same Access-Request authenticator,
	// or the same accounting session, status and session time.
	drop func(p *packet.Packet, copies int) bool

	mu   sync.Mutex
	auth map[[16]byte][][]byte // Access-Request transmissions by authenticator
	acct map[string][]acctSeen // Accounting-Request transmissions by session key
}

type acctSeen struct {
	id    uint8
	ra    [16]byte
	delay uint32
	class string
}

func startLossy(t *testing.T, secret []byte, drop func(*packet.Packet, int) bool) *lossyServer {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &lossyServer{pc: pc, secret: secret, drop: drop, auth: map[[16]byte][][]byte{}, acct: map[string][]acctSeen{}}
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.serve(t)
	}()
	t.Cleanup(func() { pc.Close(); <-done })
	return s
}

func (s *lossyServer) serve(t *testing.T) {
	buf := make([]byte, packet.MaxLen)
	for {
		m, from, err := s.pc.ReadFrom(buf)
		if err != nil {
			return
		}
		req, err := packet.Parse(append([]byte(nil), buf[:m]...))
		if err != nil {
			t.Errorf("unparsable request: %v", err)
			return
		}
		if _, err := packet.VerifyRequest(req, s.secret); err != nil {
			t.Errorf("%v does not verify: %v", req.Code, err)
			return
		}
		var copies int
		var b []byte
		s.mu.Lock()
		switch req.Code {
		case packet.CodeAccessRequest:
			s.auth[req.Authenticator] = append(s.auth[req.Authenticator], req.Raw)
			copies = len(s.auth[req.Authenticator])
			b = packet.Append(nil, packet.CodeAccessAccept, req.ID, req.Authenticator)
			b = packet.AppendMessageAuthenticator(b)
			b, _ = packet.AppendAttr(b, packet.AttrTunnelPrivateGroupID, []byte("\x01100"))
			b, _ = packet.AppendAttr(b, attrSessionTimeout, binary.BigEndian.AppendUint32(nil, 3600))
			b, _ = packet.AppendAttr(b, attrTerminationAction, binary.BigEndian.AppendUint32(nil, 1))
			b, _ = packet.AppendAttr(b, packet.AttrReplyMessage, []byte("cloud"))
			b, _ = packet.AppendAttr(b, attrClass, []byte("c1"))
		case packet.CodeAccountingRequest:
			sid, _ := req.Lookup(attrAcctSessionID)
			st, _ := req.Lookup(packet.AttrAcctStatusType)
			stime, _ := req.Lookup(attrAcctSessionTime)
			key := fmt.Sprintf("%s/%x/%x", sid, st, stime)
			d, _ := req.Lookup(attrAcctDelayTime)
			class, _ := req.Lookup(attrClass)
			s.acct[key] = append(s.acct[key], acctSeen{req.ID, req.Authenticator, binary.BigEndian.Uint32(d), string(class)})
			copies = len(s.acct[key])
			b = packet.Append(nil, packet.CodeAccountingResponse, req.ID, req.Authenticator)
		}
		s.mu.Unlock()
		if s.drop(req, copies) {
			continue
		}
		if err := packet.Sign(b, s.secret, &req.Authenticator); err != nil {
			t.Error(err)
			return
		}
		s.pc.WriteTo(b, from)
	}
}

// leakCheck fails the test if it left goroutines running (bounded wait).
func leakCheck(t *testing.T) {
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		for deadline := time.Now().Add(5 * time.Second); runtime.NumGoroutine() > before; time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Errorf("%d goroutines before, %d after", before, runtime.NumGoroutine())
				return
			}
		}
	})
}

func newSwitch(t *testing.T, s *lossyServer) *Switch {
	t.Helper()
	addr := s.pc.LocalAddr().String()
	// Timeouts far above a loopback round trip even under -race on shared
	// cores: only a dropped transmission may cause a retry.
	sw, err := NewSwitch(SwitchConfig{Auth: addr, Acct: addr, Secret: s.secret, Timeout: time.Second, Tries: 3})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sw.Close() })
	return sw
}

var streamMACs = []string{"aabbcc000000", "aabbcc000001", "aabbcc000002", "aabbcc000003"}

// dropByMAC drops the first k transmissions of requests for streamMACs[k]:
// MAC 0 answered at once, MAC 1 on the retry, MAC 2 on the last try,
// MAC 3 lost.
func dropByMAC(p *packet.Packet, copies int) bool {
	mac, _ := p.Lookup(packet.AttrUserName)
	k := slices.Index(streamMACs, string(mac))
	return copies <= k
}

func TestSwitchStreamRetriesAndLosses(t *testing.T) {
	leakCheck(t)
	srv := startLossy(t, []byte("switch-test"), dropByMAC)
	sw := newSwitch(t, srv)
	var (
		mu   sync.Mutex
		live []int
	)
	spec := StreamSpec{Rate: 200, Count: 40, Duration: 30 * time.Second, MACs: streamMACs,
		OnRecord: func(r AuthRec) { mu.Lock(); live = append(live, r.Seq); mu.Unlock() }}
	res, err := sw.Stream(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Recs) != spec.Count || len(live) != spec.Count {
		t.Fatalf("%d records, %d live callbacks; want %d", len(res.Recs), len(live), spec.Count)
	}
	slices.Sort(live)
	for i, r := range res.Recs {
		if r.Seq != i || live[i] != i {
			t.Fatalf("record %d has Seq %d (live %d)", i, r.Seq, live[i])
		}
		k := i % len(streamMACs)
		wantTry := k + 1
		if k == 3 {
			wantTry = 0
		}
		if r.MAC != streamMACs[k] || r.Try != wantTry || r.Err != nil {
			t.Errorf("request %d (%s): try %d err %v; want try %d", i, r.MAC, r.Try, r.Err, wantTry)
		}
		if r.Answered() && (r.Code != packet.CodeAccessAccept || r.Reply.VLAN != "100" || r.Reply.ReplyMessage != "cloud" ||
			r.Reply.Class != "c1" || r.Reply.SessionTimeout != 3600 || r.Reply.TerminationAction != 1 || r.Latency() <= 0) {
			t.Errorf("request %d: %v %+v", i, r.Code, r.Reply)
		}
	}
	if got := res.Answered(); got != 30 {
		t.Errorf("answered %d, want 30", got)
	}
	if got := len(res.Retried()); got != 20 {
		t.Errorf("retried %d, want 20", got)
	}
	if got := len(res.Lost()); got != 10 {
		t.Errorf("lost %d, want 10", got)
	}
	// A retransmission is the same packet, byte for byte; a lost request
	// was sent Tries times.
	srv.mu.Lock()
	if len(srv.auth) != spec.Count {
		t.Errorf("server saw %d distinct requests, want %d", len(srv.auth), spec.Count)
	}
	for _, copies := range srv.auth {
		mac, _ := packet.Parse(copies[0])
		u, _ := mac.Lookup(packet.AttrUserName)
		if want := slices.Index(streamMACs, string(u)) + 1; len(copies) != min(want, 3) {
			t.Errorf("%s sent %d times, want %d", u, len(copies), min(want, 3))
		}
		for _, c := range copies[1:] {
			if !bytes.Equal(c, copies[0]) {
				t.Errorf("retransmission of %s differs", u)
			}
		}
	}
	srv.mu.Unlock()

	first, ok := res.FirstAnswerAfter(res.Start, nil)
	if !ok || first.Seq != 0 {
		t.Errorf("first answer: %+v %v; want request 0", first, ok)
	}
	retried, ok := res.FirstAnswerAfter(res.Start, func(r AuthRec) bool { return r.Try == 3 })
	if !ok || retried.MAC != streamMACs[2] {
		t.Errorf("first third-try answer: %+v %v", retried, ok)
	}
	if _, ok := res.FirstAnswerAfter(res.End, nil); ok {
		t.Error("an answer after the stream ended")
	}
	if by := res.ByAnswer(); len(by) != 30 || !slices.IsSortedFunc(by, func(a, b AuthRec) int { return a.Answer.Compare(b.Answer) }) {
		t.Errorf("ByAnswer: %d records, sorted %v", len(by), slices.IsSortedFunc(by, func(a, b AuthRec) int { return a.Answer.Compare(b.Answer) }))
	}
}

func TestSwitchStreamBounds(t *testing.T) {
	leakCheck(t)
	srv := startLossy(t, []byte("switch-test"), func(*packet.Packet, int) bool { return false })
	sw := newSwitch(t, srv)
	t.Run("duration bounds count", func(t *testing.T) {
		res, err := sw.Stream(context.Background(), StreamSpec{Rate: 100, Count: 1000, Duration: 50 * time.Millisecond, MACs: streamMACs[:1]})
		// At most one start per 1/Rate within Duration, the first at once.
		if err != nil || len(res.Recs) == 0 || len(res.Recs) > 6 {
			t.Fatalf("%d requests, %v; want 1..6", len(res.Recs), err)
		}
	})
	t.Run("cancel", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if _, err := sw.Stream(ctx, StreamSpec{Rate: 1, Count: 10, Duration: time.Minute, MACs: streamMACs}); err != context.Canceled {
			t.Fatalf("err %v, want canceled", err)
		}
	})
	for _, bad := range []StreamSpec{{Count: 1, Duration: 1, MACs: streamMACs}, {Rate: 1, Duration: 1, MACs: streamMACs},
		{Rate: 1, Count: 1, MACs: streamMACs}, {Rate: 1, Count: 1, Duration: 1}} {
		if _, err := sw.Stream(context.Background(), bad); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
}

func TestSwitchAccountingRetries(t *testing.T) {
	leakCheck(t)
	// Drop the first transmissions of sessions named by how many to drop.
	drop := func(p *packet.Packet, copies int) bool {
		sid, _ := p.Lookup(attrAcctSessionID)
		n := map[string]int{"ok": 0, "retry1": 1, "retry2": 2, "lost": 3}[string(sid)]
		return copies <= n
	}
	srv := startLossy(t, []byte("switch-test"), drop)
	sw := newSwitch(t, srv)
	tests := []struct {
		session string
		status  AcctStatus
		wantTry int
	}{{"ok", AcctStart, 1}, {"retry1", AcctInterim, 2}, {"retry2", AcctStop, 3}, {"lost", AcctStart, 0}}
	recs := make([]AcctRec, len(tests))
	var wg sync.WaitGroup
	for i, tc := range tests {
		wg.Add(1)
		go func() {
			defer wg.Done()
			recs[i] = sw.Account(context.Background(), Acct{Status: tc.status, SessionID: tc.session, MAC: "aabbcc000001",
				SessionTime: uint32(i), Class: []byte("c1")})
		}()
	}
	wg.Wait()
	srv.mu.Lock()
	defer srv.mu.Unlock()
	for i, tc := range tests {
		r := recs[i]
		sent := min(tc.wantTry, 3)
		if tc.wantTry == 0 {
			sent = 3
		}
		if r.Try != tc.wantTry || r.Err != nil || r.Lost() != (tc.wantTry == 0) || len(r.Delays) != sent || r.Event.IsZero() {
			t.Errorf("%s: try %d err %v delays %v; want try %d after %d transmissions", tc.session, r.Try, r.Err, r.Delays, tc.wantTry, sent)
		}
		key := fmt.Sprintf("%s/%x/%x", tc.session, binary.BigEndian.AppendUint32(nil, uint32(tc.status)), binary.BigEndian.AppendUint32(nil, uint32(i)))
		seen := srv.acct[key]
		if len(seen) != sent {
			t.Errorf("%s: server saw %d transmissions, want %d", tc.session, len(seen), sent)
			continue
		}
		// Each retransmission is a new packet: new identifier and
		// authenticator, Acct-Delay-Time raised; the Class is echoed.
		for j, s := range seen {
			if s.delay != r.Delays[j] || s.class != "c1" {
				t.Errorf("%s transmission %d: delay %d class %q; switch says delay %d", tc.session, j, s.delay, s.class, r.Delays[j])
			}
			if j == 0 {
				if s.delay != 0 {
					t.Errorf("%s: first Acct-Delay-Time %d, want 0", tc.session, s.delay)
				}
				continue
			}
			if p := seen[j-1]; s.delay <= p.delay || s.id == p.id || s.ra == p.ra {
				t.Errorf("%s transmission %d not a new packet: %+v after %+v", tc.session, j, s, p)
			}
		}
	}
}

func TestParseReply(t *testing.T) {
	build := func(attrs ...packet.Attr) *packet.Packet {
		b := packet.Append(nil, packet.CodeAccessAccept, 1, [16]byte{})
		for _, a := range attrs {
			b, _ = packet.AppendAttr(b, a.Type, a.Value)
		}
		binary.BigEndian.PutUint16(b[2:], uint16(len(b)))
		p, err := packet.Parse(b)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	u32 := func(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }
	tests := []struct {
		name  string
		attrs []packet.Attr
		want  Reply
	}{
		{"empty", nil, Reply{SessionTimeout: -1, TerminationAction: -1}},
		{"untagged VLAN", []packet.Attr{{Type: packet.AttrTunnelPrivateGroupID, Value: []byte("200")}},
			Reply{VLAN: "200", SessionTimeout: -1, TerminationAction: -1}},
		{"tagged VLAN, timers, two messages, two classes", []packet.Attr{
			{Type: packet.AttrTunnelPrivateGroupID, Value: []byte("\x00300")},
			{Type: attrSessionTimeout, Value: u32(60)}, {Type: attrTerminationAction, Value: u32(0)},
			{Type: packet.AttrReplyMessage, Value: []byte("local ")}, {Type: packet.AttrReplyMessage, Value: []byte("fallback")},
			{Type: attrClass, Value: []byte("a")}, {Type: attrClass, Value: []byte("b")},
		}, Reply{VLAN: "300", SessionTimeout: 60, TerminationAction: 0, ReplyMessage: "local fallback", Class: "a"}},
		{"malformed timer ignored", []packet.Attr{{Type: attrSessionTimeout, Value: []byte{1}}},
			Reply{SessionTimeout: -1, TerminationAction: -1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := parseReply(build(tc.attrs...))
			if len(got.Attrs) != len(tc.attrs) {
				t.Errorf("%d attributes kept, want %d", len(got.Attrs), len(tc.attrs))
			}
			got.Attrs = nil
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func FuzzParseReply(f *testing.F) {
	b := packet.Append(nil, packet.CodeAccessAccept, 1, [16]byte{})
	b, _ = packet.AppendAttr(b, packet.AttrTunnelPrivateGroupID, []byte("\x01100"))
	b, _ = packet.AppendAttr(b, attrSessionTimeout, []byte{0, 0, 14, 16})
	b, _ = packet.AppendAttr(b, attrClass, []byte("c1"))
	binary.BigEndian.PutUint16(b[2:], uint16(len(b)))
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := packet.Parse(b)
		if err != nil {
			return
		}
		r := parseReply(p)
		if len(r.Attrs) != len(p.Attrs) || r.SessionTimeout < -1 || r.TerminationAction < -1 {
			t.Fatalf("%+v from %d attributes", r, len(p.Attrs))
		}
	})
}
