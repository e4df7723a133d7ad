package eap

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Code is the EAP packet code (RFC 3748 §4).
type Code uint8

// EAP codes.
const (
	CodeRequest  Code = 1
	CodeResponse Code = 2
	CodeSuccess  Code = 3
	CodeFailure  Code = 4
)

func (c Code) String() string {
	switch c {
	case CodeRequest:
		return "Request"
	case CodeResponse:
		return "Response"
	case CodeSuccess:
		return "Success"
	case CodeFailure:
		return "Failure"
	}
	return fmt.Sprintf("Code(%d)", uint8(c))
}

// Type is the EAP method type carried by Requests and Responses.
type Type uint8

// EAP method types (IANA "EAP Method Types").
const (
	TypeIdentity     Type = 1
	TypeNotification Type = 2
	TypeNak          Type = 3 // legacy Nak, Responses only
	TypeMD5Challenge Type = 4
	TypeOTP          Type = 5
	TypeGTC          Type = 6
	TypeTLS          Type = 13
	TypeLEAP         Type = 17
	TypeSIM          Type = 18
	TypeTTLS         Type = 21
	TypeAKA          Type = 23
	TypePEAP         Type = 25
	TypeMSCHAPv2     Type = 26
	TypeFAST         Type = 43
	TypePWD          Type = 52
	TypeTEAP         Type = 55
	TypeExpanded     Type = 254
)

var typeNames = map[Type]string{
	TypeIdentity: "Identity", TypeNotification: "Notification", TypeNak: "Nak",
	TypeMD5Challenge: "MD5-Challenge", TypeOTP: "OTP", TypeGTC: "GTC",
	TypeTLS: "TLS", TypeLEAP: "LEAP", TypeSIM: "SIM", TypeTTLS: "TTLS",
	TypeAKA: "AKA", TypePEAP: "PEAP", TypeMSCHAPv2: "MSCHAPv2", TypeFAST: "FAST",
	TypePWD: "PWD", TypeTEAP: "TEAP", TypeExpanded: "Expanded",
}

func (t Type) String() string {
	if n, ok := typeNames[t]; ok {
		return n
	}
	return fmt.Sprintf("Type(%d)", uint8(t))
}

// HeaderLen is the size of Code, Identifier and Length.
const HeaderLen = 4

// MaxLen is the largest packet the 16-bit Length field can describe.
const MaxLen = 0xffff

// Packet is one EAP packet. Type and Data are meaningful only for Requests
// and Responses; Success and Failure carry neither (RFC 3748 §4.2).
type Packet struct {
	Code       Code
	Identifier uint8
	Type       Type
	Data       []byte // type-data after the Type octet; aliases the parsed buffer
}

// Errors returned by Parse and Encode.
var (
	ErrShort     = errors.New("eap: packet too short")
	ErrLength    = errors.New("eap: Length field does not match packet size")
	ErrCode      = errors.New("eap: unknown code")
	ErrTooLong   = errors.New("eap: packet longer than 65535 bytes")
	ErrEmptyType = errors.New("eap: Request/Response without a Type")
)

// Parse decodes b strictly: the Length field must equal len(b), Requests and
// Responses must carry a Type, Success and Failure must be exactly 4 bytes.
// Packet.Data aliases b.
func Parse(b []byte) (Packet, error) {
	if len(b) < HeaderLen {
		return Packet{}, ErrShort
	}
	n := int(binary.BigEndian.Uint16(b[2:4]))
	if n != len(b) {
		return Packet{}, fmt.Errorf("%w: Length %d, got %d bytes", ErrLength, n, len(b))
	}
	p := Packet{Code: Code(b[0]), Identifier: b[1]}
	switch p.Code {
	case CodeRequest, CodeResponse:
		if n < HeaderLen+1 {
			return Packet{}, ErrEmptyType
		}
		p.Type = Type(b[4])
		p.Data = b[5:n:n]
	case CodeSuccess, CodeFailure:
		if n != HeaderLen {
			return Packet{}, fmt.Errorf("%w: %s with %d bytes", ErrLength, p.Code, n)
		}
	default:
		return Packet{}, fmt.Errorf("%w %d", ErrCode, b[0])
	}
	return p, nil
}

// Len is the encoded size of p.
func (p Packet) Len() int {
	if p.Code == CodeSuccess || p.Code == CodeFailure {
		return HeaderLen
	}
	return HeaderLen + 1 + len(p.Data)
}

// Encode returns the wire form of p.
func (p Packet) Encode() ([]byte, error) {
	return p.Append(nil)
}

// Append appends the wire form of p to b.
func (p Packet) Append(b []byte) ([]byte, error) {
	switch p.Code {
	case CodeRequest, CodeResponse, CodeSuccess, CodeFailure:
	default:
		return b, fmt.Errorf("%w %d", ErrCode, uint8(p.Code))
	}
	n := p.Len()
	if n > MaxLen {
		return b, ErrTooLong
	}
	b = append(b, byte(p.Code), p.Identifier, byte(n>>8), byte(n))
	if n > HeaderLen {
		b = append(b, byte(p.Type))
		b = append(b, p.Data...)
	}
	return b, nil
}

// NakTypes returns the desired auth types listed in a legacy Nak's data
// (RFC 3748 §5.3.1). A zero-length list is invalid; a single 0 means the
// peer has no acceptable alternative.
func NakTypes(data []byte) []Type {
	ts := make([]Type, 0, len(data))
	for _, t := range data {
		ts = append(ts, Type(t))
	}
	return ts
}

// ExpandedNakTypes decodes an Expanded Nak (RFC 3748 §5.7): the data of a
// Response of Type Expanded with Vendor-Id 0 and Vendor-Type 3. It returns
// the IETF (Vendor-Id 0) method types the peer proposes and whether data is
// an Expanded Nak at all. Vendor-specific proposals are skipped.
func ExpandedNakTypes(data []byte) ([]Type, bool) {
	if len(data) < 7 || data[0] != 0 || data[1] != 0 || data[2] != 0 ||
		binary.BigEndian.Uint32(data[3:7]) != uint32(TypeNak) {
		return nil, false
	}
	rest := data[7:]
	if len(rest)%8 != 0 {
		return nil, false
	}
	var ts []Type
	for ; len(rest) >= 8; rest = rest[8:] {
		if rest[0] != byte(TypeExpanded) || rest[1] != 0 || rest[2] != 0 || rest[3] != 0 {
			continue
		}
		if vt := binary.BigEndian.Uint32(rest[4:8]); vt < 256 {
			ts = append(ts, Type(vt))
		}
	}
	return ts, true
}
