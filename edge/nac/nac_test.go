package nac_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"path/filepath"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/mxedge/mxedge/cache"
	"github.com/mxedge/mxedge/edge/nac"
	"github.com/mxedge/mxedge/edge/nac/eap"
	"github.com/mxedge/mxedge/proxy"
	"github.com/mxedge/mxedge/proxy/packet"
)

const (
	aliceMAC = "02:00:00:00:00:01"
	bobMAC   = "02-00-00-00-00-02"
	otherMAC = "0200.0000.0099"
)

func cachedStore() *fakeStore {
	return newFakeStore(
		cache.Entry{MAC: aliceMAC, AuthType: cache.AuthEAPTLS, Identity: cache.Identity{CN: "alice", SANEmail: "alice@example.org"},
			Authorization: cache.Authorization{VLAN: "10", Role: "staff", SessionTimeout: time.Hour,
				Attributes: []cache.Attribute{{Name: "Class", Value: "cls-alice"}, {Name: "Idle-Timeout", Value: "600"}}}},
		cache.Entry{MAC: bobMAC, AuthType: cache.AuthEAPTLS, Identity: cache.Identity{CN: "bob"},
			Authorization: cache.Authorization{VLAN: "20"}},
		cache.Entry{MAC: "02:00:00:00:00:03", AuthType: cache.AuthEAPTLS, Identity: cache.Identity{SANUPN: "carol@corp.example"},
			Authorization: cache.Authorization{VLAN: "30"}},
		cache.Entry{MAC: "aa:bb:cc:00:00:01", AuthType: cache.AuthMAB, Identity: cache.Identity{UserName: "aabbcc000001"},
			Authorization: cache.Authorization{VLAN: "printers", Attributes: []cache.Attribute{{Name: "Filter-Id", Value: "printer-acl"}}}},
	)
}

var versions = []struct {
	name string
	v    uint16
}{{"TLS1.2", tls.VersionTLS12}, {"TLS1.3", tls.VersionTLS13}}

// vlanOf returns Tunnel-Private-Group-ID after checking the RFC 3580 trio.
func vlanOf(t *testing.T, p *packet.Packet) string {
	t.Helper()
	tt, ok1 := p.Lookup(packet.AttrTunnelType)
	mt, ok2 := p.Lookup(packet.AttrTunnelMediumType)
	id, ok3 := p.Lookup(packet.AttrTunnelPrivateGroupID)
	if !ok1 && !ok2 && !ok3 {
		return ""
	}
	if !bytes.Equal(tt, []byte{0, 0, 0, 13}) || !bytes.Equal(mt, []byte{0, 0, 0, 6}) || !ok3 {
		t.Fatalf("bad VLAN trio: type %x medium %x id %q", tt, mt, id)
	}
	if len(id) > 0 && id[0] <= 0x1f {
		t.Fatalf("Tunnel-Private-Group-ID %q starts with a tag octet", id)
	}
	return string(id)
}

// checkMPPE decrypts the keys and compares them with the peer's MSK.
func checkMPPE(t *testing.T, r eapRun) {
	t.Helper()
	keys, err := r.peer.Keys()
	if err != nil {
		t.Fatal(err)
	}
	got := map[uint8][]byte{}
	var salts [][2]byte
	for _, a := range r.final.Attrs {
		if a.Type != packet.AttrVendorSpecific {
			continue
		}
		vs, ok := packet.ParseVSA(a.Value, nil)
		if !ok || vs[0].Vendor != packet.VendorMicrosoft {
			continue
		}
		v := vs[0].Value
		if v[0]&0x80 == 0 {
			t.Fatalf("salt %x without the MSB", v[:2])
		}
		salts = append(salts, [2]byte(v[:2]))
		pt, err := packet.SaltDecrypt(nil, v, secret, r.reqAuth)
		if err != nil {
			t.Fatal(err)
		}
		got[vs[0].Type] = pt[1 : 1+pt[0]]
	}
	if len(salts) != 2 || salts[0] == salts[1] {
		t.Fatalf("salts %x: want two distinct", salts)
	}
	if !bytes.Equal(got[packet.MSMPPERecvKey], keys.MSK[:32]) || !bytes.Equal(got[packet.MSMPPESendKey], keys.MSK[32:64]) {
		t.Fatal("MS-MPPE keys do not match the peer's MSK")
	}
}

