package edge

import (
	"context"
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mxedge/mxedge/edge/config"
	"github.com/mxedge/mxedge/proxy"
	"github.com/mxedge/mxedge/proxy/packet"
	"github.com/mxedge/mxedge/proxy/packet/packettest"
)

var fedNASSecret = []byte("nas-secret-0123456789")

func fedRequest(t *testing.T, src string, code packet.Code, attrs map[uint8]string) *proxy.Request {
	t.Helper()
	var auth [16]byte
	if code == packet.CodeAccessRequest {
		auth = packet.RandomAuthenticator()
	}
	b := packet.AppendMessageAuthenticator(packet.Append(nil, code, 7, auth))
	for _, typ := range []uint8{packet.AttrUserName, packet.AttrCalledStationID, packet.AttrCallingStationID, packet.AttrEAPMessage} {
		if v, ok := attrs[typ]; ok {
			b, _ = packet.AppendAttr(b, typ, []byte(v))
		}
	}
	if err := packet.Sign(b, fedNASSecret, nil); err != nil {
		t.Fatal(err)
	}
	p, err := packet.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	return &proxy.Request{Packet: p, HasMessageAuthenticator: true, Source: netip.MustParseAddrPort(src),
		Client: &proxy.Client{Name: "nas", Secret: fedNASSecret}}
}

// fedUpstream is an operator server on loopback that accepts everything
// and keeps the requests it saw.
func fedUpstream(t *testing.T, secret string) (string, chan *packet.Packet) {
	t.Helper()
	seen := make(chan *packet.Packet, 16)
	addr := packettest.Serve(t, "127.0.0.1", func(p *packet.Packet) []byte {
		if p.Code != packet.CodeStatusServer {
			seen <- p
		}
		b := packet.AppendMessageAuthenticator(packet.Append(nil, packet.CodeAccessAccept, p.ID, p.Authenticator))
		b, _ = packet.AppendAttr(b, 89, []byte("cui-from-idp"))
		for _, a := range p.Attrs {
			if a.Type == packet.AttrProxyState {
				b, _ = packet.AppendAttr(b, a.Type, a.Value)
			}
		}
		ra := p.Authenticator
		packet.Sign(b, []byte(secret), &ra)
		return b
	})
	return addr.String(), seen
}

func newTestFederation(t *testing.T, server string, logs *strings.Builder) *Federation {
	t.Helper()
	cfg := &config.Config{Federation: []config.Federation{{
		Name: "eduroam", SSIDs: []string{"eduroam"}, ExcludeRealms: []string{"example.edu", "*.example.edu"},
		OperatorName: "1example.edu", LoadBalance: "round_robin", FTicks: true, Country: "NL",
		Timeout: time.Second, Retries: 1,
		AuthServers: []config.Server{{Address: server, Secret: "fed-secret-0123456789"}},
	}}}
	next := proxy.HandlerFunc(func(_ context.Context, req *proxy.Request) ([]byte, proxy.Outcome) {
		b, _ := proxy.Reply(req, packet.CodeAccessAccept, func(b []byte) ([]byte, error) {
			return packet.AppendAttr(b, packet.AttrReplyMessage, []byte("router"))
		})
		return b, proxy.OutcomeAnswered
	})
	log := slog.New(slog.NewTextHandler(logs, nil))
	f, err := NewFederation(cfg, next, log, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Close)
	return f
}

func TestFederationClassify(t *testing.T) {
	f := newTestFederation(t, "192.0.2.10:1812", &strings.Builder{})
	const dev, op = "10.0.0.5:4000", "192.0.2.10:1812"
	onSSID := "00-11-22-33-44-55:eduroam"
	for _, tc := range []struct {
		name   string
		src    string
		user   string
		called string
		kind   string
		reason string
	}{
		{"visitor on eduroam", dev, "anon@other.org", onSSID, fedVisitor, "foreign_realm"},
		{"own realm on eduroam", dev, "anon@example.edu", onSSID, fedPass, "own_realm"},
		{"own subrealm", dev, "anon@staff.example.edu", onSSID, fedPass, "own_realm"},
		{"other SSID", dev, "anon@other.org", "00-11-22-33-44-55:corp", fedPass, ""},
		{"wired, no SSID", dev, "anon@other.org", "", fedPass, ""},
		{"no realm on eduroam", dev, "anon", onSSID, fedReject, "no_realm"},
		{"malformed on eduroam", dev, "a@b@other.org", onSSID, fedReject, "malformed_nai_multiple_at"},
		{"3GPP realm", dev, "0123@wlan.mnc001.mcc001.3gppnetwork.org", onSSID, fedReject, "unroutable_realm"},
		{"home user from operator", op, "alice@example.edu", "", fedHome, "own_realm"},
		{"foreign from operator", op, "bob@other.org", "", fedReject, "not_our_realm"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			attrs := map[uint8]string{packet.AttrUserName: tc.user}
			if tc.called != "" {
				attrs[packet.AttrCalledStationID] = tc.called
			}
			kind, _, reason := f.classify(fedRequest(t, tc.src, packet.CodeAccessRequest, attrs))
			if kind != tc.kind || reason != tc.reason {
				t.Errorf("classify = %q %q, want %q %q", kind, reason, tc.kind, tc.reason)
			}
		})
	}
}

