package udp

import (
	"bytes"
	"context"
	"log/slog"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/mxedge/mxedge/proxy"
	"github.com/mxedge/mxedge/proxy/packet"
)

// harness drives the per-datagram path synchronously, without the kernel.
type harness struct {
	s   *Server
	sk  *socket
	reg *prometheus.Registry
}

func newHarness(t testing.TB, clients []*proxy.Client, h proxy.Handler, opts ...serverOpt) *harness {
	t.Helper()
	table, err := proxy.NewClientTable(clients)
	if err != nil {
		t.Fatal(err)
	}
	if h == nil {
		h = acceptAll(nil)
	}
	reg := prometheus.NewRegistry()
	cfg := Config{Clients: func() *proxy.ClientTable { return table }, Handler: h, Kind: Auth,
		Registerer: reg, Logger: testLogger(t)}
	for _, o := range opts {
		o(&cfg)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &harness{s: s, sk: newSocket(newFakeConn(), s.log), reg: reg}
}

// send handles one datagram from src and waits for its handler.
func (h *harness) send(b []byte, src netip.AddrPort) {
	w := workPool.Get().(*work)
	n := copy(w.buf[:], b)
	h.s.datagram(h.sk, w, n, src, h.sk.local)
	h.s.handlers.Wait()
}

func (h *harness) drops(reason string) float64 {
	return counterValue(h.reg, "mxedge_drops_total", map[string]string{"reason": reason})
}

// echoProxyState answers with an Accept that echoes every Proxy-State,
// as RFC 2865 requires of the server that answers through a proxy.
func echoProxyState(req *proxy.Request) []byte {
	b := packet.Append(nil, packet.CodeAccessAccept, req.Packet.ID, req.Packet.Authenticator)
	b = packet.AppendMessageAuthenticator(b)
	for _, a := range req.Packet.Attrs {
		if a.Type == packet.AttrProxyState {
			b, _ = packet.AppendAttr(b, a.Type, a.Value)
		}
	}
	if err := packet.Sign(b, req.Client.Secret, &req.Packet.Authenticator); err != nil {
		panic(err)
	}
	return b
}

// TestProxyStateFloodStaysWithinByteBound: a client that knows its secret
// sends requests carrying ~3.8 KiB of Proxy-State, each answered with it
// echoed, at full rate and from many source ports. The duplicate cache
// stays within MaxDuplicateBytes, the evictions are counted, and another
// client's answer stays cached for its retransmission.
func TestProxyStateFloodStaysWithinByteBound(t *testing.T) {
	const maxBytes = 1 << 20
	flooder := &proxy.Client{Name: "flooder", Prefix: netip.MustParsePrefix("127.0.0.1/32"), Secret: secret, RequireMessageAuthenticator: true}
	quiet := &proxy.Client{Name: "quiet", Prefix: netip.MustParsePrefix("127.0.0.2/32"), Secret: secret, RequireMessageAuthenticator: true}
	h := newHarness(t, []*proxy.Client{flooder, quiet}, proxy.HandlerFunc(func(_ context.Context, req *proxy.Request) ([]byte, proxy.Outcome) {
		return echoProxyState(req), proxy.OutcomeAnswered
	}), func(c *Config) { c.MaxDuplicateBytes = maxBytes })

	quietSrc := netip.MustParseAddrPort("127.0.0.2:1645")
	quietReq := request(t, packet.CodeAccessRequest, 1, secret, true, userName("quiet"))
	h.send(quietReq, quietSrc)

	var ps []attr
	for range 15 {
		ps = append(ps, attr{packet.AttrProxyState, bytes.Repeat([]byte{'p'}, 253)})
	}
	for i := range 2000 {
		src := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(20000+i/256))
		h.send(request(t, packet.CodeAccessRequest, uint8(i), secret, true, ps...), src)
		if st := h.s.dup.Stats(); st.Bytes > maxBytes {
			t.Fatalf("after %d requests the duplicate cache is charged %d bytes, over %d", i+1, st.Bytes, maxBytes)
		}
	}
	if got := counterValue(h.reg, "mxedge_duplicate_cache_evictions_total", map[string]string{"cause": "bytes"}); got == 0 {
		t.Fatal("no evictions counted under cause=bytes")
	}
	before := h.sk.conn.(*fakeConn).writes.Load()
	h.send(quietReq, quietSrc)
	if h.sk.conn.(*fakeConn).writes.Load() != before+1 ||
		testutil.ToFloat64(h.s.m.request("quiet", packet.CodeAccessRequest, outcomeDuplicateAnswered)) != 1 {
		t.Fatal("the quiet client's retransmission was not answered from the cache")
	}
}

// records keeps the log records a test's server emits.
type records struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (r *records) Enabled(context.Context, slog.Level) bool { return true }
func (r *records) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	r.recs = append(r.recs, rec.Clone())
	r.mu.Unlock()
	return nil
}
func (r *records) WithAttrs([]slog.Attr) slog.Handler { return r }
func (r *records) WithGroup(string) slog.Handler      { return r }

