package eaptls_test

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/mxedge/mxedge/edge/nac/eap"
	"github.com/mxedge/mxedge/edge/nac/eaptls"
	"github.com/mxedge/mxedge/edge/nac/eaptls/eaptlstest"
)

var versions = []struct {
	name string
	v    uint16
}{{"TLS1.2", tls.VersionTLS12}, {"TLS1.3", tls.VersionTLS13}}

type fixture struct {
	srv   *eaptls.Server
	pki   *pki
	trust *eaptls.Trust
}

func newFixture(t testing.TB, big bool, mod func(*eaptls.Config), crls ...[]byte) *fixture {
	t.Helper()
	p := testPKI(t, big)
	for i := range crls {
		crls[i] = writeFile(t, "org.crl", crls[i])
	}
	trust, err := eaptls.ParseTrust(writeFile(t, "org-ca.pem", p.caPEM), crls...)
	if err != nil {
		t.Fatal(err)
	}
	cfg := eaptls.Config{
		Certificate: func() (*tls.Certificate, error) { return p.serverEC, nil },
		Trust:       trust,
		Now:         func() time.Time { return testNow },
	}
	if mod != nil {
		mod(&cfg)
	}
	srv, err := eaptls.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{srv: srv, pki: p, trust: trust}
}

func (f *fixture) peer(cert *tls.Certificate, v uint16, frag int) *eaptlstest.Supplicant {
	tc := &tls.Config{
		RootCAs:    f.pki.rootPool,
		ServerName: "eap.mxedge.test",
		Time:       func() time.Time { return testNow },
	}
	if cert != nil {
		tc.Certificates = []tls.Certificate{*cert}
	}
	return eaptlstest.New(eaptlstest.Config{TLS: tc, Version: v, FragmentSize: frag, Identity: "anonymous@example.org"})
}

// conversation records what crossed the wire.
type conversation struct {
	res             *eaptls.Result
	serverFragments int // Requests with the M flag
	peerFragments   int // Responses with the M flag
}

func run(t *testing.T, s *eaptls.Session, p *eaptlstest.Supplicant) conversation {
	t.Helper()
	var c conversation
	resp := p.IdentityResponse(7)
	for range 200 {
		if rp, _ := eap.Parse(resp); rp.Type == eap.TypeTLS && len(rp.Data) > 0 && rp.Data[0]&0x40 != 0 {
			c.peerFragments++
		}
		r := s.Handle(resp)
		if r.Outcome == eaptls.Discard {
			t.Fatalf("server discarded %x", resp)
		}
		rq, err := eap.Parse(r.EAP)
		if err != nil {
			t.Fatalf("server sent bad EAP: %v", err)
		}
		if rq.Code == eap.CodeRequest && rq.Type == eap.TypeTLS && len(rq.Data) > 0 && rq.Data[0]&0x40 != 0 {
			c.serverFragments++
		}
		next, err := p.Handle(r.EAP)
		if r.Result != nil {
			if r.Outcome == eaptls.Accept && err != nil {
				t.Fatalf("peer refused Success: %v", err)
			}
			c.res = r.Result
			return c
		}
		if err != nil {
			t.Fatalf("peer: %v", err)
		}
		resp = next
	}
	t.Fatal("no outcome")
	return c
}

