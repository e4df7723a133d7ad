package udp

import (
	"context"
	"crypto/hmac"
	"crypto/md5"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"layeh.com/radius"

	"github.com/mxedge/mxedge/proxy"
	"github.com/mxedge/mxedge/proxy/packet"
)

var secret = []byte("a-shared-secret-of-24+-octets")

// waitLimit bounds every wait for an event; it is a deadline against hangs,
// not a timing assertion.
const waitLimit = 10 * time.Second

// quiet is how long a test listens to be sure nothing comes back. The
// event it checks has already been counted, so a reply could only be a
// stray one already queued.
const quiet = 100 * time.Millisecond

// tracer records the server's drop reasons and outcomes and lets a test
// wait for them instead of sleeping.
type tracer struct {
	mu      sync.Mutex
	counts  map[string]int
	changed chan struct{}
}

func newTracer() *tracer {
	return &tracer{counts: map[string]int{}, changed: make(chan struct{}, 1)}
}

func (tr *tracer) record(what string) {
	tr.mu.Lock()
	tr.counts[what]++
	tr.mu.Unlock()
	select {
	case tr.changed <- struct{}{}:
	default:
	}
}

func (tr *tracer) count(what string) int {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return tr.counts[what]
}

// waitFor waits until what has been recorded n times.
func (tr *tracer) waitFor(t testing.TB, what string, n int) {
	t.Helper()
	timeout := time.After(waitLimit)
	for tr.count(what) < n {
		select {
		case <-tr.changed:
		case <-timeout:
			tr.mu.Lock()
			defer tr.mu.Unlock()
			t.Fatalf("waited for %d × %q; have %v", n, what, tr.counts)
		}
	}
}

// testServer is a Server on a loopback socket.
type testServer struct {
	*Server
	addr    *net.UDPAddr
	reg     *prometheus.Registry
	tr      *tracer
	clients atomic.Pointer[proxy.ClientTable]
}

type serverOpt func(*Config)

// startServer serves on network ("udp4" or "udp6") loopback with the given
// clients; the handler defaults to one that accepts everything.
func startServer(t *testing.T, kind Kind, network string, clients []*proxy.Client, h proxy.Handler, opts ...serverOpt) *testServer {
	t.Helper()
	ts := &testServer{reg: prometheus.NewRegistry(), tr: newTracer()}
	table, err := proxy.NewClientTable(clients)
	if err != nil {
		t.Fatal(err)
	}
	ts.clients.Store(table)
	if h == nil {
		h = acceptAll(nil)
	}
	cfg := Config{
		Clients:    ts.clients.Load,
		Handler:    h,
		Kind:       kind,
		Registerer: ts.reg,
		Logger:     testLogger(t),
	}
	for _, o := range opts {
		o(&cfg)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	s.trace = ts.tr.record
	ts.Server = s
	host := "127.0.0.1"
	if network == "udp6" {
		host = "::1"
	}
	conn, err := net.ListenUDP(network, &net.UDPAddr{IP: net.ParseIP(host)})
	if err != nil {
		t.Fatal(err)
	}
	ts.addr = conn.LocalAddr().(*net.UDPAddr)
	served := make(chan error, 1)
	go func() { served <- s.Serve(conn) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if err := <-served; !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve returned %v, want ErrServerClosed", err)
		}
		conn.Close()
	})
	return ts
}

func (ts *testServer) drops(reason string) float64 {
	return counterValue(ts.reg, "mxedge_drops_total", map[string]string{"reason": reason})
}

