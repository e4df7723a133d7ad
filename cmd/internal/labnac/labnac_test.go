package labnac

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"log/slog"
	"os"
	"testing"

	"github.com/mxedge/mxedge/internal/labpki"

	"github.com/mxedge/mxedge/cloudlink"
	"github.com/mxedge/mxedge/cloudlink/labcloud"
	"github.com/mxedge/mxedge/edge/nac/eaptls/eaptlstest"
	"github.com/mxedge/mxedge/proxy"
	"github.com/mxedge/mxedge/proxy/packet"
)

func accessRequest(t *testing.T, user, csid string, eap bool) *packet.Packet {
	t.Helper()
	b := packet.Append(nil, packet.CodeAccessRequest, 7, packet.RandomAuthenticator())
	b = packet.AppendMessageAuthenticator(b)
	b, _ = packet.AppendAttr(b, packet.AttrUserName, []byte(user))
	if csid != "" {
		b, _ = packet.AppendAttr(b, packet.AttrCallingStationID, []byte(csid))
	}
	if eap {
		b, _ = packet.AppendAttr(b, packet.AttrEAPMessage, []byte{2, 1, 0, 5, 1})
	}
	b, _ = packet.AppendAttr(b, packet.AttrProxyState, []byte("ps-1"))
	if err := packet.Sign(b, radsecSecret, nil); err != nil {
		t.Fatal(err)
	}
	p, err := packet.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestNAC(t *testing.T) {
	c, err := labcloud.Open(labcloud.Options{Dir: t.TempDir(), MAB: map[string]string{"aabbccddeeff": "41"}})
	if err != nil {
		t.Fatal(err)
	}
	n := &NAC{cloud: c, log: slog.New(slog.DiscardHandler)}
	acct := packet.Append(nil, packet.CodeAccountingRequest, 9, [16]byte{})
	acct, _ = packet.AppendAttr(acct, packet.AttrAcctStatusType, []byte{0, 0, 0, 1})
	_ = packet.Sign(acct, radsecSecret, nil)
	acctP, _ := packet.Parse(acct)
	tests := []struct {
		name string
		req  *packet.Packet
		code packet.Code
		vlan string
	}{
		{"allow-listed MAB", accessRequest(t, "aabbccddeeff", "AA-BB-CC-DD-EE-FF", false), packet.CodeAccessAccept, "41"},
		{"MAC in User-Name only", accessRequest(t, "aa:bb:cc:dd:ee:ff", "", false), packet.CodeAccessAccept, "41"},
		{"unknown MAC", accessRequest(t, "001122334455", "00-11-22-33-44-55", false), packet.CodeAccessReject, ""},
		{"EAP", accessRequest(t, "user@example.org", "AA-BB-CC-DD-EE-FF", true), packet.CodeAccessReject, ""},
		{"accounting", acctP, packet.CodeAccountingResponse, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, outcome := n.ServeRADIUS(context.Background(), &proxy.Request{Packet: tt.req, Client: &proxy.Client{Name: "edge-1"}})
			if outcome != proxy.OutcomeAnswered {
				t.Fatalf("outcome %s", outcome)
			}
			p, err := packet.Parse(b)
			if err != nil {
				t.Fatal(err)
			}
			hasMA, err := packet.VerifyResponse(p, tt.req.Authenticator, radsecSecret)
			if err != nil {
				t.Fatalf("reply does not verify: %v", err)
			}
			if p.Code != tt.code || p.ID != tt.req.ID || hasMA != (tt.code != packet.CodeAccountingResponse) {
				t.Errorf("reply %s id %d MA %v", p.Code, p.ID, hasMA)
			}
			if p.Code != packet.CodeAccountingResponse && len(p.Attrs) > 0 && p.Attrs[0].Type != packet.AttrMessageAuthenticator {
				t.Error("Message-Authenticator is not first")
			}
			v, _ := p.Lookup(packet.AttrTunnelPrivateGroupID)
			if string(v) != tt.vlan {
				t.Errorf("VLAN %q, want %q", v, tt.vlan)
			}
			if ps, _ := p.Lookup(packet.AttrProxyState); tt.code != packet.CodeAccountingResponse && string(ps) != "ps-1" {
				t.Errorf("Proxy-State %q not copied", ps)
			}
		})
	}
	st := c.Stats()
	if st.CacheEntries != 1 || st.Accepts != 2 || st.Auths != 4 || st.Accounting != 1 {
		t.Errorf("stats %+v", st)
	}
}