func TestEAPTLSAccept(t *testing.T) {
	p := testPKI(t)
	cases := []struct {
		name   string
		cert   *tls.Certificate
		mac    string
		vlan   string
		source string
	}{
		{"cache hit", p.alice, aliceMAC, "10", "cache"},
		{"unknown client gets the default", p.bob, otherMAC, "51", "default"},
		{"spoofed MAC with a valid cert gets the default", p.alice, bobMAC, "51", "default"},
		{"cached cert on another MAC gets the default", p.bob, aliceMAC, "51", "default"},
		{"identity from SAN UPN", p.upnOnly, "02:00:00:00:00:03", "30", "cache"},
	}
	for _, c := range cases {
		for _, v := range versions {
			for _, mtu := range []int{0, 300} {
				name := c.name + "/" + v.name + "/whole"
				if mtu > 0 {
					name = c.name + "/" + v.name + "/fragmented"
				}
				t.Run(name, func(t *testing.T) {
					f := newFixture(t, cachedStore(), "generic")
					r := f.runEAP(t, c.cert, v.v, c.mac, mtu)
					if r.final.Code != packet.CodeAccessAccept {
						t.Fatalf("got %s, want Access-Accept", r.final.Code)
					}
					if !r.peer.Succeeded() {
						t.Fatal("peer did not see EAP-Success after a complete handshake")
					}
					if mtu > 0 && !r.serverFrag {
						t.Fatal("Framed-MTU 300 did not fragment the server's flight")
					}
					checkMPPE(t, r)
					if got := vlanOf(t, r.final); got != c.vlan {
						t.Fatalf("VLAN %q, want %q", got, c.vlan)
					}
					if _, ok := r.final.Lookup(packet.AttrState); ok {
						t.Fatal("State in Access-Accept")
					}
					f.close(t)
					if got := f.store.eventTypes(); !slices.Equal(got, []string{nac.EventCertValid, nac.EventAllowed}) {
						t.Fatalf("events %q", got)
					}
					ev := f.store.events[1]
					if ev.Fields["source"] != c.source || ev.Fields["vlan"] != c.vlan || ev.Fields["nas"] != "sw1" || ev.Fields["auth_type"] != "eap-tls" {
						t.Fatalf("event fields %v", ev.Fields)
					}
					if n := testutil.ToFloat64(f.a.Decisions("eap-tls", "accept", c.source)); n != 1 {
						t.Fatalf("decisions counter %v", n)
					}
				})
			}
		}
	}
}

func TestEAPTLSCachedAttributes(t *testing.T) {
	for _, vendor := range []string{"generic", "aruba"} {
		t.Run(vendor, func(t *testing.T) {
			f := newFixture(t, cachedStore(), vendor)
			r := f.runEAP(t, f.pki.alice, tls.VersionTLS13, aliceMAC, 0)
			if r.final.Code != packet.CodeAccessAccept {
				t.Fatalf("got %s", r.final.Code)
			}
			if st, _ := r.final.Lookup(27); binary.BigEndian.Uint32(st) != 3600 {
				t.Fatalf("Session-Timeout %x", st)
			}
			if it, _ := r.final.Lookup(28); binary.BigEndian.Uint32(it) != 600 {
				t.Fatalf("Idle-Timeout %x", it)
			}
			if cl, _ := r.final.Lookup(25); string(cl) != "cls-alice" {
				t.Fatalf("Class %q", cl)
			}
			role := ""
			if vendor == "aruba" {
				for _, a := range r.final.Attrs {
					if vs, ok := packet.ParseVSA(a.Value, nil); a.Type == 26 && ok && vs[0].Vendor == 14823 && vs[0].Type == 1 {
						role = string(vs[0].Value)
					}
				}
			} else {
				fid, _ := r.final.Lookup(11)
				role = string(fid)
			}
			if role != "staff" {
				t.Fatalf("role %q", role)
			}
		})
	}
}

