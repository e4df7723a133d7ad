package nac_test

import (
	"context"
	"testing"

	"github.com/mxedge/mxedge/proxy"
	"github.com/mxedge/mxedge/proxy/packet"
)

// FuzzServeRADIUS feeds arbitrary (framed) requests to the authenticator:
// it must never panic, and whatever it answers must be a valid, signed
// RADIUS packet with the Message-Authenticator first.
func FuzzServeRADIUS(f *testing.F) {
	f.Add(request(f, packet.CodeAccessRequest, 1, []byte{2, 1, 0, 6, 1, 'x'}, attr{31, []byte(aliceMAC)}))
	f.Add(request(f, packet.CodeAccessRequest, 2, nil, attr{1, []byte("aabbcc000001")}, attr{2, []byte("aabbcc000001")}, attr{31, []byte("aabbcc000001")}))
	f.Add(request(f, packet.CodeAccessRequest, 3, []byte{2, 9, 0, 6, 13, 0}, attr{24, []byte("0123456789abcdefghijklmn")}))
	f.Add(request(f, packet.CodeAccountingRequest, 4, nil, attr{40, u32(1)}))
	fx := newFuzzFixture(f)
	f.Fuzz(func(t *testing.T, raw []byte) {
		p, err := packet.Parse(raw)
		if err != nil {
			return
		}
		out, _ := fx.a.ServeRADIUS(context.Background(), &proxy.Request{Packet: p, Client: fx.client, HasMessageAuthenticator: true})
		if out == nil {
			return
		}
		rp, err := packet.Parse(out)
		if err != nil {
			t.Fatalf("unparseable reply: %v", err)
		}
		if _, err := packet.VerifyResponse(rp, p.Authenticator, secret); err != nil {
			t.Fatalf("reply does not verify: %v", err)
		}
		if rp.Code != packet.CodeAccountingResponse && rp.Attrs[0].Type != packet.AttrMessageAuthenticator {
			t.Fatal("Message-Authenticator not first")
		}
	})
}
