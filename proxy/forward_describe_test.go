package proxy

import (
	"context"
	"encoding/binary"
	"net/netip"
	"testing"

	"layeh.com/radius"
	"layeh.com/radius/rfc2865"
	"layeh.com/radius/rfc2866"
	"layeh.com/radius/rfc3162"
)

// edgeVSAs returns the edge's sub-attributes in p by type.
func edgeVSAs(t *testing.T, p *radius.Packet) map[uint8]string {
	t.Helper()
	out := map[uint8]string{}
	for _, a := range all(p, 26) {
		if len(a) < 8 || binary.BigEndian.Uint32(a[:4]) != EdgeVendorID {
			continue
		}
		if int(a[5]) != len(a)-4 {
			t.Fatalf("sub-attribute length %d in a VSA of %d", a[5], len(a))
		}
		out[a[4]] = string(a[6:])
	}
	return out
}

func TestForwardDescribe(t *testing.T) {
	for _, tc := range []struct {
		name     string
		describe bool
		code     radius.Code
		src      string
		site     string
		build    func(p *radius.Packet)
		nasIP    string // "" none
		nasIPv6  string
		vsas     map[uint8]string
	}{
		{"IPv4 source, no NAS-IP", true, radius.CodeAccessRequest, "10.1.2.3:5000", "hq", func(p *radius.Packet) {},
			"10.1.2.3", "", map[uint8]string{1: "sw1", 2: "hq", 3: "cisco"}},
		{"device's own NAS-IP kept", true, radius.CodeAccessRequest, "10.1.2.3:5000", "hq", func(p *radius.Packet) {
			rfc2865.NASIPAddress_Set(p, netip.MustParseAddr("192.0.2.9").AsSlice())
		}, "192.0.2.9", "", map[uint8]string{1: "sw1", 2: "hq", 3: "cisco"}},
		{"IPv6 source", true, radius.CodeAccountingRequest, "[2001:db8::7]:5000", "", func(p *radius.Packet) {
			rfc2866.AcctStatusType_Set(p, rfc2866.AcctStatusType_Value_Start)
		}, "", "2001:db8::7", map[uint8]string{1: "sw1", 3: "cisco"}},
		{"NAS-IPv6 sent: no NAS-IP added", true, radius.CodeAccessRequest, "10.1.2.3:5000", "", func(p *radius.Packet) {
			rfc3162.NASIPv6Address_Set(p, netip.MustParseAddr("2001:db8::1").AsSlice())
		}, "", "2001:db8::1", map[uint8]string{1: "sw1", 3: "cisco"}},
		{"off", false, radius.CodeAccessRequest, "10.1.2.3:5000", "hq", func(p *radius.Packet) {}, "", "", map[uint8]string{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := nasRequest(t, tc.code, func(p *radius.Packet) {
				rfc2865.UserName_SetString(p, "aabbccddeeff")
				tc.build(p)
			})
			req.Source = netip.MustParseAddrPort(tc.src)
			req.Client.Vendor, req.Client.Site = "cisco", tc.site
			up := &layehUpstream{t: t, secret: []byte("radsec"), answer: func(q *radius.Packet) *radius.Packet {
				if q.Code == radius.CodeAccountingRequest {
					return q.Response(radius.CodeAccountingResponse)
				}
				return q.Response(radius.CodeAccessAccept)
			}}
			f := NewForwarder([]byte("radsec"), 0)
			f.Describe = tc.describe
			if _, _, err := f.Forward(context.Background(), up, req); err != nil {
				t.Fatal(err)
			}
			got := ""
			if ips := all(up.seen, 4); len(ips) == 1 {
				got = netip.AddrFrom4([4]byte(ips[0])).String()
			} else if len(ips) > 1 {
				t.Fatalf("%d NAS-IP-Address", len(ips))
			}
			if got != tc.nasIP {
				t.Errorf("NAS-IP-Address %q, want %q", got, tc.nasIP)
			}
			got6 := ""
			if ips := all(up.seen, 95); len(ips) == 1 {
				got6 = netip.AddrFrom16([16]byte(ips[0])).String()
			}
			if got6 != tc.nasIPv6 {
				t.Errorf("NAS-IPv6-Address %q, want %q", got6, tc.nasIPv6)
			}
			vs := edgeVSAs(t, up.seen)
			if len(vs) != len(tc.vsas) {
				t.Errorf("edge VSAs %v, want %v", vs, tc.vsas)
			}
			for k, v := range tc.vsas {
				if vs[k] != v {
					t.Errorf("edge VSA %d = %q, want %q", k, vs[k], v)
				}
			}
		})
	}
}

func BenchmarkForwardDescribe(b *testing.B) {
	t := &testing.T{}
	up := &cannedUpstream{}
	req, _ := nasRequest(t, radius.CodeAccessRequest, func(p *radius.Packet) {
		rfc2865.UserName_SetString(p, "aabbccddeeff")
		rfc2865.UserPassword_SetString(p, "aabbccddeeff")
		rfc2865.CallingStationID_SetString(p, "AA-BB-CC-DD-EE-FF")
	})
	req.Source = netip.MustParseAddrPort("10.1.2.3:5000")
	req.Client.Vendor, req.Client.Site = "aruba", "hq"
	f := NewForwarder([]byte("radsec"), 0)
	f.Describe = true
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := f.Forward(context.Background(), up, req); err != nil {
			b.Fatal(err)
		}
	}
}