func (r *records) warnings() []map[string]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []map[string]string
	for _, rec := range r.recs {
		if rec.Level < slog.LevelWarn {
			continue
		}
		m := map[string]string{"msg": rec.Message}
		rec.Attrs(func(a slog.Attr) bool { m[a.Key] = a.Value.String(); return true })
		out = append(out, m)
	}
	return out
}

// TestDropWarningsRateLimitedWithSuppressedCount: refusals from one source
// log one warning a minute, and the next one says how many were not
// logged, for unknown sources and known clients' drops alike.
func TestDropWarningsRateLimitedWithSuppressedCount(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	logs := &records{}
	client := &proxy.Client{Name: "sw", Prefix: netip.MustParsePrefix("127.0.0.1/32"), Secret: secret, RequireMessageAuthenticator: true}
	h := newHarness(t, []*proxy.Client{client}, nil, func(c *Config) {
		c.Logger = slog.New(logs)
		c.Now = func() time.Time { return now }
		c.AuthFailuresPerSecond = -1 // this test is about logs only
	})
	unknown := netip.MustParseAddrPort("127.0.0.2:1645")
	known := netip.MustParseAddrPort("127.0.0.1:1645")
	noMA := request(t, packet.CodeAccessRequest, 1, secret, false, userName("x"))
	for range 5 {
		h.send(noMA, unknown)
		h.send(noMA, known)
	}
	if w := logs.warnings(); len(w) != 2 {
		t.Fatalf("%d warnings for 10 refusals from 2 sources, want 2: %v", len(w), w)
	}
	now = now.Add(61 * time.Second)
	h.send(noMA, unknown)
	h.send(noMA, known)
	w := logs.warnings()
	if len(w) != 4 || w[2]["suppressed"] != "4" || w[3]["suppressed"] != "4" {
		t.Fatalf("warnings after a minute = %v, want two more, each with suppressed=4", w)
	}
}

// forged is a request from a forger without the secret: its
// Message-Authenticator is garbage.
func forged(t testing.TB, id uint8) []byte {
	b := request(t, packet.CodeAccessRequest, id, secret, true, userName("forged"))
	for i := packet.HeaderLen + 2; i < packet.HeaderLen+18; i++ {
		b[i] ^= 0xa5
	}
	return b
}

// TestForgedFloodShedBeforeVerification: a source (address and port)
// whose packets keep failing authentication is limited to its budget of
// verifications; the rest are dropped unparsed and counted, the device's
// own port is not affected, and the budget comes back with time.
func TestForgedFloodShedBeforeVerification(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	client := &proxy.Client{Name: "sw", Prefix: netip.MustParsePrefix("127.0.0.1/32"), Secret: secret, RequireMessageAuthenticator: true}
	h := newHarness(t, []*proxy.Client{client}, nil, func(c *Config) {
		c.Now = func() time.Time { return now }
		c.AuthFailuresPerSecond = 10
	})
	forger := netip.MustParseAddrPort("127.0.0.1:5000")
	device := netip.MustParseAddrPort("127.0.0.1:1645")
	for i := range 1000 {
		h.send(forged(t, uint8(i)), forger)
	}
	if bad, limited := h.drops("bad_message_authenticator"), h.drops("auth_failures_rate_limited"); bad != 20 || limited != 980 {
		t.Fatalf("verified %v and shed %v of 1000 forgeries, want 20 (the burst) and 980", bad, limited)
	}
	writes := h.sk.conn.(*fakeConn).writes.Load()
	h.send(request(t, packet.CodeAccessRequest, 1, secret, true, userName("ok")), device)
	if h.sk.conn.(*fakeConn).writes.Load() != writes+1 {
		t.Fatal("the device's own port was not answered")
	}
	now = now.Add(time.Second)
	h.send(request(t, packet.CodeAccessRequest, 2, secret, true, userName("ok")), forger)
	if h.sk.conn.(*fakeConn).writes.Load() != writes+2 {
		t.Fatal("a valid request from the flooded port was not answered once its budget refilled")
	}
}

// TestCheapDropsAllocateNothing: a datagram from an unknown source, and a
// forgery from a source over its failure budget, are dropped without a
// heap allocation (the read buffer comes from a pool).
func TestCheapDropsAllocateNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("allocation counts")
	}
	client := &proxy.Client{Name: "sw", Prefix: netip.MustParsePrefix("127.0.0.1/32"), Secret: secret, RequireMessageAuthenticator: true}
	h := newHarness(t, []*proxy.Client{client}, nil)
	for _, c := range []struct {
		name string
		src  netip.AddrPort
		b    []byte
	}{
		{"unknown source", netip.MustParseAddrPort("127.0.0.2:1645"), mabRequest(t, 1)},
		{"forgery over budget", netip.MustParseAddrPort("127.0.0.1:5000"), forged(t, 1)},
	} {
		for range 100 { // spend the budget, log the one line
			h.send(c.b, c.src)
		}
		if a := testing.AllocsPerRun(1000, func() { h.send(c.b, c.src) }); a != 0 {
			t.Errorf("%s: %v allocations per datagram, want 0", c.name, a)
		}
	}
}
