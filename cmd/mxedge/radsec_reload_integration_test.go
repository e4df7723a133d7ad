package main

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mxedge/mxedge/cmd/internal/peers"
	"github.com/mxedge/mxedge/proxy/packet"
	"github.com/mxedge/mxedge/proxy/radsec"
)

// TestRadSecListenerCertReload: a renewed server certificate is served to
// new connections after SIGHUP, and the access point's open connection
// stays up and keeps being answered.
func TestRadSecListenerCertReload(t *testing.T) {
	t.Parallel()
	for _, b := range []string{"radclient", "radsecproxy"} {
		peers.RequireBin(t, b)
	}
	p := labPKI(t)
	srvCert := mintServer(t, p.RadSecCA)
	sec := radsecSection(p, "")
	sec = strings.Replace(sec, p.RadSecServer.Chain, srvCert.Cert, 1)
	sec = strings.Replace(sec, p.RadSecServer.Key, srvCert.Key, 1)
	e, _ := startLocalEdge(t, p, p.EAPServerECDSA, func(c *edgeConfig) { c.Extra = sec })
	addr := e.RadSec
	now := time.Now()
	dev := mintDevice(t, p.RadSecCA, "ap-07.ap.example.net", now.Add(-time.Hour), now.Add(time.Hour))
	ap := accessPoint(t, p, dev, addr)
	mab := func() {
		t.Helper()
		res, err := peers.Radclient(ctxFor(t, 10*time.Second), ap.Addr, ap.Secret, "auth", macAuth(localMABMAC))
		if err != nil || res.Code != "Access-Accept" {
			t.Fatalf("MAB: %v\n%s", err, res.Output)
		}
	}
	mab()
	before := servedSerial(t, addr, p.RadSecCAFile, dev)

	renewed := mintServer(t, p.RadSecCA)
	for _, f := range [][2]string{{renewed.Cert, srvCert.Cert}, {renewed.Key, srvCert.Key}} {
		b, err := os.ReadFile(f[0])
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(f[1], b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	reloads := e.metric(t, "mxedge_config_reloads_total", `result="ok"`)
	e.cmd.Process.Signal(syscall.SIGHUP)
	if !waitFor(10*time.Second, func() bool { return e.metric(t, "mxedge_config_reloads_total", `result="ok"`) == reloads+1 }) {
		t.Fatalf("reload not done:\n%s", tailString(e.Log(), 20))
	}
	after := servedSerial(t, addr, p.RadSecCAFile, dev)
	if after == before {
		t.Fatal("the old certificate is still served after SIGHUP")
	}
	// The AP's connection was not dropped: answered on the same one.
	established := e.metric(t, "mxedge_radsec_connections_established_total", `peer="device"`)
	mab()
	if got := e.metric(t, "mxedge_radsec_connections_established_total", `peer="device"`); got != established {
		t.Fatalf("the AP reconnected (%v → %v connections)", established, got)
	}
	if !strings.Contains(e.Log(), "radsec certificates reloaded") {
		t.Error("reload not logged")
	}
}

// servedSerial connects with dev and returns the server certificate's serial.
func servedSerial(t *testing.T, addr, caFile string, dev device) string {
	t.Helper()
	c := dialRadSec(t, addr, caFile, dev)
	defer c.tc.Close()
	return c.tc.ConnectionState().PeerCertificates[0].SerialNumber.String()
}

// TestRadSecListenerCloudPeer: a certificate that chains to the cloud CA
// (not to the devices' CA) is the cloud; its CoA and Disconnect naming no
// device, and roaming requests with no federation, are refused clearly,
// and a device certificate on the same listener still reaches the router.
func TestRadSecListenerCloudPeer(t *testing.T) {
	t.Parallel()
	p := labPKI(t)
	sec := radsecSection(p, "")
	// Devices chain to the org CA here, so that the lab RadSec CA (the
	// cloud.radsec.ca of edgeConfig) is the cloud's alone.
	sec = strings.Replace(sec, "client_ca: "+p.RadSecCAFile, "client_ca: "+p.OrgCAFile, 1)
	e, _ := startLocalEdge(t, p, p.EAPServerECDSA, func(c *edgeConfig) { c.Extra = sec })
	addr := e.RadSec
	cloud := device{Cert: p.RadSecClient.Chain, Key: p.RadSecClient.Key}

	conn := dialRadSec(t, addr, p.RadSecCAFile, cloud)
	cases := []struct {
		name string
		code packet.Code
		want packet.Code
	}{
		{"CoA", packet.CodeCoARequest, packet.CodeCoANAK},
		{"Disconnect", packet.CodeDisconnectRequest, packet.CodeDisconnectNAK},
		{"roaming Access-Request", packet.CodeAccessRequest, packet.CodeAccessReject},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := packet.Append(nil, c.code, uint8(i+1), packet.RandomAuthenticator())
			b = packet.AppendMessageAuthenticator(b)
			b, _ = packet.AppendAttr(b, packet.AttrUserName, []byte("roamer@example.net"))
			if err := packet.Sign(b, []byte("radsec"), nil); err != nil {
				t.Fatal(err)
			}
			rp := conn.exchange(t, b)
			if rp.Code != c.want {
				t.Fatalf("answered %v, want %v", rp.Code, c.want)
			}
			if c.want != packet.CodeAccessReject {
				ec, ok := rp.Lookup(packet.AttrErrorCause)
				// No NAS identification: the relay cannot find the session.
				if !ok || binary.BigEndian.Uint32(ec) != 503 {
					t.Fatalf("Error-Cause %x, want 503 (Session Context Not Found)", ec)
				}
			}
		})
	}
	if n := e.metric(t, "mxedge_radsec_connections_established_total", `peer="cloud"`); n != 1 {
		t.Errorf("cloud connections %v, want 1", n)
	}
	if !strings.Contains(e.Log(), "CoA/Disconnect for no known device; NAK") {
		t.Errorf("no log line for the cloud's requests:\n%s", tailString(e.Log(), 20))
	}

	// A device certificate from the devices' CA reaches the local NAC.
	now := time.Now()
	dev := mintDevice(t, p.OrgIssuing, "ap-08.ap.example.net", now.Add(-time.Hour), now.Add(time.Hour))
	dc := dialRadSec(t, addr, p.RadSecCAFile, dev)
	req := packet.Append(nil, packet.CodeAccessRequest, 9, packet.RandomAuthenticator())
	req = packet.AppendMessageAuthenticator(req)
	for _, a := range []struct {
		t uint8
		v string
	}{{packet.AttrUserName, localMABMAC}, {packet.AttrCallingStationID, localMABMAC}} {
		req, _ = packet.AppendAttr(req, a.t, []byte(a.v))
	}
	var auth [16]byte
	copy(auth[:], req[4:20])
	pw, _ := packet.EncryptUserPassword(nil, []byte(localMABMAC), []byte("radsec"), auth)
	req, _ = packet.AppendAttr(req, packet.AttrUserPassword, pw)
	if err := packet.Sign(req, []byte("radsec"), nil); err != nil {
		t.Fatal(err)
	}
	if rp := dc.exchange(t, req); rp.Code != packet.CodeAccessAccept {
		t.Fatalf("device MAB answered %v", rp.Code)
	}
	if n := e.metric(t, "mxedge_radsec_connections_established_total", `peer="device"`); n != 1 {
		t.Errorf("device connections %v, want 1", n)
	}
}

type radsecConn struct {
	tc *tls.Conn
	br *bufio.Reader
}

func dialRadSec(t *testing.T, addr, caFile string, d device) *radsecConn {
	t.Helper()
	cert, err := tls.LoadX509KeyPair(d.Cert, d.Key)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	pemCA, _ := os.ReadFile(caFile)
	roots.AppendCertsFromPEM(pemCA)
	tc, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{cert}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tc.Close() })
	return &radsecConn{tc: tc, br: bufio.NewReader(tc)}
}

func (c *radsecConn) exchange(t *testing.T, req []byte) *packet.Packet {
	t.Helper()
	c.tc.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.tc.Write(req); err != nil {
		t.Fatal(err)
	}
	b, err := radsec.ReadPacket(c.br, nil)
	if err != nil {
		t.Fatal(err)
	}
	p, err := packet.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	var auth [16]byte
	copy(auth[:], req[4:20])
	if _, err := packet.VerifyResponse(p, auth, []byte("radsec")); err != nil {
		t.Fatalf("reply does not verify: %v", err)
	}
	return p
}
