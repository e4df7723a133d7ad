package nac

import (
	"encoding/binary"
	"log/slog"

	"github.com/mxedge/mxedge/cache"
	"github.com/mxedge/mxedge/proxy"
	"github.com/mxedge/mxedge/proxy/packet"
)

// serviceTypeCallCheck is the Service-Type value a NAS sends for MAB
// (RFC 2865 §5.6 Call-Check).
const serviceTypeCallCheck = 10

// Event reasons and the auth type of a refused password method.
const (
	// reasonPassword is the reason on the event when a password method is
	// refused offline.
	reasonPassword = "password methods are not available offline"
	// reasonNoDefault is the reason on the event when a client the cache
	// does not know is refused because its method has no default VLAN.
	reasonNoDefault = "client not in the cache and no default VLAN is configured"
	authPassword    = "password"
)

// servePAP answers an Access-Request without EAP: MAB if it looks like
// MAB, else a password method we cannot check offline.
func (a *Authenticator) servePAP(req *proxy.Request) ([]byte, proxy.Outcome) {
	p := req.Packet
	user, _ := p.Lookup(packet.AttrUserName)
	csid, _ := p.Lookup(packet.AttrCallingStationID)
	mac, ok := MABAddress(req)
	if !ok {
		return a.refusePassword(req, string(user), string(csid))
	}
	e, hit := a.lookup(mac, "", cache.AuthMAB)
	az, source := e.Authorization, sourceCache
	if !hit {
		if a.cfg.DefaultMABVLAN == "" {
			b, err := proxy.Reply(req, packet.CodeAccessReject, nil)
			if err != nil {
				return a.drop("encode", err)
			}
			a.denyUnknown(req, cache.AuthMAB, cache.Event{MAC: mac, Identity: string(user)}, nasFields(req, cache.AuthMAB, string(csid)))
			return b, proxy.OutcomeLocal
		}
		az, source = cache.Authorization{VLAN: a.cfg.DefaultMABVLAN}, sourceDefault
	}
	var g granted
	local := a.sessionTimeout()
	b, err := proxy.Reply(req, packet.CodeAccessAccept, func(b []byte) ([]byte, error) {
		var err error
		b, g, err = appendAuthorization(b, az, req.Client.Vendor, local)
		return b, err
	})
	if err != nil {
		return a.drop("encode", err)
	}
	if len(g.skipped) > 0 {
		a.warn.Log(slog.LevelWarn, "attributes_skipped", "cached attributes not sent", "mac", mac, "attributes", g.skipped)
	}
	f := nasFields(req, cache.AuthMAB, string(csid))
	fillAllowed(&f, az, source, g)
	a.emit(cache.Event{Type: EventAllowed, MAC: mac, Identity: string(user)}, f)
	a.m.decisions.WithLabelValues(cache.AuthMAB, "accept", source).Inc()
	if a.debug() {
		a.log.Debug("local MAB accepted", "client", req.Client.Name, "mac", mac, "source", source, "vlan", az.VLAN)
	}
	return b, proxy.OutcomeLocal
}

