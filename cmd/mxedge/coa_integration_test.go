package main

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/mxedge/mxedge/proxy/packet"
	"github.com/mxedge/mxedge/proxy/packet/packettest"
	"github.com/mxedge/mxedge/proxy/radsec"
)

// startSwitch is a device's CoA listener on host (see
// packettest.CoADevice: ACK, or NAK with Error-Cause 503 for User-Name
// "nak"); with noMA its answers carry no Message-Authenticator.
func startSwitch(t *testing.T, host, secret string, noMA bool) *packettest.CoADevice {
	t.Helper()
	return packettest.StartCoADevice(t, host, []byte(secret), noMA)
}

// TestCoARelayRealEdge: the cloud (a RadSec client with the cloud's
// certificate) sends CoA and Disconnect through the real mxedge to
// devices listening on their coa_port; the ACK and NAK come back over
// RadSec, a stale Event-Timestamp is discarded unless the device turns the
// check off, and an unknown target gets its Error-Cause.
func TestCoARelayRealEdge(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("real-process test")
	}
	p := labPKI(t)
	const swSecret, laxSecret = "switch-coa-secret-51f0a2", "lax-switch-secret-77ab01"
	sw := startSwitch(t, "127.0.0.5", swSecret, false)
	lax := startSwitch(t, "127.0.0.6", laxSecret, true)
	sec := radsecSection(p, "")
	sec = strings.Replace(sec, "client_ca: "+p.RadSecCAFile, "client_ca: "+p.OrgCAFile, 1)
	e, _ := startLocalEdge(t, p, p.EAPServerECDSA, func(c *edgeConfig) {
		c.Extra = sec
		c.MoreClients = fmt.Sprintf(`    - name: access-sw-5
      address: 127.0.0.5
      secret: %q
      vendor: cisco
      coa_port: %d
    - name: lax-sw-6
      address: 127.0.0.6
      secret: %q
      vendor: aruba
      coa_port: %d
      coa_require_message_authenticator: false
      coa_disable_event_timestamp_check: true
`, swSecret, sw.Addr.Port(), laxSecret, lax.Addr.Port())
	})
	addr := e.RadSec
	cloudCert := device{Cert: p.RadSecClient.Chain, Key: p.RadSecClient.Key}
	cloud := dialRadSec(t, addr, p.RadSecCAFile, cloudCert)
	outer := t
	now := uint32(time.Now().Unix())
	ip := func(s string) attr {
		a := netip.MustParseAddr(s).As4()
		return attr{packet.AttrNASIPAddress, string(a[:])}
	}
	evts := func(t uint32) attr { return attr{55, string(binary.BigEndian.AppendUint32(nil, t))} }
	id := func(s string) attr { return attr{packet.AttrNASIdentifier, s} }
	user := func(s string) attr { return attr{packet.AttrUserName, s} }
	for i, tc := range []struct {
		name  string
		code  packet.Code
		attrs []attr
		want  packet.Code // 0: no answer
		cause uint32
		at    *packettest.CoADevice // the device that must get it
	}{
		{"CoA ACK", packet.CodeCoARequest, []attr{ip("127.0.0.5"), user("u1"), evts(now)}, packet.CodeCoAACK, 0, sw},
		{"Disconnect ACK by NAS-Identifier", packet.CodeDisconnectRequest, []attr{id("access-sw-5"), user("u1"), evts(now)}, packet.CodeDisconnectACK, 0, sw},
		{"Disconnect NAK", packet.CodeDisconnectRequest, []attr{ip("127.0.0.5"), user("nak")}, packet.CodeDisconnectNAK, 503, sw},
		{"stale Event-Timestamp discarded", packet.CodeCoARequest, []attr{ip("127.0.0.5"), user("u1"), evts(now - 600)}, 0, 0, nil},
		{"check off, no MA in the answer", packet.CodeCoARequest, []attr{ip("127.0.0.6"), user("u1"), evts(now - 600)}, packet.CodeCoAACK, 0, lax},
		{"unknown NAS address", packet.CodeCoARequest, []attr{ip("192.0.2.77"), user("u1")}, packet.CodeCoANAK, 403, nil},
		{"no NAS identification", packet.CodeDisconnectRequest, []attr{user("u1")}, packet.CodeDisconnectNAK, 503, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := signedRequest(t, tc.code, uint8(20+i), tc.attrs)
			start := time.Now()
			rp := cloud.exchangeWithin(t, req, 1500*time.Millisecond)
			d := time.Since(start)
			if tc.want == 0 {
				if rp != nil {
					t.Fatalf("answered %s, want silence", rp.Code)
				}
				cloud = dialRadSec(outer, addr, p.RadSecCAFile, cloudCert)
			} else {
				if rp == nil || rp.Code != tc.want {
					t.Fatalf("answer %v, want %s", rp, tc.want)
				}
				ec, _ := rp.Lookup(packet.AttrErrorCause)
				if got := uint32(0); len(ec) == 4 || tc.cause != 0 {
					if len(ec) == 4 {
						got = binary.BigEndian.Uint32(ec)
					}
					if got != tc.cause {
						t.Fatalf("Error-Cause %d, want %d", got, tc.cause)
					}
				}
				t.Logf("%s: %s in %v", tc.name, rp.Code, d)
			}
			select {
			case got := <-sw.Got:
				if tc.at != sw {
					t.Fatalf("access-sw-5 got %s", got.Code)
				}
			case got := <-lax.Got:
				if tc.at != lax {
					t.Fatalf("lax-sw-6 got %s", got.Code)
				}
			default:
				if tc.at != nil {
					t.Fatal("the device never got the request")
				}
			}
		})
	}
	if n := e.metric(t, "mxedge_coa_requests_total", `result="stale"`); n != 1 {
		t.Errorf("stale requests counted %v, want 1", n)
	}
}

type attr struct {
	t uint8
	v string
}

// signedRequest encodes a CoA or Disconnect signed with the RadSec secret.
func signedRequest(t *testing.T, code packet.Code, id uint8, attrs []attr) []byte {
	t.Helper()
	b := packet.AppendMessageAuthenticator(packet.Append(nil, code, id, [16]byte{}))
	for _, a := range attrs {
		b, _ = packet.AppendAttr(b, a.t, []byte(a.v))
	}
	if err := packet.Sign(b, []byte("radsec"), nil); err != nil {
		t.Fatal(err)
	}
	return b
}

// exchangeWithin sends req and returns the verified answer, or nil when
// none came within d (the connection is then replaced).
func (c *radsecConn) exchangeWithin(t *testing.T, req []byte, d time.Duration) *packet.Packet {
	t.Helper()
	c.tc.SetDeadline(time.Now().Add(d))
	if _, err := c.tc.Write(req); err != nil {
		t.Fatal(err)
	}
	b, err := radsec.ReadPacket(c.br, nil)
	if err != nil {
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			return nil // the caller dials anew: do not trust this stream
		}
		t.Fatal(err)
	}
	p, err := packet.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	var auth [16]byte
	copy(auth[:], req[4:20])
	if hasMA, err := packet.VerifyResponse(p, auth, []byte("radsec")); err != nil || !hasMA {
		t.Fatalf("answer does not verify (MA %v): %v", hasMA, err)
	}
	return p
}