func TestFullAuth(t *testing.T) {
	tests := []struct {
		name     string
		big      bool
		frag     int
		rootOnly bool
		wantFrag bool
	}{
		{"whole", false, 4000, false, false},
		{"whole-root-only-trust", false, 4000, true, false},
		{"fragmented-long-chain", true, 0, false, true},
		{"small-fragments", false, 200, true, true},
	}
	for _, v := range versions {
		for _, tc := range tests {
			t.Run(v.name+"/"+tc.name, func(t *testing.T) {
				f := newFixture(t, tc.big, func(c *eaptls.Config) { c.MaxRounds = 100 })
				if tc.rootOnly {
					tr, err := eaptls.ParseTrust(f.pki.rootPEM)
					if err != nil {
						t.Fatal(err)
					}
					f.srv.SetTrust(tr)
				}
				p := f.peer(f.pki.client, v.v, tc.frag)
				defer p.Close()
				s := f.srv.NewSession(tc.frag)
				defer s.Close()
				c := run(t, s, p)
				if c.res.Outcome != eaptls.Accept {
					t.Fatalf("outcome %v reason %s: %v", c.res.Outcome, c.res.Reason, c.res.Err)
				}
				if c.res.Version != v.v {
					t.Fatalf("version %#x", c.res.Version)
				}
				pk, err := p.Keys()
				if err != nil {
					t.Fatal(err)
				}
				if len(c.res.Keys.MSK) != 64 || !bytes.Equal(pk.MSK, c.res.Keys.MSK) || !bytes.Equal(pk.EMSK, c.res.Keys.EMSK) {
					t.Fatalf("MSK mismatch:\npeer   %x\nserver %x", pk.MSK, c.res.Keys.MSK)
				}
				if bytes.Equal(c.res.Keys.MSK, c.res.Keys.EMSK) || !bytes.Equal(c.res.Keys.MPPESendKey(), c.res.Keys.MSK[32:]) {
					t.Fatal("key split wrong")
				}
				if len(c.res.Chain) != 4 || c.res.Leaf().Subject.CommonName != "laptop-1" {
					t.Fatalf("chain %d certs", len(c.res.Chain))
				}
				if c.res.Identity != "anonymous@example.org" {
					t.Fatalf("identity %q", c.res.Identity)
				}
				if tc.wantFrag && c.peerFragments < 2 {
					// ≥3 fragments from the peer means ≥2 with M.
					t.Fatalf("fragments: server %d peer %d", c.serverFragments, c.peerFragments)
				}
				if !tc.wantFrag && (c.peerFragments != 0 || c.serverFragments != 0) {
					t.Fatalf("unexpected fragments: server %d peer %d", c.serverFragments, c.peerFragments)
				}
				t.Logf("rounds %d, server fragments %d, peer fragments %d", c.res.Rounds, c.serverFragments, c.peerFragments)
			})
		}
	}
}

func TestFailureReasons(t *testing.T) {
	p := testPKI(t, false)
	revoked := p.leaf(t, certOpts{cn: "stolen"})
	tests := []struct {
		name  string
		cert  *tls.Certificate
		crl   bool
		authz func([]*x509.Certificate) error
		want  eaptls.Reason
	}{
		{"expired", p.leaf(t, certOpts{cn: "old", notAfter: testNow.Add(-time.Hour)}), false, nil, eaptls.ReasonCertExpired},
		{"not yet valid", p.leaf(t, certOpts{cn: "future", notBefore: testNow.Add(time.Hour)}), false, nil, eaptls.ReasonCertNotYetValid},
		{"revoked", revoked, true, nil, eaptls.ReasonCertRevoked},
		{"untrusted CA", func() *tls.Certificate {
			testPKI(t, false)
			return tlsCert(p.clientKey, issue(t, pkiOther, p.clientKey, certOpts{cn: "rogue", eku: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}))
		}(), false, nil, eaptls.ReasonCertUntrustedCA},
		{"wrong EKU", p.leaf(t, certOpts{cn: "server-ish", eku: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}), false, nil, eaptls.ReasonCertValidationFailed},
		{"no client cert", nil, false, nil, eaptls.ReasonNoClientCert},
		{"not authorized", p.client, false, func([]*x509.Certificate) error { return errors.New("blocked") }, eaptls.ReasonNotAuthorized},
	}
	for _, v := range versions {
		for _, tc := range tests {
			t.Run(v.name+"/"+tc.name, func(t *testing.T) {
				var crls [][]byte
				if tc.crl {
					crls = append(crls, p.int2.crl(t, revoked.Leaf))
				}
				f := newFixture(t, false, func(c *eaptls.Config) { c.Authorize = tc.authz }, crls...)
				peer := f.peer(tc.cert, v.v, 0)
				defer peer.Close()
				s := f.srv.NewSession(0)
				defer s.Close()
				c := run(t, s, peer)
				if c.res.Outcome != eaptls.Reject || c.res.Reason != tc.want {
					t.Fatalf("outcome %v reason %q (%v), want %q", c.res.Outcome, c.res.Reason, c.res.Err, tc.want)
				}
				if peer.Succeeded() || c.res.Keys.MSK != nil {
					t.Fatal("failure leaked success or keys")
				}
				if !c.res.Reason.CertificateReason() && tc.want != eaptls.ReasonNotAuthorized {
					t.Fatal("reason not classified as certificate reason")
				}
			})
		}
	}
}

