package nac

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"strconv"

	"github.com/mxedge/mxedge/cache"
	"github.com/mxedge/mxedge/edge/nac/eap"
	"github.com/mxedge/mxedge/edge/nac/eaptls"
	"github.com/mxedge/mxedge/proxy"
	"github.com/mxedge/mxedge/proxy/packet"
)

// eapOverhead is what EAPOL (4), EAP (5) and the EAP-TLS flags and length
// (5) add to a TLS fragment; Framed-MTU minus this is the fragment size.
const eapOverhead = 14

// Event names, as the cloud names them.
const (
	EventAllowed        = "NAC Client Access Allowed"
	EventDenied         = "NAC Client Access Denied"
	EventCertExpired    = "NAC Client Certificate Expired"
	EventCertRevoked    = "NAC Client Cert Revoked"
	EventCertValid      = "NAC Client Certificate Validation Success"
	EventCertValidation = "NAC Client Certificate Validation Failure"
)

// Decision sources (the "source" label and event field).
const (
	sourceCache   = "cache"
	sourceDefault = "default"
	sourceNone    = "none"
)

// IsLocalState reports whether a RADIUS State value was issued by the
// local NAC (every one starts with eaptls.StatePrefix), so the router can
// keep the rest of an EAP conversation on the path that began it without
// asking the authenticator. A State from the cloud, or none, is not local.
func IsLocalState(state []byte) bool {
	return len(state) > len(eaptls.StatePrefix) && string(state[:len(eaptls.StatePrefix)]) == eaptls.StatePrefix
}

// serveEAP runs one round of an EAP conversation.
func (a *Authenticator) serveEAP(req *proxy.Request) ([]byte, proxy.Outcome) {
	p := req.Packet
	var msg []byte
	for _, at := range p.Attrs {
		if at.Type == packet.AttrEAPMessage {
			msg = append(msg, at.Value...)
		}
	}
	o := owner(req)
	device := o.Device
	var (
		s     *eaptls.Session
		state string
		reply eaptls.Reply
		fresh bool
	)
	if st, ok := p.Lookup(packet.AttrState); ok {
		state = string(st)
		if s, ok = a.sess.Get(state, device); !ok {
			// Expired, finished, or not ours: nothing to continue.
			return a.eapFailure(req, msg, "unknown or expired State")
		}
		reply = s.Handle(msg)
	} else {
		s, fresh = a.eap.NewSession(a.fragmentSize(p)), true
		var err error
		if state, err = a.sess.Admit(o, s); err != nil {
			s.Close()
			if errors.Is(err, eaptls.ErrTableFull) || errors.Is(err, eaptls.ErrClientFull) ||
				errors.Is(err, eaptls.ErrPortFull) || errors.Is(err, eaptls.ErrDeviceFull) {
				return a.drop("sessions_full", err)
			}
			return a.drop("session", err)
		}
		if len(msg) == 0 {
			reply = s.Start() // EAP-Start from the NAS (RFC 3579 §2.1)
		} else {
			reply = s.Handle(msg)
		}
	}

	switch reply.Outcome {
	case eaptls.Challenge:
		b, err := proxy.Reply(req, packet.CodeAccessChallenge, func(b []byte) ([]byte, error) {
			b, err := appendEAP(b, reply.EAP)
			if err != nil {
				return b, err
			}
			return packet.AppendAttr(b, packet.AttrState, []byte(state))
		})
		if err != nil {
			a.sess.Remove(state)
			return a.drop("encode", err)
		}
		return b, proxy.OutcomeLocal
	case eaptls.Accept, eaptls.Reject:
		// A NAS retransmission reuses the RADIUS identifier and is answered
		// from the UDP server's duplicate cache; anything else with this
		// State is a new conversation's business.
		a.sess.Remove(state)
		return a.finishEAP(req, reply)
	}
	if fresh || s.Result() != nil {
		a.sess.Remove(state)
	}
	return a.drop("eap_discard", nil)
}

// RADIUS attributes naming the NAS port (RFC 2865 §5.5, RFC 2869 §5.17).
const (
	attrNASPort   = 5
	attrNASPortID = 87
)

