package labnac

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"strings"

	"github.com/mxedge/mxedge/cache"
	"github.com/mxedge/mxedge/cloudlink"
	"github.com/mxedge/mxedge/cloudlink/labcloud"
	localnac "github.com/mxedge/mxedge/edge/nac"
	"github.com/mxedge/mxedge/edge/nac/eaptls"
	"github.com/mxedge/mxedge/proxy"
	"github.com/mxedge/mxedge/proxy/packet"
)

// radsecSecret is the shared secret inside RadSec (RFC 6614 §2.3).
var radsecSecret = []byte("radsec")

// radsecClient signs the lab NAC's answers with radsecSecret.
var radsecClient = &proxy.Client{Name: "radsec", Secret: radsecSecret}

// eapCN is the subject of the EAP server certificate the lab issues itself
// when --eap-cert is not given.
const eapCN = "mxcloud-nac"

// NAC is the lab NAC's RADIUS side: MAB decided by the lab cloud's
// allow-list, EAP-TLS by the edge's own authenticator (edge/nac) against
// the org CA when one is configured, accounting acknowledged, anything
// else (passwords, EAP without an org CA) rejected. The edge's id is the
// CN of its RadSec client certificate.
type NAC struct {
	cloud *labcloud.Cloud
	log   *slog.Logger
	eap   *localnac.Authenticator // nil: EAP is rejected
}

// Options configure the lab's EAP-TLS; they are mxcloud serve's --eap-*
// flags, and their errors name those flags.
type Options struct {
	Cert, Key string // EAP server certificate and key files (PEM); both empty: issued by the lab CA
	VLANs     string // ID=VLAN,...: VLAN by certificate identity
}

// Register binds o to --eap-cert, --eap-key and --eap-vlan on fs.
func (o *Options) Register(fs *flag.FlagSet) {
	fs.StringVar(&o.Cert, "eap-cert", "", "EAP-TLS server certificate (PEM) of the lab NAC (default: issued by the lab CA)")
	fs.StringVar(&o.Key, "eap-key", "", "key of --eap-cert (PEM)")
	fs.StringVar(&o.VLANs, "eap-vlan", "", "EAP-TLS VLAN by certificate identity (CN, else SAN): ID=VLAN,...; others get --default-dot1x-vlan")
}

// New builds the lab NAC over cl's allow-list. EAP-TLS is served when
// orgCA is set: client certificates must chain to it (and pass its CRLs);
// those not listed in o.VLANs get dot1xVLAN. Close flushes what it queued.
func New(cl *labcloud.Cloud, log *slog.Logger, o Options, orgCA *cloudlink.OrgCA, dot1xVLAN string) (*NAC, error) {
	n := &NAC{cloud: cl, log: log}
	if orgCA == nil {
		if o.Cert != "" || o.Key != "" || o.VLANs != "" {
			return nil, errors.New("--eap-cert, --eap-key and --eap-vlan need --org-ca")
		}
		return n, nil
	}
	vlans, err := parseEAPVLANs(o.VLANs)
	if err != nil {
		return nil, err
	}
	var crls [][]byte
	for _, c := range orgCA.CRLs {
		crls = append(crls, []byte(c))
	}
	trust, err := eaptls.ParseTrust([]byte(orgCA.Certificates), crls...)
	if err != nil {
		return nil, fmt.Errorf("--org-ca/--org-crl: %w", err)
	}
	cert, err := eapCertificate(cl, o)
	if err != nil {
		return nil, err
	}
	srv, err := eaptls.New(eaptls.Config{
		Certificate: func() (*tls.Certificate, error) { return cert, nil },
		Trust:       trust,
		Logger:      log.With("component", "eap-tls"),
	})
	if err != nil {
		return nil, err
	}
	n.eap, err = localnac.New(localnac.Config{
		EAP:              srv,
		Store:            &labStore{cloud: cl, vlans: vlans, log: log},
		DefaultDot1XVLAN: dot1xVLAN,
		// The cloud's States must not look like an edge's own: an edge in
		// front of this NAC keeps conversations with local States at home.
		Sessions: eaptls.NewTable(eaptls.TableConfig{StatePrefix: "mxcloud-lab:"}),
		Logger:   log.With("component", "nac"),
	})
	if err != nil {
		return nil, err
	}
	return n, nil
}