func TestEAPTLSReject(t *testing.T) {
	p := testPKI(t)
	cases := []struct {
		name   string
		cert   *tls.Certificate
		events []string
		reason string
	}{
		{"expired", p.expired, []string{nac.EventCertExpired, nac.EventDenied}, "cert_expired"},
		{"revoked", p.revoked, []string{nac.EventCertRevoked, nac.EventDenied}, "cert_revoked"},
		{"untrusted", p.untrusted, []string{nac.EventCertValidation, nac.EventDenied}, "cert_untrusted_ca"},
		{"no certificate", nil, []string{nac.EventCertValidation, nac.EventDenied}, "no_client_cert"},
	}
	for _, c := range cases {
		for _, v := range versions {
			t.Run(c.name+"/"+v.name, func(t *testing.T) {
				f := newFixture(t, cachedStore(), "generic")
				r := f.runEAP(t, c.cert, v.v, aliceMAC, 0)
				if r.final.Code != packet.CodeAccessReject {
					t.Fatalf("got %s, want Access-Reject", r.final.Code)
				}
				if m, err := eap.Parse(eapOf(r.final)); err != nil || m.Code != eap.CodeFailure {
					t.Fatalf("reject carries %v %v, want EAP-Failure", m.Code, err)
				}
				for _, a := range r.final.Attrs {
					if a.Type == packet.AttrVendorSpecific || a.Type == packet.AttrTunnelPrivateGroupID {
						t.Fatalf("Access-Reject carries attribute %d", a.Type)
					}
				}
				f.close(t)
				if got := f.store.eventTypes(); !slices.Equal(got, c.events) {
					t.Fatalf("events %q, want %q", got, c.events)
				}
				if got := f.store.events[1].Reason; got != c.reason {
					t.Fatalf("reason %q, want %q", got, c.reason)
				}
			})
		}
	}
}

func TestPasswordMethodRefused(t *testing.T) {
	f := newFixture(t, cachedStore(), "generic")
	id, _ := eap.Packet{Code: eap.CodeResponse, Identifier: 1, Type: eap.TypeIdentity, Data: []byte("user@example.org")}.Encode()
	mac := []byte(aliceMAC)
	rp := f.serve(t, request(t, packet.CodeAccessRequest, 1, id, attr{packet.AttrCallingStationID, mac}))
	if rp.Code != packet.CodeAccessChallenge {
		t.Fatalf("got %s", rp.Code)
	}
	start, _ := eap.Parse(eapOf(rp))
	state, _ := rp.Lookup(packet.AttrState)
	nak, _ := eap.Packet{Code: eap.CodeResponse, Identifier: start.Identifier, Type: eap.TypeNak, Data: []byte{byte(eap.TypePEAP), byte(eap.TypeMSCHAPv2)}}.Encode()
	rp = f.serve(t, request(t, packet.CodeAccessRequest, 2, nak, attr{packet.AttrCallingStationID, mac}, attr{packet.AttrState, bytes.Clone(state)}))
	if rp.Code != packet.CodeAccessReject {
		t.Fatalf("got %s, want Access-Reject", rp.Code)
	}
	f.close(t)
	ev := f.store.events[len(f.store.events)-1]
	if ev.Type != nac.EventDenied || ev.Reason != "password methods are not available offline" {
		t.Fatalf("event %+v", ev)
	}
}

