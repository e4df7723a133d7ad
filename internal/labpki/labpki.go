package labpki

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// Options tunes Generate. The zero value is usable.
type Options struct {
	// KeyCacheDir, when set, keeps private keys between runs (keyed by role)
	// so the slow RSA-4096 generation happens once per machine. Certificates
	// are always re-issued.
	KeyCacheDir string
	// Now is the issuing clock; time.Now when nil.
	Now func() time.Time
}

// Cert is one issued certificate and its key, on disk and parsed.
type Cert struct {
	Cert   string // leaf certificate PEM
	Key    string // PKCS#8 private key PEM
	Chain  string // leaf followed by its intermediates (not the root) PEM
	X509   *x509.Certificate
	Signer crypto.Signer
	// Intermediates are the parsed certificates that follow the leaf in Chain.
	Intermediates []*x509.Certificate
}

// PKI is the set of files Generate wrote under Dir.
type PKI struct {
	Dir string

	// Root is the lab root. It signs the RadSec CA and the EAP server
	// certificates, so supplicants trust RootFile.
	Root     *Cert
	RootFile string

	// RadSecCA (under Root) issues RadSec server and client certificates.
	// RadSecCAFile holds Root and RadSecCA: the trust file for both ends.
	RadSecCA     *Cert
	RadSecCAFile string
	RadSecServer *Cert // SAN DNS localhost, IP 127.0.0.1 and ::1; serverAuth
	RadSecClient *Cert // clientAuth

	// OrgRoot → OrgIssuing issue the EAP-TLS client certificates.
	// OrgCAFile holds OrgRoot and OrgIssuing; OrgCRL is OrgIssuing's CRL
	// listing Revoked; OrgCAWithCRLFile is OrgCAFile plus a CRL from every
	// org CA (including the long-chain intermediates), which is what an
	// OpenSSL server with CRL checking needs as its CA file.
	OrgRoot          *Cert
	OrgIssuing       *Cert
	OrgCAFile        string
	OrgCRL           string
	OrgCAWithCRLFile string

	User    *Cert // CN user@example.org, SAN email; clientAuth
	Machine *Cert // CN host/laptop1.example.org, SAN DNS
	Expired *Cert
	Revoked *Cert
	// Untrusted is issued by UntrustedCA, which nothing trusts.
	Untrusted   *Cert
	UntrustedCA *Cert
	// LongChain is issued under OrgRoot through three intermediates with
	// RSA keys; its Chain file is several kilobytes, forcing ≥3 EAP-TLS
	// fragments when sent by a client. The intermediates are not in
	// OrgCAFile: the client must send them.
	LongChain    *Cert
	LongChainCAs []*Cert

	EAPServerECDSA *Cert // P-256, serverAuth, SAN DNS localhost, under Root
	EAPServerRSA   *Cert // RSA-2048, serverAuth, under Root
}

type keyKind int

const (
	p256 keyKind = iota
	rsa2048
	rsa4096
)

type generator struct {
	dir      string
	cacheDir string
	now      time.Time
}