// eapCertificate is the EAP server's certificate: o's files, else one the
// lab CA issues for eapCN.
func eapCertificate(cl *labcloud.Cloud, o Options) (*tls.Certificate, error) {
	var certPEM, keyPEM []byte
	var err error
	switch {
	case o.Cert == "" && o.Key == "":
		if certPEM, keyPEM, err = cl.NewServerPair(eapCN); err != nil {
			return nil, err
		}
	case o.Cert == "" || o.Key == "":
		return nil, errors.New("--eap-cert and --eap-key go together")
	default:
		if certPEM, err = os.ReadFile(o.Cert); err != nil {
			return nil, fmt.Errorf("--eap-cert: %w", err)
		}
		if keyPEM, err = os.ReadFile(o.Key); err != nil {
			return nil, fmt.Errorf("--eap-key: %w", err)
		}
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("EAP server certificate: %w", err)
	}
	return &cert, nil
}

// parseEAPVLANs reads ID=VLAN items separated by commas.
func parseEAPVLANs(s string) (map[string]string, error) {
	out := map[string]string{}
	for _, item := range strings.Split(s, ",") {
		if item = strings.TrimSpace(item); item == "" {
			continue
		}
		id, vlan, ok := strings.Cut(item, "=")
		if !ok || id == "" || vlan == "" {
			return nil, fmt.Errorf("--eap-vlan item %q: want ID=VLAN", item)
		}
		out[id] = vlan
	}
	return out, nil
}

// Close flushes the EAP side's queued events (which record accepts).
func (n *NAC) Close(ctx context.Context) {
	if n.eap != nil {
		_ = n.eap.Close(ctx)
	}
}

// ServeRADIUS answers one request from an edge's RadSec connection; it is
// the proxy.Handler behind mxcloud's RadSec server.
func (n *NAC) ServeRADIUS(ctx context.Context, req *proxy.Request) ([]byte, proxy.Outcome) {
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
	_, eap := p.Lookup(packet.AttrEAPMessage)
	if eap && n.eap != nil && req.Client != nil {
		// The authenticator answers like the edge's local NAC does; to the
		// edge it is the cloud's answer.
		b, outcome := n.eap.ServeRADIUS(ctx, req)
		if outcome == proxy.OutcomeLocal {
			outcome = proxy.OutcomeAnswered
		}
		return b, outcome
	}
	if !ok {
		mac, ok = labcloud.NormalizeMAC(string(user))
	}
	if !ok || eap {
		n.cloud.Reject(edgeID, mac)
		return n.reply(p, packet.CodeAccessReject, "")
	}
	vlan, ok := n.cloud.AuthorizeMAB(edgeID, mac, string(user))
	if !ok {
		return n.reply(p, packet.CodeAccessReject, "")
	}
	// The role in the attribute the asking device's vendor understands,
	// as the edge names it (docs/cloud-api.md).
	vendor, _ := edgeClient(p)
	return n.reply(p, packet.CodeAccessAccept, vlan, labcloud.RoleAttribute(vendor, labcloud.MABRole))
}

// edgeClient reads the edge's vendor-specific attributes: the vendor and
// name of the configured client the request came from ("" when absent).
func edgeClient(p *packet.Packet) (vendor, name string) {
	var vsas []packet.VSA
	for _, a := range p.Attrs {
		if a.Type == packet.AttrVendorSpecific {
			vsas, _ = packet.ParseVSA(a.Value, vsas)
		}
	}
	for _, v := range vsas {
		if v.Vendor != proxy.EdgeVendorID {
			continue
		}
		switch v.Type {
		case proxy.EdgeAttrVendor:
			vendor = string(v.Value)
		case proxy.EdgeAttrClientName:
			name = string(v.Value)
		}
	}
	return vendor, name
}

// reply answers req through proxy.Reply (Message-Authenticator first,
// Proxy-State copied, signed) with the extra attributes, then the RFC 3580
// VLAN trio when vlan is set.
// Inside RadSec the secret is always "radsec", whoever the client is.
func (n *NAC) reply(req *packet.Packet, code packet.Code, vlan string, extra ...cloudlink.Attribute) ([]byte, proxy.Outcome) {
	b, err := proxy.Reply(&proxy.Request{Packet: req, Client: radsecClient}, code, func(b []byte) ([]byte, error) {
		var err error
		for _, a := range extra {
			if a.VendorID != 0 {
				b, err = packet.AppendVSA(b, a.VendorID, a.VendorType, []byte(a.Value))
			} else {
				b, err = packet.AppendAttr(b, a.Type, []byte(a.Value))
			}
			if err != nil {
				return b, err
			}
		}
		if vlan == "" {
			return b, nil
		}
		if b, err = packet.AppendAttr(b, packet.AttrTunnelType, []byte{0, 0, 0, 13}); err != nil { // VLAN
			return b, err
		}
		if b, err = packet.AppendAttr(b, packet.AttrTunnelMediumType, []byte{0, 0, 0, 6}); err != nil { // IEEE-802
			return b, err
		}
		return packet.AppendAttr(b, packet.AttrTunnelPrivateGroupID, []byte(vlan))
	})
	if err != nil {
		n.log.Error("mxcloud: encoding reply", "err", err)
		return nil, proxy.OutcomeDropped
	}
	return b, proxy.OutcomeAnswered
}

