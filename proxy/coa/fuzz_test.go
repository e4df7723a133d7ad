package coa

import (
	"net/netip"
	"testing"

	"github.com/mxedge/mxedge/proxy/packet"
)

// FuzzResolve feeds arbitrary requests to Resolve: it must not panic, and
// a target it returns must be one of the directory's.
func FuzzResolve(f *testing.F) {
	d := dir{"sw1": {Name: "sw1", Addr: netip.MustParseAddrPort("192.0.2.1:3799")}}
	seed := func(attrs ...packet.Attr) []byte {
		b := packet.Append(nil, packet.CodeCoARequest, 1, [16]byte{})
		for _, a := range attrs {
			b, _ = packet.AppendAttr(b, a.Type, a.Value)
		}
		packet.Sign(b, []byte("s"), nil)
		return b
	}
	f.Add(seed(packet.Attr{Type: packet.AttrNASIPAddress, Value: []byte{192, 0, 2, 1}}))
	f.Add(seed(packet.Attr{Type: packet.AttrNASIdentifier, Value: []byte("sw1")}))
	f.Add(seed(packet.Attr{Type: packet.AttrNASIPAddress, Value: []byte{192, 0, 2, 1}}, packet.Attr{Type: packet.AttrNASIdentifier, Value: []byte("x")}))
	f.Add(seed(packet.Attr{Type: packet.AttrNASIPv6Address, Value: make([]byte, 16)}))
	f.Add(seed(packet.Attr{Type: packet.AttrNASIPAddress, Value: []byte{1, 2, 3}}))
	f.Add(seed())
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := packet.Parse(b)
		if err != nil {
			return
		}
		tg, cause, _ := Resolve(d, p)
		if cause == 0 && tg.Name != "sw1" {
			t.Fatalf("resolved to %+v", tg)
		}
		if cause != 0 && cause != NASIdentificationMismatch && cause != SessionContextNotFound {
			t.Fatalf("Error-Cause %d", cause)
		}
	})
}
