package peers

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"github.com/mxedge/mxedge/internal/labpki"
)

const (
	testMAC     = "aa:bb:cc:dd:ee:ff"
	testMACUser = "aabbccddeeff"
	testVLAN    = "100"
	eapVLAN     = "200"
)

func labOptions(p *labpki.PKI) FreeRADIUSOptions {
	return FreeRADIUSOptions{
		PKI:     p,
		MAB:     map[string]string{testMAC: testVLAN},
		Users:   map[string]User{"alice": {Password: "wonderland", ReplyMessage: "hello alice", TunnelPassword: "tunnel-secret"}},
		EAPVLAN: map[string]string{"user@example.org": eapVLAN},
	}
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

type radCase struct {
	name      string
	code      string // radclient code
	attrs     []string
	wantCode  string
	wantAttrs map[string]string // attribute → first value; "" = must be absent
}

func radCases() []radCase {
	ma := "Message-Authenticator = 0x00"
	return []radCase{
		{"MAB listed MAC", "auth", []string{`User-Name = "` + testMACUser + `"`, `User-Password = "` + testMACUser + `"`, `Calling-Station-Id = "AA-BB-CC-DD-EE-FF"`, ma},
			"Access-Accept", map[string]string{"Tunnel-Type": "VLAN", "Tunnel-Medium-Type": "IEEE-802", "Tunnel-Private-Group-Id": testVLAN}},
		{"MAB Call-Check", "auth", []string{`User-Name = "` + testMACUser + `"`, `User-Password = "whatever"`, `Service-Type = Call-Check`, ma},
			"Access-Accept", map[string]string{"Tunnel-Private-Group-Id": testVLAN}},
		{"MAB unknown MAC", "auth", []string{`User-Name = "001122334455"`, `User-Password = "001122334455"`, ma},
			"Access-Reject", map[string]string{"Tunnel-Private-Group-Id": ""}},
		{"PAP good", "auth", []string{`User-Name = "alice"`, `User-Password = "wonderland"`, ma},
			"Access-Accept", map[string]string{"Reply-Message": "hello alice", "Tunnel-Password": "tunnel-secret"}},
		{"PAP bad password", "auth", []string{`User-Name = "alice"`, `User-Password = "guess"`, ma},
			"Access-Reject", map[string]string{"Tunnel-Password": "", "Reply-Message": ""}},
		{"PAP unknown user", "auth", []string{`User-Name = "mallory"`, `User-Password = "x"`},
			"Access-Reject", nil},
	}
}

func checkRadclient(t *testing.T, addr, secret string, tc radCase) {
	t.Helper()
	res, err := Radclient(ctxT(t, 10*time.Second), addr, secret, tc.code, tc.attrs)
	if err != nil {
		t.Fatal(err)
	}
	if res.Code != tc.wantCode {
		t.Fatalf("code %q, want %q\n%s", res.Code, tc.wantCode, res.Output)
	}
	for name, want := range tc.wantAttrs {
		if got := res.Attr(name); got != want {
			t.Errorf("%s = %q, want %q\n%s", name, got, want, res.Output)
		}
	}
}

func eapCases(p *labpki.PKI) []struct {
	name     string
	cert     *labpki.Cert
	identity string
	tls13    bool
	success  bool
	vlan     string
} {
	return []struct {
		name     string
		cert     *labpki.Cert
		identity string
		tls13    bool
		success  bool
		vlan     string
	}{
		{"user TLS 1.2", p.User, "user@example.org", false, true, eapVLAN},
		{"user TLS 1.3", p.User, "user@example.org", true, true, eapVLAN},
		{"machine TLS 1.3", p.Machine, "host/laptop1.example.org", true, true, ""},
		{"long chain TLS 1.2", p.LongChain, "longchain@example.org", false, true, ""},
		{"revoked TLS 1.2", p.Revoked, "revoked@example.org", false, false, ""},
		{"revoked TLS 1.3", p.Revoked, "revoked@example.org", true, false, ""},
		{"expired", p.Expired, "expired@example.org", true, false, ""},
		{"untrusted CA", p.Untrusted, "user@example.org", true, false, ""},
	}
}

func eapConfig(p *labpki.PKI, cert *labpki.Cert, identity string, tls13 bool) EAPTLS {
	return EAPTLS{Identity: identity, CACert: p.RootFile, ClientCert: cert.Chain, PrivateKey: cert.Key, TLS13: tls13}
}

// TestFreeRADIUS drives FreeRADIUS over plain UDP with radclient and
// eapol_test.
func TestFreeRADIUS(t *testing.T) {
	t.Parallel()
	RequireBin(t, "radclient")
	RequireBin(t, "eapol_test")
	p := testPKI(t)
	opts := labOptions(p)
	opts.UDP = true
	f := MustFreeRADIUS(t, opts)

	for _, tc := range radCases() {
		t.Run(tc.name, func(t *testing.T) { checkRadclient(t, f.AuthAddr(), f.Secret, tc) })
	}

	t.Run("Status-Server", func(t *testing.T) {
		checkRadclient(t, f.AuthAddr(), f.Secret, radCase{code: "status", attrs: []string{"Message-Authenticator = 0x00"}, wantCode: "Access-Accept"})
	})

	t.Run("accounting", func(t *testing.T) {
		before, err := f.CountAccountingRecords()
		if err != nil {
			t.Fatal(err)
		}
		for _, status := range []string{"Start", "Stop"} {
			checkRadclient(t, f.AcctAddr(), f.Secret, radCase{code: "acct", attrs: []string{
				`User-Name = "` + testMACUser + `"`, "Acct-Status-Type = " + status, `Acct-Session-Id = "s1"`,
			}, wantCode: "Accounting-Response"})
		}
		after, err := f.CountAccountingRecords()
		if err != nil {
			t.Fatal(err)
		}
		if after-before != 2 {
			t.Fatalf("detail records %d → %d, want +2", before, after)
		}
	})

	t.Run("wrong secret is discarded", func(t *testing.T) {
		_, err := Radclient(ctxT(t, 10*time.Second), f.AuthAddr(), "not-the-secret", "auth",
			[]string{`User-Name = "alice"`, `User-Password = "wonderland"`, "Message-Authenticator = 0x00"})
		if !errors.Is(err, ErrNoReply) {
			t.Fatalf("err = %v, want ErrNoReply", err)
		}
	})

	for _, tc := range eapCases(p) {
		t.Run("EAP-TLS "+tc.name, func(t *testing.T) {
			res := checkEAP(t, f.AuthAddr(), f.Secret, eapConfig(p, tc.cert, tc.identity, tc.tls13), tc.success, tc.vlan)
			if tc.cert == p.LongChain && res.RequestFragments < 3 {
				t.Errorf("long chain took %d large Access-Requests, want ≥3", res.RequestFragments)
			}
		})
	}
}

// checkEAP runs eapol_test with cfg against addr and checks the outcome:
// success or not, and on success the MPPE keys, the TLS version cfg asked
// for and the VLAN.
func checkEAP(t *testing.T, addr, secret string, cfg EAPTLS, success bool, vlan string) EAPResult {
	t.Helper()
	res, err := EAPOLTest(ctxT(t, 20*time.Second), addr, secret, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if res.Success != success {
		t.Fatalf("success = %v, want %v\n%s", res.Success, success, lastLines(res.Output, 30))
	}
	if !success {
		return res
	}
	if res.MPPEOK != 1 || res.MPPEMismatch != 0 {
		t.Errorf("MPPE keys OK %d mismatch %d", res.MPPEOK, res.MPPEMismatch)
	}
	want := "TLSv1.2"
	if cfg.TLS13 {
		want = "TLSv1.3"
	}
	if res.TLSVersion != want {
		t.Errorf("TLS version %q, want %q", res.TLSVersion, want)
	}
	if res.VLAN() != vlan {
		t.Errorf("VLAN %q, want %q", res.VLAN(), vlan)
	}
	return res
}

// TestRadsecproxyToFreeRADIUS sends radclient and eapol_test traffic over
// UDP to radsecproxy, which carries it over RadSec (mutual TLS) to
// FreeRADIUS's TLS listener.
func TestRadsecproxyToFreeRADIUS(t *testing.T) {
	t.Parallel()
	RequireBin(t, "radclient")
	RequireBin(t, "eapol_test")
	p := testPKI(t)
	opts := labOptions(p)
	opts.RadSec = true
	opts.EAPServerRSA = true // the UDP test covers the ECDSA server cert
	f := MustFreeRADIUS(t, opts)
	r := MustRadsecproxy(t, RadsecproxyOptions{Server: f.RadSecAddr, PKI: p, Secret: "udp-side-secret"})

	for _, tc := range radCases() {
		// Tunnel-Password arrives intact only if it was re-encrypted
		// from "radsec" to the UDP secret on the way back.
		t.Run(tc.name, func(t *testing.T) { checkRadclient(t, r.Addr, r.Secret, tc) })
	}
	t.Run("accounting", func(t *testing.T) {
		checkRadclient(t, r.Addr, r.Secret, radCase{code: "acct", attrs: []string{
			`User-Name = "` + testMACUser + `"`, "Acct-Status-Type = Start", `Acct-Session-Id = "s2"`,
		}, wantCode: "Accounting-Response"})
		if n, err := f.CountAccountingRecords(); err != nil || n != 1 {
			t.Fatalf("detail records = %d, %v; want 1", n, err)
		}
	})
	for _, tls13 := range []bool{false, true} {
		name := map[bool]string{false: "TLS 1.2", true: "TLS 1.3"}[tls13]
		t.Run("EAP-TLS user "+name, func(t *testing.T) {
			checkEAP(t, r.Addr, r.Secret, eapConfig(p, p.User, "user@example.org", tls13), true, eapVLAN)
		})
	}
}

func radsecTLSConfig(t *testing.T, p *labpki.PKI) *tls.Config {
	t.Helper()
	cert, err := tls.LoadX509KeyPair(p.RadSecClient.Chain, p.RadSecClient.Key)
	if err != nil {
		t.Fatal(err)
	}
	pem, err := os.ReadFile(p.RadSecCAFile)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pem)
	return &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: roots, ServerName: "localhost", MinVersion: tls.VersionTLS12}
}

