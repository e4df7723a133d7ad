package eaptls

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"fmt"
	"sync"
	"time"
)

// Trust is the org CA material that client certificates are checked
// against: roots, intermediates and the serials revoked by verified CRLs.
// It is immutable; build a new one when the cloud syncs new CAs or CRLs and
// hand it to Server.SetTrust.
type Trust struct {
	roots         *x509.CertPool
	intermediates *x509.CertPool
	hasInter      bool
	revoked       map[revKey]struct{}
	crlNextUpdate time.Time // earliest NextUpdate among loaded CRLs (zero if none)

	// verified remembers chains this Trust has built, by the exact
	// certificates the peer sent. Building one checks a signature per
	// link, a quarter of an ECDSA authentication's CPU, and a campus's
	// devices present the same certificates day after day. A hit still
	// checks every date in the chain and every serial against the CRLs;
	// the handshake's own signature is always checked.
	mu          sync.Mutex
	verified    map[[sha256.Size]byte]verifiedChain
	maxVerified int
}

// defaultMaxVerified bounds the verified-chain cache. Only certificates
// that chain to the org CA get in, so filling it takes that many valid
// certificates; when full, an arbitrary entry makes room.
const defaultMaxVerified = 4096

type verifiedChain struct {
	chain     []*x509.Certificate
	notBefore time.Time // latest NotBefore in the chain
	notAfter  time.Time // earliest NotAfter in the chain
}

// revKey identifies a certificate the way a CRL does: issuer name and
// serial number.
type revKey struct {
	issuer string // raw DER subject of the issuing CA
	serial string // decimal serial
}

// NewTrust builds a Trust. Every CRL (DER or PEM) must be signed by one of
// the given CAs; its signature is checked here, once, so a handshake only
// does map lookups.
func NewTrust(roots, intermediates []*x509.Certificate, crls ...[]byte) (*Trust, error) {
	if len(roots) == 0 {
		return nil, errors.New("eaptls: trust needs at least one root CA")
	}
	t := &Trust{
		roots:         x509.NewCertPool(),
		intermediates: x509.NewCertPool(),
		hasInter:      len(intermediates) > 0,
		revoked:       make(map[revKey]struct{}),
		verified:      make(map[[sha256.Size]byte]verifiedChain),
		maxVerified:   defaultMaxVerified,
	}
	for _, c := range roots {
		t.roots.AddCert(c)
	}
	for _, c := range intermediates {
		t.intermediates.AddCert(c)
	}
	cas := append(append([]*x509.Certificate(nil), roots...), intermediates...)
	for i, raw := range crls {
		if err := t.addCRL(raw, cas); err != nil {
			return nil, fmt.Errorf("eaptls: CRL %d: %w", i, err)
		}
	}
	return t, nil
}

// ParseTrust builds a Trust from a PEM bundle of CA certificates, sorting
// self-signed CAs into roots and the rest into intermediates.
func ParseTrust(caPEM []byte, crls ...[]byte) (*Trust, error) {
	var roots, inter []*x509.Certificate
	for rest := caPEM; ; {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("eaptls: CA bundle: %w", err)
		}
		if !c.IsCA {
			return nil, fmt.Errorf("eaptls: CA bundle: %q is not a CA", c.Subject)
		}
		if bytes.Equal(c.RawSubject, c.RawIssuer) && c.CheckSignatureFrom(c) == nil {
			roots = append(roots, c)
		} else {
			inter = append(inter, c)
		}
	}
	return NewTrust(roots, inter, crls...)
}

func (t *Trust) addCRL(raw []byte, cas []*x509.Certificate) error {
	if blk, _ := pem.Decode(raw); blk != nil {
		raw = blk.Bytes
	}
	crl, err := x509.ParseRevocationList(raw)
	if err != nil {
		return err
	}
	var issuer *x509.Certificate
	for _, ca := range cas {
		if bytes.Equal(ca.RawSubject, crl.RawIssuer) && crl.CheckSignatureFrom(ca) == nil {
			issuer = ca
			break
		}
	}
	if issuer == nil {
		return fmt.Errorf("not signed by a configured CA (issuer %q)", crl.Issuer)
	}
	for _, e := range crl.RevokedCertificateEntries {
		t.revoked[revKey{string(issuer.RawSubject), e.SerialNumber.String()}] = struct{}{}
	}
	if !crl.NextUpdate.IsZero() && (t.crlNextUpdate.IsZero() || crl.NextUpdate.Before(t.crlNextUpdate)) {
		t.crlNextUpdate = crl.NextUpdate
	}
	return nil
}

