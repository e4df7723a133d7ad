package packet

import (
	"crypto/hmac"
	"crypto/md5"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"sync"
)

// Code is the RADIUS packet type.
type Code uint8

// Packet codes used by mxedge.
const (
	CodeAccessRequest      Code = 1
	CodeAccessAccept       Code = 2
	CodeAccessReject       Code = 3
	CodeAccountingRequest  Code = 4
	CodeAccountingResponse Code = 5
	CodeAccessChallenge    Code = 11
	CodeStatusServer       Code = 12
	CodeStatusClient       Code = 13
	CodeDisconnectRequest  Code = 40
	CodeDisconnectACK      Code = 41
	CodeDisconnectNAK      Code = 42
	CodeCoARequest         Code = 43
	CodeCoAACK             Code = 44
	CodeCoANAK             Code = 45
	CodeProtocolError      Code = 52
)

var codeNames = map[Code]string{
	CodeAccessRequest: "Access-Request", CodeAccessAccept: "Access-Accept",
	CodeAccessReject: "Access-Reject", CodeAccountingRequest: "Accounting-Request",
	CodeAccountingResponse: "Accounting-Response", CodeAccessChallenge: "Access-Challenge",
	CodeStatusServer: "Status-Server", CodeStatusClient: "Status-Client",
	CodeDisconnectRequest: "Disconnect-Request", CodeDisconnectACK: "Disconnect-ACK",
	CodeDisconnectNAK: "Disconnect-NAK", CodeCoARequest: "CoA-Request",
	CodeCoAACK: "CoA-ACK", CodeCoANAK: "CoA-NAK", CodeProtocolError: "Protocol-Error",
}

func (c Code) String() string {
	if s, ok := codeNames[c]; ok {
		return s
	}
	return fmt.Sprintf("Code-%d", uint8(c))
}

// IsRequest reports whether c starts an exchange.
func (c Code) IsRequest() bool {
	switch c {
	case CodeAccessRequest, CodeAccountingRequest, CodeStatusServer,
		CodeDisconnectRequest, CodeCoARequest:
		return true
	}
	return false
}

// randomAuthenticator reports whether a request of code c carries a random
// Request Authenticator (the rest are MD5 over the packet).
func randomAuthenticator(c Code) bool {
	return c == CodeAccessRequest || c == CodeStatusServer
}

// Attribute types the proxy looks at, by number; everything else passes
// through.
const (
	AttrUserName             = 1
	AttrUserPassword         = 2
	AttrCHAPPassword         = 3
	AttrNASIPAddress         = 4
	AttrServiceType          = 6
	AttrFramedMTU            = 12
	AttrReplyMessage         = 18
	AttrState                = 24
	AttrVendorSpecific       = 26
	AttrCalledStationID      = 30
	AttrCallingStationID     = 31
	AttrNASIdentifier        = 32
	AttrProxyState           = 33
	AttrAcctStatusType       = 40
	AttrAcctDelayTime        = 41
	AttrAcctSessionID        = 44
	AttrNASPortType          = 61
	AttrTunnelType           = 64
	AttrTunnelMediumType     = 65
	AttrTunnelPassword       = 69
	AttrEAPMessage           = 79
	AttrMessageAuthenticator = 80
	AttrTunnelPrivateGroupID = 81
	AttrNASIPv6Address       = 95
	AttrErrorCause           = 101
	AttrOperatorName         = 126
)

// Microsoft vendor attributes (RFC 2548) that carry salted keys.
const (
	VendorMicrosoft = 311
	MSMPPESendKey   = 16
	MSMPPERecvKey   = 17
)

// Packet layout (RFC 2865 §3, RFC 3579 §3.2): header and maximum
// lengths, where the Authenticator starts, and the length of a
// Message-Authenticator attribute.
const (
	HeaderLen          = 20
	MaxLen             = 4096
	authenticatorStart = 4
	maLen              = 18 // type, length and 16 octets of HMAC-MD5
)