// owner is whom a conversation is admitted for: the RADIUS client (the
// configured client's name, which the sender cannot choose: it comes
// from the source address and shared secret), the NAS port within it
// (NAS-Port and NAS-Port-Id; none when the NAS sends neither), and the
// device the State is bound to: the client and the Calling-Station-Id.
func owner(req *proxy.Request) eaptls.Owner {
	o := eaptls.Owner{Client: req.Client.Name}
	if v, ok := req.Packet.Lookup(attrNASPort); ok && len(v) == 4 {
		o.Port = strconv.FormatUint(uint64(binary.BigEndian.Uint32(v)), 10)
	}
	if v, ok := req.Packet.Lookup(attrNASPortID); ok {
		o.Port += "/" + string(v)
	}
	csid, _ := req.Packet.Lookup(packet.AttrCallingStationID)
	if mac, ok := cache.NormalizeMAC(string(csid)); ok {
		o.Device = req.Client.Name + "|" + mac
	} else {
		o.Device = req.Client.Name + "|" + string(csid)
	}
	return o
}

// fragmentSize lowers the configured size to what the request's
// Framed-MTU leaves room for.
func (a *Authenticator) fragmentSize(p *packet.Packet) int {
	size := a.cfg.FragmentSize
	if v, ok := p.Lookup(packet.AttrFramedMTU); ok && len(v) == 4 {
		mtu := int(binary.BigEndian.Uint32(v)) - eapOverhead
		if mtu > 0 && (size == 0 || mtu < size) {
			size = mtu
		}
	}
	return size
}

// eapFailure rejects a request that has no conversation to continue.
func (a *Authenticator) eapFailure(req *proxy.Request, msg []byte, why string) ([]byte, proxy.Outcome) {
	var id uint8
	if len(msg) >= 2 {
		id = msg[1]
	}
	fail, _ := eap.Packet{Code: eap.CodeFailure, Identifier: id}.Encode()
	b, err := proxy.Reply(req, packet.CodeAccessReject, func(b []byte) ([]byte, error) { return appendEAP(b, fail) })
	if err != nil {
		return a.drop("encode", err)
	}
	a.m.decisions.WithLabelValues(cache.AuthEAPTLS, "reject", sourceNone).Inc()
	if a.debug() {
		a.log.Debug("local EAP rejected", "client", req.Client.Name, "reason", why)
	}
	return b, proxy.OutcomeLocal
}

// finishEAP authorizes an accepted conversation, or reports a rejected
// one, and encodes the final reply.
func (a *Authenticator) finishEAP(req *proxy.Request, reply eaptls.Reply) ([]byte, proxy.Outcome) {
	res := reply.Result
	csid, _ := req.Packet.Lookup(packet.AttrCallingStationID)
	mac, macOK := cache.NormalizeMAC(string(csid))
	ev := cache.Event{MAC: mac, Identity: res.Identity}
	f := nasFields(req, cache.AuthEAPTLS, string(csid))
	f.set("outer_identity", res.Identity)
	if !macOK {
		ev.MAC = string(csid)
	}
	if leaf := res.Leaf(); leaf != nil {
		id := certIdentity(leaf)
		ev.Identity = id.Key()
		f.set("cert_cn", id.CN)
		f.set("cert_serial", id.Serial)
		f.set("cert_issuer", id.Issuer)
	}

	if reply.Outcome == eaptls.Reject {
		reason := string(res.Reason)
		ev.Reason = reason
		f.set("reason", reason)
		if res.Err != nil {
			f.set("detail", res.Err.Error())
		}
		if t := certEvent(res.Reason); t != "" {
			e := ev
			e.Type = t
			a.queue(e, f, nil)
		}
		if res.Reason == eaptls.ReasonPasswordMethodRefused {
			ev.Reason = reasonPassword
			f.set("reason", reasonPassword)
		}
		ev.Type = EventDenied
		f.set("result", "reject")
		a.emit(ev, f)
		a.m.decisions.WithLabelValues(cache.AuthEAPTLS, "reject", sourceNone).Inc()
		a.warn.Log(slog.LevelInfo, "eap_rejected", "local EAP-TLS rejected", "client", req.Client.Name, "mac", ev.MAC,
			"identity", ev.Identity, "reason", reason, "err", res.Err)
		b, err := proxy.Reply(req, packet.CodeAccessReject, func(b []byte) ([]byte, error) { return appendEAP(b, reply.EAP) })
		if err != nil {
			return a.drop("encode", err)
		}
		return b, proxy.OutcomeLocal
	}

	var (
		entry cache.Entry
		hit   bool
	)
	if macOK && ev.Identity != "" {
		entry, hit = a.lookup(mac, ev.Identity, cache.AuthEAPTLS)
	}
	az, source := entry.Authorization, sourceCache
	if !hit {
		if a.cfg.DefaultDot1XVLAN == "" {
			return a.rejectUnknownEAP(req, reply, ev, f)
		}
		az, source = cache.Authorization{VLAN: a.cfg.DefaultDot1XVLAN}, sourceDefault
	}
	var g granted
	local := a.sessionTimeout()
	b, err := proxy.Reply(req, packet.CodeAccessAccept, func(b []byte) ([]byte, error) {
		b, err := appendEAP(b, reply.EAP)
		if err != nil {
			return b, err
		}
		if b, err = appendMPPE(b, req, res.Keys.MPPERecvKey(), res.Keys.MPPESendKey()); err != nil {
			return b, err
		}
		b, g, err = appendAuthorization(b, az, req.Client.Vendor, local)
		return b, err
	})
	if err != nil {
		return a.drop("encode", fmt.Errorf("access-accept for %s: %w", ev.MAC, err))
	}
	if len(g.skipped) > 0 {
		a.warn.Log(slog.LevelWarn, "attributes_skipped", "cached attributes not sent", "mac", mac, "identity", ev.Identity, "attributes", g.skipped)
	}
	e := ev
	e.Type = EventCertValid
	a.queue(e, f, nil)
	ev.Type = EventAllowed
	fillAllowed(&f, az, source, g)
	f.set("tls_version", tlsVersion(res.Version))
	a.emit(ev, f)
	a.m.decisions.WithLabelValues(cache.AuthEAPTLS, "accept", source).Inc()
	if a.debug() {
		a.log.Debug("local EAP-TLS accepted", "client", req.Client.Name, "mac", ev.MAC,
			"identity", ev.Identity, "source", source, "vlan", az.VLAN)
	}
	return b, proxy.OutcomeLocal
}

