package nac_test

import (
	"crypto/tls"
	"slices"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/mxedge/mxedge/edge/nac"
	"github.com/mxedge/mxedge/edge/nac/eap"
	"github.com/mxedge/mxedge/proxy/packet"
)

const reasonNoDefault = "client not in the cache and no default VLAN is configured"

func noDefaults(c *nac.Config) { c.DefaultMABVLAN, c.DefaultDot1XVLAN = "", "" }

// checkNoGrant fails if a reply carries keys or VLAN attributes.
func checkNoGrant(t *testing.T, p *packet.Packet) {
	t.Helper()
	for _, a := range p.Attrs {
		switch a.Type {
		case packet.AttrVendorSpecific, packet.AttrTunnelType, packet.AttrTunnelMediumType, packet.AttrTunnelPrivateGroupID, 27, 29:
			t.Fatalf("%s carries attribute %d", p.Code, a.Type)
		}
	}
}

// checkDenied wants the last event to be the no-default refusal.
func checkDenied(t *testing.T, f *fixture, authType string) {
	t.Helper()
	ev := f.store.events[len(f.store.events)-1]
	if ev.Type != nac.EventDenied || ev.Reason != reasonNoDefault {
		t.Fatalf("event %+v, want %q with reason %q", ev, nac.EventDenied, reasonNoDefault)
	}
	if ev.Fields["reason"] != reasonNoDefault || ev.Fields["result"] != "reject" || ev.Fields["source"] != "none" ||
		ev.Fields["auth_type"] != authType || ev.Fields["cache_hit"] != "false" {
		t.Fatalf("event fields %v", ev.Fields)
	}
	if n := testutil.ToFloat64(f.a.Decisions(authType, "reject", "none")); n != 1 {
		t.Fatalf("decisions{%s,reject,none} = %v, want 1", authType, n)
	}
	for _, src := range []string{"cache", "default", "none"} {
		if n := testutil.ToFloat64(f.a.Decisions(authType, "accept", src)); n != 0 {
			t.Fatalf("decisions{%s,accept,%s} = %v, want 0", authType, src, n)
		}
	}
}

func TestMABUnknownWithoutDefaultRejected(t *testing.T) {
	mab := func(mac string) []attr {
		return []attr{{1, []byte(mac)}, {2, []byte(mac)}, {31, []byte(mac)}, {6, u32(10)}}
	}
	cases := []struct {
		name   string
		dflt   string
		mac    string
		code   packet.Code
		vlan   string
		source string
	}{
		{"unknown, no default: reject", "", "aabbcc0000ff", packet.CodeAccessReject, "", "none"},
		{"cached, no default: accept", "", "aabbcc000001", packet.CodeAccessAccept, "printers", "cache"},
		{"unknown, default: accept on it", "41", "aabbcc0000ff", packet.CodeAccessAccept, "41", "default"},
		{"unknown, only an 802.1X default: reject", "", "aabbcc0000fe", packet.CodeAccessReject, "", "none"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t, cachedStore(), "generic", func(cfg *nac.Config) { cfg.DefaultMABVLAN = c.dflt })
			rp := f.serve(t, request(t, packet.CodeAccessRequest, 7, nil, mab(c.mac)...))
			if rp.Code != c.code {
				t.Fatalf("got %s, want %s", rp.Code, c.code)
			}
			if got := vlanOf(t, rp); got != c.vlan {
				t.Fatalf("VLAN %q, want %q", got, c.vlan)
			}
			f.close(t)
			if len(f.store.events) != 1 {
				t.Fatalf("events %q", f.store.eventTypes())
			}
			if c.code == packet.CodeAccessReject {
				checkNoGrant(t, rp)
				checkDenied(t, f, "mab")
				return
			}
			if ev := f.store.events[0]; ev.Type != nac.EventAllowed || ev.Fields["source"] != c.source {
				t.Fatalf("event %+v", ev)
			}
		})
	}
}

func TestEAPTLSUnknownWithoutDefaultRejected(t *testing.T) {
	p := testPKI(t)
	for _, v := range versions {
		t.Run("unknown/"+v.name, func(t *testing.T) {
			f := newFixture(t, cachedStore(), "generic", noDefaults)
			r := f.runEAP(t, p.bob, v.v, otherMAC, 0)
			if r.final.Code != packet.CodeAccessReject {
				t.Fatalf("got %s, want Access-Reject", r.final.Code)
			}
			if m, err := eap.Parse(eapOf(r.final)); err != nil || m.Code != eap.CodeFailure {
				t.Fatalf("reject carries %v %v, want EAP-Failure", m.Code, err)
			}
			if r.peer.Succeeded() {
				t.Fatal("peer saw EAP-Success")
			}
			checkNoGrant(t, r.final)
			f.close(t)
			if got := f.store.eventTypes(); !slices.Equal(got, []string{nac.EventCertValid, nac.EventDenied}) {
				t.Fatalf("events %q", got)
			}
			checkDenied(t, f, "eap-tls")
			if ev := f.store.events[1]; ev.Identity == "" || ev.Fields["cert_cn"] != "bob" {
				t.Fatalf("denied event without the certificate: %+v", ev)
			}
		})
		t.Run("cached/"+v.name, func(t *testing.T) {
			f := newFixture(t, cachedStore(), "generic", noDefaults)
			r := f.runEAP(t, p.alice, v.v, aliceMAC, 0)
			if r.final.Code != packet.CodeAccessAccept || !r.peer.Succeeded() {
				t.Fatalf("got %s, want Access-Accept with EAP-Success", r.final.Code)
			}
			if got := vlanOf(t, r.final); got != "10" {
				t.Fatalf("VLAN %q", got)
			}
		})
	}
	t.Run("spoofed MAC", func(t *testing.T) {
		f := newFixture(t, cachedStore(), "generic", noDefaults)
		r := f.runEAP(t, p.alice, tls.VersionTLS13, bobMAC, 0)
		if r.final.Code != packet.CodeAccessReject {
			t.Fatalf("valid certificate on another MAC: got %s, want Access-Reject", r.final.Code)
		}
	})
}
