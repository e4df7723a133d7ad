package radsec

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"os"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mxedge/mxedge/proxy/packet"
)

// TestInteropFreeRADIUS runs the pool against a real RadSec server, which
// it does not start. Set MXEDGE_RADSEC_INTEROP=host:port and
// MXEDGE_RADSEC_PKI=dir holding ca.pem, client.pem and client.key; the
// server must accept User-Name "alice" with password "pw-alice" and close
// idle connections after a few seconds (FreeRADIUS: limit.idle_timeout).
func TestInteropFreeRADIUS(t *testing.T) {
	addr, dir := os.Getenv("MXEDGE_RADSEC_INTEROP"), os.Getenv("MXEDGE_RADSEC_PKI")
	if addr == "" || dir == "" {
		t.Skip("MXEDGE_RADSEC_INTEROP and MXEDGE_RADSEC_PKI not set")
	}
	cert, err := tls.LoadX509KeyPair(dir+"/client.pem", dir+"/client.key")
	if err != nil {
		t.Fatal(err)
	}
	caPEM, err := os.ReadFile(dir + "/ca.pem")
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	reg := prometheus.NewRegistry()
	c, err := New(Config{
		Servers:        []string{addr},
		TLS:            &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}},
		StatusInterval: time.Hour, // let the server's idle timeout bite
		Registerer:     reg,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Probe(context.Background(), addr); err != nil {
		t.Fatalf("Status-Server: %v", err)
	}
	pap := func(user, pw string) packet.Code {
		t.Helper()
		ra := packet.RandomAuthenticator()
		b := packet.Append(nil, packet.CodeAccessRequest, 0, ra)
		b = packet.AppendMessageAuthenticator(b)
		b, _ = packet.AppendAttr(b, packet.AttrUserName, []byte(user))
		enc, err := packet.EncryptUserPassword(nil, []byte(pw), secret, ra)
		if err != nil {
			t.Fatal(err)
		}
		b, _ = packet.AppendAttr(b, packet.AttrUserPassword, enc)
		if err := packet.Sign(b, secret, nil); err != nil {
			t.Fatal(err)
		}
		reply, err := c.Exchange(context.Background(), b)
		if err != nil {
			t.Fatalf("%s: %v", user, err)
		}
		p, err := packet.Parse(reply)
		if err != nil {
			t.Fatal(err)
		}
		return p.Code
	}
	if got := pap("alice", "pw-alice"); got != packet.CodeAccessAccept {
		t.Fatalf("alice: %v", got)
	}
	if got := pap("alice", "wrong"); got != packet.CodeAccessReject {
		t.Fatalf("wrong password: %v", got)
	}
	// Accounting: the authenticator is an MD5 that Resign recomputes.
	acct := packet.Append(nil, packet.CodeAccountingRequest, 0, [16]byte{})
	acct, _ = packet.AppendAttr(acct, packet.AttrUserName, []byte("alice"))
	acct, _ = packet.AppendAttr(acct, packet.AttrAcctStatusType, []byte{0, 0, 0, 1})
	_ = packet.Sign(acct, secret, nil)
	if reply, err := c.Exchange(context.Background(), acct); err != nil {
		t.Fatalf("accounting: %v", err)
	} else if p, _ := packet.Parse(reply); p.Code != packet.CodeAccountingResponse {
		t.Fatalf("accounting reply %v", p.Code)
	}
	// Outlive the server's idle timeout, then ask again: the close must
	// be invisible.
	before := value(c.ups[0].m.reconnects)
	waitFor(t, "the server's idle close and our reconnect", func() bool {
		return value(c.ups[0].m.reconnects) > before
	})
	if got := pap("alice", "pw-alice"); got != packet.CodeAccessAccept {
		t.Fatalf("after idle close: %v", got)
	}
	t.Logf("reconnects=%v moved=%v ok=%v", value(c.ups[0].m.reconnects), value(c.ups[0].m.moved), value(c.ups[0].m.ok))
}