// Errors returned by Parse and the verifiers. They are distinct so that
// callers can count drops by reason.
var (
	ErrShort          = errors.New("packet shorter than its header or Length")
	ErrLength         = errors.New("packet length field out of range 20..4096")
	ErrAttribute      = errors.New("attribute length does not fit the packet")
	ErrAuthenticator  = errors.New("authenticator does not verify")
	ErrMessageAuth    = errors.New("Message-Authenticator does not verify")
	ErrMessageAuthLen = errors.New("Message-Authenticator is not 16 octets")
	// ErrMessageAuthDup: RFC 3579 §3.2 allows at most one
	// Message-Authenticator. With two, one implementation may check the
	// first and another act on the second, so the packet is refused
	// rather than half verified.
	ErrMessageAuthDup = errors.New("more than one Message-Authenticator")
	ErrTooLong        = errors.New("packet would exceed 4096 octets")
)

// Attr is one attribute; Value aliases the packet buffer.
type Attr struct {
	Type  uint8
	Value []byte
}

// Packet is a checked view of one RADIUS packet. Raw is exactly Length
// octets long; trailing padding in the datagram is dropped (RFC 2865 §3).
type Packet struct {
	Code          Code
	ID            uint8
	Authenticator [16]byte
	Attrs         []Attr
	Raw           []byte
}

// Parse checks the framing of b and returns a view over it. It does not
// check authenticators: that needs the secret (see VerifyRequest).
func Parse(b []byte) (*Packet, error) {
	p := &Packet{}
	if err := p.Parse(b); err != nil {
		return nil, err
	}
	return p, nil
}

// Parse is like the package-level Parse but reuses p's attribute slice.
func (p *Packet) Parse(b []byte) error {
	if len(b) < HeaderLen {
		return ErrShort
	}
	n := int(binary.BigEndian.Uint16(b[2:4]))
	if n < HeaderLen || n > MaxLen {
		return ErrLength
	}
	if len(b) < n {
		return ErrShort
	}
	b = b[:n]
	p.Code = Code(b[0])
	p.ID = b[1]
	copy(p.Authenticator[:], b[4:20])
	p.Raw = b
	p.Attrs = p.Attrs[:0]
	for i := HeaderLen; i < n; {
		if n-i < 2 {
			return ErrAttribute
		}
		l := int(b[i+1])
		if l < 2 || i+l > n {
			return ErrAttribute
		}
		p.Attrs = append(p.Attrs, Attr{Type: b[i], Value: b[i+2 : i+l : i+l]})
		i += l
	}
	return nil
}

// Lookup returns the first attribute of type t.
func (p *Packet) Lookup(t uint8) ([]byte, bool) {
	for _, a := range p.Attrs {
		if a.Type == t {
			return a.Value, true
		}
	}
	return nil, false
}

// Count returns how many attributes of type t the packet has.
func (p *Packet) Count(t uint8) int {
	n := 0
	for _, a := range p.Attrs {
		if a.Type == t {
			n++
		}
	}
	return n
}

// Header reads code, identifier and length from the first four octets
// without checking attributes: enough for RadSec framing and reply matching.
func Header(b []byte) (Code, uint8, int, error) {
	if len(b) < 4 {
		return 0, 0, 0, ErrShort
	}
	n := int(binary.BigEndian.Uint16(b[2:4]))
	if n < HeaderLen || n > MaxLen {
		return 0, 0, 0, ErrLength
	}
	return Code(b[0]), b[1], n, nil
}

// maOffset returns the offset of the Message-Authenticator value in raw,
// or -1; a second one is ErrMessageAuthDup. raw must already have passed
// Parse.
func maOffset(raw []byte) (int, error) {
	off := -1
	for i := HeaderLen; i+2 <= len(raw); {
		l := int(raw[i+1])
		if l < 2 {
			return -1, ErrAttribute
		}
		if raw[i] == AttrMessageAuthenticator {
			if off >= 0 {
				return -1, ErrMessageAuthDup
			}
			if l != maLen {
				return -1, ErrMessageAuthLen
			}
			off = i + 2
		}
		i += l
	}
	return off, nil
}

var zero16 [16]byte

