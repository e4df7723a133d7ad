package eaptls_test

import (
	"crypto/x509"
	"testing"
	"time"

	"github.com/mxedge/mxedge/edge/nac/eaptls"
)

// The verified-chain cache must never outlive what it stands for: every
// date in the chain and the CRLs are checked on a hit, and the key is
// the exact certificates sent.
func TestTrustVerifiedChainCache(t *testing.T) {
	root := newCA(t, nil, ecKey(t), "Cache Root")
	shortKey := ecKey(t)
	inter := &testCA{cert: issue(t, root, shortKey, certOpts{cn: "Short Intermediate", ca: true,
		notAfter: testNow.Add(24 * time.Hour)}), key: shortKey}
	leafKey := ecKey(t)
	leaf := issue(t, inter, leafKey, certOpts{cn: "laptop", eku: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	other := issue(t, inter, leafKey, certOpts{cn: "phone", eku: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	peer := []*x509.Certificate{leaf, inter.cert}

	tr, err := eaptls.NewTrust([]*x509.Certificate{root.cert}, nil)
	if err != nil {
		t.Fatal(err)
	}
	first, err := tr.Verify(peer, testNow)
	if err != nil {
		t.Fatal(err)
	}
	again, err := tr.Verify(peer, testNow.Add(time.Hour))
	if err != nil || &again[0] != &first[0] || eaptls.VerifiedLen(tr) != 1 {
		t.Fatalf("second verify: %v, cached %d, same chain %v", err, eaptls.VerifiedLen(tr), err == nil && &again[0] == &first[0])
	}
	// The intermediate expires long before the leaf: a cached chain
	// must not carry the leaf past it.
	if _, err := tr.Verify(peer, testNow.Add(48*time.Hour)); eaptls.ReasonOf(err) != eaptls.ReasonCertExpired {
		t.Fatalf("after the intermediate expired: %v (reason %v)", err, eaptls.ReasonOf(err))
	}
	// The leaf alone (intermediate not sent, not configured) is another
	// key and fails on its own.
	if _, err := tr.Verify(peer[:1], testNow); eaptls.ReasonOf(err) != eaptls.ReasonCertUntrustedCA {
		t.Fatalf("leaf without its intermediate: %v", err)
	}

	revoking, err := eaptls.NewTrust([]*x509.Certificate{root.cert}, []*x509.Certificate{inter.cert}, inter.crl(t, leaf))
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, err := revoking.Verify(peer, testNow); eaptls.ReasonOf(err) != eaptls.ReasonCertRevoked {
			t.Fatalf("revoked leaf: %v", err)
		}
	}
	if _, err := revoking.Verify([]*x509.Certificate{other, inter.cert}, testNow); err != nil {
		t.Fatalf("unrevoked sibling: %v", err)
	}

	eaptls.SetMaxVerified(tr, 1)
	if _, err := tr.Verify([]*x509.Certificate{other, inter.cert}, testNow); err != nil {
		t.Fatal(err)
	}
	if eaptls.VerifiedLen(tr) != 1 {
		t.Fatalf("cache holds %d chains past its bound of 1", eaptls.VerifiedLen(tr))
	}
}
