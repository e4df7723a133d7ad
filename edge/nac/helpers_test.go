package nac_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"encoding/pem"
	"math/big"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mxedge/mxedge/cache"
	"github.com/mxedge/mxedge/edge/nac"
	"github.com/mxedge/mxedge/edge/nac/eaptls"
	"github.com/mxedge/mxedge/edge/nac/eaptls/eaptlstest"
	"github.com/mxedge/mxedge/internal/labpki"
	"github.com/mxedge/mxedge/proxy"
	"github.com/mxedge/mxedge/proxy/packet"
)

var testNow = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)

type ca struct {
	cert *x509.Certificate
	key  crypto.Signer
}

// issue signs tmpl's fields for a fresh key through the shared test PKI;
// parent nil is self-signed.
func issue(t testing.TB, parent *ca, tmpl *x509.Certificate) (*x509.Certificate, crypto.Signer) {
	t.Helper()
	if tmpl.NotBefore.IsZero() {
		tmpl.NotBefore = testNow.AddDate(0, -1, 0)
	}
	if tmpl.NotAfter.IsZero() {
		tmpl.NotAfter = testNow.AddDate(1, 0, 0)
	}
	var pc *labpki.Cert
	if parent != nil {
		pc = &labpki.Cert{X509: parent.cert, Signer: parent.key}
	}
	c, err := labpki.Issue(pc, labpki.ECKey(), tmpl)
	if err != nil {
		t.Fatal(err)
	}
	return c.X509, c.Signer
}

func newCA(t testing.TB, parent *ca, cn string) *ca {
	c, k := issue(t, parent, &x509.Certificate{Subject: pkix.Name{CommonName: cn}, IsCA: true})
	return &ca{c, k}
}

func (c *ca) client(t testing.TB, tmpl *x509.Certificate, chain ...*x509.Certificate) *tls.Certificate {
	if tmpl.ExtKeyUsage == nil {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	}
	leaf, key := issue(t, c, tmpl)
	tc := &tls.Certificate{PrivateKey: key, Leaf: leaf, Certificate: [][]byte{leaf.Raw}}
	for _, x := range chain {
		tc.Certificate = append(tc.Certificate, x.Raw)
	}
	return tc
}

type pki struct {
	root, inter, other *ca
	server             *tls.Certificate
	alice, bob         *tls.Certificate // valid, under inter
	expired, revoked   *tls.Certificate
	untrusted          *tls.Certificate
	upnOnly            *tls.Certificate
	caPEM, crl         []byte
	pool               *x509.CertPool
}

var (
	pkiOnce sync.Once
	thePKI  *pki
)

func testPKI(t testing.TB) *pki {
	pkiOnce.Do(func() {
		p := &pki{}
		p.root = newCA(t, nil, "Org Root")
		p.inter = newCA(t, p.root, "Org Issuing CA")
		p.other = newCA(t, nil, "Somebody Else's Root")
		sc, sk := issue(t, p.root, &x509.Certificate{Subject: pkix.Name{CommonName: "eap.mxedge.test"},
			DNSNames: []string{"eap.mxedge.test"}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
		p.server = &tls.Certificate{PrivateKey: sk, Leaf: sc, Certificate: [][]byte{sc.Raw}}
		ic := p.inter.cert
		p.alice = p.inter.client(t, &x509.Certificate{Subject: pkix.Name{CommonName: "alice"},
			EmailAddresses: []string{"alice@example.org"}}, ic)
		p.bob = p.inter.client(t, &x509.Certificate{Subject: pkix.Name{CommonName: "bob"}}, ic)
		p.expired = p.inter.client(t, &x509.Certificate{Subject: pkix.Name{CommonName: "old"},
			NotBefore: testNow.AddDate(-2, 0, 0), NotAfter: testNow.AddDate(0, 0, -1)}, ic)
		p.revoked = p.inter.client(t, &x509.Certificate{Subject: pkix.Name{CommonName: "stolen"}}, ic)
		p.untrusted = p.other.client(t, &x509.Certificate{Subject: pkix.Name{CommonName: "alice"}})
		p.upnOnly = p.inter.client(t, &x509.Certificate{ExtraExtensions: []pkix.Extension{upnSAN(t, "carol@corp.example")}}, ic)
		for _, c := range []*x509.Certificate{p.root.cert, p.inter.cert} {
			p.caPEM = append(p.caPEM, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
		}
		der, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{
			Number: big.NewInt(1), ThisUpdate: testNow.Add(-time.Hour), NextUpdate: testNow.Add(24 * time.Hour),
			RevokedCertificateEntries: []x509.RevocationListEntry{{SerialNumber: p.revoked.Leaf.SerialNumber, RevocationTime: testNow.Add(-time.Hour)}},
		}, p.inter.cert, p.inter.key)
		if err != nil {
			t.Fatal(err)
		}
		p.crl = pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der})
		p.pool = x509.NewCertPool()
		p.pool.AddCert(p.root.cert)
		thePKI = p
	})
	return thePKI
}