// Revoked is the number of revoked serials loaded.
func (t *Trust) Revoked() int { return len(t.revoked) }

// CRLNextUpdate is the earliest NextUpdate of the loaded CRLs, so the
// caller can warn about stale CRLs. Zero without CRLs.
func (t *Trust) CRLNextUpdate() time.Time { return t.crlNextUpdate }

// Verify checks a client chain (leaf first, as sent by the peer) at time
// now and returns the verified chain, leaf to root. The error carries the
// Reason (see ReasonOf).
func (t *Trust) Verify(peer []*x509.Certificate, now time.Time) ([]*x509.Certificate, error) {
	if len(peer) == 0 {
		return nil, withReason(ReasonNoClientCert, errors.New("peer sent no certificate"))
	}
	leaf := peer[0]
	// Dates of the leaf first: x509 reports both directions as one
	// "Expired" reason, and the events distinguish them.
	if now.After(leaf.NotAfter) {
		return nil, withReason(ReasonCertExpired, fmt.Errorf("certificate %q expired at %s", leaf.Subject, leaf.NotAfter.UTC().Format(time.RFC3339)))
	}
	if now.Before(leaf.NotBefore) {
		return nil, withReason(ReasonCertNotYetValid, fmt.Errorf("certificate %q not valid before %s", leaf.Subject, leaf.NotBefore.UTC().Format(time.RFC3339)))
	}
	key := peerKey(peer)
	t.mu.Lock()
	v, hit := t.verified[key]
	t.mu.Unlock()
	if !hit || now.Before(v.notBefore) || now.After(v.notAfter) {
		chain, err := t.buildChain(peer, now)
		if err != nil {
			return nil, err
		}
		v = verifiedChain{chain: chain, notBefore: chain[0].NotBefore, notAfter: chain[0].NotAfter}
		for _, c := range chain[1:] {
			if c.NotBefore.After(v.notBefore) {
				v.notBefore = c.NotBefore
			}
			if c.NotAfter.Before(v.notAfter) {
				v.notAfter = c.NotAfter
			}
		}
		t.mu.Lock()
		if len(t.verified) >= t.maxVerified {
			for k := range t.verified {
				delete(t.verified, k)
				break
			}
		}
		t.verified[key] = v
		t.mu.Unlock()
	}
	for _, c := range v.chain[:len(v.chain)-1] {
		if _, ok := t.revoked[revKey{string(c.RawIssuer), c.SerialNumber.String()}]; ok {
			return nil, withReason(ReasonCertRevoked, fmt.Errorf("certificate %q serial %s is revoked", c.Subject, c.SerialNumber))
		}
	}
	return v.chain, nil
}

// buildChain verifies peer against the trust anchors at now.
func (t *Trust) buildChain(peer []*x509.Certificate, now time.Time) ([]*x509.Certificate, error) {
	leaf := peer[0]
	inter := t.intermediates
	if len(peer) > 1 {
		inter = t.intermediates.Clone()
		for _, c := range peer[1:] {
			inter.AddCert(c)
		}
	}
	chains, err := leaf.Verify(x509.VerifyOptions{
		Roots:         t.roots,
		Intermediates: inter,
		CurrentTime:   now,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
	if err != nil {
		return nil, withReason(classify(err, now), err)
	}
	return chains[0], nil
}

// peerKey identifies the exact certificates a peer sent, in order.
func peerKey(peer []*x509.Certificate) [sha256.Size]byte {
	h := sha256.New()
	var n [4]byte
	for _, c := range peer {
		binary.BigEndian.PutUint32(n[:], uint32(len(c.Raw)))
		h.Write(n[:])
		h.Write(c.Raw)
	}
	var k [sha256.Size]byte
	h.Sum(k[:0])
	return k
}

func classify(err error, now time.Time) Reason {
	var ua x509.UnknownAuthorityError
	if errors.As(err, &ua) {
		return ReasonCertUntrustedCA
	}
	var ci x509.CertificateInvalidError
	if errors.As(err, &ci) && ci.Reason == x509.Expired {
		// An intermediate out of its dates.
		if ci.Cert != nil && now.Before(ci.Cert.NotBefore) {
			return ReasonCertNotYetValid
		}
		return ReasonCertExpired
	}
	return ReasonCertValidationFailed
}

// ReasonOf returns the Reason carried by an error from this package, or
// ReasonNone.
func ReasonOf(err error) Reason { return reasonOf(err, ReasonNone) }
