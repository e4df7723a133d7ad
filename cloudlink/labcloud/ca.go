package labcloud

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// ca is the lab CA: it signs the API and RadSec server certificates, the
// edges' registration certificates and their local server certificates.
type ca struct {
	cert    *x509.Certificate
	key     crypto.Signer
	certPEM []byte
	now     func() time.Time
}

// LabHost is a DNS name in every lab server certificate.
const LabHost = "mxcloud.lab"

const (
	caCertFile = "ca.pem"
	caKeyFile  = "ca.key"
)

// loadOrCreateCA keeps the CA in dir so edges registered before a restart
// stay valid.
func loadOrCreateCA(dir string, now func() time.Time) (*ca, error) {
	certPEM, err := os.ReadFile(filepath.Join(dir, caCertFile))
	if err == nil {
		keyPEM, err := os.ReadFile(filepath.Join(dir, caKeyFile))
		if err != nil {
			return nil, err
		}
		pair, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			return nil, fmt.Errorf("labcloud: CA in %s: %w", dir, err)
		}
		cert, err := x509.ParseCertificate(pair.Certificate[0])
		if err != nil {
			return nil, err
		}
		return &ca{cert: cert, key: pair.PrivateKey.(crypto.Signer), certPEM: certPEM, now: now}, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	t := now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "mxcloud LAB CA (not for production)", Organization: []string{"mxedge lab"}},
		NotBefore:             t.Add(-time.Hour),
		NotAfter:              t.Add(10 * 365 * 24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	cert, _ := x509.ParseCertificate(der)
	certPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	kder, _ := x509.MarshalPKCS8PrivateKey(key)
	if err := os.WriteFile(filepath.Join(dir, caKeyFile), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, caCertFile), certPEM, 0o644); err != nil {
		return nil, err
	}
	return &ca{cert: cert, key: key, certPEM: certPEM, now: now}, nil
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	return n
}

// sign issues a certificate for pub. server adds serverAuth and loopback
// SANs; every certificate gets clientAuth.
func (c *ca) sign(pub crypto.PublicKey, cn string, server bool) ([]byte, error) {
	t := c.now()
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: cn, Organization: []string{"mxedge lab"}},
		NotBefore:    t.Add(-time.Hour),
		NotAfter:     t.Add(365 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if server {
		tmpl.ExtKeyUsage = append(tmpl.ExtKeyUsage, x509.ExtKeyUsageServerAuth)
		// LabHost lets tests reach the lab by a name that proxies
		// (HTTPS_PROXY) do not exempt the way they exempt loopback.
		tmpl.DNSNames = []string{"localhost", LabHost}
		if cn != "localhost" {
			tmpl.DNSNames = append(tmpl.DNSNames, cn)
		}
		tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, c.cert, pub, c.key)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), nil
}

// newKeyPair issues a fresh key and server certificate, PEM encoded.
func (c *ca) newKeyPair(cn string) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	certPEM, err = c.sign(&key.PublicKey, cn, true)
	if err != nil {
		return nil, nil, err
	}
	kder, _ := x509.MarshalPKCS8PrivateKey(key)
	return certPEM, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), nil
}

// serverCert issues the certificate the lab's own listeners present.
func (c *ca) serverCert() (tls.Certificate, error) {
	certPEM, keyPEM, err := c.newKeyPair("localhost")
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.X509KeyPair(certPEM, keyPEM)
}

func (c *ca) pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(c.cert)
	return p
}