// Generate writes a fresh PKI into dir (created if missing).
func Generate(dir string, opts Options) (*PKI, error) {
	now := time.Now
	if opts.Now != nil {
		now = opts.Now
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	if opts.KeyCacheDir != "" {
		if err := os.MkdirAll(opts.KeyCacheDir, 0o700); err != nil {
			return nil, err
		}
	}
	g := &generator{dir: dir, cacheDir: opts.KeyCacheDir, now: now().Truncate(time.Second)}
	p := &PKI{Dir: dir}
	var err error
	must := func(c *Cert, e error) *Cert {
		if e != nil && err == nil {
			err = e
		}
		return c
	}
	year := 365 * 24 * time.Hour
	serverAuth := []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	clientAuth := []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	localhost := func(t *x509.Certificate) {
		t.DNSNames = []string{"localhost"}
		t.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}
	}

	p.Root = must(g.ca("root", "mxedge lab root CA", nil, p256))
	p.RadSecCA = must(g.ca("radsec-ca", "mxedge lab RadSec CA", p.Root, p256))
	p.RadSecServer = must(g.leaf("radsec-server", "localhost", p.RadSecCA, p256, serverAuth, 0, year, localhost))
	p.RadSecClient = must(g.leaf("radsec-client", "radsec-client.lab", p.RadSecCA, p256, clientAuth, 0, year, func(t *x509.Certificate) {
		t.DNSNames = []string{"radsec-client.lab"}
	}))

	p.OrgRoot = must(g.ca("org-root", "Example Org root CA", nil, p256))
	p.OrgIssuing = must(g.ca("org-issuing", "Example Org issuing CA", p.OrgRoot, p256))
	p.User = must(g.leaf("user", "user@example.org", p.OrgIssuing, p256, clientAuth, 0, year, func(t *x509.Certificate) {
		t.EmailAddresses = []string{"user@example.org"}
	}))
	p.Machine = must(g.leaf("machine", "host/laptop1.example.org", p.OrgIssuing, p256, clientAuth, 0, year, func(t *x509.Certificate) {
		t.DNSNames = []string{"laptop1.example.org"}
	}))
	p.Expired = must(g.leaf("expired", "expired@example.org", p.OrgIssuing, p256, clientAuth, -48*time.Hour, 24*time.Hour, func(t *x509.Certificate) {
		t.EmailAddresses = []string{"expired@example.org"}
	}))
	p.Revoked = must(g.leaf("revoked", "revoked@example.org", p.OrgIssuing, p256, clientAuth, 0, year, func(t *x509.Certificate) {
		t.EmailAddresses = []string{"revoked@example.org"}
	}))
	p.UntrustedCA = must(g.ca("untrusted-ca", "Untrusted CA", nil, p256))
	p.Untrusted = must(g.leaf("untrusted", "user@example.org", p.UntrustedCA, p256, clientAuth, 0, year, func(t *x509.Certificate) {
		t.EmailAddresses = []string{"user@example.org"}
	}))
	// Two RSA-4096 keys at most (the last intermediate and the leaf): that
	// alone puts the chain well past three 1 KiB EAP fragments.
	lc1 := must(g.ca("longchain-ca1", "Example Org long chain CA 1", p.OrgRoot, rsa2048))
	lc2 := must(g.ca("longchain-ca2", "Example Org long chain CA 2", lc1, rsa2048))
	lc3 := must(g.ca("longchain-ca3", "Example Org long chain CA 3", lc2, rsa4096))
	p.LongChainCAs = []*Cert{lc1, lc2, lc3}
	p.LongChain = must(g.leaf("longchain", "longchain@example.org", lc3, rsa4096, clientAuth, 0, year, func(t *x509.Certificate) {
		t.EmailAddresses = []string{"longchain@example.org"}
	}))

	p.EAPServerECDSA = must(g.leaf("eap-server-ecdsa", "localhost", p.Root, p256, serverAuth, 0, year, localhost))
	p.EAPServerRSA = must(g.leaf("eap-server-rsa", "localhost", p.Root, rsa2048, serverAuth, 0, year, localhost))
	if err != nil {
		return nil, err
	}

	p.RootFile = p.Root.Cert
	if p.RadSecCAFile, err = g.bundle("radsec-ca-bundle.pem", certPEMs(p.Root, p.RadSecCA)...); err != nil {
		return nil, err
	}
	if p.OrgCAFile, err = g.bundle("org-ca-bundle.pem", certPEMs(p.OrgRoot, p.OrgIssuing)...); err != nil {
		return nil, err
	}
	orgCRL, err := g.crl(p.OrgIssuing, p.Revoked.X509)
	if err != nil {
		return nil, err
	}
	if p.OrgCRL, err = g.bundle("org-issuing.crl.pem", orgCRL); err != nil {
		return nil, err
	}
	blocks := append(certPEMs(p.OrgRoot, p.OrgIssuing), orgCRL)
	for _, ca := range []*Cert{p.OrgRoot, lc1, lc2, lc3} {
		empty, err := g.crl(ca)
		if err != nil {
			return nil, err
		}
		blocks = append(blocks, empty)
	}
	if p.OrgCAWithCRLFile, err = g.bundle("org-ca-bundle-crl.pem", blocks...); err != nil {
		return nil, err
	}
	return p, nil
}

func certPEMs(cs ...*Cert) [][]byte {
	out := make([][]byte, 0, len(cs))
	for _, c := range cs {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.X509.Raw}))
	}
	return out
}

func (g *generator) bundle(name string, blocks ...[]byte) (string, error) {
	path := filepath.Join(g.dir, name)
	return path, os.WriteFile(path, bytes.Join(blocks, nil), 0o600)
}