func TestCRLMustBeSignedByCA(t *testing.T) {
	p := testPKI(t, false)
	testPKI(t, false)
	if _, err := eaptls.ParseTrust(p.caPEM, pkiOther.crl(t, p.client.Leaf)); err == nil {
		t.Fatal("CRL from a foreign CA accepted")
	}
	tr, err := eaptls.NewTrust([]*x509.Certificate{p.root.cert}, []*x509.Certificate{p.int1.cert, p.int2.cert}, p.int2.crl(t, p.client.Leaf), p.root.crl(t))
	if err != nil {
		t.Fatal(err)
	}
	if tr.Revoked() != 1 || !tr.CRLNextUpdate().Equal(testNow.Add(24*time.Hour)) {
		t.Fatalf("revoked %d next %v", tr.Revoked(), tr.CRLNextUpdate())
	}
	// A bare leaf verifies: the intermediates come from the configuration.
	if _, err := tr.Verify([]*x509.Certificate{p.client.Leaf}, testNow); eaptls.ReasonOf(err) != eaptls.ReasonCertRevoked {
		t.Fatalf("revoked leaf: %v", err)
	}
	other := p.leaf(t, certOpts{cn: "laptop-2"})
	chain, err := tr.Verify([]*x509.Certificate{other.Leaf}, testNow)
	if err != nil || len(chain) != 4 {
		t.Fatalf("bare leaf: %v, chain %d", err, len(chain))
	}
}

func TestRetransmission(t *testing.T) {
	for _, v := range versions {
		t.Run(v.name, func(t *testing.T) {
			f := newFixture(t, false, nil)
			p := f.peer(f.pki.client, v.v, 300)
			defer p.Close()
			s := f.srv.NewSession(300)
			defer s.Close()
			resp := p.IdentityResponse(7)
			var last eaptls.Reply
			for i := 0; ; i++ {
				if i > 100 {
					t.Fatal("no outcome")
				}
				r := s.Handle(resp)
				// The NAS retries: the same Response again gets the same
				// Request, byte for byte, and TLS is not fed twice
				// (otherwise the conversation below would break).
				again := s.Handle(resp)
				if !bytes.Equal(again.EAP, r.EAP) || again.Outcome != r.Outcome {
					t.Fatalf("round %d: retransmission answered differently", i)
				}
				// A Response with another identifier is dropped.
				bad := bytes.Clone(resp)
				bad[1] += 100
				if d := s.Handle(bad); d.Outcome != eaptls.Discard {
					t.Fatalf("round %d: wrong id answered: %v", i, d.Outcome)
				}
				last = r
				if r.Result != nil {
					break
				}
				next, err := p.Handle(r.EAP)
				if err != nil {
					t.Fatal(err)
				}
				resp = next
			}
			if last.Outcome != eaptls.Accept {
				t.Fatalf("outcome %v %s %v", last.Outcome, last.Result.Reason, last.Result.Err)
			}
			if _, err := p.Handle(last.EAP); err != nil || !p.Succeeded() {
				t.Fatalf("peer: %v", err)
			}
		})
	}
}

func resp(id uint8, typ eap.Type, data ...byte) []byte {
	b, _ := eap.Packet{Code: eap.CodeResponse, Identifier: id, Type: typ, Data: data}.Encode()
	return b
}

