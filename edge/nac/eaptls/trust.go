package eaptls

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
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
	chain := chains[0]
	for _, c := range chain[:len(chain)-1] {
		if _, ok := t.revoked[revKey{string(c.RawIssuer), c.SerialNumber.String()}]; ok {
			return nil, withReason(ReasonCertRevoked, fmt.Errorf("certificate %q serial %s is revoked", c.Subject, c.SerialNumber))
		}
	}
	return chain, nil
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