// upnSAN builds a subjectAltName holding only a Microsoft UPN otherName.
func upnSAN(t testing.TB, upn string) pkix.Extension {
	// otherName ::= [0] IMPLICIT SEQUENCE { type-id OID, value [0] EXPLICIT UTF8String }
	oid := []byte{0x06, 0x0a, 0x2b, 0x06, 0x01, 0x04, 0x01, 0x82, 0x37, 0x14, 0x02, 0x03}
	utf8 := append([]byte{0x0c, byte(len(upn))}, upn...)
	val := append([]byte{0xa0, byte(len(utf8))}, utf8...)
	body := append(oid, val...)
	on := append([]byte{0xa0, byte(len(body))}, body...)
	seq := append([]byte{0x30, byte(len(on))}, on...)
	// Not critical: crypto/x509 flags a critical SAN it cannot fully read.
	return pkix.Extension{Id: []int{2, 5, 29, 17}, Value: seq}
}

// fakeStore is the cache as the authenticator sees it.
type fakeStore struct {
	mu      sync.Mutex
	entries map[[2]string]cache.Entry
	events  []cache.Event
}

func newFakeStore(es ...cache.Entry) *fakeStore {
	s := &fakeStore{entries: map[[2]string]cache.Entry{}}
	for _, e := range es {
		mac, _ := cache.NormalizeMAC(e.MAC)
		e.MAC = mac
		s.entries[[2]string{mac, e.Key().Identity}] = e
	}
	return s
}

func (s *fakeStore) Lookup(mac, id string) (cache.Entry, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.entries[[2]string{mac, id}]
	return e, ok, nil
}

func (s *fakeStore) AppendEvent(ev cache.Event) error {
	// Copy the fields as a real store encodes them, so -race sees a
	// caller that keeps writing to a map it handed over.
	f := make(map[string]string, len(ev.Fields))
	for k, v := range ev.Fields { // not maps.Clone: the race detector does not see its reads
		f[k] = v
	}
	ev.Fields = f
	s.mu.Lock()
	defer s.mu.Unlock()
	s.events = append(s.events, ev)
	return nil
}

func (s *fakeStore) eventTypes() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, e := range s.events {
		out = append(out, e.Type)
	}
	return out
}

var secret = []byte("testing123")

type fixture struct {
	a      *nac.Authenticator
	store  *fakeStore
	pki    *pki
	client *proxy.Client
	reg    *prometheus.Registry
}

func newFixture(t testing.TB, store *fakeStore, vendor string, mods ...func(*nac.Config)) *fixture {
	t.Helper()
	f := newFixtureStore(t, store, mods...)
	f.store, f.client.Vendor = store, vendor
	return f
}

// newFixtureStore builds an authenticator over store with default VLANs
// 41 (MAB) and 51 (802.1X); mods change its Config before New.
func newFixtureStore(t testing.TB, store nac.Store, mods ...func(*nac.Config)) *fixture {
	t.Helper()
	p := testPKI(t)
	reg := prometheus.NewRegistry()
	cfg := nac.Config{
		EAP: newEAPServer(t), Store: store, DefaultMABVLAN: "41", DefaultDot1XVLAN: "51",
		Registerer: reg, Now: func() time.Time { return testNow },
	}
	for _, m := range mods {
		m(&cfg)
	}
	a, err := nac.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{a: a, pki: p, reg: reg,
		client: &proxy.Client{Name: "sw1", Prefix: netip.MustParsePrefix("127.0.0.1/32"), Secret: secret, Vendor: "generic"}}
	t.Cleanup(func() { f.close(t) })
	return f
}

// newEAPServer is the EAP-TLS server of the test PKI at testNow.
func newEAPServer(t testing.TB) *eaptls.Server {
	t.Helper()
	p := testPKI(t)
	trust, err := eaptls.ParseTrust(p.caPEM, p.crl)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := eaptls.New(eaptls.Config{
		Certificate: func() (*tls.Certificate, error) { return p.server, nil },
		Trust:       trust, Now: func() time.Time { return testNow },
	})
	if err != nil {
		t.Fatal(err)
	}
	return srv
}

// close flushes events so tests can read them.
func (f *fixture) close(t testing.TB) {
	if err := f.a.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
}

type attr struct {
	t uint8
	v []byte
}

func u32(n uint32) []byte { return binary.BigEndian.AppendUint32(nil, n) }

