package proxy

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mxedge/mxedge/proxy/packet"
)

// Exchanger sends a signed request upstream and returns the upstream's
// reply, already checked against the request. A RadSec client pool is one;
// a UDP home-server pool is another.
type Exchanger interface {
	Exchange(ctx context.Context, req []byte) ([]byte, error)
}

// ErrTimeout is what an Exchanger returns (wrapped or not) when the
// upstream did not answer in time; the forwarder maps it to an outcome.
var ErrTimeout = errors.New("upstream timeout")

// maxProxyStates bounds the Proxy-State attributes a request may already
// carry; more means a routing loop or an attack.
const maxProxyStates = 8

// Forwarder carries a client's request to an upstream and the answer back,
// changing only what a hop must change: Message-Authenticator (first, and
// recomputed), the authenticators, our Proxy-State, and the attributes
// hidden with the shared secret (User-Password, Tunnel-Password,
// MS-MPPE-Send/Recv-Key), which are re-encrypted across the secret change.
// Everything else, EAP-Message and State included, passes through in order.
type Forwarder struct {
	// Secret is the upstream's shared secret ("radsec" over TLS).
	Secret []byte
	// Timeout bounds one exchange; zero leaves it to the context.
	Timeout time.Duration
	// Describe tells the upstream which configured client asked: on
	// Access- and Accounting-Requests it adds NAS-IP-Address (the source
	// address) when the device sent no NAS-IP-Address or NAS-IPv6-Address,
	// and the edge's vendor-specific attributes with the client's name,
	// site and vendor (docs/cloud-api.md). For the cloud, which answers
	// "based on the configured vendor"; never for a federation's servers.
	Describe bool

	instance [4]byte
	seq      atomic.Uint32
}

// NewForwarder returns a Forwarder for upstreams sharing secret.
func NewForwarder(secret []byte, timeout time.Duration) *Forwarder {
	f := &Forwarder{Secret: secret, Timeout: timeout}
	rand.Read(f.instance[:])
	return f
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, packet.MaxLen); return &b }}

// Forward sends req through up and returns the reply for the client,
// signed with the client's secret.
func (f *Forwarder) Forward(ctx context.Context, up Exchanger, req *Request) ([]byte, Outcome, error) {
	in := req.Packet
	if in.Count(packet.AttrProxyState) >= maxProxyStates {
		return nil, OutcomeDropped, errors.New("too many Proxy-State attributes: loop suspected")
	}
	var token [8]byte
	copy(token[:4], f.instance[:])
	binary.BigEndian.PutUint32(token[4:], f.seq.Add(1))
	for _, a := range in.Attrs {
		if a.Type == packet.AttrProxyState && len(a.Value) == 8 && [4]byte(a.Value[:4]) == f.instance {
			return nil, OutcomeDropped, errors.New("request carries our own Proxy-State: loop")
		}
	}

	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	out, upAuth, err := f.encodeRequest((*bp)[:0], req, token)
	if err != nil {
		return nil, OutcomeDropped, err
	}
	*bp = out[:0]

	if f.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, f.Timeout)
		defer cancel()
	}
	raw, err := up.Exchange(ctx, out)
	if err != nil {
		if errors.Is(err, ErrTimeout) || errors.Is(err, context.DeadlineExceeded) {
			return nil, OutcomeUpstreamTimeout, err
		}
		return nil, OutcomeUpstreamError, err
	}
	reply, err := packet.Parse(raw)
	if err != nil {
		return nil, OutcomeBadReply, err
	}
	if !answers(in.Code, reply.Code) {
		return nil, OutcomeBadReply, fmt.Errorf("%s does not answer %s", reply.Code, in.Code)
	}
	// The exchanger re-signs with a fresh identifier but keeps random
	// authenticators; for accounting the authenticator it used is in the
	// reply's verification, and salted attributes only appear in answers to
	// Access-Requests, whose authenticator we chose.
	b, err := f.encodeReply(nil, req, reply, upAuth, token)
	if err != nil {
		return nil, OutcomeBadReply, err
	}
	return b, OutcomeAnswered, nil
}

func answers(req, resp packet.Code) bool {
	if resp == packet.CodeProtocolError {
		return true
	}
	switch req {
	case packet.CodeAccessRequest:
		return resp == packet.CodeAccessAccept || resp == packet.CodeAccessReject || resp == packet.CodeAccessChallenge
	case packet.CodeAccountingRequest:
		return resp == packet.CodeAccountingResponse
	case packet.CodeCoARequest:
		return resp == packet.CodeCoAACK || resp == packet.CodeCoANAK
	case packet.CodeDisconnectRequest:
		return resp == packet.CodeDisconnectACK || resp == packet.CodeDisconnectNAK
	}
	return false
}

