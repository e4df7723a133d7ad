package nac_test

import (
	"context"
	"testing"

	"github.com/mxedge/mxedge/proxy"
	"github.com/mxedge/mxedge/proxy/packet"
)

// BenchmarkMAB is the authenticator's own cost per MAB answer (lookup,
// reply, signing, event), without sockets.
func BenchmarkMAB(b *testing.B) {
	for _, c := range []struct{ name, mac string }{{"cached", "aabbcc000001"}, {"default", "aabbcc0000ff"}} {
		b.Run(c.name, func(b *testing.B) {
			f := newFixture(b, cachedStore(), "generic")
			raw := request(b, packet.CodeAccessRequest, 1, nil, attr{1, []byte(c.mac)}, attr{2, []byte(c.mac)},
				attr{6, u32(10)}, attr{31, []byte(c.mac)})
			p, err := packet.Parse(raw)
			if err != nil {
				b.Fatal(err)
			}
			req := &proxy.Request{Packet: p, Client: f.client, HasMessageAuthenticator: true}
			b.ReportAllocs()
			for b.Loop() {
				if out, _ := f.a.ServeRADIUS(context.Background(), req); out == nil {
					b.Fatal("no answer")
				}
			}
		})
	}
}