// messageAuthenticator computes HMAC-MD5 over raw with the authenticator
// field replaced by auth and the MA value (at off) replaced by zeros,
// without copying the packet.
func messageAuthenticator(raw []byte, off int, auth *[16]byte, secret []byte) [16]byte {
	m := getMD5()
	defer md5Pool.Put(m)
	// HMAC-MD5 (RFC 2104) by hand over pooled digests and scratch:
	// hmac.New allocates two digests and two pads per call, and this runs
	// on every packet.
	key := m.key[:]
	clear(key)
	if len(secret) > 64 {
		m.h.Reset()
		m.h.Write(secret)
		m.h.Sum(key[:0])
	} else {
		copy(key, secret)
	}
	for i := range m.pad {
		m.pad[i] = key[i] ^ 0x36
	}
	m.h.Reset()
	m.h.Write(m.pad[:])
	m.h.Write(raw[:authenticatorStart])
	copy(m.sum[:], auth[:])
	m.h.Write(m.sum[:])
	m.h.Write(raw[HeaderLen:off])
	m.h.Write(zero16[:])
	m.h.Write(raw[off+16:])
	m.h.Sum(m.sum[:0])
	for i := range m.pad {
		m.pad[i] = key[i] ^ 0x5c
	}
	m.h.Reset()
	m.h.Write(m.pad[:])
	m.h.Write(m.sum[:])
	m.h.Sum(m.sum[:0])
	return m.sum
}

// md5State is a pooled digest with the scratch space that would otherwise
// escape to the heap through the hash.Hash interface.
type md5State struct {
	h   hash.Hash
	key [64]byte
	pad [64]byte
	sum [16]byte
	iv  [18]byte // xorChain's first block
}

var md5Pool = sync.Pool{New: func() any { return &md5State{h: md5.New()} }}

func getMD5() *md5State { return md5Pool.Get().(*md5State) }

// md5Authenticator is MD5(Code|ID|Length|auth|Attributes|secret).
func md5Authenticator(raw []byte, auth *[16]byte, secret []byte) [16]byte {
	m := getMD5()
	defer md5Pool.Put(m)
	m.h.Reset()
	m.h.Write(raw[:authenticatorStart])
	copy(m.sum[:], auth[:])
	m.h.Write(m.sum[:])
	m.h.Write(raw[HeaderLen:])
	m.h.Write(secret)
	m.h.Sum(m.sum[:0])
	return m.sum
}

// VerifyRequest checks a request received with secret. It reports whether
// a Message-Authenticator was present; when present it must verify (it is
// checked before the Request Authenticator, RFC 3579 §3.2) and be the
// only one (ErrMessageAuthDup otherwise). Whether a
// missing one is acceptable is policy and left to the caller.
func VerifyRequest(p *Packet, secret []byte) (hasMA bool, err error) {
	off, err := maOffset(p.Raw)
	if err != nil {
		return false, err
	}
	rnd := randomAuthenticator(p.Code)
	if off >= 0 {
		auth := &p.Authenticator
		if !rnd {
			auth = &zero16
		}
		want := messageAuthenticator(p.Raw, off, auth, secret)
		if !hmac.Equal(want[:], p.Raw[off:off+16]) {
			return true, ErrMessageAuth
		}
	}
	if !rnd {
		want := md5Authenticator(p.Raw, &zero16, secret)
		if !hmac.Equal(want[:], p.Authenticator[:]) {
			return off >= 0, ErrAuthenticator
		}
	}
	return off >= 0, nil
}

