package libcrypto_test

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"os"
	"testing"
	"time"

	"github.com/mxedge/mxedge/internal/labpki"

	"github.com/mxedge/mxedge/edge/internal/libcrypto"
)

var testKey = func() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return k
}()

// mustSigner returns a libcrypto signer. On a cgo build with libcrypto.so.3
// installed (every Debian machine, and CI) it must be available: a silent
// fallback would hide a broken binding behind Go's signer.
func mustSigner(t testing.TB) *libcrypto.Signer {
	t.Helper()
	s, err := libcrypto.NewSigner(testKey)
	if err != nil {
		if os.Getenv("CI") == "" {
			t.Skip(err)
		}
		t.Fatal(err)
	}
	return s
}

func TestSignaturesVerifyInGo(t *testing.T) {
	s := mustSigner(t)
	msg := []byte("EAP-TLS CertificateVerify")
	d256, d384, d512 := sha256.Sum256(msg), sha512.Sum384(msg), sha512.Sum512(msg)
	for _, tc := range []struct {
		name   string
		digest []byte
		opts   crypto.SignerOpts
	}{
		{"pss sha256 equals-hash (TLS 1.3)", d256[:], &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: crypto.SHA256}},
		{"pss sha384 equals-hash", d384[:], &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: crypto.SHA384}},
		{"pss sha512 auto", d512[:], &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthAuto, Hash: crypto.SHA512}},
		{"pss sha256 salt 20", d256[:], &rsa.PSSOptions{SaltLength: 20, Hash: crypto.SHA256}},
		{"pkcs1v15 sha256 (TLS 1.2)", d256[:], crypto.SHA256},
		{"pkcs1v15 sha512", d512[:], crypto.SHA512},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sig, err := s.Sign(rand.Reader, tc.digest, tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			h := tc.opts.HashFunc()
			if pss, ok := tc.opts.(*rsa.PSSOptions); ok {
				// Auto signs with the longest salt; Auto verifies any.
				err = rsa.VerifyPSS(&testKey.PublicKey, h, tc.digest, sig, &rsa.PSSOptions{SaltLength: pss.SaltLength})
			} else {
				err = rsa.VerifyPKCS1v15(&testKey.PublicKey, h, tc.digest, sig)
			}
			if err != nil {
				t.Fatalf("signature does not verify: %v", err)
			}
			if !s.Native() {
				t.Fatal("fell back to Go")
			}
		})
	}
}

// Hashes libcrypto is not asked for still sign, in Go.
func TestUnsupportedFallsBackToGo(t *testing.T) {
	s := mustSigner(t)
	d := sha256.Sum224([]byte("x"))
	sig, err := s.Sign(rand.Reader, d[:], crypto.SHA224)
	if err != nil {
		t.Fatal(err)
	}
	if err := rsa.VerifyPKCS1v15(&testKey.PublicKey, crypto.SHA224, d[:], sig); err != nil {
		t.Fatal(err)
	}
	if !s.Native() {
		t.Fatal("an unsupported hash turned libcrypto off")
	}
}

// crypto/tls takes the Signer for both TLS versions.
func TestTLSHandshakes(t *testing.T) {
	s := mustSigner(t)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "eap.test"},
		DNSNames: []string{"eap.test"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	c, err := labpki.Issue(nil, s, tmpl) // self-signed through libcrypto
	if err != nil {
		t.Fatal(err)
	}
	leaf, der := c.X509, c.X509.Raw
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		c, sv := net.Pipe()
		srv := tls.Server(sv, &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: s}},
			MaxVersion: v})
		cli := tls.Client(c, &tls.Config{RootCAs: pool, ServerName: "eap.test", MaxVersion: v})
		errc := make(chan error, 1)
		go func() { errc <- srv.Handshake() }()
		if err := cli.Handshake(); err != nil {
			t.Fatalf("TLS %x: %v", v, err)
		}
		if err := <-errc; err != nil {
			t.Fatalf("TLS %x server: %v", v, err)
		}
		// The pipe, not the TLS conns: close_notify over an unread
		// synchronous pipe would wait out its deadline.
		c.Close()
		sv.Close()
	}
	if !s.Native() {
		t.Fatal("fell back to Go")
	}
}

func TestOff(t *testing.T) {
	t.Setenv("MXEDGE_LIBCRYPTO", "off")
	if _, err := libcrypto.NewSigner(testKey); err == nil {
		t.Fatal("MXEDGE_LIBCRYPTO=off did not turn it off")
	}
}

// BenchmarkSign compares an RSA-2048 PSS signature (a TLS 1.3 server's
// CertificateVerify) through libcrypto, check included, with Go's.
func BenchmarkSign(b *testing.B) {
	d := sha256.Sum256([]byte("x"))
	opts := &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: crypto.SHA256}
	for _, impl := range []string{"go", "libcrypto"} {
		b.Run(impl, func(b *testing.B) {
			var s crypto.Signer = testKey
			if impl == "libcrypto" {
				s = mustSigner(b)
			}
			for b.Loop() {
				if _, err := s.Sign(rand.Reader, d[:], opts); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
