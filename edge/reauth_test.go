package edge

import (
	"context"
	"log/slog"
	"net/netip"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mxedge/mxedge/proxy"
	"github.com/mxedge/mxedge/proxy/coa"
	"github.com/mxedge/mxedge/proxy/packet"
)

// localAccept is a request from client and the local NAC's Accept with vlan.
func localAccept(t *testing.T, c *proxy.Client, src, csid, vlan string) (*proxy.Request, []byte) {
	t.Helper()
	b := packet.AppendMessageAuthenticator(packet.Append(nil, packet.CodeAccessRequest, 3, packet.RandomAuthenticator()))
	b, _ = packet.AppendAttr(b, packet.AttrUserName, []byte(csid))
	b, _ = packet.AppendAttr(b, packet.AttrCallingStationID, []byte(csid))
	if err := packet.Sign(b, c.Secret, nil); err != nil {
		t.Fatal(err)
	}
	p, _ := packet.Parse(b)
	req := &proxy.Request{Packet: p, Client: c, Source: netip.MustParseAddrPort(src)}
	reply, err := proxy.Reply(req, packet.CodeAccessAccept, func(b []byte) ([]byte, error) {
		return packet.AppendAttr(b, packet.AttrTunnelPrivateGroupID, append([]byte{0}, vlan...))
	})
	if err != nil {
		t.Fatal(err)
	}
	return req, reply
}

func TestReauthAfterOutage(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cisco := &proxy.Client{Name: "sw-cisco", Vendor: "cisco", Secret: []byte("s1-0123456789abcdef")}
		aruba := &proxy.Client{Name: "wlc-aruba", Vendor: "aruba", Secret: []byte("s2-0123456789abcdef")}
		var mu sync.Mutex
		var sent []*packet.Packet
		var targets []string
		enabled := true
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		r := &reauth{
			log: slog.New(slog.DiscardHandler), ctx: ctx, cancel: cancel, pace: 100 * time.Millisecond,
			enabled: func() bool { return enabled },
			vlans:   func() (string, string) { return "999", "998" },
			target: func(c *proxy.Client, ip netip.Addr) (coa.Target, bool) {
				return coa.Target{Name: c.Name, Addr: netip.AddrPortFrom(ip, 3799)}, ip.IsValid()
			},
			send: func(_ context.Context, tg coa.Target, p *packet.Packet) (*packet.Packet, error) {
				mu.Lock()
				defer mu.Unlock()
				sent, targets = append(sent, p), append(targets, tg.Addr.String())
				return &packet.Packet{Code: p.Code + 1}, nil
			},
			total: newReauthMetrics(prometheus.NewRegistry()),
		}
		for _, a := range []struct {
			c         *proxy.Client
			src, csid string
			vlan      string
		}{
			{cisco, "10.0.0.1:1645", "aa-aa-aa-aa-aa-01", "999"}, // default MAB VLAN: remembered
			{aruba, "10.0.0.2:1645", "aa-aa-aa-aa-aa-02", "998"}, // default 802.1X VLAN: remembered
			{aruba, "10.0.0.2:1645", "aa-aa-aa-aa-aa-03", "41"},  // a cached VLAN: not
			{cisco, "10.0.0.1:1645", "aa-aa-aa-aa-aa-01", "999"}, // the same session again: once
		} {
			r.seen(localAccept(t, a.c, a.src, a.csid, a.vlan))
		}
		enabled = false
		r.seen(localAccept(t, cisco, "10.0.0.1:1645", "aa-aa-aa-aa-aa-04", "999")) // feature off: not
		enabled = true

		r.cloudBack()
		time.Sleep(150 * time.Millisecond)
		synctest.Wait()
		mu.Lock()
		if len(sent) != 1 {
			t.Fatalf("%d sent after one pace, want 1 (paced)", len(sent))
		}
		mu.Unlock()
		time.Sleep(time.Second)
		synctest.Wait()
		mu.Lock()
		defer mu.Unlock()
		if len(sent) != 2 {
			t.Fatalf("%d requests, want 2", len(sent))
		}
		for i, p := range sent {
			csid, _ := p.Lookup(packet.AttrCallingStationID)
			switch string(csid) {
			case "aa-aa-aa-aa-aa-01":
				vsa, _ := p.Lookup(packet.AttrVendorSpecific)
				if p.Code != packet.CodeCoARequest || string(vsa[6:]) != "subscriber:command=reauthenticate" || targets[i] != "10.0.0.1:3799" {
					t.Errorf("cisco: %s %q to %s", p.Code, vsa, targets[i])
				}
			case "aa-aa-aa-aa-aa-02":
				if p.Code != packet.CodeDisconnectRequest || targets[i] != "10.0.0.2:3799" {
					t.Errorf("aruba: %s to %s", p.Code, targets[i])
				}
			default:
				t.Errorf("request for %q", csid)
			}
		}
		// Done: the next return has nothing to do.
		r.cloudBack()
		time.Sleep(time.Second)
		synctest.Wait()
		if len(sent) != 2 {
			t.Errorf("%d requests after a second return", len(sent))
		}
	})
}
