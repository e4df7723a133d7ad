package labpki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"time"
)

// Issue signs t for key under parent (self-signed when parent is nil), in
// memory: the one place the module's tests and lab tools mint certificates.
// Left zero in t: the serial number (random), the validity (an hour ago to
// a year from now) and the key usage (cert and CRL signing for a CA, digital
// signature for a leaf, plus key encipherment for RSA).
func Issue(parent *Cert, key crypto.Signer, t *x509.Certificate) (*Cert, error) {
	var err error
	if t.SerialNumber == nil {
		if t.SerialNumber, err = rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127)); err != nil {
			return nil, err
		}
	}
	if t.NotBefore.IsZero() {
		t.NotBefore = time.Now().Add(-time.Hour)
	}
	if t.NotAfter.IsZero() {
		t.NotAfter = t.NotBefore.Add(365 * 24 * time.Hour)
	}
	if t.KeyUsage == 0 {
		if t.IsCA {
			t.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature
		} else {
			t.KeyUsage = x509.KeyUsageDigitalSignature
			if _, ok := key.(*rsa.PrivateKey); ok {
				t.KeyUsage |= x509.KeyUsageKeyEncipherment
			}
		}
	}
	if t.IsCA {
		t.BasicConstraintsValid = true
	}
	issuer, signer := t, key
	if parent != nil {
		issuer, signer = parent.X509, parent.Signer
	}
	der, err := x509.CreateCertificate(rand.Reader, t, issuer, key.Public(), signer)
	if err != nil {
		return nil, fmt.Errorf("labpki: issue %q: %w", t.Subject.CommonName, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	c := &Cert{X509: cert, Signer: key}
	// The chain stops below the self-signed root: peers must not rely on
	// a root sent by the other end.
	if parent != nil && !isSelfSigned(parent.X509) {
		c.Intermediates = append([]*x509.Certificate{parent.X509}, parent.Intermediates...)
	}
	return c, nil
}

// ECKey is a fresh ECDSA P-256 key, the default everywhere.
func ECKey() *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err) // crypto/rand does not fail
	}
	return k
}

// RSAKey is a fresh RSA key of bits.
func RSAKey(bits int) *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		panic(err)
	}
	return k
}

// TLS is c with its intermediates, for a tls.Config.
func (c *Cert) TLS() *tls.Certificate {
	tc := &tls.Certificate{PrivateKey: c.Signer, Leaf: c.X509, Certificate: [][]byte{c.X509.Raw}}
	for _, x := range c.Intermediates {
		tc.Certificate = append(tc.Certificate, x.Raw)
	}
	return tc
}

// CertPEM is the certificate alone, PEM.
func (c *Cert) CertPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.X509.Raw})
}

// ChainPEM is the certificate followed by its intermediates, PEM.
func (c *Cert) ChainPEM() []byte {
	b := c.CertPEM()
	for _, x := range c.Intermediates {
		b = append(b, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: x.Raw})...)
	}
	return b
}

// KeyPEM is the private key, PKCS #8 PEM.
func (c *Cert) KeyPEM() []byte {
	der, err := x509.MarshalPKCS8PrivateKey(c.Signer)
	if err != nil {
		panic(err) // our own ECDSA and RSA keys always marshal
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

// WriteFiles writes NAME.pem, NAME.key and NAME-chain.pem under dir and
// records their paths in c.
func (c *Cert) WriteFiles(dir, name string) error {
	c.Cert = filepath.Join(dir, name+".pem")
	c.Key = filepath.Join(dir, name+".key")
	c.Chain = filepath.Join(dir, name+"-chain.pem")
	for path, data := range map[string][]byte{c.Cert: c.CertPEM(), c.Chain: c.ChainPEM(), c.Key: c.KeyPEM()} {
		if err := os.WriteFile(path, data, 0o600); err != nil {
			return err
		}
	}
	return nil
}

// CSRPEM is a PEM certificate request for key under template t (empty
// when nil): for the tests that stand in for an edge registering with a
// cloud, so they too build no X.509 objects of their own.
func CSRPEM(key crypto.Signer, t *x509.CertificateRequest) ([]byte, error) {
	if t == nil {
		t = &x509.CertificateRequest{}
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, t, key)
	if err != nil {
		return nil, fmt.Errorf("labpki: request %q: %w", t.Subject.CommonName, err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}), nil
}
