package labpki

import (
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func pool(t *testing.T, files ...string) *x509.CertPool {
	t.Helper()
	p := x509.NewCertPool()
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if !p.AppendCertsFromPEM(data) {
			t.Fatalf("%s: no certificates", f)
		}
	}
	return p
}

func TestGenerate(t *testing.T) {
	cache := t.TempDir()
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	pki, err := Generate(t.TempDir(), Options{KeyCacheDir: cache, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	radsecRoots := pool(t, pki.RadSecCAFile)
	orgRoots := pool(t, pki.OrgCAFile)
	lcInter := x509.NewCertPool()
	for _, c := range pki.LongChainCAs {
		lcInter.AddCert(c.X509)
	}
	client := []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	server := []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	tests := []struct {
		name    string
		cert    *Cert
		roots   *x509.CertPool
		inter   *x509.CertPool
		eku     []x509.ExtKeyUsage
		dns     string
		wantErr bool
	}{
		{"radsec server", pki.RadSecServer, radsecRoots, nil, server, "localhost", false},
		{"radsec server as client", pki.RadSecServer, radsecRoots, nil, client, "", true},
		{"radsec client", pki.RadSecClient, radsecRoots, nil, client, "", false},
		{"user", pki.User, orgRoots, nil, client, "", false},
		{"machine", pki.Machine, orgRoots, nil, client, "", false},
		{"expired", pki.Expired, orgRoots, nil, client, "", true},
		{"revoked (chain is fine, CRL says no)", pki.Revoked, orgRoots, nil, client, "", false},
		{"untrusted", pki.Untrusted, orgRoots, nil, client, "", true},
		{"long chain without intermediates", pki.LongChain, orgRoots, nil, client, "", true},
		{"long chain", pki.LongChain, orgRoots, lcInter, client, "", false},
		{"eap server ecdsa", pki.EAPServerECDSA, pool(t, pki.RootFile), nil, server, "localhost", false},
		{"eap server rsa", pki.EAPServerRSA, pool(t, pki.RootFile), nil, server, "localhost", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.cert.X509.Verify(x509.VerifyOptions{
				Roots: tc.roots, Intermediates: tc.inter, KeyUsages: tc.eku,
				DNSName: tc.dns, CurrentTime: now,
			})
			if (err != nil) != tc.wantErr {
				t.Fatalf("Verify() err = %v, wantErr %v", err, tc.wantErr)
			}
		})
	}

	data, err := os.ReadFile(pki.OrgCRL)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := pem.Decode(data)
	crl, err := x509.ParseRevocationList(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if err := crl.CheckSignatureFrom(pki.OrgIssuing.X509); err != nil {
		t.Fatalf("CRL signature: %v", err)
	}
	if len(crl.RevokedCertificateEntries) != 1 || crl.RevokedCertificateEntries[0].SerialNumber.Cmp(pki.Revoked.X509.SerialNumber) != 0 {
		t.Fatalf("CRL lists %v, want the revoked cert's serial", crl.RevokedCertificateEntries)
	}

	// ≥3 fragments of FreeRADIUS's default 1024-byte fragment_size.
	size := len(pki.LongChain.X509.Raw)
	for _, c := range pki.LongChain.Intermediates {
		size += len(c.Raw)
	}
	if len(pki.LongChain.Intermediates) != 3 || size < 3*1024 {
		t.Fatalf("long chain: %d intermediates, %d DER bytes", len(pki.LongChain.Intermediates), size)
	}

	// A second run reuses the cached RSA-4096 key.
	again, err := Generate(t.TempDir(), Options{KeyCacheDir: cache})
	if err != nil {
		t.Fatal(err)
	}
	if !pki.LongChain.Signer.(*rsa.PrivateKey).Equal(again.LongChain.Signer) {
		t.Fatal("cached long-chain key not reused")
	}
	if pki.LongChain.X509.SerialNumber.Cmp(again.LongChain.X509.SerialNumber) == 0 {
		t.Fatal("certificate not re-issued")
	}
	if _, err := os.Stat(filepath.Join(pki.Dir, "org-ca-bundle-crl.pem")); err != nil {
		t.Fatal(err)
	}
}
