package nac

import (
	"github.com/mxedge/mxedge/proxy"
	"github.com/mxedge/mxedge/proxy/packet"
)

// maxAttrValue is the most one attribute carries (RFC 2865 §5).
const maxAttrValue = 253

// reply encodes a response to req: Message-Authenticator first (BlastRADIUS)
// in every Access-* reply,
// then whatever body appends, then the request's Proxy-States in order
// (RFC 2865 §5.33), signed with the NAS's secret over the request's
// authenticator.
func (a *Authenticator) reply(req *proxy.Request, code packet.Code, body func([]byte) ([]byte, error)) ([]byte, error) {
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

// appendEAP splits an EAP packet into consecutive EAP-Message attributes
// (RFC 3579 §3.1).
func appendEAP(b, msg []byte) ([]byte, error) {
	var err error
	for len(msg) > 0 {
		n := min(len(msg), maxAttrValue)
		if b, err = packet.AppendAttr(b, packet.AttrEAPMessage, msg[:n]); err != nil {
			return b, err
		}
		msg = msg[n:]
	}
	return b, nil
}

// appendMPPE adds MS-MPPE-Recv-Key and MS-MPPE-Send-Key (RFC 2548 §2.4),
// each salted (MSB set, distinct within the packet) and encrypted with the
// NAS's secret and this Access-Request's authenticator.
func appendMPPE(b []byte, req *proxy.Request, recv, send []byte) ([]byte, error) {
	s := packet.NewSalter()
	for _, k := range []struct {
		t   uint8
		key []byte
	}{{packet.MSMPPERecvKey, recv}, {packet.MSMPPESendKey, send}} {
		v, err := packet.SaltEncrypt(nil, packet.SaltPlaintext(k.key), req.Client.Secret, req.Packet.Authenticator, s.Next())
		if err != nil {
			return b, err
		}
		if b, err = packet.AppendVSA(b, packet.VendorMicrosoft, k.t, v); err != nil {
			return b, err
		}
	}
	return b, nil
}