// MABAddress recognises MAB and returns the client's MAC. The edge uses it
// too, to learn MAB clients from the cloud's accepts by the same rule the
// local NAC answers them. The conventions (how Cisco, Aruba, Juniper,
// Dell and FortiSwitch send MAB): User-Name is the Calling-Station-Id MAC in any
// usual format, or Service-Type is Call-Check with a MAC in User-Name or
// Calling-Station-Id; a User-Password, when present, must be the MAC too,
// and CHAP is not MAB here (we would have to guess the NAS's format).
func MABAddress(req *proxy.Request) (string, bool) {
	p := req.Packet
	if _, chap := p.Lookup(packet.AttrCHAPPassword); chap {
		return "", false
	}
	user, _ := p.Lookup(packet.AttrUserName)
	csid, _ := p.Lookup(packet.AttrCallingStationID)
	userMAC, userOK := cache.NormalizeMAC(string(user))
	csMAC, csOK := cache.NormalizeMAC(string(csid))
	callCheck := false
	if v, ok := p.Lookup(packet.AttrServiceType); ok && len(v) == 4 && binary.BigEndian.Uint32(v) == serviceTypeCallCheck {
		callCheck = true
	}
	var mac string
	switch {
	case userOK && csOK && userMAC == csMAC:
		mac = userMAC
	case callCheck && csOK && (len(user) == 0 || userOK && userMAC == csMAC):
		mac = csMAC
	case callCheck && userOK && len(csid) == 0:
		mac = userMAC
	default:
		return "", false
	}
	if enc, ok := p.Lookup(packet.AttrUserPassword); ok {
		pw, err := packet.DecryptUserPassword(nil, enc, req.Client.Secret, p.Authenticator)
		if err != nil {
			return "", false
		}
		pwMAC, ok := cache.NormalizeMAC(string(packet.TrimPassword(pw)))
		if !ok || pwMAC != mac {
			return "", false
		}
	}
	return mac, true
}

// refusePassword rejects a password method: the cloud has the passwords.
func (a *Authenticator) refusePassword(req *proxy.Request, user, csid string) ([]byte, proxy.Outcome) {
	b, err := proxy.Reply(req, packet.CodeAccessReject, nil)
	if err != nil {
		return a.drop("encode", err)
	}
	mac, ok := cache.NormalizeMAC(csid)
	if !ok {
		mac = csid
	}
	f := nasFields(req, authPassword, csid)
	f.set("reason", reasonPassword)
	f.set("result", "reject")
	a.emit(cache.Event{Type: EventDenied, MAC: mac, Identity: user, Reason: reasonPassword}, f)
	a.m.decisions.WithLabelValues(authPassword, "reject", sourceNone).Inc()
	a.warn.Log(slog.LevelInfo, "password_refused", "password method refused offline", "client", req.Client.Name, "user", user)
	return b, proxy.OutcomeLocal
}

// denyUnknown records the refusal of a client the cache does not know when
// no default VLAN is configured for its method: without one, an accept
// would land it on the port's native VLAN, which nobody granted it.
func (a *Authenticator) denyUnknown(req *proxy.Request, authType string, ev cache.Event, f fields) {
	ev.Type, ev.Reason = EventDenied, reasonNoDefault
	f.set("reason", reasonNoDefault)
	f.set("result", "reject")
	f.set("source", sourceNone)
	f.set("cache_hit", "false")
	a.emit(ev, f)
	a.m.decisions.WithLabelValues(authType, "reject", sourceNone).Inc()
	a.warn.Log(slog.LevelInfo, "unknown_rejected", "unknown client rejected: no default VLAN configured", "auth_type", authType,
		"client", req.Client.Name, "mac", ev.MAC, "identity", ev.Identity)
}

// fields are an event's fields in the order they were set: a decision
// builds a dozen of them, and a map cost an allocation, hashing and, to
// encode, a sort, on every local answer.
type fields []cache.Field

// set adds k or replaces its value.
func (f *fields) set(k, v string) {
	for i := range *f {
		if (*f)[i].Key == k {
			(*f)[i].Value = v
			return
		}
	}
	*f = append(*f, cache.Field{Key: k, Value: v})
}

// toMap is f as an Event's Fields, for a store that takes events whole.
func (f fields) toMap() map[string]string {
	m := make(map[string]string, len(f))
	for _, kv := range f {
		m[kv.Key] = kv.Value
	}
	return m
}

// nasFields starts an event's fields with who asked; sized for what the
// decision adds, so the list is allocated once.
func nasFields(req *proxy.Request, authType, csid string) fields {
	f := make(fields, 0, 16)
	f = append(f,
		cache.Field{Key: "auth_type", Value: authType},
		cache.Field{Key: "nas", Value: req.Client.Name},
		cache.Field{Key: "nas_vendor", Value: req.Client.Vendor},
		cache.Field{Key: "site", Value: req.Client.Site},
		cache.Field{Key: "calling_station", Value: csid})
	return f
}
