package udp

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/md5"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"layeh.com/radius"
	"layeh.com/radius/rfc2865"
	"layeh.com/radius/rfc2866"

	"github.com/mxedge/mxedge/proxy"
	"github.com/mxedge/mxedge/proxy/packet"
)

func hasIPv6Loopback() bool {
	c, err := net.ListenUDP("udp6", &net.UDPAddr{IP: net.IPv6loopback})
	if err != nil {
		return false
	}
	c.Close()
	return true
}

func TestStatusServer(t *testing.T) {
	tests := []struct {
		kind     Kind
		network  string
		wantCode packet.Code
	}{
		{Auth, "udp4", packet.CodeAccessAccept},
		{Acct, "udp4", packet.CodeAccountingResponse},
		{Auth, "udp6", packet.CodeAccessAccept},
		{Acct, "udp6", packet.CodeAccountingResponse},
	}
	for _, tt := range tests {
		t.Run(string(tt.kind)+"/"+tt.network, func(t *testing.T) {
			if tt.network == "udp6" && !hasIPv6Loopback() {
				t.Skip("no ::1")
			}
			var handled atomic.Int32
			h := acceptAll(func(*proxy.Request) string { handled.Add(1); return "" })
			clients := []*proxy.Client{loopbackClient("lo"), v6Client("lo6")}
			ts := startServer(t, tt.kind, tt.network, clients, h)
			n := newNAS(t, ts.addr)

			req := request(t, packet.CodeStatusServer, 7, secret, true)
			n.send(req)
			checkReply(t, n.recv(), req, secret, tt.wantCode)

			// Without a Message-Authenticator, or with a wrong one: dropped.
			n.send(request(t, packet.CodeStatusServer, 8, secret, false))
			ts.tr.waitFor(t, "missing_message_authenticator", 1)
			n.send(request(t, packet.CodeStatusServer, 9, []byte("wrong-secret"), true))
			ts.tr.waitFor(t, "bad_message_authenticator", 1)
			n.silent()

			if handled.Load() != 0 {
				t.Error("Status-Server reached the handler")
			}
			client := "lo"
			if tt.network == "udp6" {
				client = "lo6"
			}
			if got := counterValue(ts.reg, "mxedge_requests_total", map[string]string{"client": client, "code": "Status-Server", "outcome": "local"}); got != 1 {
				t.Errorf("requests_total{Status-Server,local} = %v, want 1", got)
			}
		})
	}
}

func TestUnknownClientDropped(t *testing.T) {
	far := &proxy.Client{Name: "far", Prefix: netip.MustParsePrefix("10.0.0.0/8"), Secret: secret}
	ts := startServer(t, Auth, "udp4", []*proxy.Client{far}, nil)
	n := newNAS(t, ts.addr)
	for id := range uint8(3) {
		n.send(request(t, packet.CodeStatusServer, id, secret, true))
	}
	ts.tr.waitFor(t, "unknown_client", 3)
	n.silent()
	if got := testutil.ToFloat64(ts.m.drops[reasonUnknownClient]); got != 3 {
		t.Errorf("drops{unknown_client} = %v, want 3", got)
	}

	// A reload that adds the client takes effect on the next datagram.
	table, _ := proxy.NewClientTable([]*proxy.Client{far, loopbackClient("lo")})
	ts.clients.Store(table)
	req := request(t, packet.CodeStatusServer, 9, secret, true)
	n.send(req)
	checkReply(t, n.recv(), req, secret, packet.CodeAccessAccept)
}

