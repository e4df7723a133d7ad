//go:build linux

package udp

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sys/unix"

	"github.com/mxedge/mxedge/proxy"
	"github.com/mxedge/mxedge/proxy/packet"
)

// A wildcard-bound server answers from the address each request was sent
// to. 127.0.0.0/8 is all local on Linux, so a request to 127.0.0.2 from
// 127.0.0.1 would otherwise be answered from 127.0.0.1, the address the
// route to the NAS prefers, and a real NAS drops that answer. The same
// request sent to two local addresses is two requests (RFC 5080 keys
// duplicates on the local address too).
func TestWildcardRepliesFromRequestedAddress(t *testing.T) {
	for _, bind := range []string{"0.0.0.0:0", "[::]:0"} {
		t.Run(bind, func(t *testing.T) {
			var calls atomic.Int32
			h := acceptAll(func(*proxy.Request) string { calls.Add(1); return "" })
			table, err := proxy.NewClientTable([]*proxy.Client{{Name: "lo", Prefix: netip.MustParsePrefix("127.0.0.0/8"),
				Secret: secret, RequireMessageAuthenticator: true}})
			if err != nil {
				t.Fatal(err)
			}
			s, err := New(Config{Clients: func() *proxy.ClientTable { return table }, Handler: h, Kind: Auth,
				Registerer: prometheus.NewRegistry(), Logger: testLogger(t)})
			if err != nil {
				t.Fatal(err)
			}
			pc, err := net.ListenPacket("udp", bind)
			if err != nil {
				t.Fatal(err)
			}
			defer pc.Close()
			served := make(chan error, 1)
			go func() { served <- s.Serve(pc) }()
			defer func() {
				ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
				defer cancel()
				s.Shutdown(ctx)
				if err := <-served; !errors.Is(err, ErrServerClosed) {
					t.Errorf("Serve: %v", err)
				}
			}()
			port := pc.LocalAddr().(*net.UDPAddr).Port

			c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			req := request(t, packet.CodeAccessRequest, 7, secret, true, userName("a"))
			for _, dst := range []string{"127.0.0.2", "127.0.0.3"} {
				to := &net.UDPAddr{IP: net.ParseIP(dst), Port: port}
				if _, err := c.WriteToUDP(req, to); err != nil {
					t.Fatal(err)
				}
				c.SetReadDeadline(time.Now().Add(waitLimit))
				buf := make([]byte, 4096)
				n, from, err := c.ReadFromUDPAddrPort(buf)
				if err != nil {
					t.Fatalf("to %s: no reply: %v", dst, err)
				}
				if got := from.Addr().Unmap().String(); got != dst {
					t.Fatalf("request to %s answered from %s", dst, got)
				}
				checkReply(t, buf[:n], req, secret, packet.CodeAccessAccept)
			}
			if calls.Load() != 2 {
				t.Fatalf("handler ran %d times for one request sent to two addresses, want 2", calls.Load())
			}
		})
	}
}

func TestControlMessages(t *testing.T) {
	for _, tc := range []struct {
		src string
		v6  bool
	}{{"127.0.0.2", false}, {"127.0.0.2", true}, {"2001:db8::5", true}} {
		oob := appendSrc(nil, netip.MustParseAddr(tc.src), tc.v6)
		// What we send as ipi_spec_dst is where the kernel reports
		// ipi_addr, so build that form for IPv4 by hand.
		if !tc.v6 {
			d := oob[unix.CmsgLen(0):]
			copy(d[8:12], d[4:8])
		}
		got, ok := parseDst(oob)
		if !ok || got.String() != tc.src {
			t.Errorf("%s (v6 socket %v): parsed %v %v", tc.src, tc.v6, got, ok)
		}
	}
	for _, bad := range [][]byte{nil, {1, 2, 3}, make([]byte, 64)} {
		if a, ok := parseDst(bad); ok {
			t.Errorf("parsed %v from % x", a, bad)
		}
	}
}

func FuzzParseDst(f *testing.F) {
	f.Add(appendSrc(nil, netip.MustParseAddr("127.0.0.2"), false))
	f.Add(appendSrc(nil, netip.MustParseAddr("2001:db8::1"), true))
	f.Fuzz(func(t *testing.T, b []byte) {
		parseDst(b) // must not panic or loop
	})
}
