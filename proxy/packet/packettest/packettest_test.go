package packettest

import (
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/mxedge/mxedge/proxy/packet"
)

var secret = []byte("switch-secret-0123456789")

// coa sends a CoA-Request for user, signed with key, to addr and returns
// the answer (nil: none within a short wait).
func coa(t *testing.T, addr netip.AddrPort, id uint8, user string, key []byte) *packet.Packet {
	t.Helper()
	b := packet.AppendMessageAuthenticator(packet.Append(nil, packet.CodeCoARequest, id, [16]byte{}))
	b, _ = packet.AppendAttr(b, packet.AttrUserName, []byte(user))
	if err := packet.Sign(b, key, nil); err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("udp", addr.String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write(b); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	buf := make([]byte, packet.MaxLen)
	n, err := c.Read(buf)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	p, err := packet.Parse(buf[:n])
	if err != nil {
		t.Fatal(err)
	}
	var ra [16]byte
	copy(ra[:], b[4:20])
	if _, err := packet.VerifyResponse(p, ra, secret); err != nil {
		t.Fatalf("answer does not verify: %v", err)
	}
	return p
}

func TestCoADevice(t *testing.T) {
	d := StartCoADevice(t, "127.0.0.1", secret, false)
	for i, c := range []struct {
		user string
		key  []byte
		want packet.Code // 0: no answer
		kept bool
	}{
		{"alice", secret, packet.CodeCoAACK, true},
		{"nak", secret, packet.CodeCoANAK, true},
		{"silent", secret, 0, true},
		{"alice", []byte("wrong-secret"), 0, false},
	} {
		got := coa(t, d.Addr, uint8(i), c.user, c.key)
		switch {
		case c.want == 0 && got != nil:
			t.Errorf("%s: answered %v, want nothing", c.user, got.Code)
		case c.want != 0 && (got == nil || got.Code != c.want):
			t.Errorf("%s: answered %v, want %v", c.user, got, c.want)
		case c.want == packet.CodeCoANAK:
			if ec, ok := got.Lookup(packet.AttrErrorCause); !ok || binary.BigEndian.Uint32(ec) != 503 {
				t.Errorf("NAK Error-Cause %x, want 503", ec)
			}
		}
		if got != nil {
			if _, ok := got.Lookup(packet.AttrMessageAuthenticator); !ok {
				t.Errorf("%s: answer without Message-Authenticator", c.user)
			}
		}
		select {
		case <-d.Got:
			if !c.kept {
				t.Errorf("%s: a request that does not verify was kept", c.user)
			}
		default:
			if c.kept {
				t.Errorf("%s: request not kept", c.user)
			}
		}
	}
}

// With noMA the answer has no Message-Authenticator, and a device whose
// Got nobody reads still lets the test end.
func TestCoADeviceNoMAUnread(t *testing.T) {
	d := StartCoADevice(t, "127.0.0.1", secret, true)
	for i := range cap(d.Got) + 2 {
		got := coa(t, d.Addr, uint8(i), "bob", secret)
		if i < cap(d.Got) {
			if got == nil {
				t.Fatalf("request %d unanswered", i)
			}
			if _, ok := got.Lookup(packet.AttrMessageAuthenticator); ok {
				t.Fatal("noMA answer carries Message-Authenticator")
			}
		}
	}
}