// request encodes and signs an Access-Request (or another code) with a
// Message-Authenticator, splitting eapMsg into EAP-Message attributes.
func request(t testing.TB, code packet.Code, id uint8, eapMsg []byte, attrs ...attr) []byte {
	t.Helper()
	auth := packet.RandomAuthenticator()
	b := packet.Append(nil, code, id, auth)
	var err error
	if code == packet.CodeAccessRequest {
		b = packet.AppendMessageAuthenticator(b)
	}
	for _, a := range attrs {
		if a.t == packet.AttrUserPassword {
			a.v, err = packet.EncryptUserPassword(nil, a.v, secret, auth)
			if err != nil {
				t.Fatal(err)
			}
		}
		if b, err = packet.AppendAttr(b, a.t, a.v); err != nil {
			t.Fatal(err)
		}
	}
	for len(eapMsg) > 0 {
		n := min(253, len(eapMsg))
		b, _ = packet.AppendAttr(b, packet.AttrEAPMessage, eapMsg[:n])
		eapMsg = eapMsg[n:]
	}
	if err := packet.Sign(b, secret, nil); err != nil {
		t.Fatal(err)
	}
	return b
}

// serve sends raw to the authenticator and checks the reply's framing: Message-Authenticator
// first and valid, authenticator valid.
func (f *fixture) serve(t testing.TB, raw []byte) *packet.Packet {
	t.Helper()
	p, err := packet.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	out, _ := f.a.ServeRADIUS(context.Background(), &proxy.Request{Packet: p, Client: f.client, HasMessageAuthenticator: true})
	if out == nil {
		return nil
	}
	rp, err := packet.Parse(out)
	if err != nil {
		t.Fatal(err)
	}
	hasMA, err := packet.VerifyResponse(rp, p.Authenticator, secret)
	if err != nil {
		t.Fatalf("reply does not verify: %v", err)
	}
	if rp.Code == packet.CodeAccountingResponse {
		return rp
	}
	if !hasMA || rp.Attrs[0].Type != packet.AttrMessageAuthenticator {
		t.Fatalf("first attribute is %d, want Message-Authenticator", rp.Attrs[0].Type)
	}
	if rp.ID != p.ID {
		t.Fatalf("reply id %d, want %d", rp.ID, p.ID)
	}
	return rp
}

func eapOf(p *packet.Packet) []byte {
	var m []byte
	for _, a := range p.Attrs {
		if a.Type == packet.AttrEAPMessage {
			if len(a.Value) > 253 {
				panic("oversized EAP-Message")
			}
			m = append(m, a.Value...)
		}
	}
	return m
}

type eapRun struct {
	final      *packet.Packet
	reqAuth    [16]byte
	rounds     int
	serverFrag bool
	peer       *eaptlstest.Supplicant
}

// runEAP drives a whole conversation through RADIUS.
func (f *fixture) runEAP(t *testing.T, cert *tls.Certificate, v uint16, mac string, mtu int) eapRun {
	t.Helper()
	tc := &tls.Config{RootCAs: f.pki.pool, ServerName: "eap.mxedge.test", Time: func() time.Time { return testNow }}
	if cert != nil {
		tc.Certificates = []tls.Certificate{*cert}
	}
	frag := 0
	if mtu > 0 {
		frag = mtu - 14
	}
	peer := eaptlstest.New(eaptlstest.Config{TLS: tc, Version: v, FragmentSize: frag, Identity: "anonymous@example.org"})
	t.Cleanup(peer.Close)
	resp := peer.IdentityResponse(1)
	var state []byte
	var r eapRun
	r.peer = peer
	for id := uint8(0); id < 100; id++ {
		attrs := []attr{{packet.AttrUserName, []byte("anonymous@example.org")}, {packet.AttrCallingStationID, []byte(mac)}}
		if mtu > 0 {
			attrs = append(attrs, attr{packet.AttrFramedMTU, u32(uint32(mtu))})
		}
		if state != nil {
			attrs = append(attrs, attr{packet.AttrState, state})
		}
		raw := request(t, packet.CodeAccessRequest, id, resp, attrs...)
		rp := f.serve(t, raw)
		if rp == nil {
			t.Fatalf("round %d: no reply", id)
		}
		r.rounds++
		msg := eapOf(rp)
		if len(msg) > 4 && msg[4] == 13 && len(msg) > 5 && msg[5]&0x40 != 0 {
			r.serverFrag = true
		}
		if rp.Code != packet.CodeAccessChallenge {
			r.final = rp
			copy(r.reqAuth[:], raw[4:20])
			if _, err := peer.Handle(msg); err != nil {
				t.Fatalf("peer on final: %v", err)
			}
			return r
		}
		st, ok := rp.Lookup(packet.AttrState)
		if !ok {
			t.Fatal("Access-Challenge without State")
		}
		if !nac.IsLocalState(st) {
			t.Fatalf("round %d: State %q is not recognisably local", id, st)
		}
		state = bytes.Clone(st)
		var err error
		if resp, err = peer.Handle(msg); err != nil {
			t.Fatalf("peer: %v", err)
		}
	}
	t.Fatal("conversation did not end")
	return r
}

func newFuzzFixture(f *testing.F) *fixture { return newFixture(f, cachedStore(), "aruba") }
