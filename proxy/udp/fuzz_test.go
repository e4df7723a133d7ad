package udp

import (
	"net/netip"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/mxedge/mxedge/proxy"
	"github.com/mxedge/mxedge/proxy/packet"
)

// FuzzDatagram feeds arbitrary datagrams through the per-datagram path of
// an auth and an acct server, from a client that has opted out of
// Message-Authenticator (so more packets get past the policy checks), and
// fails on any panic, recovered or not. Seeds: testdata/fuzz/FuzzDatagram
// and the valid packets added below.
func FuzzDatagram(f *testing.F) {
	for _, code := range []packet.Code{packet.CodeAccessRequest, packet.CodeAccountingRequest, packet.CodeStatusServer} {
		for _, ma := range []bool{false, true} {
			f.Add(request(f, code, 1, secret, ma, userName("fuzz"), attr{packet.AttrProxyState, []byte("ps")}))
		}
	}
	f.Add(mabRequest(f, 2))
	f.Add(twoMAs(f, 3))
	f.Add([]byte{})

	c := loopbackClient("fuzz", optOut)
	table, err := proxy.NewClientTable([]*proxy.Client{c})
	if err != nil {
		f.Fatal(err)
	}
	type target struct {
		s  *Server
		sk *socket
	}
	var targets []target
	for _, kind := range []Kind{Auth, Acct} {
		s, err := New(Config{
			Clients: func() *proxy.ClientTable { return table }, Handler: acceptAll(nil), Kind: kind,
			Registerer: prometheus.NewRegistry(), Logger: testLogger(nil),
		})
		if err != nil {
			f.Fatal(err)
		}
		targets = append(targets, target{s, newSocket(newFakeConn(), s.log)})
	}
	src := netip.MustParseAddrPort("127.0.0.1:40000")
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, tg := range targets {
			w := workPool.Get().(*work)
			n := copy(w.buf[:], data)
			tg.s.datagram(tg.sk, w, n, src, tg.sk.local)
			tg.s.handlers.Wait()
			if p := testutil.ToFloat64(tg.s.m.drops[reasonPanic]); p != 0 {
				t.Fatalf("%s server: %v panics", tg.s.cfg.Kind, p)
			}
		}
	})
}
