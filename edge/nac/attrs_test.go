package nac

import (
	"bytes"
	"slices"
	"strings"
	"testing"

	"layeh.com/radius/rfc2865"
	"layeh.com/radius/rfc2868"

	"github.com/mxedge/mxedge/cache"
	"github.com/mxedge/mxedge/proxy/packet"
)

// TestAttributeValuesPerAttribute: a value name belongs to its attribute.
// One flat table once let `Session-Timeout: vlan` out as 13 seconds.
func TestAttributeValuesPerAttribute(t *testing.T) {
	for _, tc := range []struct {
		name, value string
		want        []byte // nil: refused (skipped)
	}{
		{"Tunnel-Type", "VLAN", []byte{0, 0, 0, 13}},
		{"Tunnel-Type", "vlan", []byte{0, 0, 0, 13}},
		{"Tunnel-Medium-Type", "IEEE-802", []byte{0, 0, 0, 6}},
		{"Service-Type", "Framed-User", []byte{0, 0, 0, 2}},
		{"Service-Type", "call-check", []byte{0, 0, 0, 10}},
		{"Termination-Action", "RADIUS-Request", []byte{0, 0, 0, 1}},
		{"Termination-Action", "Default", []byte{0, 0, 0, 0}},
		{"Idle-Timeout", "600", []byte{0, 0, 2, 88}},
		{"Session-Timeout", "vlan", nil},
		{"Session-Timeout", "default", nil},
		{"Idle-Timeout", "radius-request", nil},
		{"Framed-MTU", "ieee-802", nil},
		{"Service-Type", "vlan", nil},
		{"Tunnel-Type", "framed-user", nil},
		{"Termination-Action", "ieee-802", nil},
		{"Acct-Interim-Interval", "ten", nil},
	} {
		t.Run(tc.name+"="+tc.value, func(t *testing.T) {
			az := cache.Authorization{Attributes: []cache.Attribute{{Name: tc.name, Value: tc.value}}}
			b, g, err := appendAuthorization(nil, az, "", 0)
			if err != nil {
				t.Fatal(err)
			}
			if tc.want == nil {
				if !slices.Contains(g.skipped, tc.name) || len(b) != 0 {
					t.Fatalf("%s: %q accepted (% x), want it refused", tc.name, tc.value, b)
				}
				return
			}
			d := defsByName[strings.ToLower(tc.name)]
			want := append([]byte{d.typ, 6}, tc.want...)
			if len(g.skipped) != 0 || !bytes.Equal(b, want) {
				t.Fatalf("%s: %q encoded % x (skipped %v), want % x", tc.name, tc.value, b, g.skipped, want)
			}
		})
	}
}

// TestAttributeValuesMatchLayeh checks the value names against the
// dictionaries of layeh.com/radius where it has them.
func TestAttributeValuesMatchLayeh(t *testing.T) {
	ref := map[uint8]map[string]uint32{
		6:                           {},
		attrTerminationAction:       {},
		packet.AttrTunnelType:       {},
		packet.AttrTunnelMediumType: {},
	}
	for v, n := range rfc2865.ServiceType_Strings {
		ref[6][strings.ToLower(n)] = uint32(v)
	}
	for v, n := range rfc2865.TerminationAction_Strings {
		ref[attrTerminationAction][strings.ToLower(n)] = uint32(v)
	}
	for v, n := range rfc2868.TunnelType_Strings {
		ref[packet.AttrTunnelType][strings.ToLower(n)] = uint32(v)
	}
	for v, n := range rfc2868.TunnelMediumType_Strings {
		ref[packet.AttrTunnelMediumType][strings.ToLower(n)] = uint32(v)
	}
	for _, d := range attrDefs {
		for name, v := range d.values {
			if name != strings.ToLower(name) {
				t.Errorf("%s: value name %q must be lower case (matched without case)", d.name, name)
			}
			if d.vendor != 0 || ref[d.typ] == nil {
				t.Errorf("%s has named values but no reference dictionary here", d.name)
				continue
			}
			if lv, ok := ref[d.typ][name]; ok && lv != v {
				t.Errorf("%s %s = %d, layeh says %d", d.name, name, v, lv)
			} else if !ok && !(d.typ == packet.AttrTunnelType && name == "vlan") {
				t.Errorf("%s %s: not in layeh's dictionary", d.name, name)
			}
		}
	}
}
