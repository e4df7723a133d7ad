package main

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/mxedge/mxedge/cmd/internal/peers"
	"github.com/mxedge/mxedge/internal/labpki"
	"github.com/mxedge/mxedge/proxy/packet"
	"github.com/mxedge/mxedge/proxy/radsec"
)

// apSubjects is what the lab's access points are allowed to be.
const apSubjects = `["*.ap.example.net"]`

// device is a minted RadSec client certificate on disk.
type device struct{ Cert, Key string }

// mintDevice issues a clientAuth certificate named cn under ca, valid
// from..to, for a managed access point (or an impostor).
func mintDevice(t testing.TB, ca *labpki.Cert, cn string, from, to time.Time) device {
	t.Helper()
	return mintLeaf(t, ca, cn, from, to, func(c *x509.Certificate) { c.DNSNames = []string{cn} })
}

// mintServer issues a RadSec server certificate for localhost/127.0.0.1.
func mintServer(t testing.TB, ca *labpki.Cert) device {
	t.Helper()
	now := time.Now()
	return mintLeaf(t, ca, "localhost", now.Add(-time.Hour), now.Add(24*time.Hour), func(c *x509.Certificate) {
		c.DNSNames = []string{"localhost"}
		c.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
		c.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	})
}

// mintLeaf issues cn under ca, valid from..to, edited by edit, and writes
// it with its chain (ca and ca's own intermediates, not the root) and key.
func mintLeaf(t testing.TB, ca *labpki.Cert, cn string, from, to time.Time, edit func(*x509.Certificate)) device {
	t.Helper()
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: cn},
		NotBefore:   from,
		NotAfter:    to,
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	edit(tmpl)
	c, err := labpki.Issue(ca, labpki.ECKey(), tmpl)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.WriteFiles(t.TempDir(), "cert"); err != nil {
		t.Fatal(err)
	}
	return device{Cert: c.Chain, Key: c.Key}
}

// radsecSection is the YAML of a RadSec listener on loopback port 0
// serving the lab RadSec server certificate to devices of the lab RadSec
// CA; more is appended inside the section (lines indented by two). The
// daemon names the port it bound in its ready line: e.RadSec.
func radsecSection(p *labpki.PKI, more string) string {
	return fmt.Sprintf(`radsec:
  listen: ["127.0.0.1:0"]
  cert: %s
  key: %s
  client_ca: %s
  allowed_subjects: %s
  sites:
    - {match: "*.hq.ap.example.net", site: hq}
%s`, p.RadSecServer.Chain, p.RadSecServer.Key, p.RadSecCAFile, apSubjects, more)
}

