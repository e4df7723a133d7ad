package nac

import (
	"crypto/x509"
	"encoding/asn1"
	"encoding/hex"

	"github.com/mxedge/mxedge/cache"
)

var (
	oidSAN = asn1.ObjectIdentifier{2, 5, 29, 17}
	oidUPN = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 311, 20, 2, 3} // Microsoft UPN otherName
)

// certIdentity is what the cache knows a client by, from its verified
// certificate. Its Key (CN, else SAN UPN, email, DNS) is the identity half
// of the cache key for EAP-TLS; the outer EAP identity is never used for
// it because the peer chooses it freely (it may be anonymous).
func certIdentity(leaf *x509.Certificate) cache.Identity {
	id := cache.Identity{
		CN:     leaf.Subject.CommonName,
		SANUPN: sanUPN(leaf),
		Serial: hex.EncodeToString(leaf.SerialNumber.Bytes()),
		Issuer: leaf.Issuer.String(),
	}
	if len(leaf.EmailAddresses) > 0 {
		id.SANEmail = leaf.EmailAddresses[0]
	}
	if len(leaf.DNSNames) > 0 {
		id.SANDNS = leaf.DNSNames[0]
	}
	return id
}

// sanUPN returns the first userPrincipalName otherName of the subject
// alternative names (crypto/x509 skips otherName entries).
func sanUPN(c *x509.Certificate) string {
	for _, ext := range c.Extensions {
		if !ext.Id.Equal(oidSAN) {
			continue
		}
		var names []asn1.RawValue
		if rest, err := asn1.Unmarshal(ext.Value, &names); err != nil || len(rest) > 0 {
			return ""
		}
		for _, n := range names {
			if n.Class != asn1.ClassContextSpecific || n.Tag != 0 || !n.IsCompound {
				continue
			}
			var on struct {
				ID    asn1.ObjectIdentifier
				Value asn1.RawValue `asn1:"explicit,tag:0"`
			}
			// otherName is IMPLICIT [0] SEQUENCE; re-tag it as a SEQUENCE.
			seq := asn1.RawValue{Class: asn1.ClassUniversal, Tag: asn1.TagSequence, IsCompound: true, Bytes: n.Bytes}
			raw, err := asn1.Marshal(seq)
			if err != nil {
				continue
			}
			if _, err := asn1.Unmarshal(raw, &on); err != nil || !on.ID.Equal(oidUPN) {
				continue
			}
			var s string
			if _, err := asn1.UnmarshalWithParams(on.Value.Bytes, &s, "utf8"); err == nil {
				return s
			}
		}
	}
	return ""
}
