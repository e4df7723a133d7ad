package main

import (
	"encoding/hex"
	"fmt"
	"net"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/mxedge/mxedge/cmd/internal/peers"
	"github.com/mxedge/mxedge/internal/labpki"
	"github.com/mxedge/mxedge/proxy/packet"
)

const (
	opSecret     = "eduroam-operator-secret-71c3"
	opAddr       = "127.0.0.2" // the operator servers, apart from the devices on 127.0.0.1
	ownRealm     = "campus.example"
	operatorName = "1" + ownRealm
	eduroamCSI   = `Called-Station-Id = "02-00-00-00-00-aa:eduroam"`
)

// fedLab is the edge between a site (radclient, eapol_test on 127.0.0.1),
// two FreeRADIUS operator servers on 127.0.0.2 and a FreeRADIUS RadSec
// cloud.
type fedLab struct {
	edge     *edgeProc
	ops      [2]*peers.FreeRADIUS
	cloud    *peers.FreeRADIUS
	pki      *labpki.PKI
	extraYML string
}

// operator starts one operator server: PAP visitors, EAP-TLS for
// user@example.org, every Access-Request logged, CUI answered.
func operator(t *testing.T, p *labpki.PKI, cui string) *peers.FreeRADIUS {
	return peers.MustFreeRADIUS(t, peers.FreeRADIUSOptions{
		PKI: p, UDP: true, BindAddress: opAddr, Secret: opSecret, LogAuth: true, CUI: cui,
		Users:   map[string]peers.User{"visitor@example.org": {Password: "roaming"}},
		EAPVLAN: map[string]string{"user@example.org": "77"},
	})
}

func startFedLab(t *testing.T, statusInterval, extra string) *fedLab {
	peers.RequireBin(t, "freeradius")
	peers.RequireBin(t, "radclient")
	p := labPKI(t)
	l := &fedLab{pki: p, extraYML: extra}
	l.ops[0], l.ops[1] = operator(t, p, "cui-a"), operator(t, p, "cui-b")
	l.cloud = peers.MustFreeRADIUS(t, peers.FreeRADIUSOptions{PKI: p, RadSec: true,
		Users: map[string]peers.User{"alice@" + ownRealm: {Password: "wonderland", ReplyMessage: "home"}}})
	fed := fmt.Sprintf(`federation:
  - name: eduroam
    ssids: [eduroam]
    exclude_realms: [%q]
    operator_name: %q
    load_balance: round_robin
    timeout: 1s
    retries: 0
    status_interval: %s
    fticks: true
    country: NL
    auth_servers:
      - address: %s
        secret: %q
      - address: %s
        secret: %q
    acct_servers:
      - address: %s
        secret: %q
`, ownRealm, operatorName, statusInterval, l.ops[0].AuthAddr(), opSecret, l.ops[1].AuthAddr(), opSecret, l.ops[0].AcctAddr(), opSecret)
	l.edge = startEdge(t, edgeConfig{
		Secret: labSecret, Upstreams: []string{l.cloud.RadSecAddr}, PKI: p, Extra: fed + l.extraYML,
		MoreClients: fmt.Sprintf(`    - name: eduroam-operator
      address: %s/32
      secret: %q
      vendor: generic
      site: lab
`, opAddr, opSecret),
	})
	return l
}

// authRecords returns each operator's logged Access-Requests.
func (l *fedLab) authRecords(t *testing.T) [2][]peers.DetailRecord {
	t.Helper()
	var out [2][]peers.DetailRecord
	for i, op := range l.ops {
		recs, err := op.AuthRecords()
		if err != nil {
			t.Fatal(err)
		}
		out[i] = recs
	}
	return out
}

func visitorPAP(user, pass string) []string {
	return []string{`User-Name = "` + user + `"`, `User-Password = "` + pass + `"`, eduroamCSI,
		`Calling-Station-Id = "02-11-22-33-44-55"`, ma}
}

