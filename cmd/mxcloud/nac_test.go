package main

import (
	"context"
	"log/slog"
	"testing"

	"github.com/mxedge/mxedge/cloudlink/labcloud"
	"github.com/mxedge/mxedge/proxy"
	"github.com/mxedge/mxedge/proxy/packet"
)

func accessRequest(t *testing.T, user, csid string, eap bool) *packet.Packet {
	t.Helper()
	b := packet.Append(nil, packet.CodeAccessRequest, 7, packet.RandomAuthenticator())
	b = packet.AppendMessageAuthenticator(b)
	b, _ = packet.AppendAttr(b, packet.AttrUserName, []byte(user))
	if csid != "" {
		b, _ = packet.AppendAttr(b, packet.AttrCallingStationID, []byte(csid))
	}
	if eap {
		b, _ = packet.AppendAttr(b, packet.AttrEAPMessage, []byte{2, 1, 0, 5, 1})
	}
	b, _ = packet.AppendAttr(b, packet.AttrProxyState, []byte("ps-1"))
	if err := packet.Sign(b, radsecSecret, nil); err != nil {
		t.Fatal(err)
	}
	p, err := packet.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestNAC(t *testing.T) {
	c, err := labcloud.Open(labcloud.Options{Dir: t.TempDir(), MAB: map[string]string{"aabbccddeeff": "41"}})
	if err != nil {
		t.Fatal(err)
	}
	n := &nac{cloud: c, log: slog.New(slog.DiscardHandler)}
	acct := packet.Append(nil, packet.CodeAccountingRequest, 9, [16]byte{})
	acct, _ = packet.AppendAttr(acct, packet.AttrAcctStatusType, []byte{0, 0, 0, 1})
	_ = packet.Sign(acct, radsecSecret, nil)
	acctP, _ := packet.Parse(acct)
	tests := []struct {
		name string
		req  *packet.Packet
		code packet.Code
		vlan string
	}{
		{"allow-listed MAB", accessRequest(t, "aabbccddeeff", "AA-BB-CC-DD-EE-FF", false), packet.CodeAccessAccept, "41"},
		{"MAC in User-Name only", accessRequest(t, "aa:bb:cc:dd:ee:ff", "", false), packet.CodeAccessAccept, "41"},
		{"unknown MAC", accessRequest(t, "001122334455", "00-11-22-33-44-55", false), packet.CodeAccessReject, ""},
		{"EAP", accessRequest(t, "user@example.org", "AA-BB-CC-DD-EE-FF", true), packet.CodeAccessReject, ""},
		{"accounting", acctP, packet.CodeAccountingResponse, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, outcome := n.ServeRADIUS(context.Background(), &proxy.Request{Packet: tt.req, Client: &proxy.Client{Name: "edge-1"}})
			if outcome != proxy.OutcomeAnswered {
				t.Fatalf("outcome %s", outcome)
			}
			p, err := packet.Parse(b)
			if err != nil {
				t.Fatal(err)
			}
			hasMA, err := packet.VerifyResponse(p, tt.req.Authenticator, radsecSecret)
			if err != nil {
				t.Fatalf("reply does not verify: %v", err)
			}
			if p.Code != tt.code || p.ID != tt.req.ID || hasMA != (tt.code != packet.CodeAccountingResponse) {
				t.Errorf("reply %s id %d MA %v", p.Code, p.ID, hasMA)
			}
			if p.Code != packet.CodeAccountingResponse && len(p.Attrs) > 0 && p.Attrs[0].Type != packet.AttrMessageAuthenticator {
				t.Error("Message-Authenticator is not first")
			}
			v, _ := p.Lookup(packet.AttrTunnelPrivateGroupID)
			if string(v) != tt.vlan {
				t.Errorf("VLAN %q, want %q", v, tt.vlan)
			}
			if ps, _ := p.Lookup(packet.AttrProxyState); tt.code != packet.CodeAccountingResponse && string(ps) != "ps-1" {
				t.Errorf("Proxy-State %q not copied", ps)
			}
		})
	}
	st := c.Stats()
	if st.CacheEntries != 1 || st.Accepts != 2 || st.Auths != 4 || st.Accounting != 1 {
		t.Errorf("stats %+v", st)
	}
}