func TestAccessRequestChecks(t *testing.T) {
	eap := attr{packet.AttrEAPMessage, []byte{2, 1, 0, 5, 1}}
	proxyState := attr{packet.AttrProxyState, []byte("ps")}
	// layeh.com/radius as an independent encoder (it has no MA support).
	layehNoMA := func(t testing.TB) []byte {
		p := radius.New(radius.CodeAccessRequest, secret)
		rfc2865.UserName_SetString(p, "legacy")
		rfc2865.UserPassword_SetString(p, "pw")
		b, err := p.Encode()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	tests := []struct {
		name    string
		client  func(*proxy.Client)
		req     func(t testing.TB) []byte
		want    string // drop reason, or "answered"
		present string // mxedge_client_message_authenticator_total present label
	}{
		{"MA required and present", nil,
			func(t testing.TB) []byte { return request(t, packet.CodeAccessRequest, 1, secret, true, userName("a")) },
			"answered", "true"},
		{"MA required and missing", nil,
			func(t testing.TB) []byte {
				return request(t, packet.CodeAccessRequest, 1, secret, false, userName("a"))
			},
			"missing_message_authenticator", "false"},
		{"MA required and missing, wrong secret", nil,
			func(t testing.TB) []byte {
				return request(t, packet.CodeAccessRequest, 1, []byte("x"), false, userName("a"))
			},
			"missing_message_authenticator", "false"},
		{"MA bad", nil,
			func(t testing.TB) []byte {
				return request(t, packet.CodeAccessRequest, 1, []byte("x"), true, userName("a"))
			},
			"bad_message_authenticator", "true"},
		{"MA bad while opted out", optOut,
			func(t testing.TB) []byte {
				return request(t, packet.CodeAccessRequest, 1, []byte("x"), true, userName("a"))
			},
			"bad_message_authenticator", "true"},
		{"MA not first is fine", nil,
			func(t testing.TB) []byte {
				b := packet.Append(nil, packet.CodeAccessRequest, 1, packet.RandomAuthenticator())
				b, _ = packet.AppendAttr(b, packet.AttrUserName, []byte("a"))
				b = packet.AppendMessageAuthenticator(b)
				packet.Sign(b, secret, nil)
				return b
			},
			"answered", "true"},
		{"opted out, no MA", optOut,
			func(t testing.TB) []byte {
				return request(t, packet.CodeAccessRequest, 1, secret, false, userName("a"))
			},
			"answered", "false"},
		{"opted out, layeh-encoded", optOut, layehNoMA, "answered", "false"},
		{"limit Proxy-State, Proxy-State without MA", func(c *proxy.Client) { optOut(c); c.LimitProxyState = true },
			func(t testing.TB) []byte {
				return request(t, packet.CodeAccessRequest, 1, secret, false, userName("a"), proxyState)
			},
			"proxy_state_without_message_authenticator", "false"},
		{"limit Proxy-State, Proxy-State with MA", func(c *proxy.Client) { c.LimitProxyState = true },
			func(t testing.TB) []byte {
				return request(t, packet.CodeAccessRequest, 1, secret, true, userName("a"), proxyState)
			},
			"answered", "true"},
		{"Proxy-State without MA, not limited", optOut,
			func(t testing.TB) []byte {
				return request(t, packet.CodeAccessRequest, 1, secret, false, userName("a"), proxyState)
			},
			"answered", "false"},
		{"EAP without MA while opted out", optOut,
			func(t testing.TB) []byte {
				return request(t, packet.CodeAccessRequest, 1, secret, false, userName("a"), eap)
			},
			"eap_without_message_authenticator", "false"},
		{"EAP with MA", nil,
			func(t testing.TB) []byte {
				return request(t, packet.CodeAccessRequest, 1, secret, true, userName("a"), eap)
			},
			"answered", "true"},
		{"accounting on the auth port", nil,
			func(t testing.TB) []byte { return request(t, packet.CodeAccountingRequest, 1, secret, false) },
			"unexpected_code", ""},
		{"truncated", nil,
			func(t testing.TB) []byte { return request(t, packet.CodeAccessRequest, 1, secret, true)[:30] },
			"malformed", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := loopbackClient("sw")
			if tt.client != nil {
				tt.client(c)
			}
			var gotMA atomic.Bool
			h := acceptAll(func(r *proxy.Request) string { gotMA.Store(r.HasMessageAuthenticator); return "" })
			ts := startServer(t, Auth, "udp4", []*proxy.Client{c}, h)
			n := newNAS(t, ts.addr)
			req := tt.req(t)
			n.send(req)
			ts.tr.waitFor(t, tt.want, 1)
			if tt.want == "answered" {
				checkReply(t, n.recv(), req, secret, packet.CodeAccessAccept)
				if gotMA.Load() != (tt.present == "true") {
					t.Errorf("Request.HasMessageAuthenticator = %v", gotMA.Load())
				}
			} else {
				n.silent()
				if got := ts.drops(tt.want); got != 1 {
					t.Errorf("drops{%s} = %v, want 1", tt.want, got)
				}
			}
			if tt.present != "" {
				got := counterValue(ts.reg, "mxedge_client_message_authenticator_total", map[string]string{"client": "sw", "present": tt.present})
				if got != 1 {
					t.Errorf("client_message_authenticator_total{present=%s} = %v, want 1", tt.present, got)
				}
			}
		})
	}
}

