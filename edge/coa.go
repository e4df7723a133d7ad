package edge

// The CoA/Disconnect relay's view of the device table: the cloud names a
// device by NAS-IP-Address, NAS-IPv6-Address or NAS-Identifier, and
// radius.clients says where its CoA port is and how it signs.

import (
	"net/netip"

	"github.com/mxedge/mxedge/edge/config"
	"github.com/mxedge/mxedge/proxy"
	"github.com/mxedge/mxedge/proxy/coa"
)

// newCoARelay builds the relay the RadSec listener hands the cloud's CoA
// and Disconnect requests to.
func (a *App) newCoARelay() (*coa.Relay, error) {
	var targets []string
	for _, t := range a.coaTargets() {
		targets = append(targets, t.Name)
	}
	return coa.New(coa.Config{
		Directory:  coaDirectory{a},
		Logger:     a.log.With("component", "coa"),
		Registerer: a.reg,
		Targets:    targets,
	})
}

// coaDirectory finds devices in the running client table and their CoA
// settings in the running configuration (file and cloud merged).
type coaDirectory struct{ a *App }

func (d coaDirectory) ByAddr(ip netip.Addr) (coa.Target, bool) {
	c := d.a.clients.Load().Lookup(ip)
	if c == nil {
		return coa.Target{}, false
	}
	return coaTarget(d.a.cfg.Load(), c, ip)
}

func (d coaDirectory) ByName(name string) (coa.Target, bool) {
	for _, c := range d.a.clients.Load().Clients() {
		if c.Name == name && c.Prefix.IsSingleIP() {
			return coaTarget(d.a.cfg.Load(), c, c.Prefix.Addr())
		}
	}
	return coa.Target{}, false
}

// coaTarget is client c at ip as a CoA target, with the settings of its
// radius.clients entry; a client with no entry (the watchdog's self-check)
// is none.
func coaTarget(cfg *config.Config, c *proxy.Client, ip netip.Addr) (coa.Target, bool) {
	for _, cc := range cfg.RADIUS.Clients {
		if cc.Name != c.Name || cc.Address != c.Prefix {
			continue
		}
		port := cc.CoAPort
		if port == 0 {
			port = 3799
		}
		return coa.Target{
			Name: c.Name, Addr: netip.AddrPortFrom(ip, uint16(port)), Secret: c.Secret,
			RequireMessageAuthenticator: cc.CoARequireMessageAuthenticator,
			IgnoreEventTimestamp:        cc.CoADisableEventTimestampCheck,
		}, true
	}
	return coa.Target{}, false
}

// CoATargetStatus is one device the cloud's CoA and Disconnect can reach,
// for `mxedge status`.
type CoATargetStatus struct {
	Name                        string `json:"name"`
	Address                     string `json:"address"` // the client's prefix
	Port                        int    `json:"coa_port"`
	RequireMessageAuthenticator bool   `json:"require_message_authenticator"`
	EventTimestampCheck         bool   `json:"event_timestamp_check"`
}

// coaTargets lists radius.clients as CoA targets.
func (a *App) coaTargets() []CoATargetStatus {
	cfg := a.cfg.Load()
	if cfg == nil {
		return nil
	}
	out := make([]CoATargetStatus, 0, len(cfg.RADIUS.Clients))
	for _, c := range cfg.RADIUS.Clients {
		out = append(out, CoATargetStatus{Name: c.Name, Address: c.Address.String(), Port: c.CoAPort,
			RequireMessageAuthenticator: c.CoARequireMessageAuthenticator, EventTimestampCheck: !c.CoADisableEventTimestampCheck})
	}
	return out
}