// accessPoint starts radsecproxy as a managed access point with the given
// certificate, speaking RadSec to servers (failover in order).
func accessPoint(t *testing.T, p *labpki.PKI, d device, servers ...string) *peers.Radsecproxy {
	t.Helper()
	rp, err := peers.StartRadsecproxy(ctxFor(t, 20*time.Second), t.TempDir(), peers.RadsecproxyOptions{
		Servers: servers, CertFile: d.Cert, KeyFile: d.Key, CAFile: p.RadSecCAFile,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rp.Stop)
	return rp
}

// TestRadSecListenerOnline: a managed AP (radsecproxy) that fails over to
// the edge over RadSec is answered through the cloud, MAB and EAP-TLS,
// with the cloud's VLANs and working MPPE keys.
func TestRadSecListenerOnline(t *testing.T) {
	t.Parallel()
	realPeers(t, "freeradius", "radclient", "radsecproxy", "eapol_test")
	p := labPKI(t)
	nac := labNAC(t, p)
	sec := radsecSection(p, "")
	e := startEdge(t, edgeConfig{Secret: labSecret, Upstreams: []string{nac.RadSecAddr}, PKI: p, Extra: sec})
	addr := e.RadSec
	now := time.Now()
	ap := accessPoint(t, p, mintDevice(t, p.RadSecCA, "ap-01.hq.ap.example.net", now.Add(-time.Hour), now.Add(24*time.Hour)), addr)

	t.Run("MAB", func(t *testing.T) {
		res, err := peers.Radclient(ctxFor(t, 10*time.Second), ap.Addr, ap.Secret, "auth", mabAttrs(mabMAC))
		if err != nil {
			t.Fatal(err)
		}
		if res.Code != "Access-Accept" || res.Attr("Tunnel-Private-Group-Id") != mabVLAN {
			t.Fatalf("MAB through the AP:\n%s", res.Output)
		}
	})
	t.Run("EAP-TLS", func(t *testing.T) {
		for _, tls13 := range []bool{false, true} {
			res, err := peers.EAPOLTest(ctxFor(t, 30*time.Second), ap.Addr, ap.Secret, peers.EAPTLS{
				Identity: "user@example.org", CACert: p.RootFile,
				ClientCert: p.User.Chain, PrivateKey: p.User.Key, TLS13: tls13,
			})
			if err != nil {
				t.Fatal(err)
			}
			if !res.Success || res.MPPEOK != 1 || res.MPPEMismatch != 0 || res.VLAN() != eapVLAN {
				t.Fatalf("TLS1.3=%v: success=%v MPPE ok=%d mismatch=%d VLAN %q\n%s", tls13, res.Success, res.MPPEOK, res.MPPEMismatch, res.VLAN(), tailString(res.Output, 40))
			}
		}
	})
	t.Run("accounting", func(t *testing.T) {
		before, _ := nac.CountAccountingRecords()
		res, err := peers.Radclient(ctxFor(t, 10*time.Second), ap.Addr, ap.Secret, "acct", []string{
			`User-Name = "alice"`, `Acct-Status-Type = Start`, `Acct-Session-Id = "rs-1"`, `NAS-IP-Address = 127.0.0.1`})
		if err != nil || res.Code != "Accounting-Response" {
			t.Fatalf("accounting: %v\n%s", err, res.Output)
		}
		if after, _ := nac.CountAccountingRecords(); after != before+1 {
			t.Fatalf("cloud recorded %d accounting records, want %d", after, before+1)
		}
	})
	if n := e.metric(t, "mxedge_radsec_connections_established_total", `peer="device"`); n < 1 {
		t.Errorf("device connections %v", n)
	}
	if !strings.Contains(e.Log(), `client=ap-01.hq.ap.example.net site=hq`) {
		t.Errorf("connection not logged with its certificate's name and site:\n%s", tailString(e.Log(), 30))
	}
}

// TestRadSecListenerSurvival: in survival the same AP's clients are
// answered by the local NAC from the cache, unknown ones by default VLAN.
func TestRadSecListenerSurvival(t *testing.T) {
	t.Parallel()
	for _, b := range []string{"radclient", "radsecproxy", "eapol_test"} {
		peers.RequireBin(t, b)
	}
	p := labPKI(t)
	sec := radsecSection(p, "")
	e, _ := startLocalEdge(t, p, p.EAPServerECDSA, func(c *edgeConfig) { c.Extra = sec })
	addr := e.RadSec
	now := time.Now()
	ap := accessPoint(t, p, mintDevice(t, p.RadSecCA, "ap-02.hq.ap.example.net", now.Add(-time.Hour), now.Add(24*time.Hour)), addr)

	mab := []struct{ mac, vlan string }{{localMABMAC, localMABVLAN}, {"aabbcc0000ff", localDefMAB}}
	for _, c := range mab {
		res, err := peers.Radclient(ctxFor(t, 10*time.Second), ap.Addr, ap.Secret, "auth", macAuth(c.mac))
		if err != nil {
			t.Fatal(err)
		}
		if res.Code != "Access-Accept" || res.Attr("Tunnel-Private-Group-Id") != c.vlan {
			t.Fatalf("MAB %s: %s VLAN %q, want %q\n%s", c.mac, res.Code, res.Attr("Tunnel-Private-Group-Id"), c.vlan, res.Output)
		}
	}
	eap := []struct {
		cert *labpki.Cert
		mac  string
		vlan string
	}{{p.User, localCachedMAC, localCachedVLAN}, {p.Machine, localUnknownMAC, localDefDot1X}}
	for _, c := range eap {
		res, err := peers.EAPOLTest(ctxFor(t, 30*time.Second), ap.Addr, ap.Secret, peers.EAPTLS{
			Identity: "anonymous@example.org", CACert: p.RootFile,
			ClientCert: c.cert.Chain, PrivateKey: c.cert.Key, CallingStationID: c.mac,
		})
		if err != nil {
			t.Fatal(err)
		}
		if !res.Success || res.MPPEOK != 1 || res.MPPEMismatch != 0 || res.VLAN() != c.vlan {
			t.Fatalf("EAP-TLS %s: success=%v MPPE ok=%d VLAN %q, want %q\n%s", c.mac, res.Success, res.MPPEOK, res.VLAN(), c.vlan, tailString(res.Output, 40))
		}
	}
	if n := e.metric(t, "mxedge_nac_decisions_total", `result="accept"`, `source="cache"`); n != 2 {
		t.Errorf("cache accepts %v, want 2", n)
	}
}

// TestRadSecListenerRefusesCertificates: another CA, an expired
// certificate and a name outside allowed_subjects fail the handshake;
// the allowed device still gets through.
func TestRadSecListenerRefusesCertificates(t *testing.T) {
	t.Parallel()
	p := labPKI(t)
	sec := radsecSection(p, "")
	e := startEdge(t, edgeConfig{Secret: labSecret, PKI: p, Extra: sec})
	addr := e.RadSec
	now := time.Now()
	cases := []struct {
		name string
		dev  device
		ok   bool
	}{
		{"allowed AP", mintDevice(t, p.RadSecCA, "ap-03.ap.example.net", now.Add(-time.Hour), now.Add(time.Hour)), true},
		{"another CA", mintDevice(t, p.UntrustedCA, "ap-04.ap.example.net", now.Add(-time.Hour), now.Add(time.Hour)), false},
		{"expired", mintDevice(t, p.RadSecCA, "ap-05.ap.example.net", now.Add(-48*time.Hour), now.Add(-24*time.Hour)), false},
		{"outside allowed subjects", mintDevice(t, p.RadSecCA, "laptop.example.net", now.Add(-time.Hour), now.Add(time.Hour)), false},
	}
	refused := 0
	for _, c := range cases {
		for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
			t.Run(fmt.Sprintf("%s/%s", c.name, tls.VersionName(v)), func(t *testing.T) {
				err := statusServerOver(t, addr, p, c.dev, v)
				if c.ok && err != nil {
					t.Fatalf("allowed device refused: %v", err)
				}
				if !c.ok {
					if err == nil {
						t.Fatal("refused device answered")
					}
					refused++
				}
			})
		}
	}
	if !waitFor(5*time.Second, func() bool {
		return e.metric(t, "mxedge_radsec_drops_total", `reason="handshake"`) == float64(refused)
	}) {
		t.Fatalf("handshake drops %v, want %d", e.metric(t, "mxedge_radsec_drops_total", `reason="handshake"`), refused)
	}
}