// TestFederationRealPeers drives the real mxedge as a site's eduroam
// proxy: visitors out to two operator servers, home users from them to
// the cloud, excluded and unroutable realms kept home.
func TestFederationRealPeers(t *testing.T) {
	t.Parallel()
	realPeers(t)
	p := labPKI(t)
	sec := radsecSection(p, "")
	// Devices chain to the org CA, so that the lab RadSec CA (cloud.radsec.ca)
	// is the cloud's alone.
	sec = strings.Replace(sec, "client_ca: "+p.RadSecCAFile, "client_ca: "+p.OrgCAFile, 1)
	l := startFedLab(t, "1s", sec)
	e := l.edge
	rsAddr := e.RadSec
	cloudCert := device{Cert: p.RadSecClient.Chain, Key: p.RadSecClient.Key}

	t.Run("status shows routes, pools and CoA targets", func(t *testing.T) {
		out, code := runEdgeCmd(t, "status", "--config", e.cfgPath)
		for _, want := range []string{
			`federation eduroam: +round_robin, own realms ` + ownRealm + `, ssids eduroam`,
			`auth server: +` + l.ops[0].AuthAddr() + ` up`, `auth server: +` + l.ops[1].AuthAddr() + ` up`,
			`coa target: +eduroam-operator 127\.0\.0\.2/32 port 3799 \(Message-Authenticator required, Event-Timestamp checked\)`,
		} {
			if code != 0 || !regexp.MustCompile(want).MatchString(out) {
				t.Fatalf("status (exit %d) lacks %q:\n%s", code, want, out)
			}
		}
	})

	t.Run("round robin with Operator-Name and CUI", func(t *testing.T) {
		const n = 10
		for i := range n {
			res, err := peers.Radclient(ctxFor(t, 10*time.Second), e.Auth, labSecret, "auth", visitorPAP("visitor@example.org", "roaming"))
			if err != nil {
				t.Fatal(err)
			}
			if res.Code != "Access-Accept" {
				t.Fatalf("visitor %d: %s", i, res.Output)
			}
			// radclient prints the octets in hex.
			cui, _ := hex.DecodeString(strings.TrimPrefix(res.Attr("Chargeable-User-Identity"), "0x"))
			if !strings.HasSuffix(string(cui), "-visitor@example.org") {
				t.Fatalf("visitor %d: CUI %q not passed back:\n%s", i, cui, res.Output)
			}
		}
		recs := l.authRecords(t)
		a, b := len(recs[0]), len(recs[1])
		t.Logf("round robin over %d visitors: %d / %d", n, a, b)
		if a+b != n || a-b > 1 || b-a > 1 {
			t.Fatalf("round robin spread %d / %d over %d requests", a, b, n)
		}
		for i, rs := range recs {
			for _, r := range rs {
				if got := r.Get("Operator-Name"); got != operatorName {
					t.Errorf("operator %d got Operator-Name %q, want %q", i, got, operatorName)
				}
				if _, ok := r.Attrs["Chargeable-User-Identity"]; !ok {
					t.Errorf("operator %d got no Chargeable-User-Identity request: %v", i, r.Names)
				}
			}
		}
		if !waitFor(2*time.Second, func() bool { return strings.Contains(e.Log(), "F-TICKS/eduroam/1.0#REALM=example.org#VISCOUNTRY=NL") }) {
			t.Error("no F-Ticks line for the visitors")
		}
	})

	t.Run("EAP-TLS conversation stays on one server", func(t *testing.T) {
		peers.RequireBin(t, "eapol_test")
		for i := range 3 {
			mac := fmt.Sprintf("02:00:00:00:01:%02x", i)
			res, err := peers.EAPOLTest(ctxFor(t, 30*time.Second), e.Auth, labSecret, peers.EAPTLS{
				Identity: "user@example.org", CACert: l.pki.RootFile,
				ClientCert: l.pki.User.Chain, PrivateKey: l.pki.User.Key, CallingStationID: mac,
				Attrs: []string{"30:s:02-00-00-00-00-aa:eduroam"},
			})
			if err != nil {
				t.Fatal(err)
			}
			if !res.Success || res.VLAN() != "77" {
				t.Fatalf("EAP-TLS %d: success=%v VLAN %q\n%s", i, res.Success, res.VLAN(), tailString(res.Output, 30))
			}
			want := strings.ToUpper(strings.ReplaceAll(mac, ":", "-"))
			recs := l.authRecords(t)
			var per [2]int
			for j, rs := range recs {
				for _, r := range rs {
					if strings.EqualFold(r.Get("Calling-Station-Id"), want) {
						per[j]++
					}
				}
			}
			t.Logf("EAP conversation %d: %d rounds on operator A, %d on B (%d challenges)", i, per[0], per[1], res.Challenges)
			if per[0]+per[1] < 2 || (per[0] != 0 && per[1] != 0) {
				t.Fatalf("conversation %d split over the servers: %d / %d", i, per[0], per[1])
			}
		}
	})

	t.Run("visitor accounting reaches the operator's accounting server", func(t *testing.T) {
		before, _ := l.ops[0].CountAccountingRecords()
		for _, st := range []string{"Start", "Stop"} {
			res, err := peers.Radclient(ctxFor(t, 10*time.Second), e.Acct, labSecret, "acct", []string{
				`User-Name = "visitor@example.org"`, `Acct-Status-Type = ` + st, `Acct-Session-Id = "v-1"`, eduroamCSI,
			})
			if err != nil || res.Code != "Accounting-Response" {
				t.Fatalf("accounting %s: %v\n%s", st, err, res.Output)
			}
		}
		recs, err := l.ops[0].AccountingRecords()
		if err != nil || len(recs) != before+2 {
			t.Fatalf("operator recorded %d accounting records, want %d (%v)", len(recs), before+2, err)
		}
		if got := recs[len(recs)-1].Get("Operator-Name"); got != operatorName {
			t.Errorf("accounting Operator-Name %q, want %q", got, operatorName)
		}
		if _, ok := recs[len(recs)-1].Attrs["Chargeable-User-Identity"]; ok {
			t.Error("a CUI request on accounting")
		}
	})

	t.Run("excluded realm never leaves", func(t *testing.T) {
		before := l.authRecords(t)
		res, err := peers.Radclient(ctxFor(t, 10*time.Second), e.Auth, labSecret, "auth", visitorPAP("alice@"+ownRealm, "wonderland"))
		if err != nil || res.Code != "Access-Accept" || res.Attr("Reply-Message") != "home" {
			t.Fatalf("own realm: %v\n%s", err, res.Output)
		}
		after := l.authRecords(t)
		for i := range after {
			if len(after[i]) != len(before[i]) {
				t.Fatalf("operator %d saw the site's own realm", i)
			}
		}
	})

	t.Run("unroutable realm rejected within milliseconds", func(t *testing.T) {
		for _, user := range []string{"bob@foo.invalid", "bob@", "bob", "bob@example..org"} {
			code, reply, d := timedRequest(t, e.Auth, labSecret, user)
			t.Logf("%q: %s in %v (%s)", user, code, d, reply)
			if code != packet.CodeAccessReject {
				t.Fatalf("%q: %s, want Access-Reject", user, code)
			}
			if d > 200*time.Millisecond {
				t.Errorf("%q: reject took %v", user, d)
			}
		}
	})

	t.Run("home user from an operator server reaches the cloud", func(t *testing.T) {
		from := []string{`Packet-Src-IP-Address = ` + opAddr, `Operator-Name = "1elsewhere.example"`}
		res, err := peers.Radclient(ctxFor(t, 10*time.Second), e.Auth, opSecret, "auth",
			append(visitorPAP("alice@"+ownRealm, "wonderland"), from...))
		if err != nil || res.Code != "Access-Accept" || res.Attr("Reply-Message") != "home" {
			t.Fatalf("home user: %v\n%s", err, res.Output)
		}
		if res.Attr("Message-Authenticator") == "" {
			t.Fatalf("home user's answer not signed with Message-Authenticator:\n%s", res.Output)
		}
		// The federation asking about someone else's realm is refused.
		res, err = peers.Radclient(ctxFor(t, 10*time.Second), e.Auth, opSecret, "auth",
			append(visitorPAP("visitor@example.org", "roaming"), from...))
		if err != nil || res.Code != "Access-Reject" {
			t.Fatalf("foreign realm from the operator: %v\n%s", err, res.Output)
		}
		if got := e.metric(t, "mxedge_federation_route_total", `path="home"`); got < 1 {
			t.Errorf("home route counted %v times", got)
		}
	})

	t.Run("visitors from the cloud over RadSec", func(t *testing.T) {
		conn := dialRadSec(t, rsAddr, p.RadSecCAFile, cloudCert)
		before := l.authRecords(t)
		rp := conn.exchange(t, papRequest(t, 11, "visitor@example.org", "roaming", []byte("radsec")))
		if rp.Code != packet.CodeAccessAccept {
			t.Fatalf("visitor from the cloud: %v", rp.Code)
		}
		if cui, _ := rp.Lookup(89); !strings.HasSuffix(string(cui), "-visitor@example.org") {
			t.Fatalf("CUI %q not passed back to the cloud", cui)
		}
		after := l.authRecords(t)
		if len(after[0])+len(after[1]) != len(before[0])+len(before[1])+1 {
			t.Fatal("the cloud's visitor did not reach an operator server")
		}
		// The site's own realm is the cloud's to answer: never sent back
		// to it, nor out to the federation.
		rp = conn.exchange(t, papRequest(t, 12, "alice@"+ownRealm, "wonderland", []byte("radsec")))
		if rp.Code != packet.CodeAccessReject {
			t.Fatalf("own realm from the cloud: %v", rp.Code)
		}
		if got := e.metric(t, "mxedge_federation_route_total", `path="cloud_visitor"`); got != 1 {
			t.Errorf("cloud visitors counted %v, want 1", got)
		}

		// An EAP conversation from the cloud: eapol_test through
		// radsecproxy holding the cloud's certificate.
		peers.RequireBin(t, "eapol_test")
		peers.RequireBin(t, "radsecproxy")
		cloud := accessPoint(t, p, cloudCert, rsAddr)
		res, err := peers.EAPOLTest(ctxFor(t, 30*time.Second), cloud.Addr, cloud.Secret, peers.EAPTLS{
			Identity: "user@example.org", CACert: p.RootFile, ClientCert: p.User.Chain, PrivateKey: p.User.Key,
			CallingStationID: "02:00:00:00:02:01", Attrs: []string{"30:s:02-00-00-00-00-aa:eduroam"},
		})
		if err != nil {
			t.Fatal(err)
		}
		if !res.Success || res.VLAN() != "77" || res.MPPEOK != 1 {
			t.Fatalf("EAP-TLS from the cloud: success=%v VLAN %q MPPE ok=%d\n%s", res.Success, res.VLAN(), res.MPPEOK, tailString(res.Output, 30))
		}
	})

	t.Run("failover when one server stops", func(t *testing.T) {
		l.ops[1].Stop()
		before := l.authRecords(t)
		const n = 6
		for i := range n {
			res, err := peers.Radclient(ctxFor(t, 10*time.Second), e.Auth, labSecret, "auth", visitorPAP("visitor@example.org", "roaming"))
			if err != nil || res.Code != "Access-Accept" {
				t.Fatalf("visitor %d with one server down: %v\n%s", i, err, res.Output)
			}
		}
		after := l.authRecords(t)
		if got := len(after[0]) - len(before[0]); got != n {
			t.Fatalf("operator A answered %d of %d", got, n)
		}
	})

	t.Run("no server up: reject at once", func(t *testing.T) {
		l.ops[0].Stop()
		// The Status-Server probes (1 s) take both out.
		var code packet.Code
		var d time.Duration
		ok := waitFor(8*time.Second, func() bool {
			code, _, d = timedRequest(t, e.Auth, labSecret, "visitor@example.org")
			return code == packet.CodeAccessReject && d < 200*time.Millisecond
		})
		if !ok {
			t.Fatalf("with no server up: %s after %v", code, d)
		}
		t.Logf("no server up: Access-Reject in %v", d)
	})
}