// testOrgCA makes an org CA and one client certificate under it.
func testOrgCA(t *testing.T, cn string) (caPEM []byte, client tls.Certificate) {
	t.Helper()
	ca, err := labpki.Issue(nil, labpki.ECKey(), &x509.Certificate{Subject: pkix.Name{CommonName: "test org CA"}, IsCA: true})
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := labpki.Issue(ca, labpki.ECKey(), &x509.Certificate{Subject: pkix.Name{CommonName: cn},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	if err != nil {
		t.Fatal(err)
	}
	return ca.CertPEM(), *leaf.TLS()
}

// eapOverRADIUS runs sup's conversation with h as a NAS would: EAP in
// Access-Requests (Calling-Station-Id csid, the State of the last
// challenge), until an Access-Accept or -Reject, which it returns.
func eapOverRADIUS(t *testing.T, h proxy.Handler, sup *eaptlstest.Supplicant, csid string) *packet.Packet {
	t.Helper()
	msg := sup.IdentityResponse(1)
	var state []byte
	for id := byte(1); id < 60; id++ {
		b := packet.Append(nil, packet.CodeAccessRequest, id, packet.RandomAuthenticator())
		b = packet.AppendMessageAuthenticator(b)
		b, _ = packet.AppendAttr(b, packet.AttrUserName, []byte("anonymous@example.org"))
		b, _ = packet.AppendAttr(b, packet.AttrCallingStationID, []byte(csid))
		for m := msg; len(m) > 0; {
			n := min(len(m), 253)
			b, _ = packet.AppendAttr(b, packet.AttrEAPMessage, m[:n])
			m = m[n:]
		}
		if state != nil {
			b, _ = packet.AppendAttr(b, packet.AttrState, state)
		}
		if err := packet.Sign(b, radsecSecret, nil); err != nil {
			t.Fatal(err)
		}
		req, err := packet.Parse(b)
		if err != nil {
			t.Fatal(err)
		}
		out, _ := h.ServeRADIUS(context.Background(), &proxy.Request{Packet: req, HasMessageAuthenticator: true,
			Client: &proxy.Client{Name: "edge-1", Secret: radsecSecret}})
		if out == nil {
			t.Fatalf("round %d: no reply", id)
		}
		rep, err := packet.Parse(out)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := packet.VerifyResponse(rep, req.Authenticator, radsecSecret); err != nil {
			t.Fatalf("reply does not verify: %v", err)
		}
		var eapMsg []byte
		for _, a := range rep.Attrs {
			if a.Type == packet.AttrEAPMessage {
				eapMsg = append(eapMsg, a.Value...)
			}
		}
		if rep.Code != packet.CodeAccessChallenge {
			if len(eapMsg) > 0 {
				sup.Handle(eapMsg)
			}
			return rep
		}
		state, _ = rep.Lookup(packet.AttrState)
		if msg, err = sup.Handle(eapMsg); err != nil {
			t.Fatalf("supplicant: %v", err)
		}
	}
	t.Fatal("no final reply")
	return nil
}

func TestNACEAPTLS(t *testing.T) {
	caPEM, laptop := testOrgCA(t, "laptop-1")
	_, other := testOrgCA(t, "stranger") // another CA: not trusted
	tests := []struct {
		name     string
		cert     tls.Certificate
		csid     string
		code     packet.Code
		vlan     string
		accepts  int
		cached   int
		rejected int
	}{
		{"identity VLAN", laptop, "02-00-00-00-00-01", packet.CodeAccessAccept, "60", 1, 1, 0},
		{"untrusted CA", other, "02-00-00-00-00-02", packet.CodeAccessReject, "", 0, 0, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := labcloud.Open(labcloud.Options{Dir: t.TempDir()})
			if err != nil {
				t.Fatal(err)
			}
			n, err := New(c, slog.New(slog.DiscardHandler), Options{VLANs: "laptop-1=60"},
				&cloudlink.OrgCA{Certificates: string(caPEM)}, "51")
			if err != nil {
				t.Fatal(err)
			}
			caFile, _ := os.ReadFile(c.CAFile())
			roots := x509.NewCertPool()
			roots.AppendCertsFromPEM(caFile)
			sup := eaptlstest.New(eaptlstest.Config{Identity: "anonymous@example.org",
				TLS: &tls.Config{Certificates: []tls.Certificate{tt.cert}, RootCAs: roots, ServerName: eapCN}})
			defer sup.Close()
			rep := eapOverRADIUS(t, n, sup, tt.csid)
			n.Close(context.Background()) // flushes the events that record the outcome
			if rep.Code != tt.code {
				t.Fatalf("reply %s, want %s", rep.Code, tt.code)
			}
			if v, _ := rep.Lookup(packet.AttrTunnelPrivateGroupID); string(v) != tt.vlan {
				t.Errorf("VLAN %q, want %q", v, tt.vlan)
			}
			if tt.code == packet.CodeAccessAccept && !sup.Succeeded() {
				t.Error("supplicant did not see EAP-Success")
			}
			st := c.Stats()
			if st.Accepts != tt.accepts || st.CacheEntries != tt.cached || st.Auths != tt.accepts+tt.rejected {
				t.Errorf("stats %+v", st)
			}
		})
	}
}

func TestNewNACFlags(t *testing.T) {
	c, err := labcloud.Open(labcloud.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	caPEM, _ := testOrgCA(t, "x")
	org := &cloudlink.OrgCA{Certificates: string(caPEM)}
	tests := []struct {
		name  string
		f     Options
		org   *cloudlink.OrgCA
		ok    bool
		serve bool
	}{
		{"MAB only", Options{}, nil, true, false},
		{"EAP with a lab-issued certificate", Options{}, org, true, true},
		{"EAP flags without an org CA", Options{VLANs: "a=1"}, nil, false, false},
		{"cert without key", Options{Cert: "x.pem"}, org, false, false},
		{"missing cert file", Options{Cert: "/nonexistent.pem", Key: "/nonexistent.key"}, org, false, false},
		{"bad VLAN item", Options{VLANs: "a"}, org, false, false},
		{"org CA without certificates", Options{}, &cloudlink.OrgCA{Certificates: "nope"}, false, false},
	}
	for _, tt := range tests {
		n, err := New(c, slog.New(slog.DiscardHandler), tt.f, tt.org, "51")
		if (err == nil) != tt.ok {
			t.Errorf("%s: err %v", tt.name, err)
			continue
		}
		if err == nil {
			if (n.eap != nil) != tt.serve {
				t.Errorf("%s: EAP served %v", tt.name, n.eap != nil)
			}
			n.Close(context.Background())
		}
	}
}

func TestClientFlag(t *testing.T) {
	tests := []struct {
		in        string
		addr, sec string
		wantErr   bool
	}{
		{"sw=127.0.0.1:s3cret", "127.0.0.1", "s3cret", false},
		{"sw=10.0.0.0/8:a:b", "10.0.0.0/8", "a:b", false},
		{"v6=2001:db8::/32:sec", "2001:db8::/32", "sec", false},
		{"v6=[2001:db8::1]:sec", "2001:db8::1", "sec", false},
		{"v6=2001:db8::1:sec", "", "", true},
		{"sw=127.0.0.1", "", "", true},
		{"sw=127.0.0.1:", "", "", true},
		{"=127.0.0.1:x", "", "", true},
		{"sw=host:x", "", "", true},
	}
	for _, tt := range tests {
		var c ClientsFlag
		err := c.Set(tt.in)
		if (err != nil) != tt.wantErr {
			t.Errorf("Set(%q) = %v", tt.in, err)
			continue
		}
		if err == nil && (c[0].Address != tt.addr || c[0].Secret != tt.sec || !c[0].RequireMessageAuthenticator) {
			t.Errorf("Set(%q) = %+v", tt.in, c[0])
		}
	}
}

func FuzzClientFlag(f *testing.F) {
	for _, s := range []string{"sw=127.0.0.1:s", "v6=[::1]:s", "n=10.0.0.0/8:x:y"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var c ClientsFlag
		if c.Set(s) == nil && (c[0].Name == "" || c[0].Secret == "" || c[0].Address == "") {
			t.Fatalf("Set(%q) = %+v", s, c[0])
		}
	})
}

func FuzzParseEAPVLANs(f *testing.F) {
	f.Add("laptop-1=60,user@example.org=guest")
	f.Fuzz(func(t *testing.T, s string) {
		m, err := parseEAPVLANs(s)
		if err != nil {
			return
		}
		for id, vlan := range m {
			if id == "" || vlan == "" {
				t.Fatalf("parseEAPVLANs(%q) gave %q=%q", s, id, vlan)
			}
		}
	})
}