func TestUnknownState(t *testing.T) {
	f := newFixture(t, cachedStore(), "generic")
	resp, _ := eap.Packet{Code: eap.CodeResponse, Identifier: 5, Type: eap.TypeTLS, Data: []byte{0}}.Encode()
	rp := f.serve(t, request(t, packet.CodeAccessRequest, 1, resp,
		attr{packet.AttrCallingStationID, []byte(aliceMAC)}, attr{packet.AttrState, []byte("not-a-state-we-issued!!!")}))
	if rp.Code != packet.CodeAccessReject {
		t.Fatalf("got %s", rp.Code)
	}
}

func TestEAPStartFromNAS(t *testing.T) {
	f := newFixture(t, cachedStore(), "generic")
	b := packet.Append(nil, packet.CodeAccessRequest, 1, packet.RandomAuthenticator())
	b = packet.AppendMessageAuthenticator(b)
	b, _ = packet.AppendAttr(b, packet.AttrCallingStationID, []byte(aliceMAC))
	b, _ = packet.AppendAttr(b, packet.AttrEAPMessage, nil)
	if err := packet.Sign(b, secret, nil); err != nil {
		t.Fatal(err)
	}
	rp := f.serve(t, b)
	if rp == nil || rp.Code != packet.CodeAccessChallenge {
		t.Fatalf("got %v", rp)
	}
	if m, err := eap.Parse(eapOf(rp)); err != nil || m.Type != eap.TypeIdentity {
		t.Fatalf("want EAP-Request/Identity, got %v %v", m.Type, err)
	}
}

func TestMAB(t *testing.T) {
	callCheck := attr{packet.AttrServiceType, u32(10)}
	cases := []struct {
		name  string
		attrs []attr
		code  packet.Code
		vlan  string
	}{
		{"cisco bare lowercase", []attr{{1, []byte("aabbcc000001")}, {2, []byte("aabbcc000001")}, {31, []byte("AA-BB-CC-00-00-01")}, callCheck}, packet.CodeAccessAccept, "printers"},
		{"colon uppercase, no Service-Type", []attr{{1, []byte("AA:BB:CC:00:00:01")}, {2, []byte("AA:BB:CC:00:00:01")}, {31, []byte("aa:bb:cc:00:00:01")}}, packet.CodeAccessAccept, "printers"},
		{"hyphen lowercase", []attr{{1, []byte("aa-bb-cc-00-00-01")}, {2, []byte("aa-bb-cc-00-00-01")}, {31, []byte("aa-bb-cc-00-00-01")}}, packet.CodeAccessAccept, "printers"},
		{"dotted", []attr{{1, []byte("aabb.cc00.0001")}, {2, []byte("aabb.cc00.0001")}, {31, []byte("aabb.cc00.0001")}}, packet.CodeAccessAccept, "printers"},
		{"call-check without password", []attr{{1, []byte("aabbcc000001")}, {31, []byte("aabbcc000001")}, callCheck}, packet.CodeAccessAccept, "printers"},
		{"call-check without Calling-Station-Id", []attr{{1, []byte("aabbcc000001")}, {2, []byte("aabbcc000001")}, callCheck}, packet.CodeAccessAccept, "printers"},
		{"unknown MAC gets the default", []attr{{1, []byte("aabbcc0000ff")}, {2, []byte("aabbcc0000ff")}, {31, []byte("aa-bb-cc-00-00-ff")}}, packet.CodeAccessAccept, "41"},
		{"user name is another MAC", []attr{{1, []byte("aabbcc000001")}, {2, []byte("aabbcc000001")}, {31, []byte("aabbcc0000ff")}}, packet.CodeAccessReject, ""},
		{"password is not the MAC", []attr{{1, []byte("aabbcc000001")}, {2, []byte("secret")}, {31, []byte("aabbcc000001")}}, packet.CodeAccessReject, ""},
		{"a user with a password", []attr{{1, []byte("alice")}, {2, []byte("hunter2")}, {31, []byte("aabbcc000001")}}, packet.CodeAccessReject, ""},
		{"CHAP", []attr{{1, []byte("aabbcc000001")}, {3, bytes.Repeat([]byte{1}, 17)}, {31, []byte("aabbcc000001")}}, packet.CodeAccessReject, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t, cachedStore(), "generic")
			rp := f.serve(t, request(t, packet.CodeAccessRequest, 9, nil, c.attrs...))
			if rp.Code != c.code {
				t.Fatalf("got %s, want %s", rp.Code, c.code)
			}
			if got := vlanOf(t, rp); got != c.vlan {
				t.Fatalf("VLAN %q, want %q", got, c.vlan)
			}
			f.close(t)
			if len(f.store.events) != 1 {
				t.Fatalf("events %v", f.store.eventTypes())
			}
			ev := f.store.events[0]
			switch c.code {
			case packet.CodeAccessAccept:
				if ev.Type != nac.EventAllowed || ev.Fields["auth_type"] != "mab" || ev.Fields["vlan"] != c.vlan {
					t.Fatalf("event %+v", ev)
				}
				if c.vlan == "printers" {
					if fid, _ := rp.Lookup(11); string(fid) != "printer-acl" {
						t.Fatalf("Filter-Id %q", fid)
					}
				}
			default:
				if ev.Type != nac.EventDenied || ev.Reason != "password methods are not available offline" {
					t.Fatalf("event %+v", ev)
				}
			}
		})
	}
}