func TestFederationVisitorOnTheWire(t *testing.T) {
	addr, seen := fedUpstream(t, "fed-secret-0123456789")
	var logs strings.Builder
	f := newTestFederation(t, addr, &logs)
	req := fedRequest(t, "10.0.0.5:4000", packet.CodeAccessRequest, map[uint8]string{
		packet.AttrUserName: "anon@other.org", packet.AttrCalledStationID: "00-11-22-33-44-55:eduroam",
		packet.AttrCallingStationID: "02-00-00-00-00-01",
	})
	reply, outcome := f.ServeRADIUS(context.Background(), req)
	if outcome != proxy.OutcomeAnswered {
		t.Fatalf("outcome %s", outcome)
	}
	up := <-seen
	if v, _ := up.Lookup(packet.AttrOperatorName); string(v) != "1example.edu" {
		t.Errorf("Operator-Name %q", v)
	}
	if v, _ := up.Lookup(89); string(v) != "\x00" {
		t.Errorf("CUI request %q, want one NUL", v)
	}
	if up.Attrs[0].Type != packet.AttrMessageAuthenticator {
		t.Error("request to the operator lacks a leading Message-Authenticator")
	}
	rp, _ := packet.Parse(reply)
	if _, err := packet.VerifyResponse(rp, req.Packet.Authenticator, fedNASSecret); err != nil || rp.Code != packet.CodeAccessAccept {
		t.Fatalf("reply %s: %v", rp.Code, err)
	}
	if v, _ := rp.Lookup(89); string(v) != "cui-from-idp" {
		t.Errorf("CUI passed back %q", v)
	}
	if !strings.Contains(logs.String(), "F-TICKS/eduroam/1.0#REALM=other.org#VISCOUNTRY=NL#VISINST=1example.edu#CSI=02-00-00-") ||
		!strings.Contains(logs.String(), "#RESULT=OK#") {
		t.Errorf("no F-Ticks line in %s", logs.String())
	}
	if st := f.Status(); len(st) != 1 || st[0].AuthServers[0].Address != addr {
		t.Errorf("status %+v", st)
	}
}

func TestFederationRejectsAtOnce(t *testing.T) {
	f := newTestFederation(t, "192.0.2.10:1812", &strings.Builder{})
	req := fedRequest(t, "10.0.0.5:4000", packet.CodeAccessRequest, map[uint8]string{
		packet.AttrUserName: "anon", packet.AttrCalledStationID: "00-11-22-33-44-55:eduroam",
		packet.AttrEAPMessage: "\x02\x09\x00\x09\x01anon",
	})
	reply, _ := f.ServeRADIUS(context.Background(), req)
	rp, err := packet.Parse(reply)
	if err != nil || rp.Code != packet.CodeAccessReject {
		t.Fatalf("reply %v %v", rp, err)
	}
	if eap, _ := rp.Lookup(packet.AttrEAPMessage); string(eap) != "\x04\x09\x00\x04" {
		t.Errorf("EAP %x, want EAP-Failure with the request's id", eap)
	}
	if rp.Attrs[0].Type != packet.AttrMessageAuthenticator {
		t.Error("reject without leading Message-Authenticator")
	}
}

func TestFTicksHashesCSI(t *testing.T) {
	got := FTicks("F-TICKS/eduroam/1.0", "other.org", "NL", "1example.edu", "AA:BB:CC:DD:EE:FF", "FAIL")
	if !strings.HasPrefix(got, "F-TICKS/eduroam/1.0#REALM=other.org#VISCOUNTRY=NL#VISINST=1example.edu#CSI=aa-bb-cc-") ||
		strings.Contains(got, "dd-ee-ff") || !strings.HasSuffix(got, "#RESULT=FAIL#") {
		t.Errorf("%s", got)
	}
}

// TestFederationServeCloud: the cloud's visitors go out to the federation;
// what is not a visitor's is rejected, never handed back to the router
// (and so to the cloud it came from).
func TestFederationServeCloud(t *testing.T) {
	addr, seen := fedUpstream(t, "fed-secret-0123456789")
	f := newTestFederation(t, addr, &strings.Builder{})
	onSSID := "00-11-22-33-44-55:eduroam"
	for _, tc := range []struct {
		name, user, called string
		want               packet.Code
		out                bool // reached the operator server
		reason             string
	}{
		{"visitor", "anon@other.org", onSSID, packet.CodeAccessAccept, true, ""},
		{"own realm", "alice@example.edu", onSSID, packet.CodeAccessReject, false, "federation: not_a_visitor"},
		{"no realm", "anon", onSSID, packet.CodeAccessReject, false, "federation: no_realm"},
		{"other SSID", "anon@other.org", "00-11-22-33-44-55:corp", packet.CodeAccessReject, false, "federation: no_route"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := fedRequest(t, "198.51.100.7:40000", packet.CodeAccessRequest, map[uint8]string{
				packet.AttrUserName: tc.user, packet.AttrCalledStationID: tc.called,
			})
			reply, _ := f.ServeCloud(context.Background(), req)
			rp, err := packet.Parse(reply)
			if err != nil || rp.Code != tc.want {
				t.Fatalf("reply %v %v, want %s", rp, err, tc.want)
			}
			if msg, _ := rp.Lookup(packet.AttrReplyMessage); tc.reason != "" && string(msg) != tc.reason {
				t.Errorf("Reply-Message %q, want %q", msg, tc.reason)
			}
			select {
			case <-seen:
				if !tc.out {
					t.Error("sent to the operator server")
				}
			default:
				if tc.out {
					t.Error("never reached the operator server")
				}
			}
		})
	}
}
