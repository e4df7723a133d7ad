package labcloud

import (
	"slices"
	"strings"

	"github.com/mxedge/mxedge/cloudlink"
)

// NormalizeMAC accepts aa:bb:cc:dd:ee:ff, aa-bb-…, aabb.ccdd.eeff and
// aabbccddeeff in any case and returns 12 lower-case hex digits.
func NormalizeMAC(s string) (string, bool) {
	var b strings.Builder
	for _, r := range strings.ToLower(strings.TrimSpace(s)) {
		switch {
		case r >= '0' && r <= '9', r >= 'a' && r <= 'f':
			b.WriteRune(r)
		case r == ':' || r == '-' || r == '.':
		default:
			return "", false
		}
	}
	if b.Len() != 12 {
		return "", false
	}
	return b.String(), true
}

// AuthorizeMAB is the lab NAC's decision for a MAB request that came in
// through edgeID: the allow-listed VLAN, or false. Either way it is logged;
// an accept is also served to edges as a cache entry.
func (c *Cloud) AuthorizeMAB(edgeID, mac, userName string) (vlan string, ok bool) {
	vlan, ok = c.opts.MAB[mac]
	if !ok {
		c.Reject(edgeID, mac)
		return "", false
	}
	now := c.opts.Now().UTC()
	c.mu.Lock()
	c.upsertLocked(cloudlink.Entry{
		MAC: mac, AuthType: "mab",
		Identity:      cloudlink.Identity{UserName: userName},
		Authorization: cloudlink.Authorization{VLAN: vlan},
		SiteID:        c.opts.SiteID, LastAuthAt: now,
	})
	c.appendAuthLocked(authLog{Time: now, Edge: edgeID, MAC: mac, Result: "accept", VLAN: vlan})
	c.save()
	c.mu.Unlock()
	c.log.Info("labcloud: MAB accept", "edge", edgeID, "mac", mac, "vlan", vlan)
	return vlan, true
}

// Reject logs a refused authentication (unknown MAC, or a method the lab
// does not serve).
func (c *Cloud) Reject(edgeID, mac string) { c.logAuth(edgeID, mac, "reject", "") }

// Accounting counts an accounting request.
func (c *Cloud) Accounting() {
	c.mu.Lock()
	c.st.Accounting++
	c.mu.Unlock()
}

func (c *Cloud) logAuth(edgeID, mac, result, vlan string) {
	c.mu.Lock()
	c.appendAuthLocked(authLog{Time: c.opts.Now().UTC(), Edge: edgeID, MAC: mac, Result: result, VLAN: vlan})
	c.save()
	c.mu.Unlock()
	c.log.Info("labcloud: auth", "edge", edgeID, "mac", mac, "result", result)
}

func (c *Cloud) appendAuthLocked(a authLog) {
	c.st.Auths = append(c.st.Auths, a)
	if len(c.st.Auths) > maxAuthLog {
		c.st.Auths = c.st.Auths[len(c.st.Auths)-maxAuthLog:]
	}
}

// SetRADIUSClients replaces the RADIUS clients pushed to edges; edges see
// the change at their next config pull (the config's ETag changes).
func (c *Cloud) SetRADIUSClients(cs []cloudlink.RADIUSClient) {
	c.mu.Lock()
	c.opts.RADIUSClients = slices.Clone(cs)
	c.mu.Unlock()
}

// RecordEAPTLS logs an EAP-TLS accept that came in through edgeID and
// serves e (auth type eap-tls, keyed by MAC and certificate identity) to
// edges as a cache entry.
func (c *Cloud) RecordEAPTLS(edgeID string, e cloudlink.Entry) {
	e.AuthType = "eap-tls"
	if e.SiteID == "" {
		e.SiteID = c.opts.SiteID
	}
	if e.LastAuthAt.IsZero() {
		e.LastAuthAt = c.opts.Now().UTC()
	}
	c.mu.Lock()
	c.upsertLocked(e)
	c.appendAuthLocked(authLog{Time: e.LastAuthAt, Edge: edgeID, MAC: e.MAC, Result: "accept",
		VLAN: e.Authorization.VLAN, Method: "eap-tls", Identity: e.Key().Identity})
	c.save()
	c.mu.Unlock()
	c.log.Info("labcloud: EAP-TLS accept", "edge", edgeID, "mac", e.MAC, "identity", e.Key().Identity, "vlan", e.Authorization.VLAN)
}

// NewServerPair issues a key and a server certificate for cn from the lab
// CA, PEM encoded: for the lab's own EAP-TLS server, say.
func (c *Cloud) NewServerPair(cn string) (certPEM, keyPEM []byte, err error) {
	return c.ca.newKeyPair(cn)
}