// labStore is the lab's policy behind the EAP-TLS authenticator: a
// certificate identity listed in --eap-vlan gets its VLAN, any other
// certificate the org CA accepts gets the default 802.1X VLAN. The
// authenticator's events are how accepts reach the lab's auth log and the
// cache it serves to edges.
type labStore struct {
	cloud *labcloud.Cloud
	vlans map[string]string
	log   *slog.Logger
}

func (s *labStore) Lookup(mac, identity string) (cache.Entry, bool, error) {
	vlan, ok := s.vlans[identity]
	if !ok {
		return cache.Entry{}, false, nil
	}
	return cache.Entry{MAC: mac, AuthType: cache.AuthEAPTLS, Identity: cache.Identity{CN: identity},
		Authorization: cache.Authorization{VLAN: vlan}}, true, nil
}

func (s *labStore) AppendEvent(ev cache.Event) error {
	f := ev.Fields
	if f["auth_type"] != cache.AuthEAPTLS {
		return nil
	}
	edgeID := f["nas"]
	switch ev.Type {
	case localnac.EventDenied:
		s.cloud.Reject(edgeID, ev.MAC)
	case localnac.EventAllowed:
		mac, ok := labcloud.NormalizeMAC(ev.MAC)
		if !ok || ev.Identity == "" {
			// Nothing to key a cache entry on; the accept is still logged.
			s.log.Info("labcloud: EAP-TLS accept not cached (no MAC or identity)", "edge", edgeID, "mac", ev.MAC)
			return nil
		}
		id := cloudlink.Identity{CN: f["cert_cn"], Serial: f["cert_serial"], Issuer: f["cert_issuer"]}
		if id.CN == "" {
			id.UserName = ev.Identity // keeps the edge's key (SAN-based) for the entry
		}
		s.cloud.RecordEAPTLS(edgeID, cloudlink.Entry{MAC: mac, Identity: id,
			Authorization: cloudlink.Authorization{VLAN: f["vlan"]}, LastAuthAt: ev.Time.UTC()})
	}
	return nil
}

// ClientsFlag collects --client NAME=ADDRESS:SECRET: the RADIUS clients the
// lab cloud pushes to edges. The secret is everything after the first colon
// that follows the address, so an IPv6 address needs its prefix length
// (2001:db8::/32:secret) or brackets ([2001:db8::1]:secret).
type ClientsFlag []cloudlink.RADIUSClient

// String is the flag.Value form: NAME=ADDRESS,... (secrets left out).
func (c *ClientsFlag) String() string {
	var names []string
	for _, x := range *c {
		names = append(names, x.Name+"="+x.Address)
	}
	return strings.Join(names, ",")
}

// Set adds one client; every client must sign with Message-Authenticator.
func (c *ClientsFlag) Set(s string) error {
	name, rest, ok := strings.Cut(s, "=")
	if !ok || name == "" {
		return fmt.Errorf("%q: want NAME=IP-or-CIDR:SECRET", s)
	}
	var addr, secret string
	switch {
	case strings.HasPrefix(rest, "["):
		a, sec, ok := strings.Cut(rest[1:], "]:")
		if !ok {
			return fmt.Errorf("%q: want NAME=[IPv6]:SECRET", s)
		}
		addr, secret = a, sec
	case strings.Contains(rest, "/"):
		slash := strings.Index(rest, "/")
		colon := strings.Index(rest[slash:], ":")
		if colon < 0 {
			return fmt.Errorf("%q: no secret", s)
		}
		addr, secret = rest[:slash+colon], rest[slash+colon+1:]
	default:
		i := strings.Index(rest, ":")
		if i < 0 {
			return fmt.Errorf("%q: no secret", s)
		}
		addr, secret = rest[:i], rest[i+1:]
	}
	if _, err := netip.ParsePrefix(addr); err != nil {
		if _, err := netip.ParseAddr(addr); err != nil {
			return fmt.Errorf("%q: %q is not an IP or CIDR", s, addr)
		}
	}
	if secret == "" {
		return fmt.Errorf("%q: empty secret", s)
	}
	*c = append(*c, cloudlink.RADIUSClient{Name: name, Address: addr, Secret: secret, RequireMessageAuthenticator: true})
	return nil
}