// rejectUnknownEAP refuses a client whose handshake succeeded but whom the
// cache does not know, when no 802.1X default VLAN is configured: the
// EAP-Success the session produced becomes an EAP-Failure with its
// identifier (RFC 3748 §4.2), and no keys are sent.
func (a *Authenticator) rejectUnknownEAP(req *proxy.Request, reply eaptls.Reply, ev cache.Event, f fields) ([]byte, proxy.Outcome) {
	var id uint8
	if len(reply.EAP) >= 2 {
		id = reply.EAP[1]
	}
	fail, _ := eap.Packet{Code: eap.CodeFailure, Identifier: id}.Encode()
	b, err := proxy.Reply(req, packet.CodeAccessReject, func(b []byte) ([]byte, error) { return appendEAP(b, fail) })
	if err != nil {
		return a.drop("encode", err)
	}
	e := ev
	e.Type = EventCertValid
	a.queue(e, f, nil)
	f.set("tls_version", tlsVersion(reply.Result.Version))
	a.denyUnknown(req, cache.AuthEAPTLS, ev, f)
	return b, proxy.OutcomeLocal
}

func fillAllowed(f *fields, az cache.Authorization, source string, g granted) {
	f.set("result", "accept")
	f.set("source", source)
	f.set("cache_hit", strconv.FormatBool(source == sourceCache))
	f.set("vlan", az.VLAN)
	if az.Role != "" {
		f.set("role", az.Role)
	}
	if g.sessionTimeout > 0 {
		f.set("session_timeout", strconv.FormatUint(uint64(g.sessionTimeout), 10))
	}
}

// lookup asks the cache; a store error counts as a miss, which gets the
// default VLAN or, with none, a reject: the same as an unknown client,
// never more.
func (a *Authenticator) lookup(mac, identity, authType string) (cache.Entry, bool) {
	e, ok, err := a.cfg.Store.Lookup(mac, identity)
	if err != nil {
		a.warn.Log(slog.LevelError, "lookup", "cache lookup failed; treating the client as unknown", "mac", mac, "identity", identity, "err", err)
		return cache.Entry{}, false
	}
	if ok && e.AuthType != authType {
		return cache.Entry{}, false
	}
	return e, ok
}

// certEvent maps a certificate failure to its NAC event.
func certEvent(r eaptls.Reason) string {
	switch r {
	case eaptls.ReasonCertExpired:
		return EventCertExpired
	case eaptls.ReasonCertRevoked:
		return EventCertRevoked
	}
	if r.CertificateReason() {
		return EventCertValidation
	}
	return ""
}

func tlsVersion(v uint16) string {
	switch v {
	case 0x0303:
		return "TLS 1.2"
	case 0x0304:
		return "TLS 1.3"
	}
	return fmt.Sprintf("%#04x", v)
}
