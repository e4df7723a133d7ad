// Package packettest plays RADIUS peers over UDP on loopback for tests of
// every layer that sends to one: Serve is the read-parse-answer loop, and
// CoADevice is a switch's CoA/Disconnect listener (RFC 5176) built on it.
//
// It is not a _test package so that the tests of proxy/coa, edge and
// cmd/mxedge can share one fake switch; production code must not import
// it (internal/archtest holds it to that).
package packettest

import (
	"encoding/binary"
	"net"
	"net/netip"
	"testing"

	"github.com/mxedge/mxedge/proxy/packet"
)

// Serve listens on host (a loopback address; the kernel picks the port)
// until the test ends. Every datagram that parses as RADIUS goes to
// answer; what answer returns, unless nil, is sent back to its source.
// answer runs on one goroutine, one packet at a time; the loop ends at
// the first read after the test closes the socket, so an answer blocked
// for ever (on a full channel nobody reads) leaks that goroutine.
func Serve(t testing.TB, host string, answer func(*packet.Packet) []byte) netip.AddrPort {
	t.Helper()
	c, err := net.ListenPacket("udp", net.JoinHostPort(host, "0"))
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		buf := make([]byte, packet.MaxLen)
		for {
			n, from, err := c.ReadFrom(buf)
			if err != nil {
				return
			}
			p, err := packet.Parse(append([]byte(nil), buf[:n]...))
			if err != nil {
				continue
			}
			if b := answer(p); b != nil {
				c.WriteTo(b, from)
			}
		}
	}()
	t.Cleanup(func() { c.Close() })
	return netip.MustParseAddrPort(c.LocalAddr().String())
}

// CoADevice is a device's CoA listener. It keeps only requests whose
// authenticator and Message-Authenticator verify with its secret, as a
// real switch drops the rest, and answers ACK; NAK with Error-Cause 503
// (Session Context Not Found) for User-Name "nak"; nothing for User-Name
// "silent".
type CoADevice struct {
	Addr netip.AddrPort
	// Got receives every request that verified, answered or not. The
	// device stops answering while it is full.
	Got chan *packet.Packet
}

// StartCoADevice starts a CoADevice on host until the test ends; with
// noMA its answers carry no Message-Authenticator, as legacy gear's do.
func StartCoADevice(t testing.TB, host string, secret []byte, noMA bool) *CoADevice {
	t.Helper()
	d := &CoADevice{Got: make(chan *packet.Packet, 16)}
	stop := make(chan struct{})
	d.Addr = Serve(t, host, func(p *packet.Packet) []byte {
		if hasMA, err := packet.VerifyRequest(p, secret); err != nil || !hasMA {
			return nil
		}
		select {
		case d.Got <- p:
		case <-stop: // the test is over and no longer reading
			return nil
		}
		u, _ := p.Lookup(packet.AttrUserName)
		if string(u) == "silent" {
			return nil
		}
		code := p.Code + 1 // ACK
		if string(u) == "nak" {
			code++
		}
		b := packet.Append(nil, code, p.ID, p.Authenticator)
		if !noMA {
			b = packet.AppendMessageAuthenticator(b)
		}
		if code == p.Code+2 {
			b, _ = packet.AppendAttr(b, packet.AttrErrorCause, binary.BigEndian.AppendUint32(nil, 503))
		}
		ra := p.Authenticator
		if err := packet.Sign(b, secret, &ra); err != nil {
			return nil
		}
		return b
	})
	t.Cleanup(func() { close(stop) }) // unblocks an answer waiting on a full Got
	return d
}
