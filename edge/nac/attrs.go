package nac

import (
	"encoding/binary"
	"fmt"
	"math"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/mxedge/mxedge/cache"
	"github.com/mxedge/mxedge/proxy/packet"
)

// Tunnel attribute values of a VLAN assignment (RFC 3580 §3.31).
const (
	tunnelTypeVLAN      = 13
	tunnelMediumIEEE802 = 6
)

// Attribute types (RFC 2865 §5) the cached authorization sets, by
// number, and the Termination-Action value it uses.
const (
	attrFilterID          = 11
	attrSessionTimeout    = 27
	attrTerminationAction = 29
	terminationRADIUS     = 1 // Termination-Action RADIUS-Request (RFC 2865 §5.29)
)

// Vendor-Specific attributes (vendor id, then the vendor's type) for a
// role or an AV pair.
const (
	vendorAruba   = 14823
	arubaUserRole = 1
	vendorCisco   = 9
	ciscoAVPair   = 1
)

// maxSessionTimeoutSec is the largest Session-Timeout, a 4-octet
// integer.
const maxSessionTimeoutSec = 1<<32 - 1

type kind uint8

const (
	kindString    kind = iota
	kindInteger        // 4 octets
	kindTaggedInt      // tag octet + 3 octets (RFC 2868)
	kindIPv4
)

// attrDef names an attribute the cloud may cache by name only. The table is
// deliberately small: the cloud sends type numbers (or raw values) for
// anything else, and an attribute we cannot place is skipped, not guessed.
//
// values names the integer values of this one attribute (matched without
// regard to case): "VLAN" is a Tunnel-Type, not a Session-Timeout, so
// `Session-Timeout: vlan` is refused instead of encoding 13. The names are
// the RADIUS dictionaries' (layeh.com/radius's where it has them, which a
// test checks; Tunnel-Type VLAN is RFC 3580's, which layeh lacks).
type attrDef struct {
	name   string
	vendor uint32
	typ    uint8
	kind   kind
	values map[string]uint32
}

// Named values of the integer attributes that have them.
var (
	serviceTypes = map[string]uint32{
		"login-user": 1, "framed-user": 2, "callback-login-user": 3, "callback-framed-user": 4,
		"outbound-user": 5, "administrative-user": 6, "nas-prompt-user": 7, "authenticate-only": 8,
		"callback-nas-prompt": 9, "call-check": 10, "callback-administrative": 11,
	}
	terminationActions = map[string]uint32{"default": 0, "radius-request": terminationRADIUS}
	tunnelTypes        = map[string]uint32{"pptp": 1, "l2tp": 3, "gre": 10, "vlan": tunnelTypeVLAN}
	tunnelMediumTypes  = map[string]uint32{"ipv4": 1, "ipv6": 2, "ieee-802": tunnelMediumIEEE802}
)

var attrDefs = []attrDef{
	{"User-Name", 0, 1, kindString, nil},
	{"Service-Type", 0, 6, kindInteger, serviceTypes},
	{"Framed-IP-Address", 0, 8, kindIPv4, nil},
	{"Filter-Id", 0, attrFilterID, kindString, nil},
	{"Framed-MTU", 0, 12, kindInteger, nil},
	{"Reply-Message", 0, 18, kindString, nil},
	{"Class", 0, 25, kindString, nil},
	{"Session-Timeout", 0, attrSessionTimeout, kindInteger, nil},
	{"Idle-Timeout", 0, 28, kindInteger, nil},
	{"Termination-Action", 0, attrTerminationAction, kindInteger, terminationActions},
	{"Egress-VLANID", 0, 56, kindInteger, nil},
	{"Egress-VLAN-Name", 0, 58, kindString, nil},
	{"Tunnel-Type", 0, packet.AttrTunnelType, kindTaggedInt, tunnelTypes},
	{"Tunnel-Medium-Type", 0, packet.AttrTunnelMediumType, kindTaggedInt, tunnelMediumTypes},
	{"Tunnel-Private-Group-ID", 0, packet.AttrTunnelPrivateGroupID, kindString, nil},
	{"Acct-Interim-Interval", 0, 85, kindInteger, nil},
	{"NAS-Filter-Rule", 0, 92, kindString, nil},
	{"Cisco-AVPair", vendorCisco, ciscoAVPair, kindString, nil},
	{"Aruba-User-Role", vendorAruba, arubaUserRole, kindString, nil},
	{"Aruba-User-Vlan", vendorAruba, 2, kindInteger, nil},
	{"Aruba-Named-User-Vlan", vendorAruba, 9, kindString, nil},
	{"Airespace-Interface-Name", 14179, 5, kindString, nil},
	{"Airespace-ACL-Name", 14179, 6, kindString, nil},
}