// statusServerOver opens a RadSec connection with dev's certificate at
// TLS version v and asks Status-Server; nil when it is answered.
func statusServerOver(t testing.TB, addr string, p *labpki.PKI, dev device, v uint16) error {
	cert, err := tls.LoadX509KeyPair(dev.Cert, dev.Key)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	pemCA, _ := os.ReadFile(p.RadSecCAFile)
	roots.AppendCertsFromPEM(pemCA)
	tc, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, &tls.Config{
		RootCAs: roots, Certificates: []tls.Certificate{cert}, MinVersion: v, MaxVersion: v,
	})
	if err != nil {
		return err
	}
	defer tc.Close()
	// TLS 1.3: the server's verdict on our certificate comes after the
	// client's handshake is done.
	tc.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := tc.Write(packet.NewStatusServer(nil, 7, []byte("radsec"))); err != nil {
		return err
	}
	b, err := radsec.ReadPacket(bufio.NewReader(tc), nil)
	if err != nil {
		return err
	}
	if b[0] != byte(packet.CodeAccessAccept) {
		return fmt.Errorf("status answered with code %d", b[0])
	}
	return nil
}

// TestRadSecListenerFlood: hundreds of connections that never finish the
// handshake, from many addresses, and one that sends an absurd length, do
// not stop an access point, and leave no goroutines or memory behind.
func TestRadSecListenerFlood(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("real-process test")
	}
	for _, b := range []string{"radclient", "radsecproxy"} {
		peers.RequireBin(t, b)
	}
	p := labPKI(t)
	sec := radsecSection(p, "  handshake_timeout: 2s\n  max_connections_per_source: 16\n")
	e, _ := startLocalEdge(t, p, p.EAPServerECDSA, func(c *edgeConfig) { c.Extra = sec; c.LogLevel = "info" })
	addr := e.RadSec
	now := time.Now()
	dev := mintDevice(t, p.RadSecCA, "ap-06.ap.example.net", now.Add(-time.Hour), now.Add(time.Hour))
	ap := accessPoint(t, p, dev, addr)
	mab := func() error {
		res, err := peers.Radclient(ctxFor(t, 10*time.Second), ap.Addr, ap.Secret, "auth", macAuth(localMABMAC))
		if err == nil && (res.Code != "Access-Accept" || res.Attr("Tunnel-Private-Group-Id") != localMABVLAN) {
			err = fmt.Errorf("got %s VLAN %q", res.Code, res.Attr("Tunnel-Private-Group-Id"))
		}
		return err
	}
	if err := mab(); err != nil {
		t.Fatal(err)
	}
	// Baselines once the AP's connection is up and idle.
	goroutines := e.metric(t, "go_goroutines")
	heap := e.metric(t, "go_memstats_heap_inuse_bytes")

	// 20 sources × 15 stalled connections, all admitted (per-source cap
	// 16), plus one source that opens 10 past its cap.
	const sources, perSource, capPerSource, extra = 20, 15, 16, 10
	var stalled []net.Conn
	defer func() {
		for _, c := range stalled {
			c.Close()
		}
	}()
	for s := range sources {
		for range perSource {
			d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 1, byte(s+1))}, Timeout: 5 * time.Second}
			c, err := d.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			stalled = append(stalled, c)
		}
	}
	for range capPerSource + extra {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 2, 1)}, Timeout: 5 * time.Second}
		c, err := d.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		stalled = append(stalled, c)
	}
	// One device that breaks the framing.
	cert, _ := tls.LoadX509KeyPair(dev.Cert, dev.Key)
	roots := x509.NewCertPool()
	pemCA, _ := os.ReadFile(p.RadSecCAFile)
	roots.AppendCertsFromPEM(pemCA)
	bad, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{cert}})
	if err != nil {
		t.Fatal(err)
	}
	bad.Write([]byte{1, 1, 0xff, 0xff, 0, 0, 0, 0})
	bad.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := bad.Read(make([]byte, 1)); err == nil {
		t.Fatal("absurd length answered")
	}
	bad.Close()

	// The AP is served throughout.
	for i := range 5 {
		if err := mab(); err != nil {
			t.Fatalf("MAB %d during the flood: %v", i, err)
		}
	}
	if got := e.metric(t, "mxedge_radsec_drops_total", `reason="max_connections_per_source"`); got != extra {
		t.Errorf("per-source refusals %v, want %d", got, extra)
	}
	if got := e.metric(t, "mxedge_radsec_drops_total", `reason="malformed"`); got != 1 {
		t.Errorf("malformed %v, want 1", got)
	}
	// The handshake timeout clears every stalled connection.
	if !waitFor(15*time.Second, func() bool { return e.metric(t, "mxedge_radsec_connections") == 1 }) {
		t.Fatalf("connections %v after the handshake timeout, want 1 (the AP)", e.metric(t, "mxedge_radsec_connections"))
	}
	if got := e.metric(t, "mxedge_radsec_drops_total", `reason="handshake_timeout"`); got != sources*perSource+capPerSource {
		t.Errorf("handshake timeouts %v, want %d", got, sources*perSource+capPerSource)
	}
	// Goroutines back to the baseline (a few for scrapes and timers).
	if !waitFor(10*time.Second, func() bool { return e.metric(t, "go_goroutines") <= goroutines+5 }) {
		t.Errorf("goroutines %v after the flood, %v before", e.metric(t, "go_goroutines"), goroutines)
	}
	// What the flood left is garbage until the next GC: keep the AP busy
	// (bounded) until one has run, then compare.
	heapAfter := e.metric(t, "go_memstats_heap_inuse_bytes")
	for i := 0; i < 100 && heapAfter > heap+4<<20; i++ {
		for range 5 {
			if err := mab(); err != nil {
				t.Fatal(err)
			}
		}
		heapAfter = e.metric(t, "go_memstats_heap_inuse_bytes")
	}
	t.Logf("goroutines %v → %v; heap in use %.1f → %.1f MiB", goroutines, e.metric(t, "go_goroutines"), heap/(1<<20), heapAfter/(1<<20))
	// No memory held for closed connections: well under 16 KiB a connection.
	if heapAfter > heap+4<<20 {
		t.Errorf("heap in use %.1f MiB after the flood, %.1f MiB before", heapAfter/(1<<20), heap/(1<<20))
	}
	if err := mab(); err != nil {
		t.Fatal(err)
	}
}

// macAuth is a MAB request whose Calling-Station-Id is the MAC itself.
func macAuth(mac string) []string {
	return []string{`User-Name = "` + mac + `"`, `User-Password = "` + mac + `"`, `Service-Type = Call-Check`,
		`Calling-Station-Id = "` + mac + `"`, ma}
}
