package proxy

import (
	"encoding/binary"

	"github.com/mxedge/mxedge/proxy/packet"
)

// Reply encodes an answer to req made here rather than relayed:
// Message-Authenticator first in every Access-* answer (BlastRADIUS), then
// what body appends, then the request's Proxy-States in order (RFC 2865
// §5.33), signed with the client's secret over the request's
// authenticator.
func Reply(req *Request, code packet.Code, body func([]byte) ([]byte, error)) ([]byte, error) {
	p := req.Packet
	b := make([]byte, 0, 512)
	b = packet.Append(b, code, p.ID, p.Authenticator)
	if code != packet.CodeAccountingResponse {
		// Accounting-Response goes without: RFC 3579 does not ask for it
		// there, and peers disagree on its key (FreeRADIUS hashes it over
		// a zero authenticator, not the request's).
		b = packet.AppendMessageAuthenticator(b)
	}
	var err error
	if body != nil {
		if b, err = body(b); err != nil {
			return nil, err
		}
	}
	for _, at := range p.Attrs {
		if at.Type == packet.AttrProxyState {
			if b, err = packet.AppendAttr(b, at.Type, at.Value); err != nil {
				return nil, err
			}
		}
	}
	if err := packet.Sign(b, req.Client.Secret, &p.Authenticator); err != nil {
		return nil, err
	}
	return b, nil
}

// Encode appends p in wire form, attributes in order, unsigned: the
// authenticator and any Message-Authenticator are as p holds them.
func Encode(dst []byte, p *packet.Packet) ([]byte, error) {
	start := len(dst)
	dst = packet.Append(dst, p.Code, p.ID, p.Authenticator)
	var err error
	for _, a := range p.Attrs {
		if dst, err = packet.AppendAttr(dst, a.Type, a.Value); err != nil {
			return nil, err
		}
	}
	if len(dst)-start > packet.MaxLen {
		return nil, packet.ErrTooLong
	}
	binary.BigEndian.PutUint16(dst[start+2:], uint16(len(dst)-start))
	return dst, nil
}
