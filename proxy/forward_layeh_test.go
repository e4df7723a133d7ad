package proxy

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/md5"
	"crypto/rand"
	"errors"
	"net/netip"
	"testing"

	"layeh.com/radius"
	"layeh.com/radius/rfc2865"

	"github.com/mxedge/mxedge/proxy/packet"
)

// The two benchmarks below do the same hop, from the NAS's datagram to the
// NAS's answer, through the same canned upstream: check the request's
// Message-Authenticator, re-encrypt User-Password under the upstream's
// secret and a new authenticator, add our Proxy-State, sign; check the
// reply, drop our Proxy-State, put Message-Authenticator first and sign
// with the NAS's secret. One uses proxy/packet and the Forwarder, the other
// layeh.com/radius (which keeps order and unknown attributes too, but has
// no Message-Authenticator, so that part is written by hand as any user of
// it must). `go test -run '^$' -bench 'Hop' ./proxy/` reruns the
// comparison that docs/benchmarks.md quotes and proxy/packet/doc.go cites.

func hopRequest(tb testing.TB) []byte {
	tb.Helper()
	p := radius.New(radius.CodeAccessRequest, nasSecret)
	rfc2865.UserName_SetString(p, "aabbccddeeff")
	rfc2865.UserPassword_SetString(p, "aabbccddeeff")
	rfc2865.CallingStationID_SetString(p, "AA-BB-CC-DD-EE-FF")
	rfc2865.NASIPAddress_Set(p, []byte{192, 0, 2, 1})
	rfc2865.NASPortType_Set(p, rfc2865.NASPortType_Value_Ethernet)
	raw, err := p.Encode()
	if err != nil {
		tb.Fatal(err)
	}
	raw = append(raw, packet.AppendMessageAuthenticator(nil)...)
	if err := packet.Sign(raw, nasSecret, nil); err != nil {
		tb.Fatal(err)
	}
	return raw
}

func BenchmarkHopPacket(b *testing.B) {
	raw := hopRequest(b)
	client := &Client{Name: "sw1", Prefix: netip.MustParsePrefix("127.0.0.1/32"), Secret: nasSecret}
	f := NewForwarder([]byte("radsec"), 0)
	up := &cannedUpstream{}
	var p packet.Packet
	b.ReportAllocs()
	for b.Loop() {
		if err := p.Parse(raw); err != nil {
			b.Fatal(err)
		}
		has, err := packet.VerifyRequest(&p, client.Secret)
		if err != nil || !has {
			b.Fatal(has, err)
		}
		if _, _, err := f.Forward(context.Background(), up, &Request{Packet: &p, Client: client, HasMessageAuthenticator: has}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkHopLayeh(b *testing.B) {
	raw := hopRequest(b)
	up := &cannedUpstream{}
	var want []byte
	b.ReportAllocs()
	for b.Loop() {
		out, err := layehHop(raw, nasSecret, []byte("radsec"), up)
		if err != nil {
			b.Fatal(err)
		}
		want = out
	}
	// Same answer as the hand-written path (bar the authenticators).
	if rp, err := packet.Parse(want); err != nil || rp.Code != packet.CodeAccessAccept || len(rp.Attrs) != 4 || rp.Attrs[0].Type != packet.AttrMessageAuthenticator {
		b.Fatalf("layeh hop answered %v %v", rp, err)
	}
}

// TestLayehHop keeps the benchmark honest: its answer verifies under the
// NAS's secret like the Forwarder's.
func TestLayehHop(t *testing.T) {
	raw := hopRequest(t)
	out, err := layehHop(raw, nasSecret, []byte("radsec"), &cannedUpstream{})
	if err != nil {
		t.Fatal(err)
	}
	req, _ := packet.Parse(raw)
	rp, err := packet.Parse(out)
	if err != nil {
		t.Fatal(err)
	}
	if has, err := packet.VerifyResponse(rp, req.Authenticator, nasSecret); err != nil || !has {
		t.Fatalf("layeh hop's answer: MA %v, %v", has, err)
	}
	if _, ok := rp.Lookup(packet.AttrProxyState); ok {
		t.Fatal("our Proxy-State leaked to the NAS")
	}
}

// layehHop is the Forwarder's hop written on layeh.com/radius.
func layehHop(raw, nasSecret, upSecret []byte, up Exchanger) ([]byte, error) {
	in, err := radius.Parse(raw, nasSecret)
	if err != nil {
		return nil, err
	}
	if !layehMAValid(raw, in.Authenticator[:], nasSecret) {
		return nil, errors.New("bad Message-Authenticator")
	}
	pw, err := rfc2865.UserPassword_Lookup(in)
	if err != nil {
		return nil, err
	}
	out := &radius.Packet{Code: in.Code, Secret: upSecret}
	rand.Read(out.Authenticator[:])
	out.Add(80, make([]byte, 16))
	for _, a := range in.Attributes {
		switch a.Type {
		case 80:
		case rfc2865.UserPassword_Type:
			enc, err := radius.NewUserPassword(pw, upSecret, out.Authenticator[:])
			if err != nil {
				return nil, err
			}
			out.Add(a.Type, enc)
		default:
			out.Add(a.Type, a.Attribute)
		}
	}
	token := []byte("mxe\x00\x00\x00\x00\x01")
	out.Add(33, token)
	ob, err := out.Encode()
	if err != nil {
		return nil, err
	}
	layehSetMA(ob, out.Authenticator[:], upSecret)

	rb, err := up.Exchange(context.Background(), ob)
	if err != nil {
		return nil, err
	}
	if !radius.IsAuthenticResponse(rb, ob, upSecret) || !layehMAValid(rb, out.Authenticator[:], upSecret) {
		return nil, errors.New("reply not authentic")
	}
	reply, err := radius.Parse(rb, upSecret)
	if err != nil {
		return nil, err
	}
	resp := in.Response(reply.Code)
	resp.Add(80, make([]byte, 16))
	for _, a := range reply.Attributes {
		if a.Type == 80 || a.Type == 33 && bytes.Equal(a.Attribute, token) {
			continue
		}
		resp.Add(a.Type, a.Attribute)
	}
	// Encode would hash the authenticator over a zero Message-Authenticator;
	// the MA comes first, then the Response Authenticator over it.
	b, err := resp.MarshalBinary()
	if err != nil {
		return nil, err
	}
	layehSetMA(b, in.Authenticator[:], nasSecret)
	h := md5.New()
	h.Write(b[:4])
	h.Write(in.Authenticator[:])
	h.Write(b[20:])
	h.Write(nasSecret)
	h.Sum(b[4:4:20])
	return b, nil
}

// layehMAOffset finds the Message-Authenticator's value in raw.
func layehMAOffset(raw []byte) int {
	for i := 20; i+2 <= len(raw) && raw[i+1] >= 2; i += int(raw[i+1]) {
		if raw[i] == 80 && raw[i+1] == 18 {
			return i + 2
		}
	}
	return -1
}

func layehMA(raw, auth, secret []byte) []byte {
	off := layehMAOffset(raw)
	c := append([]byte(nil), raw...)
	copy(c[4:20], auth)
	clear(c[off : off+16])
	m := hmac.New(md5.New, secret)
	m.Write(c)
	return m.Sum(nil)
}

func layehMAValid(raw, auth, secret []byte) bool {
	off := layehMAOffset(raw)
	return off > 0 && hmac.Equal(layehMA(raw, auth, secret), raw[off:off+16])
}

func layehSetMA(raw, auth, secret []byte) {
	copy(raw[layehMAOffset(raw):], layehMA(raw, auth, secret))
}