func TestNakAndStart(t *testing.T) {
	f := newFixture(t, false, nil)
	tlsStart := func(t *testing.T, r eaptls.Reply) uint8 {
		t.Helper()
		p, err := eap.Parse(r.EAP)
		if err != nil || r.Outcome != eaptls.Challenge || p.Code != eap.CodeRequest || p.Type != eap.TypeTLS || !bytes.Equal(p.Data, []byte{0x20}) {
			t.Fatalf("want TLS Start, got %v %x", r.Outcome, r.EAP)
		}
		return p.Identifier
	}
	t.Run("nak password methods", func(t *testing.T) {
		s := f.srv.NewSession(0)
		id := tlsStart(t, s.Handle(resp(1, eap.TypeIdentity, 'a')))
		if id != 2 {
			t.Fatalf("id %d", id)
		}
		r := s.Handle(resp(id, eap.TypeNak, byte(eap.TypePEAP), byte(eap.TypeTTLS), byte(eap.TypeMSCHAPv2)))
		if r.Outcome != eaptls.Reject || r.Result.Reason != eaptls.ReasonPasswordMethodRefused {
			t.Fatalf("got %v %+v", r.Outcome, r.Result)
		}
		if p, _ := eap.Parse(r.EAP); p.Code != eap.CodeFailure || p.Identifier != id {
			t.Fatalf("failure %x", r.EAP)
		}
	})
	t.Run("expanded nak", func(t *testing.T) {
		s := f.srv.NewSession(0)
		id := tlsStart(t, s.Handle(resp(1, eap.TypeIdentity)))
		r := s.Handle(resp(id, eap.TypeExpanded, 0, 0, 0, 0, 0, 0, 3, 254, 0, 0, 0, 0, 0, 0, 25))
		if r.Outcome != eaptls.Reject || r.Result.Reason != eaptls.ReasonPasswordMethodRefused {
			t.Fatalf("got %v", r.Outcome)
		}
	})
	t.Run("nak listing tls re-offers", func(t *testing.T) {
		s := f.srv.NewSession(0)
		id := tlsStart(t, s.Handle(resp(1, eap.TypeIdentity)))
		id = tlsStart(t, s.Handle(resp(id, eap.TypeNak, byte(eap.TypeTLS))))
		if r := s.Handle(resp(id, eap.TypeNak, byte(eap.TypePEAP))); r.Result.Reason != eaptls.ReasonPasswordMethodRefused {
			t.Fatalf("got %+v", r.Result)
		}
	})
	t.Run("first response of another method", func(t *testing.T) {
		s := f.srv.NewSession(0)
		tlsStart(t, s.Handle(resp(9, eap.TypePEAP, 0x01)))
	})
	t.Run("server sends identity request", func(t *testing.T) {
		s := f.srv.NewSession(0)
		r := s.Start()
		p, _ := eap.Parse(r.EAP)
		if p.Type != eap.TypeIdentity || p.Code != eap.CodeRequest {
			t.Fatalf("start %x", r.EAP)
		}
		if s.Handle(resp(p.Identifier+1, eap.TypeIdentity)).Outcome != eaptls.Discard {
			t.Fatal("wrong id accepted")
		}
		tlsStart(t, s.Handle(resp(p.Identifier, eap.TypeIdentity, 'x')))
	})
	t.Run("announced length too big", func(t *testing.T) {
		s := f.srv.NewSession(0)
		id := tlsStart(t, s.Handle(resp(1, eap.TypeIdentity)))
		r := s.Handle(resp(id, eap.TypeTLS, 0xC0, 0, 1, 0, 1, 22))
		if r.Outcome != eaptls.Reject || r.Result.Reason != eaptls.ReasonLimitExceeded {
			t.Fatalf("got %v %+v", r.Outcome, r.Result)
		}
	})
	t.Run("garbage clienthello", func(t *testing.T) {
		s := f.srv.NewSession(0)
		id := tlsStart(t, s.Handle(resp(1, eap.TypeIdentity)))
		r := s.Handle(resp(id, eap.TypeTLS, 0, 22, 3, 1, 0, 4, 1, 0, 0, 0))
		for r.Result == nil {
			p, _ := eap.Parse(r.EAP)
			r = s.Handle(resp(p.Identifier, eap.TypeTLS, 0))
		}
		if r.Outcome != eaptls.Reject || r.Result.Reason != eaptls.ReasonTLSFailed {
			t.Fatalf("got %v %+v", r.Outcome, r.Result)
		}
		<-eaptls.Done(s)
	})
}

func TestLifetimeAndRounds(t *testing.T) {
	now := testNow
	f := newFixture(t, false, func(c *eaptls.Config) {
		c.Now = func() time.Time { return now }
		c.Lifetime = time.Minute
		c.MaxRounds = 3
	})
	s := f.srv.NewSession(0)
	s.Handle(resp(1, eap.TypeIdentity))
	now = now.Add(2 * time.Minute)
	if r := s.Handle(resp(2, eap.TypeIdentity)); r.Result == nil || r.Result.Reason != eaptls.ReasonTimeout {
		t.Fatalf("lifetime: %+v", r)
	}
	s = f.srv.NewSession(0)
	var r eaptls.Reply
	for i := range uint8(4) {
		r = s.Handle(resp(i+1, eap.TypeIdentity))
	}
	if r.Result == nil || r.Result.Reason != eaptls.ReasonLimitExceeded {
		t.Fatalf("rounds: %+v", r)
	}
}

