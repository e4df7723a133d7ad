package cache

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Auth types an entry can carry. Only these two are served offline: the
// edge never answers password methods without the cloud.
const (
	AuthEAPTLS = "eap-tls"
	AuthMAB    = "mab"
)

// Entry is one cached client: who it was, what the cloud granted it, and
// until when we may keep granting it without the cloud.
type Entry struct {
	MAC           string // normalized by Upsert; any NormalizeMAC form is accepted
	AuthType      string // AuthEAPTLS or AuthMAB
	Identity      Identity
	Authorization Authorization
	Site          string
	LastAuthAt    time.Time // last successful cloud authentication
	ExpiresAt     time.Time // zero: LastAuthAt + Options.TTL
}

// Identity is what the client presented. For EAP-TLS it comes from the
// client certificate; for MAB only UserName (the MAC as the NAS sent it) is set.
type Identity struct {
	UserName string
	CN       string
	SANEmail string
	SANUPN   string
	SANDNS   string
	Serial   string
	Issuer   string
}

// Authorization is what the cloud answered, replayed verbatim offline.
type Authorization struct {
	VLAN           string // VLAN id or name
	Role           string
	SessionTimeout time.Duration
	Attributes     []Attribute
}

// Attribute is a RADIUS attribute by dictionary name, kept textual where
// possible so that the store stays independent of any dictionary version.
type Attribute struct {
	Name       string // dictionary name, e.g. "Filter-Id" or "Aruba-User-Role"
	Type       uint8  // attribute type, or 26 for vendor-specific
	VendorID   uint32 // non-zero for vendor-specific attributes
	VendorType uint8
	Value      string // textual value
	Raw        []byte // raw value, when no textual form exists
}

// Key addresses one entry. Identity is "" for MAB; for EAP-TLS it is the
// certificate identity (see Identity.Key), so that the machine and the user
// of one laptop keep their own authorization.
type Key struct {
	MAC      string
	Identity string
}

// Key returns the certificate identity EAP-TLS entries are keyed by: the
// first non-empty of CN, SAN UPN, SAN email, SAN DNS and the EAP user name.
// The local authenticator computes it from the presented certificate and
// the cloud's entry carries the same fields, so both sides agree without
// knowing which field a given PKI fills in.
func (id Identity) Key() string {
	for _, s := range []string{id.CN, id.SANUPN, id.SANEmail, id.SANDNS, id.UserName} {
		if s != "" {
			return s
		}
	}
	return ""
}

// Key returns the key e is stored under.
func (e Entry) Key() Key {
	if e.AuthType == AuthMAB {
		return Key{MAC: e.MAC}
	}
	return Key{MAC: e.MAC, Identity: e.Identity.Key()}
}

// Errors returned for entries and keys the store refuses.
var (
	ErrBadMAC      = errors.New("cache: not a 6-octet MAC address")
	ErrBadAuthType = errors.New("cache: auth type must be eap-tls or mab")
	ErrNoIdentity  = errors.New("cache: eap-tls entry without a certificate identity")
	ErrLongKey     = errors.New("cache: identity longer than 1024 bytes")
)

// maxIdentity keeps keys far below bbolt's key size limit: a sync page with
// one absurd identity must fail that entry, not the page's transaction.
const maxIdentity = 1024

// keySep separates MAC and identity in the stored key. MACs are fixed
// length, so a prefix seek on the MAC finds all of a client's entries.
const keySep = '/'

// encodeKey validates k and returns its stored form.
func encodeKey(k Key) ([]byte, error) {
	mac, ok := NormalizeMAC(k.MAC)
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrBadMAC, k.MAC)
	}
	if k.Identity == "" {
		return []byte(mac), nil
	}
	if len(k.Identity) > maxIdentity {
		return nil, fmt.Errorf("%w: %s", ErrLongKey, mac)
	}
	b := make([]byte, 0, len(mac)+1+len(k.Identity))
	b = append(b, mac...)
	b = append(b, keySep)
	return append(b, k.Identity...), nil
}

func decodeKey(b []byte) Key {
	if len(b) <= 12 {
		return Key{MAC: string(b)}
	}
	return Key{MAC: string(b[:12]), Identity: string(b[13:])}
}

// normalize validates e in place and returns its stored key.
func (e *Entry) normalize() ([]byte, error) {
	mac, ok := NormalizeMAC(e.MAC)
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrBadMAC, e.MAC)
	}
	e.MAC = mac
	switch e.AuthType {
	case AuthMAB:
	case AuthEAPTLS:
		if e.Identity.Key() == "" {
			return nil, fmt.Errorf("%w: %s", ErrNoIdentity, mac)
		}
	default:
		return nil, fmt.Errorf("%w: %q", ErrBadAuthType, e.AuthType)
	}
	return encodeKey(e.Key())
}

// String is for logs: never the attributes, which may carry secrets.
func (k Key) String() string {
	if k.Identity == "" {
		return k.MAC
	}
	return k.MAC + string(keySep) + strings.ToValidUTF8(k.Identity, "?")
}
