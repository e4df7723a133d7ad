package coa

import (
	"context"
	"encoding/binary"
	"net/netip"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mxedge/mxedge/proxy"
	"github.com/mxedge/mxedge/proxy/packet"
	"github.com/mxedge/mxedge/proxy/packet/packettest"
)

var (
	dacSecret    = []byte("radsec")
	switchSecret = []byte("switch-secret-0123456789")
	epoch        = time.Unix(1_800_000_000, 0)
)

// dir is a fixed device table.
type dir map[string]Target // by name; ByAddr matches Target.Addr's address

func (d dir) ByAddr(a netip.Addr) (Target, bool) {
	for _, t := range d {
		if t.Addr.Addr() == a {
			return t, true
		}
	}
	return Target{}, false
}

func (d dir) ByName(n string) (Target, bool) { t, ok := d[n]; return t, ok }

// request is a CoA or Disconnect from the cloud over RadSec.
func request(t *testing.T, code packet.Code, attrs ...packet.Attr) *proxy.Request {
	t.Helper()
	b := packet.AppendMessageAuthenticator(packet.Append(nil, code, 9, [16]byte{}))
	for _, a := range attrs {
		b, _ = packet.AppendAttr(b, a.Type, a.Value)
	}
	b, _ = packet.AppendAttr(b, packet.AttrProxyState, []byte("cloud-ps"))
	if err := packet.Sign(b, dacSecret, nil); err != nil {
		t.Fatal(err)
	}
	p, err := packet.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	return &proxy.Request{Packet: p, Client: &proxy.Client{Name: "cloud", Secret: dacSecret}, HasMessageAuthenticator: true}
}

func ts(t time.Time) packet.Attr {
	return packet.Attr{Type: AttrEventTimestamp, Value: binary.BigEndian.AppendUint32(nil, uint32(t.Unix()))}
}

func nasIP(a netip.AddrPort) packet.Attr {
	v := a.Addr().As4()
	return packet.Attr{Type: packet.AttrNASIPAddress, Value: v[:]}
}

func user(u string) packet.Attr { return packet.Attr{Type: packet.AttrUserName, Value: []byte(u)} }