type attrKey struct {
	vendor uint32
	typ    uint8
}

var (
	defsByName = map[string]attrDef{}
	defsByKey  = map[attrKey]attrDef{}
)

func init() {
	for _, d := range attrDefs {
		defsByName[strings.ToLower(d.name)] = d
		defsByKey[attrKey{d.vendor, d.typ}] = d
	}
}

// never are attributes a cached entry must not put in a reply: they are
// per-request, per-secret or ours to set.
func never(k attrKey) bool {
	if k.vendor == packet.VendorMicrosoft {
		return k.typ == packet.MSMPPESendKey || k.typ == packet.MSMPPERecvKey
	}
	switch k.typ {
	case packet.AttrUserPassword, packet.AttrCHAPPassword, packet.AttrState, packet.AttrProxyState,
		packet.AttrEAPMessage, packet.AttrMessageAuthenticator, packet.AttrTunnelPassword:
		return k.vendor == 0
	}
	return false
}

func isVLANAttr(k attrKey) bool {
	return k.vendor == 0 && (k.typ == packet.AttrTunnelType || k.typ == packet.AttrTunnelMediumType ||
		k.typ == packet.AttrTunnelPrivateGroupID)
}

// resolve finds where a cached attribute goes and how its text is
// encoded: by name, or by number (vendor or not) with the table's type when
// the table knows the attribute, as a string when it does not.
func resolve(at cache.Attribute) (attrKey, attrDef, bool) {
	var k attrKey
	switch {
	case at.VendorID != 0:
		k = attrKey{at.VendorID, at.VendorType}
	case at.Type != 0 && at.Type != packet.AttrVendorSpecific:
		k = attrKey{0, at.Type}
	default:
		d, ok := defsByName[strings.ToLower(at.Name)]
		if !ok {
			return k, attrDef{}, false
		}
		return attrKey{d.vendor, d.typ}, d, true
	}
	if d, ok := defsByKey[k]; ok {
		return k, d, true
	}
	return k, attrDef{kind: kindString}, true
}

func encodeValue(at cache.Attribute, d attrDef) ([]byte, error) {
	if at.Raw != nil {
		return at.Raw, nil
	}
	v := strings.TrimSpace(at.Value)
	switch d.kind {
	case kindInteger, kindTaggedInt:
		n, ok := d.values[strings.ToLower(v)]
		if !ok {
			u, err := strconv.ParseUint(v, 10, 32)
			if err != nil {
				return nil, fmt.Errorf("%s: %q is neither an integer nor a value it names", at.Name, at.Value)
			}
			n = uint32(u)
		}
		b := binary.BigEndian.AppendUint32(nil, n)
		if d.kind == kindTaggedInt {
			b[0] = 0 // tag 0: untagged (RFC 2868 §3.1)
		}
		return b, nil
	case kindIPv4:
		ip, err := netip.ParseAddr(v)
		if err != nil || !ip.Is4() {
			return nil, fmt.Errorf("%s: %q is not an IPv4 address", at.Name, at.Value)
		}
		b := ip.As4()
		return b[:], nil
	}
	return []byte(at.Value), nil
}

// appendVLAN adds the RFC 3580 trio. Tunnel-Type and Tunnel-Medium-Type
// carry tag 0 in their first octet; Tunnel-Private-Group-ID is sent
// without a tag octet, which switches read as tag 0: a first octet above
// 0x1F is the string's own (RFC 2868 §3.6), and a VLAN ID or name starts
// with a printable character.
func appendVLAN(b []byte, vlan string) ([]byte, error) {
	var err error
	if b, err = packet.AppendAttr(b, packet.AttrTunnelType, []byte{0, 0, 0, tunnelTypeVLAN}); err != nil {
		return b, err
	}
	if b, err = packet.AppendAttr(b, packet.AttrTunnelMediumType, []byte{0, 0, 0, tunnelMediumIEEE802}); err != nil {
		return b, err
	}
	return packet.AppendAttr(b, packet.AttrTunnelPrivateGroupID, []byte(vlan))
}