// counterValue reads one counter from a registry, 0 if absent.
func counterValue(reg *prometheus.Registry, name string, labels map[string]string) float64 {
	mfs, err := reg.Gather()
	if err != nil {
		panic(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if v, ok := labels[lp.GetName()]; ok && v != lp.GetValue() {
					continue next
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}

// nas is a test RADIUS client on loopback.
type nas struct {
	t    *testing.T
	conn *net.UDPConn
	to   *net.UDPAddr
}

func newNAS(t *testing.T, to *net.UDPAddr) *nas {
	t.Helper()
	network, host := "udp4", "127.0.0.1"
	if to.IP.To4() == nil {
		network, host = "udp6", "::1"
	}
	c, err := net.ListenUDP(network, &net.UDPAddr{IP: net.ParseIP(host)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &nas{t: t, conn: c, to: to}
}

func (n *nas) send(b []byte) {
	n.t.Helper()
	if _, err := n.conn.WriteToUDP(b, n.to); err != nil {
		n.t.Fatal(err)
	}
}

// recv returns the next reply, failing the test after waitLimit.
func (n *nas) recv() []byte {
	n.t.Helper()
	b, err := n.read(waitLimit)
	if err != nil {
		n.t.Fatalf("no reply: %v", err)
	}
	return b
}

// silent checks that no reply is waiting.
func (n *nas) silent() {
	n.t.Helper()
	if b, err := n.read(quiet); err == nil {
		n.t.Fatalf("unexpected reply % x", b)
	}
}

func (n *nas) read(d time.Duration) ([]byte, error) {
	n.conn.SetReadDeadline(time.Now().Add(d))
	buf := make([]byte, 4096)
	k, _, err := n.conn.ReadFromUDP(buf)
	return buf[:k], err
}

type attr struct {
	t uint8
	v []byte
}

// request encodes a request with the packet helpers; withMA puts a
// Message-Authenticator first.
func request(t testing.TB, code packet.Code, id uint8, key []byte, withMA bool, attrs ...attr) []byte {
	t.Helper()
	var auth [16]byte
	if code == packet.CodeAccessRequest || code == packet.CodeStatusServer {
		auth = packet.RandomAuthenticator()
	}
	b := packet.Append(nil, code, id, auth)
	if withMA {
		b = packet.AppendMessageAuthenticator(b)
	}
	for _, a := range attrs {
		var err error
		if b, err = packet.AppendAttr(b, a.t, a.v); err != nil {
			t.Fatal(err)
		}
	}
	if err := packet.Sign(b, key, nil); err != nil {
		t.Fatal(err)
	}
	return b
}

func userName(s string) attr { return attr{packet.AttrUserName, []byte(s)} }

// checkReply verifies a reply independently of the packet package: the
// Response Authenticator with layeh.com/radius, and the
// Message-Authenticator, which must be the first attribute, by hand.
func checkReply(t testing.TB, reply, req []byte, key []byte, wantCode packet.Code) {
	t.Helper()
	if len(reply) < 20 || packet.Code(reply[0]) != wantCode || reply[1] != req[1] {
		t.Fatalf("reply % x: want code %v, id %d", reply, wantCode, req[1])
	}
	if !radius.IsAuthenticResponse(reply, req, key) {
		t.Fatal("Response Authenticator does not verify (layeh)")
	}
	if len(reply) < 38 || reply[20] != packet.AttrMessageAuthenticator || reply[21] != 18 {
		t.Fatalf("Message-Authenticator is not the first attribute: % x", reply)
	}
	m := make([]byte, len(reply))
	copy(m, reply)
	copy(m[4:20], req[4:20])
	clear(m[22:38])
	h := hmac.New(md5.New, key)
	h.Write(m)
	if !hmac.Equal(h.Sum(nil), reply[22:38]) {
		t.Fatal("Message-Authenticator does not verify")
	}
}

// acceptAll answers every request with an Accept (or Accounting-Response)
// carrying a Message-Authenticator first and a Reply-Message, calling
// seen first if it is set.
func acceptAll(seen func(*proxy.Request) string) proxy.HandlerFunc {
	return func(_ context.Context, req *proxy.Request) ([]byte, proxy.Outcome) {
		msg := "ok"
		if seen != nil {
			msg = seen(req)
		}
		return reply(req, msg), proxy.OutcomeAnswered
	}
}

func reply(req *proxy.Request, msg string) []byte {
	code := packet.CodeAccessAccept
	if req.Packet.Code == packet.CodeAccountingRequest {
		code = packet.CodeAccountingResponse
	}
	b := packet.Append(nil, code, req.Packet.ID, req.Packet.Authenticator)
	b = packet.AppendMessageAuthenticator(b)
	b, _ = packet.AppendAttr(b, packet.AttrReplyMessage, []byte(msg))
	if err := packet.Sign(b, req.Client.Secret, &req.Packet.Authenticator); err != nil {
		panic(err)
	}
	return b
}

func loopbackClient(name string, opts ...func(*proxy.Client)) *proxy.Client {
	c := &proxy.Client{Name: name, Prefix: netip.MustParsePrefix("127.0.0.0/8"), Secret: secret, RequireMessageAuthenticator: true}
	for _, o := range opts {
		o(c)
	}
	return c
}

func v6Client(name string) *proxy.Client {
	return &proxy.Client{Name: name, Prefix: netip.MustParsePrefix("::1/128"), Secret: secret, RequireMessageAuthenticator: true}
}

func optOut(c *proxy.Client) { c.RequireMessageAuthenticator = false }

// testLogger discards logs unless -v, where they go to the test's output.
func testLogger(t testing.TB) *slog.Logger {
	if t == nil || !testing.Verbose() {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}