func TestAccounting(t *testing.T) {
	f := newFixture(t, cachedStore(), "generic")
	raw := request(t, packet.CodeAccountingRequest, 3, nil,
		attr{packet.AttrAcctStatusType, u32(1)}, attr{44, []byte("sess-1")}, attr{packet.AttrProxyState, []byte("ps")})
	rp := f.serve(t, raw)
	if rp == nil || rp.Code != packet.CodeAccountingResponse {
		t.Fatalf("got %v", rp)
	}
	if ps, _ := rp.Lookup(packet.AttrProxyState); string(ps) != "ps" {
		t.Fatalf("Proxy-State %q not echoed", ps)
	}
}

func TestRetransmittedResponseGetsSameRequest(t *testing.T) {
	f := newFixture(t, cachedStore(), "generic")
	id, _ := eap.Packet{Code: eap.CodeResponse, Identifier: 1, Type: eap.TypeIdentity, Data: []byte("x")}.Encode()
	rp := f.serve(t, request(t, packet.CodeAccessRequest, 1, id, attr{31, []byte(aliceMAC)}))
	state, _ := rp.Lookup(packet.AttrState)
	start := eapOf(rp)
	// The NAS lost our Challenge and resends the Identity with the State
	// of an earlier round: the same EAP Request comes back.
	rp2 := f.serve(t, request(t, packet.CodeAccessRequest, 2, id, attr{31, []byte(aliceMAC)}, attr{24, bytes.Clone(state)}))
	if rp2.Code != packet.CodeAccessChallenge || !bytes.Equal(eapOf(rp2), start) {
		t.Fatalf("retransmission answered with %s %x, want %x", rp2.Code, eapOf(rp2), start)
	}
}

func TestMetricNames(t *testing.T) {
	f := newFixture(t, cachedStore(), "generic")
	f.runEAP(t, f.pki.alice, tls.VersionTLS13, aliceMAC, 0)
	mfs, err := f.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{"mxedge_nac_decisions_total": false, "mxedge_nac_sessions": false}
	for _, mf := range mfs {
		if _, ok := want[mf.GetName()]; ok {
			want[mf.GetName()] = true
		}
	}
	for n, ok := range want {
		if !ok {
			t.Errorf("metric %s missing", n)
		}
	}
	problems, err := testutil.GatherAndLint(f.reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("metric %s: %s", p.Metric, p.Text)
	}
}

// batchStore is the fake's lookups over a real outbox, which offers
// batched appends; the authenticator must use them.
type batchStore struct {
	*fakeStore
	*cache.Store
	batches atomic.Int32
}

