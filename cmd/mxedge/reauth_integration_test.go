package main

import (
	"fmt"
	"testing"
	"time"

	"github.com/mxedge/mxedge/cmd/internal/peers"
	"github.com/mxedge/mxedge/proxy/packet"
	"github.com/mxedge/mxedge/proxy/packet/packettest"
)

// TestReauthorizeAfterOutage: with survivability.reauthorize_after_outage
// the real mxedge, once the cloud is back, asks the switches to
// re-authorise the clients it let in on the default VLAN during the
// outage: a Disconnect to the aruba switch, a CoA Reauthenticate to the
// cisco one, each on its coa_port with its own secret.
func TestReauthorizeAfterOutage(t *testing.T) {
	t.Parallel()
	realPeers(t, "freeradius", "radclient")
	p := labPKI(t)
	fr := wanCloudNAC(t, p)
	relay := mustRelay(t, fr.RadSecAddr)
	const arubaSecret, ciscoSecret = "aruba-reauth-secret-0c11aa", "cisco-reauth-secret-9e22bb"
	aruba := startSwitch(t, "127.0.0.9", arubaSecret, false)
	cisco := startSwitch(t, "127.0.0.10", ciscoSecret, false)
	e := startEdge(t, edgeConfig{Secret: labSecret, PKI: p, Mode: "auto", Upstreams: []string{relay.Addr()},
		Survivability: wanSurvivability(p, "") + "  reauthorize_after_outage: true\n", LogLevel: "info",
		MoreClients: fmt.Sprintf(`    - name: aruba-sw
      address: 127.0.0.9
      secret: %q
      vendor: aruba
      coa_port: %d
    - name: cisco-sw
      address: 127.0.0.10
      secret: %q
      vendor: cisco
      coa_port: %d
`, arubaSecret, aruba.Addr.Port(), ciscoSecret, cisco.Addr.Port())})
	waitMode(t, e, "cloud", 20*time.Second)

	if err := relay.Cut(peers.CutBlackhole); err != nil {
		t.Fatal(err)
	}
	waitMode(t, e, "survival", 20*time.Second)
	for _, c := range []struct{ src, secret, mac string }{
		{"127.0.0.9", arubaSecret, "0e0000000009"}, {"127.0.0.10", ciscoSecret, "0e000000000a"},
	} {
		attrs := []string{`User-Name = "` + c.mac + `"`, `User-Password = "` + c.mac + `"`,
			`Calling-Station-Id = "` + c.mac + `"`, `Acct-Session-Id = "s-` + c.mac + `"`, ma, "Packet-Src-IP-Address = " + c.src}
		res, err := peers.Radclient(ctxFor(t, 10*time.Second), e.Auth, c.secret, "auth", attrs)
		if err != nil || res.Code != "Access-Accept" || res.Attr("Tunnel-Private-Group-Id") != wanDefaultMAB {
			t.Fatalf("unknown MAC %s during the outage: %v\n%s", c.mac, err, res.Output)
		}
	}
	select {
	case <-aruba.Got:
		t.Fatal("re-authorisation before the cloud is back")
	case <-cisco.Got:
		t.Fatal("re-authorisation before the cloud is back")
	default:
	}
	if err := relay.Restore(); err != nil {
		t.Fatal(err)
	}
	back := waitMode(t, e, "cloud", 30*time.Second)
	for _, sw := range []struct {
		name string
		s    *packettest.CoADevice
		code packet.Code
		mac  string
	}{{"aruba", aruba, packet.CodeDisconnectRequest, "0e0000000009"}, {"cisco", cisco, packet.CodeCoARequest, "0e000000000a"}} {
		select {
		case got := <-sw.s.Got:
			csid, _ := got.Lookup(packet.AttrCallingStationID)
			asid, _ := got.Lookup(packet.AttrAcctSessionID)
			if got.Code != sw.code || string(csid) != sw.mac || string(asid) != "s-"+sw.mac {
				t.Errorf("%s switch got %s for %q (session %q)", sw.name, got.Code, csid, asid)
			}
			t.Logf("%s switch: %s for %s, %v after the move to cloud", sw.name, got.Code, csid, time.Since(back).Round(time.Millisecond))
		case <-time.After(5 * time.Second):
			t.Fatalf("%s switch: no re-authorisation request", sw.name)
		}
	}
	if !waitFor(2*time.Second, func() bool { return e.metric(t, "mxedge_reauth_requests_total", `result="ack"`) == 2 }) {
		t.Errorf("acknowledged re-authorisations %v, want 2", e.metric(t, "mxedge_reauth_requests_total", `result="ack"`))
	}
}
