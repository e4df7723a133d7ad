package nac

import (
	"github.com/mxedge/mxedge/proxy"
	"github.com/mxedge/mxedge/proxy/packet"
)

// maxAttrValue is the most one attribute carries (RFC 2865 §5).
const maxAttrValue = 253

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
