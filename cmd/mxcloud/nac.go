package main

import (
	"context"
	"log/slog"

	"github.com/mxedge/mxedge/cloudlink/labcloud"
	"github.com/mxedge/mxedge/proxy"
	"github.com/mxedge/mxedge/proxy/packet"
)

// radsecSecret is the shared secret inside RadSec (RFC 6614 §2.3).
var radsecSecret = []byte("radsec")

// nac is the lab NAC's RADIUS side: MAB decided by the lab cloud,
// accounting acknowledged, anything else (EAP, passwords) rejected. The
// edge's id is the CN of its RadSec client certificate.
type nac struct {
	cloud *labcloud.Cloud
	log   *slog.Logger
}

func (n *nac) ServeRADIUS(_ context.Context, req *proxy.Request) ([]byte, proxy.Outcome) {
	p := req.Packet
	edgeID := ""
	if req.Client != nil {
		edgeID = req.Client.Name
	}
	switch p.Code {
	case packet.CodeAccountingRequest:
		n.cloud.Accounting()
		return n.reply(p, packet.CodeAccountingResponse, "")
	case packet.CodeAccessRequest:
	default:
		return nil, proxy.OutcomeDropped
	}
	user, _ := p.Lookup(packet.AttrUserName)
	csid, _ := p.Lookup(packet.AttrCallingStationID)
	mac, ok := labcloud.NormalizeMAC(string(csid))
	if !ok {
		mac, ok = labcloud.NormalizeMAC(string(user))
	}
	if _, eap := p.Lookup(packet.AttrEAPMessage); !ok || eap {
		n.cloud.Reject(edgeID, mac)
		return n.reply(p, packet.CodeAccessReject, "")
	}
	vlan, ok := n.cloud.AuthorizeMAB(edgeID, mac, string(user))
	if !ok {
		return n.reply(p, packet.CodeAccessReject, "")
	}
	return n.reply(p, packet.CodeAccessAccept, vlan)
}

// reply encodes a signed response: Message-Authenticator first on access
// replies, Proxy-State copied, the RFC 3580 VLAN trio when vlan is set.
func (n *nac) reply(req *packet.Packet, code packet.Code, vlan string) ([]byte, proxy.Outcome) {
	b := packet.Append(make([]byte, 0, 128), code, req.ID, req.Authenticator)
	if code != packet.CodeAccountingResponse {
		b = packet.AppendMessageAuthenticator(b)
	}
	var err error
	if vlan != "" {
		if b, err = packet.AppendAttr(b, packet.AttrTunnelType, []byte{0, 0, 0, 13}); err == nil { // VLAN
			if b, err = packet.AppendAttr(b, packet.AttrTunnelMediumType, []byte{0, 0, 0, 6}); err == nil { // IEEE-802
				b, err = packet.AppendAttr(b, packet.AttrTunnelPrivateGroupID, []byte(vlan))
			}
		}
	}
	for _, a := range req.Attrs {
		if err == nil && a.Type == packet.AttrProxyState {
			b, err = packet.AppendAttr(b, packet.AttrProxyState, a.Value)
		}
	}
	if err == nil {
		auth := req.Authenticator
		err = packet.Sign(b, radsecSecret, &auth)
	}
	if err != nil {
		n.log.Error("mxcloud: encoding reply", "err", err)
		return nil, proxy.OutcomeDropped
	}
	return b, proxy.OutcomeAnswered
}
