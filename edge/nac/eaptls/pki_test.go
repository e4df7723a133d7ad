package eaptls_test

import (
	"crypto"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mxedge/mxedge/internal/labpki"
)

// testNow is the clock every test runs at; certificates are dated around it.
var testNow = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)

// serial numbers the CRLs, in the order a test makes them.
var serial atomic.Int64

type testCA struct {
	cert *x509.Certificate
	key  crypto.Signer
}

func ecKey(testing.TB) crypto.Signer { return labpki.ECKey() }

func rsaKey(_ testing.TB, bits int) crypto.Signer { return labpki.RSAKey(bits) }

type certOpts struct {
	cn        string
	ca        bool
	eku       []x509.ExtKeyUsage
	notBefore time.Time
	notAfter  time.Time
	dns       []string
}

// issue signs a certificate for key through the shared test PKI; parent nil
// means self-signed.
func issue(t testing.TB, parent *testCA, key crypto.Signer, o certOpts) *x509.Certificate {
	t.Helper()
	if o.notBefore.IsZero() {
		o.notBefore = testNow.AddDate(0, -6, 0)
	}
	if o.notAfter.IsZero() {
		o.notAfter = testNow.AddDate(1, 0, 0)
	}
	var pc *labpki.Cert
	if parent != nil {
		pc = &labpki.Cert{X509: parent.cert, Signer: parent.key}
	}
	c, err := labpki.Issue(pc, key, &x509.Certificate{
		Subject:     pkix.Name{CommonName: o.cn, Organization: []string{"mxedge test"}},
		NotBefore:   o.notBefore,
		NotAfter:    o.notAfter,
		ExtKeyUsage: o.eku,
		DNSNames:    o.dns,
		IsCA:        o.ca,
	})
	if err != nil {
		t.Fatal(err)
	}
	return c.X509
}

func newCA(t testing.TB, parent *testCA, key crypto.Signer, cn string) *testCA {
	return &testCA{cert: issue(t, parent, key, certOpts{cn: cn, ca: true}), key: key}
}

func tlsCert(key crypto.Signer, chain ...*x509.Certificate) *tls.Certificate {
	c := &tls.Certificate{PrivateKey: key, Leaf: chain[0]}
	for _, x := range chain {
		c.Certificate = append(c.Certificate, x.Raw)
	}
	return c
}

// pki is the org CA hierarchy: root → int1 → int2 → client leaves, and a
// server certificate under the root.
type pki struct {
	root, int1, int2 *testCA
	serverRSA        *tls.Certificate
	serverEC         *tls.Certificate
	clientKey        crypto.Signer
	client           *tls.Certificate // leaf, int2, int1
	caPEM            []byte           // root and both intermediates
	rootPEM          []byte           // root only: intermediates must come from the peer
	rootPool         *x509.CertPool
}

var (
	pkiOnce  sync.Once
	pkiEC    *pki
	pkiBig   *pki
	pkiOther *testCA
)

// testPKI returns a shared hierarchy. big uses RSA-3072 CAs and client
// key so the client chain spans several 1020-byte fragments; otherwise
// everything is ECDSA P-256.
func testPKI(t testing.TB, big bool) *pki {
	pkiOnce.Do(func() {
		pkiEC = buildPKI(t, func() crypto.Signer { return ecKey(t) })
		pkiBig = buildPKI(t, func() crypto.Signer { return rsaKey(t, 3072) })
		pkiOther = newCA(t, nil, ecKey(t), "Other Root")
	})
	if big {
		return pkiBig
	}
	return pkiEC
}

func buildPKI(t testing.TB, key func() crypto.Signer) *pki {
	p := &pki{}
	p.root = newCA(t, nil, key(), "Org Root")
	p.int1 = newCA(t, p.root, key(), "Org Intermediate 1")
	p.int2 = newCA(t, p.int1, key(), "Org Intermediate 2")
	sk := rsaKey(t, 2048)
	p.serverRSA = tlsCert(sk, issue(t, p.root, sk, certOpts{cn: "eap.mxedge.test", dns: []string{"eap.mxedge.test"}, eku: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}))
	ek := ecKey(t)
	p.serverEC = tlsCert(ek, issue(t, p.root, ek, certOpts{cn: "eap.mxedge.test", dns: []string{"eap.mxedge.test"}, eku: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}))
	p.clientKey = key()
	p.client = p.leaf(t, certOpts{cn: "laptop-1"})
	p.rootPool = x509.NewCertPool()
	p.rootPool.AddCert(p.root.cert)
	p.rootPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: p.root.cert.Raw})
	p.caPEM = p.rootPEM
	for _, c := range []*x509.Certificate{p.int1.cert, p.int2.cert} {
		p.caPEM = append(p.caPEM, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	return p
}

// leaf issues a client certificate under int2 (clientAuth unless o.eku
// says otherwise) and returns it with the chain the peer sends.
func (p *pki) leaf(t testing.TB, o certOpts) *tls.Certificate {
	if o.eku == nil {
		o.eku = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	}
	return tlsCert(p.clientKey, issue(t, p.int2, p.clientKey, o), p.int2.cert, p.int1.cert)
}

// crl returns a PEM CRL from ca revoking certs.
func (ca *testCA) crl(t testing.TB, certs ...*x509.Certificate) []byte {
	var entries []x509.RevocationListEntry
	for _, c := range certs {
		entries = append(entries, x509.RevocationListEntry{SerialNumber: c.SerialNumber, RevocationTime: testNow.Add(-time.Hour)})
	}
	der, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{
		Number:                    big.NewInt(serial.Add(1)),
		ThisUpdate:                testNow.Add(-time.Hour),
		NextUpdate:                testNow.Add(24 * time.Hour),
		RevokedCertificateEntries: entries,
	}, ca.cert, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der})
}

// writeFile puts b under t.TempDir and reads it back, the way the daemon
// loads its org CA and CRL files.
func writeFile(t testing.TB, name string, b []byte) []byte {
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return out
}