func (g *generator) ca(name, cn string, parent *Cert, kind keyKind) (*Cert, error) {
	return g.issue(name, parent, kind, &x509.Certificate{
		Subject:               pkix.Name{CommonName: cn, Organization: []string{"mxedge lab"}},
		NotBefore:             g.now.Add(-time.Hour),
		NotAfter:              g.now.Add(10 * 365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	})
}

// leaf issues an end-entity certificate valid from now+from for life.
func (g *generator) leaf(name, cn string, parent *Cert, kind keyKind, eku []x509.ExtKeyUsage, from, life time.Duration, edit func(*x509.Certificate)) (*Cert, error) {
	usage := x509.KeyUsageDigitalSignature
	if kind != p256 {
		usage |= x509.KeyUsageKeyEncipherment
	}
	t := &x509.Certificate{
		Subject:     pkix.Name{CommonName: cn, Organization: []string{"mxedge lab"}},
		NotBefore:   g.now.Add(from - time.Hour),
		NotAfter:    g.now.Add(from + life),
		KeyUsage:    usage,
		ExtKeyUsage: eku,
	}
	if edit != nil {
		edit(t)
	}
	return g.issue(name, parent, kind, t)
}

// issue signs template with parent (self-signed when parent is nil) and
// writes NAME.pem, NAME.key and NAME-chain.pem.
func (g *generator) issue(name string, parent *Cert, kind keyKind, t *x509.Certificate) (*Cert, error) {
	key, err := g.key(name, kind)
	if err != nil {
		return nil, err
	}
	c, err := Issue(parent, key, t)
	if err != nil {
		return nil, err
	}
	return c, c.WriteFiles(g.dir, name)
}

func isSelfSigned(c *x509.Certificate) bool {
	return bytes.Equal(c.RawIssuer, c.RawSubject)
}

// crl writes nothing; it returns a PEM CRL signed by ca listing revoked.
func (g *generator) crl(ca *Cert, revoked ...*x509.Certificate) ([]byte, error) {
	t := &x509.RevocationList{
		Number:     big.NewInt(g.now.Unix()),
		ThisUpdate: g.now.Add(-time.Hour),
		NextUpdate: g.now.Add(30 * 24 * time.Hour),
	}
	for _, r := range revoked {
		t.RevokedCertificateEntries = append(t.RevokedCertificateEntries, x509.RevocationListEntry{
			SerialNumber:   r.SerialNumber,
			RevocationTime: g.now.Add(-time.Minute),
			ReasonCode:     1, // keyCompromise
		})
	}
	der, err := x509.CreateRevocationList(rand.Reader, t, ca.X509, ca.Signer)
	if err != nil {
		return nil, fmt.Errorf("labpki: CRL for %s: %w", ca.X509.Subject.CommonName, err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der}), nil
}

// key loads NAME's key from the cache dir when it holds one of the right
// kind, else generates (and caches) a new one.
func (g *generator) key(name string, kind keyKind) (crypto.Signer, error) {
	var cached string
	if g.cacheDir != "" {
		cached = filepath.Join(g.cacheDir, fmt.Sprintf("%s-%d.key", name, kind))
		if k, err := readKey(cached, kind); err == nil {
			return k, nil
		} else if !errors.Is(err, os.ErrNotExist) {
			_ = os.Remove(cached) // corrupt or of another kind: regenerate
		}
	}
	var k crypto.Signer
	var err error
	switch kind {
	case rsa2048:
		k, err = rsa.GenerateKey(rand.Reader, 2048)
	case rsa4096:
		k, err = rsa.GenerateKey(rand.Reader, 4096)
	default:
		k, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	}
	if err != nil {
		return nil, err
	}
	if cached != "" {
		der, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			return nil, err
		}
		if err := os.WriteFile(cached, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
			return nil, err
		}
	}
	return k, nil
}

func readKey(path string, kind keyKind) (crypto.Signer, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	b, _ := pem.Decode(data)
	if b == nil {
		return nil, fmt.Errorf("labpki: %s: no PEM block", path)
	}
	k, err := x509.ParsePKCS8PrivateKey(b.Bytes)
	if err != nil {
		return nil, err
	}
	switch k := k.(type) {
	case *ecdsa.PrivateKey:
		if kind == p256 && k.Curve == elliptic.P256() {
			return k, nil
		}
	case *rsa.PrivateKey:
		if (kind == rsa2048 && k.N.BitLen() == 2048) || (kind == rsa4096 && k.N.BitLen() == 4096) {
			return k, nil
		}
	}
	return nil, fmt.Errorf("labpki: %s: key of the wrong kind", path)
}