// midHandshake returns a session whose handshake goroutine is running.
func midHandshake(t *testing.T, f *fixture) *eaptls.Session {
	p := f.peer(f.pki.client, tls.VersionTLS13, 0)
	t.Cleanup(p.Close)
	s := f.srv.NewSession(0)
	r := s.Handle(p.IdentityResponse(1))
	next, err := p.Handle(r.EAP) // ClientHello
	if err != nil {
		t.Fatal(err)
	}
	if r = s.Handle(next); r.Outcome != eaptls.Challenge {
		t.Fatalf("got %v", r.Outcome)
	}
	return s
}

func waitDone(t *testing.T, s *eaptls.Session) {
	t.Helper()
	select {
	case <-eaptls.Done(s):
	case <-time.After(10 * time.Second):
		t.Fatal("handshake goroutine did not exit")
	}
}

func TestTable(t *testing.T) {
	f := newFixture(t, false, nil)
	now := testNow
	tab := eaptls.NewTable(eaptls.TableConfig{IdleTimeout: 30 * time.Second, HalfOpenTimeout: time.Hour, MaxSessions: 3, MaxPerDevice: 2, Now: func() time.Time { return now }})
	before := runtime.NumGoroutine()

	a := establishedSession(t, f, tls.VersionTLS13)
	b := establishedSession(t, f, tls.VersionTLS12)
	stA, err := tab.Add("02:00:00:00:00:01", a)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(stA, eaptls.StatePrefix) || len(stA) != len(eaptls.StatePrefix)+24 || len(stA) > 253 {
		t.Fatalf("state %q: want %q and 24 random characters", stA, eaptls.StatePrefix)
	}
	if _, err := tab.Add("02:00:00:00:00:01", b); err != nil {
		t.Fatal(err)
	}
	if _, err := tab.Add("02:00:00:00:00:01", f.srv.NewSession(0)); !errors.Is(err, eaptls.ErrDeviceFull) {
		t.Fatalf("per-device cap: %v", err)
	}
	st2, err := tab.Add("02:00:00:00:00:02", f.srv.NewSession(0))
	if err != nil {
		t.Fatal(err)
	}
	// The table is full: the half-open conversation makes room.
	if _, err := tab.Add("02:00:00:00:00:03", f.srv.NewSession(0)); err != nil {
		t.Fatalf("global cap: %v", err)
	}
	if _, ok := tab.Get(st2, "02:00:00:00:00:02"); ok {
		t.Fatal("half-open conversation kept at the global cap")
	}
	if tab.Len() != 3 {
		t.Fatalf("len %d", tab.Len())
	}
	if _, ok := tab.Get(stA, "02:00:00:00:00:09"); ok {
		t.Fatal("session handed to another device")
	}
	now = now.Add(20 * time.Second)
	if got, ok := tab.Get(stA, "02:00:00:00:00:01"); !ok || got != a {
		t.Fatal("lost a live session")
	}
	now = now.Add(20 * time.Second) // a touched 20 s ago, b and the third 40 s ago
	if n := tab.Sweep(); n != 2 || tab.Len() != 1 {
		t.Fatalf("swept %d, len %d", n, tab.Len())
	}
	waitDone(t, b)
	if r := b.Result(); r == nil || r.Reason != eaptls.ReasonTimeout {
		t.Fatalf("expired session result %+v", r)
	}
	now = now.Add(31 * time.Second)
	if _, ok := tab.Get(stA, "02:00:00:00:00:01"); ok || tab.Len() != 0 {
		t.Fatal("idle session returned")
	}
	waitDone(t, a)
	// The peers' goroutines end through t.Cleanup; ours must be gone now.
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > before+2 && time.Now().Before(deadline) {
		runtime.Gosched()
	}
	if n := runtime.NumGoroutine(); n > before+2 {
		t.Fatalf("goroutines: %d before, %d after", before, n)
	}
}

func TestTableClose(t *testing.T) {
	f := newFixture(t, false, nil)
	tab := eaptls.NewTable(eaptls.TableConfig{})
	s := midHandshake(t, f)
	st, _ := tab.Add("nas", s)
	tab.Remove(st)
	waitDone(t, s)
	s2 := midHandshake(t, f)
	tab.Add("nas", s2)
	tab.Close()
	waitDone(t, s2)
	if tab.Len() != 0 {
		t.Fatal("not empty")
	}
}