// TestFreeRADIUSRestart checks Restart keeps the ports, and Pause/Resume.
func TestFreeRADIUSRestart(t *testing.T) {
	t.Parallel()
	RequireBin(t, "radclient")
	p := testPKI(t)
	opts := labOptions(p)
	opts.UDP, opts.RadSec = true, true
	f := MustFreeRADIUS(t, opts)
	mab := radCases()[0]
	checkRadclient(t, f.AuthAddr(), f.Secret, mab)

	auth, acct, radsec, pid := f.AuthPort, f.AcctPort, f.RadSecAddr, f.PID()
	if err := f.Restart(ctxT(t, 20*time.Second)); err != nil {
		t.Fatal(err)
	}
	if f.AuthPort != auth || f.AcctPort != acct || f.RadSecAddr != radsec {
		t.Fatalf("ports moved: %d/%d/%s → %d/%d/%s", auth, acct, radsec, f.AuthPort, f.AcctPort, f.RadSecAddr)
	}
	if f.PID() == pid || f.PID() == 0 {
		t.Fatalf("PID %d after restart (was %d)", f.PID(), pid)
	}
	checkRadclient(t, f.AuthAddr(), f.Secret, mab)
	conn, err := tls.DialWithDialer(&netDialer, "tcp", f.RadSecAddr, radsecTLSConfig(t, p))
	if err != nil {
		t.Fatalf("RadSec after restart: %v", err)
	}
	conn.Close()

	if err := f.Pause(); err != nil {
		t.Fatal(err)
	}
	if _, err := Radclient(ctxT(t, 10*time.Second), f.AuthAddr(), f.Secret, "auth", mab.attrs); !errors.Is(err, ErrNoReply) {
		t.Fatalf("paused server: err = %v, want ErrNoReply", err)
	}
	if err := f.Resume(); err != nil {
		t.Fatal(err)
	}
	checkRadclient(t, f.AuthAddr(), f.Secret, mab)
}