// encodeRequest builds the upstream copy of req and returns it with the
// Request Authenticator it carries (random for Access-Request).
func (f *Forwarder) encodeRequest(dst []byte, req *Request, token [8]byte) ([]byte, [16]byte, error) {
	in := req.Packet
	var auth [16]byte
	access := in.Code == packet.CodeAccessRequest
	if access {
		auth = packet.RandomAuthenticator()
	}
	dst = packet.Append(dst, in.Code, 0, auth)
	dst = packet.AppendMessageAuthenticator(dst)
	var err error
	var scratch [160]byte
	salter := (*packet.Salter)(nil)
	hasCHAPChallenge := false
	for _, a := range in.Attrs {
		switch a.Type {
		case packet.AttrMessageAuthenticator:
			continue
		case 60: // CHAP-Challenge
			hasCHAPChallenge = true
		case packet.AttrUserPassword:
			if !access {
				break
			}
			plain, err := packet.DecryptUserPassword(scratch[:0], a.Value, req.Client.Secret, in.Authenticator)
			if err != nil {
				return nil, auth, fmt.Errorf("User-Password: %w", err)
			}
			enc, _ := packet.EncryptUserPassword(scratch[len(plain):len(plain)], plain, f.Secret, auth)
			if dst, err = packet.AppendAttr(dst, a.Type, enc); err != nil {
				return nil, auth, err
			}
			continue
		case packet.AttrTunnelPassword:
			if !access || len(a.Value) < 1 {
				break
			}
			if salter == nil {
				salter = packet.NewSalter()
			}
			if dst, err = f.recryptTunnel(dst, a.Value, req.Client.Secret, in.Authenticator, f.Secret, auth, salter); err != nil {
				return nil, auth, err
			}
			continue
		}
		if dst, err = packet.AppendAttr(dst, a.Type, a.Value); err != nil {
			return nil, auth, err
		}
	}
	// CHAP without CHAP-Challenge uses the Request Authenticator as the
	// challenge (RFC 2865 §2.2); ours is new, so carry the old one along.
	if access && !hasCHAPChallenge && in.Count(packet.AttrCHAPPassword) > 0 {
		if dst, err = packet.AppendAttr(dst, 60, in.Authenticator[:]); err != nil {
			return nil, auth, err
		}
	}
	if f.Describe && (access || in.Code == packet.CodeAccountingRequest) {
		dst = describe(dst, req)
	}
	if dst, err = packet.AppendAttr(dst, packet.AttrProxyState, token[:]); err != nil {
		return nil, auth, err
	}
	if len(dst) > packet.MaxLen {
		return nil, auth, packet.ErrTooLong
	}
	if err := packet.Sign(dst, f.Secret, nil); err != nil {
		return nil, auth, err
	}
	return dst, auth, nil
}

// The edge's vendor-specific attributes (docs/cloud-api.md): one
// Vendor-Specific attribute per sub-attribute, each a string.
const (
	// EdgeVendorID is the Vendor-Id of the edge's attributes.
	EdgeVendorID uint32 = 64512
	// EdgeAttrClientName is the radius.clients name the request came from.
	EdgeAttrClientName uint8 = 1
	// EdgeAttrSite is that client's site ("" is left out).
	EdgeAttrSite uint8 = 2
	// EdgeAttrVendor is that client's vendor (cisco, aruba, …, generic).
	EdgeAttrVendor uint8 = 3
)

// describe appends what tells the upstream which client asked (see
// Forwarder.Describe), without allocating.
func describe(dst []byte, req *Request) []byte {
	in := req.Packet
	if a := req.Source.Addr().Unmap(); a.IsValid() && in.Count(packet.AttrNASIPAddress) == 0 && in.Count(packet.AttrNASIPv6Address) == 0 {
		if a.Is4() {
			v := a.As4()
			dst = append(dst, packet.AttrNASIPAddress, 6)
			dst = append(dst, v[:]...)
		} else {
			v := a.As16()
			dst = append(dst, packet.AttrNASIPv6Address, 18)
			dst = append(dst, v[:]...)
		}
	}
	if c := req.Client; c != nil {
		dst = appendEdgeVSA(dst, EdgeAttrClientName, c.Name)
		dst = appendEdgeVSA(dst, EdgeAttrSite, c.Site)
		dst = appendEdgeVSA(dst, EdgeAttrVendor, c.Vendor)
	}
	return dst
}

// appendEdgeVSA appends one of the edge's string sub-attributes, cut to
// what fits; an empty value is left out.
func appendEdgeVSA(dst []byte, t uint8, v string) []byte {
	if v == "" {
		return dst
	}
	v = v[:min(len(v), 247)]
	dst = append(dst, packet.AttrVendorSpecific, byte(len(v)+8))
	dst = binary.BigEndian.AppendUint32(dst, EdgeVendorID)
	dst = append(dst, t, byte(len(v)+2))
	return append(dst, v...)
}