func TestAccounting(t *testing.T) {
	var handled atomic.Int32
	h := acceptAll(func(*proxy.Request) string { handled.Add(1); return "" })
	ts := startServer(t, Acct, "udp4", []*proxy.Client{loopbackClient("sw")}, h)
	n := newNAS(t, ts.addr)

	acct := func(id uint8, key []byte) []byte {
		p := radius.New(radius.CodeAccountingRequest, key)
		p.Identifier = id
		rfc2865.UserName_SetString(p, "bob")
		rfc2866.AcctStatusType_Set(p, rfc2866.AcctStatusType_Value_Start)
		b, err := p.Encode()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	good := acct(1, secret)
	n.send(good)
	reply := n.recv()
	if !radius.IsAuthenticResponse(reply, good, secret) || packet.Code(reply[0]) != packet.CodeAccountingResponse {
		t.Fatalf("bad Accounting-Response % x", reply)
	}

	n.send(acct(2, []byte("wrong")))
	ts.tr.waitFor(t, "bad_authenticator", 1)
	forged := acct(3, secret)
	forged[len(forged)-1] ^= 1
	n.send(forged)
	ts.tr.waitFor(t, "bad_authenticator", 2)
	n.send(request(t, packet.CodeAccessRequest, 4, secret, true))
	ts.tr.waitFor(t, "unexpected_code", 1)
	n.silent()
	if handled.Load() != 1 {
		t.Errorf("handler ran %d times, want 1", handled.Load())
	}
	if got := testutil.ToFloat64(ts.m.drops[reasonBadAuthenticator]); got != 2 {
		t.Errorf("drops{bad_authenticator} = %v, want 2", got)
	}
}

func TestRetransmitInProgressHandledOnce(t *testing.T) {
	entered, release := make(chan struct{}, 4), make(chan struct{})
	var calls atomic.Int32
	h := acceptAll(func(*proxy.Request) string {
		calls.Add(1)
		entered <- struct{}{}
		<-release
		return ""
	})
	ts := startServer(t, Auth, "udp4", []*proxy.Client{loopbackClient("sw")}, h)
	n := newNAS(t, ts.addr)
	req := request(t, packet.CodeAccessRequest, 42, secret, true, userName("a"))
	n.send(req)
	<-entered
	n.send(req)
	n.send(req)
	ts.tr.waitFor(t, outcomeDuplicateInProgress, 2)
	close(release)
	checkReply(t, n.recv(), req, secret, packet.CodeAccessAccept)
	ts.tr.waitFor(t, string(proxy.OutcomeAnswered), 1)
	n.silent()
	if calls.Load() != 1 {
		t.Errorf("handler ran %d times, want 1", calls.Load())
	}
}

func TestRetransmitAfterAnswerGetsCachedReply(t *testing.T) {
	var calls atomic.Int32
	h := acceptAll(func(*proxy.Request) string {
		// Each call answers differently, so a second run would show.
		return string(rune('a' + calls.Add(1)))
	})
	ts := startServer(t, Auth, "udp4", []*proxy.Client{loopbackClient("sw")}, h)
	n := newNAS(t, ts.addr)
	req := request(t, packet.CodeAccessRequest, 42, secret, true, userName("a"))
	n.send(req)
	first := n.recv()
	n.send(req)
	second := n.recv()
	if !bytes.Equal(first, second) {
		t.Errorf("retransmission answered differently:\n% x\n% x", first, second)
	}
	checkReply(t, second, req, secret, packet.CodeAccessAccept)
	if calls.Load() != 1 {
		t.Errorf("handler ran %d times, want 1", calls.Load())
	}
	// The reply goes out before the outcome is counted: wait for it.
	ts.tr.waitFor(t, outcomeDuplicateAnswered, 1)
}

func TestSameIDNewAuthenticatorIsNew(t *testing.T) {
	entered := make(chan *proxy.Request, 2)
	releases := []chan struct{}{make(chan struct{}), make(chan struct{})}
	var calls atomic.Int32
	h := proxy.HandlerFunc(func(_ context.Context, req *proxy.Request) ([]byte, proxy.Outcome) {
		i := calls.Add(1) - 1
		entered <- req
		<-releases[i]
		return reply(req, "r"), proxy.OutcomeAnswered
	})
	ts := startServer(t, Auth, "udp4", []*proxy.Client{loopbackClient("sw")}, h)
	n := newNAS(t, ts.addr)
	old := request(t, packet.CodeAccessRequest, 42, secret, true, userName("a"))
	n.send(old)
	<-entered
	fresh := request(t, packet.CodeAccessRequest, 42, secret, true, userName("a"))
	n.send(fresh)
	<-entered
	// The new request answers first; the old one's late answer is dropped.
	close(releases[1])
	checkReply(t, n.recv(), fresh, secret, packet.CodeAccessAccept)
	close(releases[0])
	ts.tr.waitFor(t, outcomeAbandoned, 1)
	n.silent()
	// And the cache holds the new request's answer.
	n.send(fresh)
	checkReply(t, n.recv(), fresh, secret, packet.CodeAccessAccept)
}

func TestHandlerPanicIsCounted(t *testing.T) {
	h := acceptAll(func(r *proxy.Request) string {
		if v, _ := r.Packet.Lookup(packet.AttrUserName); string(v) == "boom" {
			panic("boom")
		}
		return ""
	})
	ts := startServer(t, Auth, "udp4", []*proxy.Client{loopbackClient("sw")}, h)
	n := newNAS(t, ts.addr)
	boom := request(t, packet.CodeAccessRequest, 1, secret, true, userName("boom"))
	n.send(boom)
	ts.tr.waitFor(t, "panic", 1)
	if got := ts.drops("panic"); got != 1 {
		t.Errorf("drops{panic} = %v, want 1", got)
	}
	req := request(t, packet.CodeAccessRequest, 2, secret, true, userName("fine"))
	n.send(req)
	checkReply(t, n.recv(), req, secret, packet.CodeAccessAccept)
	// The panicked request was forgotten, so its retransmission is retried.
	n.send(boom)
	ts.tr.waitFor(t, "panic", 2)
}

func TestOverloadDropsAndForgets(t *testing.T) {
	entered, release := make(chan struct{}, 4), make(chan struct{})
	h := acceptAll(func(r *proxy.Request) string {
		if r.Packet.ID == 1 {
			entered <- struct{}{}
			<-release
		}
		return ""
	})
	ts := startServer(t, Auth, "udp4", []*proxy.Client{loopbackClient("sw")}, h,
		func(c *Config) { c.MaxInFlight = 1 })
	n := newNAS(t, ts.addr)
	first := request(t, packet.CodeAccessRequest, 1, secret, true)
	second := request(t, packet.CodeAccessRequest, 2, secret, true)
	n.send(first)
	<-entered
	n.send(second)
	ts.tr.waitFor(t, "overloaded", 1)
	close(release)
	checkReply(t, n.recv(), first, secret, packet.CodeAccessAccept)
	ts.tr.waitFor(t, string(proxy.OutcomeAnswered), 1)
	// The dropped request's retransmission is handled, not ignored.
	n.send(second)
	checkReply(t, n.recv(), second, secret, packet.CodeAccessAccept)
}

func TestSeveralSocketsOneServer(t *testing.T) {
	ts := startServer(t, Auth, "udp4", []*proxy.Client{loopbackClient("sw")}, nil)
	conn2, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer conn2.Close()
	served := make(chan error, 1)
	go func() { served <- ts.Serve(conn2) }()

	for _, addr := range []*net.UDPAddr{ts.addr, conn2.LocalAddr().(*net.UDPAddr)} {
		n := newNAS(t, addr)
		// The same ID and source port on both sockets are different keys.
		req := request(t, packet.CodeAccessRequest, 5, secret, true)
		n.send(req)
		checkReply(t, n.recv(), req, secret, packet.CodeAccessAccept)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	if err := ts.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-served; !errors.Is(err, ErrServerClosed) {
		t.Errorf("Serve = %v, want ErrServerClosed", err)
	}
	if err := ts.Serve(conn2); !errors.Is(err, ErrServerClosed) {
		t.Errorf("Serve after Shutdown = %v, want ErrServerClosed", err)
	}
}

func TestShutdownBoundedByContext(t *testing.T) {
	entered := make(chan struct{}, 1)
	handlerCtxDone := make(chan struct{})
	h := proxy.HandlerFunc(func(ctx context.Context, req *proxy.Request) ([]byte, proxy.Outcome) {
		entered <- struct{}{}
		<-ctx.Done()
		close(handlerCtxDone)
		return nil, proxy.OutcomeUpstreamTimeout
	})
	reg := prometheus.NewRegistry()
	table, _ := proxy.NewClientTable([]*proxy.Client{loopbackClient("sw")})
	s, err := New(Config{Clients: func() *proxy.ClientTable { return table }, Handler: h, Kind: Auth, Registerer: reg, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	served := make(chan error, 1)
	go func() { served <- s.Serve(conn) }()
	n := newNAS(t, conn.LocalAddr().(*net.UDPAddr))
	n.send(request(t, packet.CodeAccessRequest, 1, secret, true))
	<-entered

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Shutdown(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Shutdown = %v, want context.Canceled", err)
	}
	<-handlerCtxDone // the handler's context was cancelled
	if err := <-served; !errors.Is(err, ErrServerClosed) {
		t.Errorf("Serve = %v, want ErrServerClosed", err)
	}
	// A second Shutdown finds nothing left to wait for.
	if err := s.Shutdown(context.Background()); err != nil {
		t.Errorf("second Shutdown = %v", err)
	}
}

func TestNewValidates(t *testing.T) {
	table := func() *proxy.ClientTable { return nil }
	h := acceptAll(nil)
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"no clients", Config{Handler: h, Kind: Auth}, "Clients is nil"},
		{"no handler", Config{Clients: table, Kind: Auth}, "Handler is nil"},
		{"bad kind", Config{Clients: table, Handler: h, Kind: "coa"}, `Kind "coa"`},
		{"negative", Config{Clients: table, Handler: h, Kind: Acct, MaxInFlight: -1}, "negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.cfg)
			if err == nil || !bytes.Contains([]byte(err.Error()), []byte(tt.want)) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
		})
	}
}

// TestMetricsShareRegistry: auth and acct servers register the same
// metric families on one registry, and the names pass the linter.
func TestMetricsShareRegistry(t *testing.T) {
	reg := prometheus.NewRegistry()
	table := func() *proxy.ClientTable { return nil }
	for _, k := range []Kind{Auth, Acct} {
		if _, err := New(Config{Clients: table, Handler: acceptAll(nil), Kind: k, Registerer: reg}); err != nil {
			t.Fatalf("%s: %v", k, err)
		}
	}
	problems, err := testutil.GatherAndLint(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("metric %s: %s", p.Metric, p.Text)
	}
}

// TestConcurrentClients runs several NASes at once, each sending every
// request twice, under -race: every request is answered, the handler runs
// once per request, and reused worker goroutines see no stale buffers.
func TestConcurrentClients(t *testing.T) {
	const nases, perNAS = 4, 200
	var calls atomic.Int32
	h := acceptAll(func(r *proxy.Request) string {
		calls.Add(1)
		v, _ := r.Packet.Lookup(packet.AttrUserName)
		return string(v) // the reply names the request it answers
	})
	ts := startServer(t, Auth, "udp4", []*proxy.Client{loopbackClient("sw")}, h)
	errs := make(chan error, nases)
	for i := range nases {
		n := newNAS(t, ts.addr)
		go func() {
			errs <- func() error {
				for j := range perNAS {
					name := []byte{byte('a' + i), byte(j), byte(j >> 8)}
					req := request(t, packet.CodeAccessRequest, uint8(j), secret, true, attr{packet.AttrUserName, name})
					if _, err := n.conn.WriteToUDP(req, n.to); err != nil {
						return err
					}
					if _, err := n.conn.WriteToUDP(req, n.to); err != nil {
						return err
					}
					// One or two answers come back (the duplicate may be
					// dropped in progress or answered from the cache); skip
					// a late second answer to an earlier request, which
					// several readers may send after later ones.
					for {
						got, err := n.read(waitLimit)
						if err != nil {
							return err
						}
						p, err := packet.Parse(got)
						if err != nil {
							return err
						}
						v, _ := p.Lookup(packet.AttrReplyMessage)
						if p.ID == uint8(j) && bytes.Equal(v, name) {
							break
						}
						if len(v) != 3 || v[0] != name[0] || p.ID == uint8(j) {
							return fmt.Errorf("reply % x for another request", got)
						}
					}
				}
				return nil
			}()
		}()
	}
	for range nases {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if got := calls.Load(); got != nases*perNAS {
		t.Errorf("handler ran %d times, want %d", got, nases*perNAS)
	}
}

// inliner answers requests whose User-Name starts with "in" on the reading
// goroutine.
type inliner struct{ proxy.HandlerFunc }

func (inliner) Inline(r *proxy.Request) bool {
	u, _ := r.Packet.Lookup(packet.AttrUserName)
	return strings.HasPrefix(string(u), "in")
}

// Inline requests keep the server's guarantees: they are answered while a
// worker is stuck, a panic in one is recovered and counted without losing
// the reader, and a retransmission gets the cached reply.
func TestInlineRequests(t *testing.T) {
	release := make(chan struct{})
	h := inliner{acceptAll(func(r *proxy.Request) string {
		switch u, _ := r.Packet.Lookup(packet.AttrUserName); string(u) {
		case "slow":
			<-release
		case "inboom":
			panic("boom")
		}
		return ""
	})}
	ts := startServer(t, Auth, "udp4", []*proxy.Client{loopbackClient("sw")}, h, func(c *Config) { c.Readers = 2 })
	n := newNAS(t, ts.addr)
	slow := request(t, packet.CodeAccessRequest, 1, secret, true, userName("slow"))
	n.send(slow)
	in1 := request(t, packet.CodeAccessRequest, 2, secret, true, userName("in1"))
	n.send(in1)
	checkReply(t, n.recv(), in1, secret, packet.CodeAccessAccept)

	n.send(request(t, packet.CodeAccessRequest, 3, secret, true, userName("inboom")))
	ts.tr.waitFor(t, "panic", 1)
	for id := uint8(4); id < 8; id++ { // more than the readers: none was lost
		in := request(t, packet.CodeAccessRequest, id, secret, true, userName("in"))
		n.send(in)
		checkReply(t, n.recv(), in, secret, packet.CodeAccessAccept)
	}
	n.send(in1)
	checkReply(t, n.recv(), in1, secret, packet.CodeAccessAccept)
	ts.tr.waitFor(t, outcomeDuplicateAnswered, 1)

	close(release)
	checkReply(t, n.recv(), slow, secret, packet.CodeAccessAccept)
}

// twoMAs is an Access-Request whose first Message-Authenticator verifies
// (computed by hand over the whole packet) and whose second is garbage.
func twoMAs(t testing.TB, id uint8) []byte {
	t.Helper()
	b := packet.Append(nil, packet.CodeAccessRequest, id, packet.RandomAuthenticator())
	b = packet.AppendMessageAuthenticator(b)
	b, _ = packet.AppendAttr(b, packet.AttrUserName, []byte("aabbccddeeff"))
	b, _ = packet.AppendAttr(b, packet.AttrMessageAuthenticator, []byte("garbage-garbage!"))
	b[2], b[3] = byte(len(b)>>8), byte(len(b))
	h := hmac.New(md5.New, secret)
	h.Write(b)
	copy(b[packet.HeaderLen+2:packet.HeaderLen+18], h.Sum(nil))
	return b
}

func TestTwoMessageAuthenticatorsDropped(t *testing.T) {
	for _, opts := range [][]func(*proxy.Client){nil, {optOut}} {
		ts := startServer(t, Auth, "udp4", []*proxy.Client{loopbackClient("lo", opts...)}, nil)
		n := newNAS(t, ts.addr)
		n.send(twoMAs(t, 1))
		ts.tr.waitFor(t, "duplicate_message_authenticator", 1)
		n.silent()
		if got := ts.drops("duplicate_message_authenticator"); got != 1 {
			t.Fatalf("drops{duplicate_message_authenticator} = %v, want 1", got)
		}
	}
}