// TestFreeRADIUSIdleTimeout checks the RadSec listener closes an idle
// connection once IdleTimeout passes (the bound is generous: this is about
// the config taking effect, not about timing).
func TestFreeRADIUSIdleTimeout(t *testing.T) {
	t.Parallel()
	p := testPKI(t)
	// 5 s is FreeRADIUS 3.2.1's floor ("Setting idle_timeout to 5").
	f := MustFreeRADIUS(t, FreeRADIUSOptions{PKI: p, RadSec: true, IdleTimeout: 5 * time.Second})
	conn, err := tls.DialWithDialer(&netDialer, "tcp", f.RadSecAddr, radsecTLSConfig(t, p))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.SetReadDeadline(time.Now().Add(15 * time.Second)); err != nil {
		t.Fatal(err)
	}
	_, err = conn.Read(make([]byte, 1))
	if !errors.Is(err, io.EOF) {
		t.Fatalf("idle read: %v, want EOF from the server closing", err)
	}
}

var netDialer = net.Dialer{Timeout: 5 * time.Second}

// TestFreeRADIUSRequireMessageAuthenticator checks the peer can play a
// BlastRADIUS-hardened server: no Message-Authenticator, no answer.
func TestFreeRADIUSRequireMessageAuthenticator(t *testing.T) {
	t.Parallel()
	RequireBin(t, "radclient")
	opts := labOptions(testPKI(t))
	opts.UDP, opts.RequireMessageAuthenticator = true, true
	f := MustFreeRADIUS(t, opts)
	mab := radCases()[0] // carries a Message-Authenticator
	checkRadclient(t, f.AuthAddr(), f.Secret, mab)
	_, err := Radclient(ctxT(t, 10*time.Second), f.AuthAddr(), f.Secret, "auth", mab.attrs[:len(mab.attrs)-1])
	if !errors.Is(err, ErrNoReply) {
		t.Fatalf("request without Message-Authenticator: err = %v, want ErrNoReply", err)
	}
}
