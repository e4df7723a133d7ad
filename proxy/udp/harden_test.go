package udp

import (
	"bytes"
	"context"
	"net/netip"
	"testing"

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
	if got := counterValue(h.reg, "mxedge_duplicate_cache_evictions_total", map[string]string{"listener": "auth", "cause": "bytes"}); got == 0 {
		t.Fatal("no evictions counted under cause=bytes")
	}
	before := h.sk.conn.(*fakeConn).writes.Load()
	h.send(quietReq, quietSrc)
	if h.sk.conn.(*fakeConn).writes.Load() != before+1 ||
		testutil.ToFloat64(h.s.m.request("quiet", packet.CodeAccessRequest, outcomeDuplicateAnswered)) != 1 {
		t.Fatal("the quiet client's retransmission was not answered from the cache")
	}
}