// roleAttr is where a role goes for a NAS vendor: Aruba-User-Role for
// Aruba and HPE (ArubaOS, AOS-CX), Filter-Id for everyone else.
func roleAttr(vendor string) attrKey {
	switch strings.ToLower(vendor) {
	case "aruba", "hpe":
		return attrKey{vendorAruba, arubaUserRole}
	}
	return attrKey{0, attrFilterID}
}

func appendKey(b []byte, k attrKey, v []byte) ([]byte, error) {
	if k.vendor != 0 {
		return packet.AppendVSA(b, k.vendor, k.typ, v)
	}
	return packet.AppendAttr(b, k.typ, v)
}

// sessionTimeout draws the local Session-Timeout for one accept, in whole
// seconds (at least 1); 0 when none is configured.
func (a *Authenticator) sessionTimeout() uint32 {
	t := a.cfg.SessionTimeout.Seconds()
	if t <= 0 {
		return 0
	}
	if j := a.cfg.SessionJitter; j > 0 {
		r := min(max(a.cfg.Rand(), 0), 1)
		t *= 1 - j*r
	}
	return uint32(min(max(math.Round(t), 1), maxSessionTimeoutSec))
}

// granted is what appendAuthorization did beyond the attributes.
type granted struct {
	skipped        []string // cached attributes not sent, by name
	sessionTimeout uint32   // Session-Timeout sent, in seconds; 0 if none
}

var (
	keySessionTimeout    = attrKey{0, attrSessionTimeout}
	keyTerminationAction = attrKey{0, attrTerminationAction}
)

// appendAuthorization adds what the cloud granted: VLAN, Session-Timeout,
// role (where the NAS vendor wants it, unless the cached attributes already
// carry that attribute) and the cached attributes. Attributes that cannot
// be placed or encoded are skipped and returned for logging.
//
// local is the Session-Timeout the local NAC wants (0: none). The cached
// one is a cached Session-Timeout attribute if there is one, else
// Authorization.SessionTimeout; exactly one Session-Timeout goes out, the
// smaller of the two. With a local timeout, Termination-Action is
// RADIUS-Request whatever the cache says, so the device re-authenticates
// (against the cloud, once it is back) instead of being cut off.
func appendAuthorization(b []byte, az cache.Authorization, vendor string, local uint32) ([]byte, granted, error) {
	var (
		err      error
		g        granted
		have     = map[attrKey]bool{}
		cachedST uint32
		stAttr   bool
	)
	type item struct {
		k attrKey
		v []byte
	}
	var items []item
	for _, at := range az.Attributes {
		k, d, ok := resolve(at)
		if !ok || never(k) || (az.VLAN != "" && isVLANAttr(k)) {
			g.skipped = append(g.skipped, at.Name)
			continue
		}
		v, err := encodeValue(at, d)
		if err != nil || len(v) > maxAttrValue || (k.vendor != 0 && len(v) > maxAttrValue-6) ||
			(k == keySessionTimeout && len(v) != 4) {
			g.skipped = append(g.skipped, at.Name)
			continue
		}
		switch {
		case k == keySessionTimeout:
			// Placed below, once: two would leave the NAS to pick one.
			stAttr = true
			if n := binary.BigEndian.Uint32(v); n > 0 && (cachedST == 0 || n < cachedST) {
				cachedST = n
			}
			continue
		case k == keyTerminationAction && local > 0:
			continue // ours is RADIUS-Request
		}
		have[k] = true
		items = append(items, item{k, v})
	}
	if st := az.SessionTimeout / time.Second; !stAttr && st > 0 {
		cachedST = uint32(min(st, maxSessionTimeoutSec))
	}
	if az.VLAN != "" {
		if b, err = appendVLAN(b, az.VLAN); err != nil {
			return b, g, err
		}
	}
	g.sessionTimeout = cachedST
	if local > 0 && (cachedST == 0 || local < cachedST) {
		g.sessionTimeout = local
	}
	if g.sessionTimeout > 0 {
		b = append(b, attrSessionTimeout, 6)
		b = binary.BigEndian.AppendUint32(b, g.sessionTimeout)
	}
	if local > 0 {
		b = append(b, attrTerminationAction, 6)
		b = binary.BigEndian.AppendUint32(b, terminationRADIUS)
	}
	if az.Role != "" {
		if k := roleAttr(vendor); !have[k] {
			if b, err = appendKey(b, k, []byte(az.Role)); err != nil {
				return b, g, err
			}
		}
	}
	for _, it := range items {
		if b, err = appendKey(b, it.k, it.v); err != nil {
			return b, g, err
		}
	}
	return b, g, nil
}