func TestRelay(t *testing.T) {
	// Each device on its own loopback address, as ByAddr finds them.
	sw := packettest.StartCoADevice(t, "127.0.0.1", switchSecret, false)
	swAddr, seen := sw.Addr, sw.Got
	laxAddr := packettest.StartCoADevice(t, "127.0.0.3", []byte("lax-switch-secret-0123"), true).Addr
	strictNoMA := packettest.StartCoADevice(t, "127.0.0.4", switchSecret, true).Addr
	d := dir{
		"sw1":    {Name: "sw1", Addr: swAddr, Secret: switchSecret, RequireMessageAuthenticator: true},
		"lax":    {Name: "lax", Addr: laxAddr, Secret: []byte("lax-switch-secret-0123"), IgnoreEventTimestamp: true},
		"sw-1":   {Name: "other", Addr: netip.MustParseAddrPort("192.0.2.1:3799"), Secret: switchSecret},
		"strict": {Name: "strict", Addr: strictNoMA, Secret: switchSecret, RequireMessageAuthenticator: true},
	}
	r, err := New(Config{Directory: d, Timeout: 200 * time.Millisecond, Retries: 1,
		Now: func() time.Time { return epoch }, Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	nasID := func(s string) packet.Attr { return packet.Attr{Type: packet.AttrNASIdentifier, Value: []byte(s)} }
	for _, tc := range []struct {
		name    string
		code    packet.Code
		attrs   []packet.Attr
		want    packet.Code // 0: discarded
		cause   uint32
		reached bool
	}{
		{"CoA by NAS-IP-Address", packet.CodeCoARequest, []packet.Attr{nasIP(swAddr), user("u1"), ts(epoch)}, packet.CodeCoAACK, 0, true},
		{"Disconnect by NAS-Identifier", packet.CodeDisconnectRequest, []packet.Attr{nasID("sw1"), user("u1")}, packet.CodeDisconnectACK, 0, true},
		{"device NAKs", packet.CodeDisconnectRequest, []packet.Attr{nasIP(swAddr), user("nak")}, packet.CodeDisconnectNAK, 503, true},
		{"stale Event-Timestamp", packet.CodeCoARequest, []packet.Attr{nasIP(swAddr), user("u1"), ts(epoch.Add(-301 * time.Second))}, 0, 0, false},
		{"future Event-Timestamp", packet.CodeCoARequest, []packet.Attr{nasIP(swAddr), user("u1"), ts(epoch.Add(301 * time.Second))}, 0, 0, false},
		{"check off for the device", packet.CodeCoARequest, []packet.Attr{nasID("lax"), user("u1"), ts(epoch.Add(-time.Hour))}, packet.CodeCoAACK, 0, false},
		{"unknown address", packet.CodeCoARequest, []packet.Attr{nasIP(netip.MustParseAddrPort("198.51.100.1:1")), user("u1")}, packet.CodeCoANAK, NASIdentificationMismatch, false},
		{"unknown identifier", packet.CodeDisconnectRequest, []packet.Attr{nasID("nobody")}, packet.CodeDisconnectNAK, NASIdentificationMismatch, false},
		{"address and identifier disagree", packet.CodeCoARequest, []packet.Attr{nasIP(swAddr), nasID("sw-1")}, packet.CodeCoANAK, NASIdentificationMismatch, false},
		{"no NAS identification", packet.CodeDisconnectRequest, []packet.Attr{user("u1")}, packet.CodeDisconnectNAK, SessionContextNotFound, false},
		{"device silent", packet.CodeCoARequest, []packet.Attr{nasIP(swAddr), user("silent")}, packet.CodeCoANAK, ResourcesUnavailable, true},
		{"answer without required MA", packet.CodeCoARequest, []packet.Attr{nasID("strict"), user("u1")}, packet.CodeCoANAK, ResourcesUnavailable, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for len(seen) > 0 {
				<-seen
			}
			req := request(t, tc.code, tc.attrs...)
			b, _ := r.ServeRADIUS(context.Background(), req)
			if tc.want == 0 {
				if b != nil {
					t.Fatalf("answered %x, want silently discarded", b)
				}
			} else {
				rp, err := packet.Parse(b)
				if err != nil {
					t.Fatal(err)
				}
				if hasMA, err := packet.VerifyResponse(rp, req.Packet.Authenticator, dacSecret); err != nil || !hasMA {
					t.Fatalf("answer does not verify for the cloud (MA %v): %v", hasMA, err)
				}
				if rp.Code != tc.want {
					t.Fatalf("answer %s, want %s", rp.Code, tc.want)
				}
				ec, ok := rp.Lookup(packet.AttrErrorCause)
				if got := uint32(0); ok {
					got = binary.BigEndian.Uint32(ec)
					if got != tc.cause {
						t.Errorf("Error-Cause %d, want %d", got, tc.cause)
					}
				} else if tc.cause != 0 {
					t.Errorf("no Error-Cause, want %d", tc.cause)
				}
				if ps, _ := rp.Lookup(packet.AttrProxyState); string(ps) != "cloud-ps" || rp.Count(packet.AttrProxyState) != 1 {
					t.Errorf("Proxy-State %q ×%d, want the cloud's once", ps, rp.Count(packet.AttrProxyState))
				}
			}
			select {
			case p := <-seen:
				if !tc.reached {
					t.Error("the switch got it")
				}
				if p.Attrs[0].Type != packet.AttrMessageAuthenticator || p.Count(packet.AttrProxyState) != 0 {
					t.Errorf("to the switch: first attribute %d, %d Proxy-State", p.Attrs[0].Type, p.Count(packet.AttrProxyState))
				}
			default:
				if tc.reached {
					t.Error("the switch never got it")
				}
			}
		})
	}
}

// The known targets' ack and nak series, and unknown_target's, exist at
// zero from New: dashboards see zeros before the cloud's first CoA.
func TestSeriesFromStart(t *testing.T) {
	reg := prometheus.NewRegistry()
	if _, err := New(Config{Directory: dir{}, Registerer: reg, Targets: []string{"sw1", "sw2"}}); err != nil {
		t.Fatal(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			l := map[string]string{}
			for _, lp := range m.GetLabel() {
				l[lp.GetName()] = lp.GetValue()
			}
			got[l["kind"]+"/"+l["target"]+"/"+l["result"]] = m.GetCounter().GetValue() == 0
		}
	}
	for _, want := range []string{"coa//unknown_target", "disconnect//unknown_target",
		"coa/sw1/ack", "coa/sw1/nak", "disconnect/sw2/ack", "disconnect/sw2/nak"} {
		if !got[want] {
			t.Errorf("no zero series %s; have %v", want, got)
		}
	}
	if len(got) != 10 {
		t.Errorf("%d series, want 10: %v", len(got), got)
	}
}