// papRequest encodes a signed PAP Access-Request on the eduroam SSID.
func papRequest(t *testing.T, id uint8, user, pass string, secret []byte) []byte {
	t.Helper()
	auth := packet.RandomAuthenticator()
	b := packet.Append(nil, packet.CodeAccessRequest, id, auth)
	b = packet.AppendMessageAuthenticator(b)
	b, _ = packet.AppendAttr(b, packet.AttrUserName, []byte(user))
	pw, _ := packet.EncryptUserPassword(nil, []byte(pass), secret, auth)
	b, _ = packet.AppendAttr(b, packet.AttrUserPassword, pw)
	b, _ = packet.AppendAttr(b, packet.AttrCalledStationID, []byte("02-00-00-00-00-aa:eduroam"))
	b, _ = packet.AppendAttr(b, packet.AttrCallingStationID, []byte("02-11-22-33-44-66"))
	if err := packet.Sign(b, secret, nil); err != nil {
		t.Fatal(err)
	}
	return b
}

// timedRequest sends a PAP Access-Request on the eduroam SSID from
// 127.0.0.1 and returns the reply's code, Reply-Message and the time from
// send to reply.
func timedRequest(t *testing.T, addr, secret, user string) (packet.Code, string, time.Duration) {
	t.Helper()
	c, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	auth := packet.RandomAuthenticator()
	b := packet.Append(nil, packet.CodeAccessRequest, 7, auth)
	b, _ = packet.AppendAttr(b, packet.AttrUserName, []byte(user))
	pw, _ := packet.EncryptUserPassword(nil, []byte("pw"), []byte(secret), auth)
	b, _ = packet.AppendAttr(b, packet.AttrUserPassword, pw)
	b, _ = packet.AppendAttr(b, packet.AttrCalledStationID, []byte("02-00-00-00-00-aa:eduroam"))
	b = packet.AppendMessageAuthenticator(b)
	if err := packet.Sign(b, []byte(secret), nil); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if _, err := c.Write(b); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(3 * time.Second))
	buf := make([]byte, 4096)
	n, err := c.Read(buf)
	d := time.Since(start)
	if err != nil {
		return 0, "", d
	}
	p, err := packet.Parse(buf[:n])
	if err != nil {
		t.Fatal(err)
	}
	if _, err := packet.VerifyResponse(p, auth, []byte(secret)); err != nil {
		t.Fatalf("reply to %q: %v", user, err)
	}
	msg, _ := p.Lookup(packet.AttrReplyMessage)
	return p.Code, string(msg), d
}