func (b *batchStore) Lookup(mac, identity string) (cache.Entry, bool, error) {
	return b.fakeStore.Lookup(mac, identity)
}

func (b *batchStore) AppendEncoded(evs []cache.EncodedEvent) error {
	b.batches.Add(1)
	return b.Store.AppendEncoded(evs)
}

func (b *batchStore) AppendEvent(cache.Event) error { panic("single append with a batch store") }

func TestEventsBatched(t *testing.T) {
	outbox, err := cache.Open(filepath.Join(t.TempDir(), "cache.db"), cache.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer outbox.Close()
	store := &batchStore{fakeStore: cachedStore(), Store: outbox}
	f := newFixtureStore(t, store)
	for i := range 50 {
		rp := f.serve(t, request(t, packet.CodeAccessRequest, uint8(i), nil,
			attr{1, []byte("aabbcc000001")}, attr{2, []byte("aabbcc000001")}, attr{31, []byte("aabbcc000001")}))
		if rp.Code != packet.CodeAccessAccept {
			t.Fatal(rp.Code)
		}
	}
	f.close(t)
	evs, err := outbox.PendingEvents(0)
	if err != nil {
		t.Fatal(err)
	}
	if n, b := len(evs), store.batches.Load(); n != 50 || b == 0 || b > 50 {
		t.Fatalf("%d events in %d batches", n, b)
	}
	for _, ev := range evs {
		if ev.Type != nac.EventAllowed || ev.MAC != "aabbcc000001" || ev.Fields["auth_type"] != cache.AuthMAB {
			t.Fatalf("stored %+v", ev)
		}
	}
}

func TestEAPWithoutMessageAuthenticatorDropped(t *testing.T) {
	f := newFixture(t, cachedStore(), "generic")
	id, _ := eap.Packet{Code: eap.CodeResponse, Identifier: 1, Type: eap.TypeIdentity, Data: []byte("x")}.Encode()
	p, err := packet.Parse(request(t, packet.CodeAccessRequest, 1, id, attr{31, []byte(aliceMAC)}))
	if err != nil {
		t.Fatal(err)
	}
	if out, _ := f.a.ServeRADIUS(context.Background(), &proxy.Request{Packet: p, Client: f.client}); out != nil {
		t.Fatal("answered an EAP request without a verified Message-Authenticator")
	}
}

func TestIsLocalState(t *testing.T) {
	f := newFixture(t, cachedStore(), "generic")
	id, _ := eap.Packet{Code: eap.CodeResponse, Identifier: 1, Type: eap.TypeIdentity, Data: []byte("x")}.Encode()
	rp := f.serve(t, request(t, packet.CodeAccessRequest, 1, id, attr{31, []byte(aliceMAC)}))
	issued, ok := rp.Lookup(packet.AttrState)
	if !ok || rp.Code != packet.CodeAccessChallenge {
		t.Fatalf("got %s without State", rp.Code)
	}
	cloudState := make([]byte, 16)
	for i := range cloudState {
		cloudState[i] = byte(i * 37)
	}
	cases := []struct {
		name  string
		state []byte
		want  bool
	}{
		{"issued by the local NAC", bytes.Clone(issued), true},
		{"prefix and anything", []byte("mxedge-local:x"), true},
		{"a cloud's random 16 bytes", cloudState, false},
		{"a cloud's text State", []byte("0123456789abcdefghijklmn"), false},
		{"empty", nil, false},
		{"the prefix alone", []byte("mxedge-local:"), false},
		{"the prefix cut short", []byte("mxedge-local"), false},
		{"another case", []byte("MXEDGE-LOCAL:abc"), false},
	}
	for _, c := range cases {
		if got := nac.IsLocalState(c.state); got != c.want {
			t.Errorf("%s: IsLocalState(%q) = %v, want %v", c.name, c.state, got, c.want)
		}
	}
	if len(issued) > 253 {
		t.Fatalf("State of %d octets does not fit an attribute", len(issued))
	}
}