// encodeReply turns the upstream's reply into the client's.
func (f *Forwarder) encodeReply(dst []byte, req *Request, reply *packet.Packet, upAuth [16]byte, token [8]byte) ([]byte, error) {
	in := req.Packet
	nasSecret := req.Client.Secret
	dst = packet.Append(dst, reply.Code, in.ID, [16]byte{})
	// Message-Authenticator first in every Access-* answer (BlastRADIUS);
	// elsewhere only if the client used one itself.
	if in.Code == packet.CodeAccessRequest || req.HasMessageAuthenticator {
		dst = packet.AppendMessageAuthenticator(dst)
	}
	// Our Proxy-State is the last one the upstream echoed (RFC 2865 §5.33:
	// it must keep them in order and we appended ours last).
	ours := -1
	for i, a := range reply.Attrs {
		if a.Type == packet.AttrProxyState && string(a.Value) == string(token[:]) {
			ours = i
		}
	}
	var err error
	var salter *packet.Salter
	var vsas []packet.VSA
	for i, a := range reply.Attrs {
		if i == ours || a.Type == packet.AttrMessageAuthenticator {
			continue
		}
		switch a.Type {
		case packet.AttrTunnelPassword:
			if salter == nil {
				salter = packet.NewSalter()
			}
			if dst, err = f.recryptTunnel(dst, a.Value, f.Secret, upAuth, nasSecret, in.Authenticator, salter); err != nil {
				return nil, err
			}
			continue
		case packet.AttrVendorSpecific:
			var ok bool
			vsas, ok = packet.ParseVSA(a.Value, vsas[:0])
			if ok && len(vsas) > 0 && vsas[0].Vendor == packet.VendorMicrosoft && hasMPPE(vsas) {
				if salter == nil {
					salter = packet.NewSalter()
				}
				if dst, err = recryptMPPE(dst, vsas, f.Secret, upAuth, nasSecret, in.Authenticator, salter); err != nil {
					return nil, err
				}
				continue
			}
		}
		if dst, err = packet.AppendAttr(dst, a.Type, a.Value); err != nil {
			return nil, err
		}
	}
	if len(dst) > packet.MaxLen {
		return nil, packet.ErrTooLong
	}
	ra := in.Authenticator
	if err := packet.Sign(dst, nasSecret, &ra); err != nil {
		return nil, err
	}
	return dst, nil
}

func hasMPPE(vsas []packet.VSA) bool {
	for _, v := range vsas {
		if v.Type == packet.MSMPPESendKey || v.Type == packet.MSMPPERecvKey {
			return true
		}
	}
	return false
}

func (f *Forwarder) recryptTunnel(dst, v, inSecret []byte, inAuth [16]byte, outSecret []byte, outAuth [16]byte, s *packet.Salter) ([]byte, error) {
	var scratch [256]byte
	plain, err := packet.SaltDecrypt(scratch[:0], v[1:], inSecret, inAuth)
	if err != nil {
		return nil, fmt.Errorf("Tunnel-Password: %w", err)
	}
	enc := append(scratch[len(plain):len(plain)], v[0])
	enc, err = packet.SaltEncrypt(enc, plain, outSecret, outAuth, s.Next())
	if err != nil {
		return nil, err
	}
	return packet.AppendAttr(dst, packet.AttrTunnelPassword, enc)
}

// recryptMPPE rebuilds one Microsoft Vendor-Specific attribute with its
// MPPE keys re-encrypted for the client: salt and key under the client's
// secret and the client's Request Authenticator (RFC 2548 §2.4.2).
func recryptMPPE(dst []byte, vsas []packet.VSA, inSecret []byte, inAuth [16]byte, outSecret []byte, outAuth [16]byte, s *packet.Salter) ([]byte, error) {
	start := len(dst)
	dst = append(dst, packet.AttrVendorSpecific, 0, 0, 0, 0, 0)
	binary.BigEndian.PutUint32(dst[start+2:], packet.VendorMicrosoft)
	var scratch [256]byte
	for _, v := range vsas {
		val := v.Value
		if v.Type == packet.MSMPPESendKey || v.Type == packet.MSMPPERecvKey {
			plain, err := packet.SaltDecrypt(scratch[:0], v.Value, inSecret, inAuth)
			if err != nil {
				return nil, fmt.Errorf("MS-MPPE key: %w", err)
			}
			val, err = packet.SaltEncrypt(scratch[len(plain):len(plain)], plain, outSecret, outAuth, s.Next())
			if err != nil {
				return nil, err
			}
		}
		dst = append(dst, v.Type, byte(len(val)+2))
		dst = append(dst, val...)
	}
	if len(dst)-start > 255 {
		return nil, packet.ErrTooLong
	}
	dst[start+1] = byte(len(dst) - start)
	return dst, nil
}