// VerifyResponse checks a reply to a request whose authenticator was
// reqAuth. For Accounting-Response and CoA/Disconnect ACK/NAK it accepts a
// Message-Authenticator computed over either the request authenticator or
// zeros, because FreeRADIUS 3.0 signs those with zeros.
func VerifyResponse(p *Packet, reqAuth [16]byte, secret []byte) (hasMA bool, err error) {
	want := md5Authenticator(p.Raw, &reqAuth, secret)
	if !hmac.Equal(want[:], p.Authenticator[:]) {
		return false, ErrAuthenticator
	}
	off, err := maOffset(p.Raw)
	if err != nil || off < 0 {
		return false, err
	}
	ma := messageAuthenticator(p.Raw, off, &reqAuth, secret)
	if hmac.Equal(ma[:], p.Raw[off:off+16]) {
		return true, nil
	}
	switch p.Code {
	case CodeAccountingResponse, CodeCoAACK, CodeCoANAK, CodeDisconnectACK, CodeDisconnectNAK:
		ma = messageAuthenticator(p.Raw, off, &zero16, secret)
		if hmac.Equal(ma[:], p.Raw[off:off+16]) {
			return true, nil
		}
	}
	return true, ErrMessageAuth
}

// Sign finalizes an encoded packet in place: it sets the Length, computes
// the Message-Authenticator if the packet has one, then the authenticator.
// For requests with a random authenticator (Access-Request, Status-Server)
// the header's authenticator is kept; for other requests it is computed. For
// responses reqAuth must be the authenticator of the request being answered.
func Sign(b []byte, secret []byte, reqAuth *[16]byte) error {
	if len(b) < HeaderLen {
		return ErrShort
	}
	if len(b) > MaxLen {
		return ErrTooLong
	}
	binary.BigEndian.PutUint16(b[2:4], uint16(len(b)))
	code := Code(b[0])
	off, err := maOffset(b)
	if err != nil {
		return err
	}
	var auth *[16]byte
	switch {
	case randomAuthenticator(code):
		var a [16]byte
		copy(a[:], b[4:20])
		auth = &a
	case code.IsRequest():
		auth = &zero16
	default:
		if reqAuth == nil {
			return errors.New("packet: response signed without the request authenticator")
		}
		auth = reqAuth
	}
	if off >= 0 {
		ma := messageAuthenticator(b, off, auth, secret)
		copy(b[off:off+16], ma[:])
	}
	if !randomAuthenticator(code) {
		ra := md5Authenticator(b, auth, secret)
		copy(b[4:20], ra[:])
	}
	return nil
}

// Resign gives an already signed request a new identifier and signs it
// again for secret. Random Request Authenticators stay, so User-Password
// encrypted under them stays valid; that lets a client pool move a request
// to another connection without re-encoding it.
func Resign(b []byte, id uint8, secret []byte) error {
	if len(b) < HeaderLen {
		return ErrShort
	}
	b[1] = id
	return Sign(b, secret, nil)
}

// Append writes a header for code and id with authenticator auth to dst.
// Attributes follow with AppendAttr; Sign finishes the packet.
func Append(dst []byte, code Code, id uint8, auth [16]byte) []byte {
	dst = append(dst, byte(code), id, 0, 0)
	return append(dst, auth[:]...)
}

// AppendAttr appends one attribute. Values over 253 octets are an error
// rather than silently dropped.
func AppendAttr(dst []byte, t uint8, v []byte) ([]byte, error) {
	if len(v) > 253 {
		return dst, fmt.Errorf("packet: attribute %d value of %d octets exceeds 253", t, len(v))
	}
	dst = append(dst, t, byte(len(v)+2))
	return append(dst, v...), nil
}

// AppendMessageAuthenticator appends a zeroed Message-Authenticator for Sign
// to fill in.
func AppendMessageAuthenticator(dst []byte) []byte {
	dst = append(dst, AttrMessageAuthenticator, maLen)
	return append(dst, zero16[:]...)
}

// RandomAuthenticator returns 16 octets from crypto/rand.
func RandomAuthenticator() [16]byte {
	var a [16]byte
	rand.Read(a[:])
	return a
}

// NewStatusServer encodes a signed Status-Server (RFC 5997) with the
// Message-Authenticator it requires.
func NewStatusServer(dst []byte, id uint8, secret []byte) []byte {
	dst = Append(dst, CodeStatusServer, id, RandomAuthenticator())
	start := len(dst) - HeaderLen
	dst = AppendMessageAuthenticator(dst)
	_ = Sign(dst[start:], secret, nil)
	return dst
}
