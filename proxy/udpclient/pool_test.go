package udpclient

import (
	"context"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/mxedge/mxedge/proxy"
	"github.com/mxedge/mxedge/proxy/packet"
)

func newPool(t *testing.T, cfg Config) *Pool {
	t.Helper()
	if cfg.Name == "" {
		cfg.Name = "test/auth"
	}
	if cfg.StatusInterval == 0 {
		cfg.StatusInterval = -1 // probes off unless a test wants them
	}
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

func servers(fs ...*fakeServer) []ServerConfig {
	var out []ServerConfig
	for _, f := range fs {
		out = append(out, ServerConfig{Address: f.addr(), Secret: f.secret})
	}
	return out
}

func pap(t testing.TB, id uint8, user string) *proxy.Request {
	return nasRequest(t, packet.CodeAccessRequest, id,
		attr(packet.AttrUserName, user), attr(packet.AttrUserPassword, "pw"),
		attr(packet.AttrCallingStationID, "02-00-00-00-00-01"))
}

func TestRoundRobinSpreadsEvenly(t *testing.T) {
	a := startFake(t, "secret-a-0123456789", accept("a"))
	b := startFake(t, "secret-b-0123456789", accept("b"))
	p := newPool(t, Config{Servers: servers(a, b)})
	got := map[string]int{}
	for i := range 20 {
		req := pap(t, uint8(i), fmt.Sprintf("u%d@example.org", i))
		reply, outcome, err := p.Forward(context.Background(), req)
		if err != nil || outcome != proxy.OutcomeAnswered {
			t.Fatalf("forward %d: %s %v", i, outcome, err)
		}
		got[replyMessage(t, req, reply)]++
	}
	if got["a"] != 10 || got["b"] != 10 {
		t.Errorf("spread %v, want 10 each", got)
	}
	// Each server saw the password under its own secret.
	for _, f := range []*fakeServer{a, b} {
		r := f.requests()[0]
		v, _ := r.Lookup(packet.AttrUserPassword)
		plain, err := packet.DecryptUserPassword(nil, v, f.secret, r.Authenticator)
		if err != nil || string(packet.TrimPassword(plain)) != "pw" {
			t.Errorf("server %s decrypted %q, %v", f.addr(), plain, err)
		}
		if off := r.Attrs[0]; off.Type != packet.AttrMessageAuthenticator {
			t.Errorf("first attribute %d, want Message-Authenticator", off.Type)
		}
	}
}

func TestFailoverOrder(t *testing.T) {
	a := startFake(t, "secret-a-0123456789", accept("a"))
	b := startFake(t, "secret-b-0123456789", accept("b"))
	p := newPool(t, Config{Servers: servers(a, b), Mode: Failover})
	for i := range 5 {
		req := pap(t, uint8(i), "u@example.org")
		reply, _, err := p.Forward(context.Background(), req)
		if err != nil {
			t.Fatal(err)
		}
		if m := replyMessage(t, req, reply); m != "a" {
			t.Fatalf("failover pool answered from %q", m)
		}
	}
}

// eapServer challenges a request without State with a State naming the
// server and the round, and accepts the third round.
func eapServer(name string) func(*packet.Packet) (packet.Code, [][2][]byte, bool) {
	var n atomic.Int32
	return func(p *packet.Packet) (packet.Code, [][2][]byte, bool) {
		st, ok := p.Lookup(packet.AttrState)
		eap := attr(packet.AttrEAPMessage, "\x01\x02\x00\x04")
		if !ok {
			return packet.CodeAccessChallenge, [][2][]byte{eap, attr(packet.AttrState, fmt.Sprintf("%s-%d-1", name, n.Add(1)))}, true
		}
		var conv, round int
		fmt.Sscanf(string(st)[len(name)+1:], "%d-%d", &conv, &round)
		if round >= 2 {
			return packet.CodeAccessAccept, [][2][]byte{eap, attr(packet.AttrReplyMessage, name)}, true
		}
		return packet.CodeAccessChallenge, [][2][]byte{eap, attr(packet.AttrState, fmt.Sprintf("%s-%d-%d", name, conv, round+1))}, true
	}
}

func TestEAPConversationStaysOnItsServer(t *testing.T) {
	a := startFake(t, "secret-a-0123456789", eapServer("a"))
	b := startFake(t, "secret-b-0123456789", eapServer("b"))
	p := newPool(t, Config{Servers: servers(a, b)})
	// Interleave four conversations: round robin alone would send each
	// round elsewhere.
	states := make([][]byte, 4)
	for round := range 3 {
		for c := range states {
			attrs := [][2][]byte{attr(packet.AttrUserName, "anon@example.org"), attr(packet.AttrEAPMessage, "\x02\x01\x00\x04")}
			if states[c] != nil {
				attrs = append(attrs, [2][]byte{{packet.AttrState}, states[c]})
			}
			req := nasRequest(t, packet.CodeAccessRequest, uint8(round*10+c), attrs...)
			reply, _, err := p.Forward(context.Background(), req)
			if err != nil {
				t.Fatalf("conversation %d round %d: %v", c, round, err)
			}
			rp, _ := packet.Parse(reply)
			if round < 2 {
				if rp.Code != packet.CodeAccessChallenge {
					t.Fatalf("round %d: %s", round, rp.Code)
				}
				states[c], _ = rp.Lookup(packet.AttrState)
				continue
			}
			if rp.Code != packet.CodeAccessAccept {
				t.Fatalf("conversation %d ended with %s (state %q went to the wrong server)", c, rp.Code, states[c])
			}
		}
	}
	if na, nb := len(a.requests()), len(b.requests()); na != 6 || nb != 6 {
		t.Errorf("requests a=%d b=%d, want 6 each (two conversations of three rounds)", na, nb)
	}
}

func TestFailoverOnTimeout(t *testing.T) {
	silent := startFake(t, "secret-a-0123456789", func(*packet.Packet) (packet.Code, [][2][]byte, bool) { return 0, nil, false })
	b := startFake(t, "secret-b-0123456789", accept("b"))
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	p := newPool(t, Config{Servers: servers(silent, b), Mode: Failover, Timeout: 30 * time.Millisecond, Retries: 2, Metrics: m})
	for i := range 4 {
		req := pap(t, uint8(i), "u@example.org")
		reply, _, err := p.Forward(context.Background(), req)
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		if got := replyMessage(t, req, reply); got != "b" {
			t.Fatalf("answered by %q", got)
		}
	}
	// Three timeouts took the silent server out: the fourth went straight to b.
	if n := len(silent.requests()); n != 9 {
		t.Errorf("silent server saw %d datagrams, want 9 (three requests, each sent three times)", n)
	}
	if st := p.Status(); st[0].Up || !st[1].Up {
		t.Errorf("status %+v", st)
	}
	if v := testutil.ToFloat64(m.requests.WithLabelValues("test/auth", silent.addr(), "timeout")); v != 3 {
		t.Errorf("timeouts counted %v", v)
	}
}

func TestBoundConversationDoesNotMove(t *testing.T) {
	a := startFake(t, "secret-a-0123456789", eapServer("a"))
	p := newPool(t, Config{Servers: servers(a), Timeout: 30 * time.Millisecond, Retries: 1})
	req := nasRequest(t, packet.CodeAccessRequest, 1, attr(packet.AttrUserName, "x@example.org"), attr(packet.AttrEAPMessage, "\x02\x01\x00\x04"))
	reply, _, err := p.Forward(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	rp, _ := packet.Parse(reply)
	st, _ := rp.Lookup(packet.AttrState)
	a.stop()
	for range 3 {
		p.timedOut(p.servers[0])
	}
	req = nasRequest(t, packet.CodeAccessRequest, 2, attr(packet.AttrUserName, "x@example.org"), attr(packet.AttrEAPMessage, "\x02\x02\x00\x04"), [2][]byte{{packet.AttrState}, st})
	_, outcome, err := p.Forward(context.Background(), req)
	if !isNoServer(err) || outcome != proxy.OutcomeNoUpstream {
		t.Errorf("round for a dead server: %s %v, want no_upstream at once", outcome, err)
	}
}

func TestReplyMessageAuthenticator(t *testing.T) {
	for _, tc := range []struct {
		name     string
		require  bool
		eap      bool
		answered bool
	}{
		{"not required, absent", false, false, true},
		{"required, absent", true, false, false},
		{"EAP without it", false, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := startFake(t, "secret-a-0123456789", func(*packet.Packet) (packet.Code, [][2][]byte, bool) {
				if tc.eap {
					return packet.CodeAccessChallenge, [][2][]byte{attr(packet.AttrEAPMessage, "\x01\x01\x00\x04"), attr(packet.AttrState, "s")}, true
				}
				return packet.CodeAccessAccept, nil, true
			})
			f.noMA.Store(true)
			sc := servers(f)
			sc[0].RequireMessageAuthenticator = tc.require
			reg := prometheus.NewRegistry()
			m := NewMetrics(reg)
			p := newPool(t, Config{Servers: sc, Timeout: 30 * time.Millisecond, Retries: 1, Metrics: m})
			req := pap(t, 1, "u@example.org")
			reply, _, err := p.Forward(context.Background(), req)
			if (err == nil) != tc.answered {
				t.Fatalf("answered=%v (%v), want %v", err == nil, err, tc.answered)
			}
			if tc.answered {
				rp, _ := packet.Parse(reply)
				if rp.Attrs[0].Type != packet.AttrMessageAuthenticator {
					t.Error("reply to the NAS lacks a leading Message-Authenticator")
				}
			} else if v := testutil.ToFloat64(m.dropped.WithLabelValues("test/auth", f.addr(), "missing_message_authenticator")); v == 0 {
				t.Error("drop not counted")
			}
		})
	}
}

// TestIdentifiersNotReused holds 600 requests in flight to one server,
// which answers none until it has them all: no (source port, identifier)
// pair may appear twice among them, and the pool must open three sockets.
func TestIdentifiersNotReused(t *testing.T) {
	const n = 600
	secret := []byte("secret-a-0123456789")
	conn, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// 600 datagrams at once can overflow a default receive buffer on a
	// busy machine; a lost one is retransmitted (below), but a bigger
	// buffer keeps that rare.
	conn.(*net.UDPConn).SetReadBuffer(4 << 20)
	done := make(chan error, 1)
	go func() {
		type held struct {
			p    *packet.Packet
			from net.Addr
		}
		var hs []held
		seen := map[string]bool{}
		buf := make([]byte, 4096)
		for len(hs) < n {
			k, from, err := conn.ReadFrom(buf)
			if err != nil {
				done <- err
				return
			}
			p, _ := packet.Parse(append([]byte(nil), buf[:k]...))
			key := fmt.Sprintf("%s/%d", from, p.ID)
			if seen[key] {
				continue // a retransmission
			}
			seen[key] = true
			hs = append(hs, held{p, from})
		}
		for _, h := range hs {
			b := packet.Append(nil, packet.CodeAccessAccept, h.p.ID, h.p.Authenticator)
			b = packet.AppendMessageAuthenticator(b)
			for _, a := range h.p.Attrs {
				if a.Type == packet.AttrProxyState {
					b, _ = packet.AppendAttr(b, a.Type, a.Value)
				}
			}
			ra := h.p.Authenticator
			packet.Sign(b, secret, &ra)
			conn.WriteTo(b, h.from)
		}
		done <- nil
	}()
	// Short timeouts with many retries: a datagram the kernel dropped is
	// sent again soon, and the held ones are retransmitted (and skipped)
	// until the server has them all.
	p := newPool(t, Config{Servers: []ServerConfig{{Address: conn.LocalAddr().String(), Secret: secret}}, Timeout: 3 * time.Second, Retries: 6})
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			req := pap(t, uint8(i), fmt.Sprintf("u%d@example.org", i))
			if _, _, err := p.Forward(context.Background(), req); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	p.servers[0].mu.Lock()
	socks := len(p.servers[0].socks)
	p.servers[0].mu.Unlock()
	if socks != 3 {
		t.Errorf("%d sockets for %d requests in flight, want 3", socks, n)
	}
}

// TestStatusServerProbes takes a server out when a Status-Server probe
// (sent at once after a request timed out) goes unanswered, and answers
// the next request with no_upstream without waiting.
func TestStatusServerProbes(t *testing.T) {
	var silent atomic.Bool
	f := startFake(t, "secret-a-0123456789", func(p *packet.Packet) (packet.Code, [][2][]byte, bool) {
		if silent.Load() {
			return 0, nil, false
		}
		return accept("a")(p)
	})
	p := newPool(t, Config{Servers: servers(f), StatusInterval: time.Hour, Timeout: 50 * time.Millisecond, Retries: 1})
	s := p.servers[0]
	p.timedOut(s) // kick a probe
	waitFor(t, func() bool { return len(f.requests()) > 0 })
	probe := f.requests()[0]
	if probe.Code != packet.CodeStatusServer || probe.Attrs[0].Type != packet.AttrMessageAuthenticator {
		t.Fatalf("probe %s without leading Message-Authenticator", probe.Code)
	}
	if !s.Up() {
		t.Fatal("answered probe left the server down")
	}
	silent.Store(true)
	p.timedOut(s)
	waitFor(t, func() bool { return !s.Up() })
	if p.Healthy() {
		t.Error("pool healthy with its only server down")
	}
	_, outcome, err := p.Forward(context.Background(), pap(t, 1, "u@example.org"))
	if !isNoServer(err) || outcome != proxy.OutcomeNoUpstream {
		t.Errorf("forward with no server up: %s %v", outcome, err)
	}
	silent.Store(false)
	p.timedOut(s)
	waitFor(t, s.Up)
}

// waitFor polls cond for up to five seconds: the probe runs on its own
// goroutine over real sockets.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for range 500 {
		if cond() {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("condition not met within 5s")
}
