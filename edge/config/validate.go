package config

import (
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/mxedge/mxedge/proxy/realm"
)

// minSecretLen is where a warning starts: shorter shared secrets fall to
// offline guessing from one captured packet.
const minSecretLen = 16

// minLocalSessionTimeout keeps devices let in locally from coming back
// every few seconds: re-authentication costs a full EAP-TLS handshake.
const minLocalSessionTimeout = time.Minute

// minAccountingStore is the fewest accounting records worth holding for
// replay: a few minutes of one busy switch.
const minAccountingStore = 1000

// Vendors are the values radius.clients[].vendor takes.
var Vendors = []string{"cisco", "aruba", "juniper", "hpe", "paloalto", "generic"}

// validate checks values that decoded, and fills derived defaults
// (client names, ports of cloud servers).
func (c *Config) validate(p *problems) {
	if !filepath.IsAbs(c.StateDir) {
		p.add("state_dir", strconv.Quote(c.StateDir)+" is not an absolute path")
	}
	oneOf(p, "log.format", c.Log.Format, "text", "json")
	c.validateMetrics(p)
	c.RADIUS.validate(p)
	c.RadSec.validate(p)
	c.Cloud.validate(p)
	c.Survivability.validate(p)
	// The local NAC must answer before the cloud request gives up, or the
	// NAS has had neither answer. The default yields to a cloud timeout
	// the file shortened; a fallback_after the file set must fit.
	s, to := &c.Survivability, c.Cloud.RadSec.Timeout
	if to > 0 && s.FallbackAfter >= to && !c.local["survivability.fallback_after"] {
		s.FallbackAfter = to / 2
	}
	if fa := s.FallbackAfter; fa > 0 && to > 0 && fa >= to {
		p.add("survivability.fallback_after", fmt.Sprintf("%s is not shorter than cloud.radsec.timeout %s: the local answer must come before the cloud request times out", fa, to))
	}

	names := map[string]int{}
	for i := range c.Federation {
		key := fmt.Sprintf("federation[%d]", i)
		c.Federation[i].validate(p, key)
		if n := c.Federation[i].Name; n != "" {
			if j, dup := names[n]; dup {
				p.add(key+".name", fmt.Sprintf("%q is already the name of federation[%d]", n, j))
			}
			names[n] = i
		}
	}
}

// validateMetrics checks the metrics listener and the console on it.
func (c *Config) validateMetrics(p *problems) {
	m := &c.Metrics
	if m.Listen != "" {
		listenAddr(p, "metrics.listen", m.Listen)
	}
	if m.TokenFile != "" && !filepath.IsAbs(m.TokenFile) {
		p.add("metrics.token_file", strconv.Quote(m.TokenFile)+" is not an absolute path")
	}
	if (m.TLSCert == "") != (m.TLSKey == "") {
		p.add("metrics.tls_cert", "metrics.tls_cert and metrics.tls_key must be set together")
	} else if m.HTTPS {
		if cert, key := c.MetricsTLS(); cert == "" || key == "" {
			p.add("metrics.https", "needs metrics.tls_cert and metrics.tls_key, or radsec.cert and radsec.key")
		}
	}
	if m.Console && m.Listen != "" && !m.HTTPS && !IsLoopbackListen(m.Listen) {
		p.warn("metrics.https", "false while metrics.listen is off loopback: the console's token travels in clear; set metrics.https: true")
	}
}

func (r *RADIUS) validate(p *problems) {
	for i, a := range r.AuthListen {
		listenAddr(p, fmt.Sprintf("radius.auth_listen[%d]", i), a)
	}
	for i, a := range r.AcctListen {
		listenAddr(p, fmt.Sprintf("radius.acct_listen[%d]", i), a)
	}
	positive(p, "radius.duplicate_window", r.DuplicateWindow)

	seen := map[netip.Prefix]int{}
	for i := range r.Clients {
		cl := &r.Clients[i]
		key := fmt.Sprintf("radius.clients[%d]", i)
		if !cl.Address.IsValid() {
			p.add(key+".address", "is required")
		} else if j, dup := seen[cl.Address]; dup {
			p.add(key+".address", fmt.Sprintf("%s is already the address of radius.clients[%d]", cl.Address, j))
		} else {
			seen[cl.Address] = i
		}
		secret(p, key+".secret", cl.Secret)
		oneOf(p, key+".vendor", cl.Vendor, Vendors...)
		if cl.CoAPort < 1 || cl.CoAPort > 65535 {
			p.add(key+".coa_port", fmt.Sprintf("%d is not a port (1-65535)", cl.CoAPort))
		}
		if !cl.RequireMessageAuthenticator {
			p.warn(key+".require_message_authenticator", "false leaves this client open to BlastRADIUS (CVE-2024-3596)")
		}
		if cl.Name == "" && cl.Address.IsValid() {
			cl.Name = cl.Address.String()
		}
	}
}

func (r *RadSec) validate(p *problems) {
	for i, a := range r.Listen {
		listenAddr(p, fmt.Sprintf("radsec.listen[%d]", i), a)
	}
	if len(r.Listen) > 0 {
		required(p, "radsec.cert", r.Cert, "when radsec.listen is set")
		required(p, "radsec.key", r.Key, "when radsec.listen is set")
		required(p, "radsec.client_ca", r.ClientCA, "when radsec.listen is set")
	}
	for i, pat := range r.AllowedSubjects {
		subjectPattern(p, fmt.Sprintf("radsec.allowed_subjects[%d]", i), pat)
	}
	for i, s := range r.Sites {
		key := fmt.Sprintf("radsec.sites[%d]", i)
		subjectPattern(p, key+".match", s.Match)
		required(p, key+".site", s.Site, "")
	}
	positive(p, "radsec.handshake_timeout", r.HandshakeTimeout)
	notNegative(p, "radsec.idle_timeout", r.IdleTimeout)
	intRange(p, "radsec.max_connections", r.MaxConnections, 1, 1<<20)
	intRange(p, "radsec.max_connections_per_source", r.MaxConnectionsPerSource, 1, max(r.MaxConnections, 1))
	// One connection has 256 RADIUS identifiers.
	intRange(p, "radsec.max_inflight_per_connection", r.MaxInflightPerConnection, 1, 256)
}

// subjectPattern checks a certificate name pattern (path.Match syntax).
func subjectPattern(p *problems, key, pat string) {
	if pat == "" {
		p.add(key, "is required")
		return
	}
	if _, err := path.Match(pat, ""); err != nil {
		p.add(key, fmt.Sprintf("%q is not a pattern: %v", pat, err))
	}
}

func (c *Cloud) validate(p *problems) {
	httpURL(p, "cloud.api_url", c.APIURL)
	httpURL(p, "cloud.proxy_url", c.ProxyURL)
	positive(p, "cloud.sync_interval", c.SyncInterval)

	r := &c.RadSec
	for i, s := range r.Servers {
		hp, err := hostPort(s, "2083")
		if err != nil {
			p.add(fmt.Sprintf("cloud.radsec.servers[%d]", i), fmt.Sprintf("%q is not host or host:port: %v", s, err))
			continue
		}
		r.Servers[i] = hp
	}
	if (r.Cert == "") != (r.Key == "") {
		p.add("cloud.radsec.cert", "cloud.radsec.cert and cloud.radsec.key must be set together")
	}
	positive(p, "cloud.radsec.timeout", r.Timeout)
	notNegative(p, "cloud.radsec.idle_timeout", r.IdleTimeout)
	notNegative(p, "cloud.radsec.status_interval", r.StatusInterval)
}

func (s *Survivability) validate(p *problems) {
	oneOf(p, "survivability.mode", s.Mode, "auto", "cloud", "local")
	intRange(p, "survivability.cache_ttl_days", s.CacheTTLDays, 1, 30)
	intRange(p, "survivability.max_entries", s.MaxEntries, 1, 1<<31-1)
	vlan(p, "survivability.default_mab_vlan", s.DefaultMABVLAN)
	vlan(p, "survivability.default_dot1x_vlan", s.DefaultDot1XVLAN)
	if s.Enabled {
		const why = "when survivability.enabled is true"
		required(p, "survivability.org_ca", s.OrgCA, why)
		required(p, "survivability.eap_cert", s.EAPCert, why)
		required(p, "survivability.eap_key", s.EAPKey, why)
	}
	for i, f := range s.CRL {
		required(p, fmt.Sprintf("survivability.crl[%d]", i), f, "")
	}
	intRange(p, "survivability.fragment_size", s.FragmentSize, 64, 4000)
	positive(p, "survivability.fallback_after", s.FallbackAfter)
	switch st := s.LocalSessionTimeout; {
	case st < 0:
		p.add("survivability.local_session_timeout", fmt.Sprintf("%s must not be negative (0 disables)", st))
	case st > 0 && st < minLocalSessionTimeout:
		p.add("survivability.local_session_timeout", fmt.Sprintf("%s is shorter than %s (0 disables)", st, minLocalSessionTimeout))
	}
	if j := s.LocalSessionJitter; !(j >= 0 && j <= 1) {
		p.add("survivability.local_session_jitter", fmt.Sprintf("%s is out of range 0..100%%", j))
	}
	intRange(p, "survivability.accounting_store", s.AccountingStore, minAccountingStore, 1<<31-1)

	h := s.Health
	positive(p, "survivability.health.probe_interval", h.ProbeInterval)
	positive(p, "survivability.health.probe_timeout", h.ProbeTimeout)
	if h.ProbeTimeout > h.ProbeInterval && h.ProbeInterval > 0 {
		p.add("survivability.health.probe_timeout", fmt.Sprintf("%s is longer than probe_interval %s", h.ProbeTimeout, h.ProbeInterval))
	}
	intRange(p, "survivability.health.down_after", h.DownAfter, 1, 1000)
	intRange(p, "survivability.health.up_after", h.UpAfter, 1, 1000)
}

func (f *Federation) validate(p *problems, key string) {
	required(p, key+".name", f.Name, "")
	oneOf(p, key+".load_balance", f.LoadBalance, "round_robin", "failover")
	for i, s := range f.SSIDs {
		if s == "" || len(s) > 32 {
			p.add(fmt.Sprintf("%s.ssids[%d]", key, i), fmt.Sprintf("%q is not an SSID (1..32 octets)", s))
		}
	}
	for i, r := range f.ExcludeRealms {
		if err := realm.CheckPattern(r); err != nil {
			p.add(fmt.Sprintf("%s.exclude_realms[%d]", key, i), err.Error())
		}
	}
	if f.OperatorName != "" {
		// RFC 5580 §4.1: namespace "1" (REALM) followed by the operator's
		// domain name, which must be a domain, not a label.
		d, ok := strings.CutPrefix(f.OperatorName, "1")
		if !ok || !strings.Contains(d, ".") || !validDNSName(d) || strings.HasSuffix(d, ".") {
			p.add(key+".operator_name", fmt.Sprintf("%q is not \"1\" followed by the site's domain (RFC 5580), e.g. 1example.edu", f.OperatorName))
		}
	}
	if f.FTicks {
		if len(f.Country) != 2 || strings.ToUpper(f.Country) != f.Country || strings.ContainsFunc(f.Country, func(r rune) bool { return r < 'A' || r > 'Z' }) {
			p.add(key+".country", fmt.Sprintf("%q is not an ISO 3166 two-letter code, which F-Ticks needs (VISCOUNTRY)", f.Country))
		}
		required(p, key+".operator_name", f.OperatorName, "when fticks is true (VISINST)")
	}
	positive(p, key+".timeout", f.Timeout)
	intRange(p, key+".retries", f.Retries, 0, 10)
	notNegative(p, key+".status_interval", f.StatusInterval)
	if len(f.AuthServers) == 0 {
		p.add(key+".auth_servers", "at least one server is required")
	}
	servers := func(list string, ss []Server) {
		for i, s := range ss {
			k := fmt.Sprintf("%s.%s[%d]", key, list, i)
			if _, err := hostPort(s.Address, ""); err != nil {
				p.add(k+".address", fmt.Sprintf("%q is not host:port: %v", s.Address, err))
			}
			secret(p, k+".secret", s.Secret)
		}
	}
	servers("auth_servers", f.AuthServers)
	servers("acct_servers", f.AcctServers)
}

func oneOf(p *problems, key, v string, allowed ...string) {
	if !slices.Contains(allowed, v) {
		p.add(key, fmt.Sprintf("%q is not one of %s", v, strings.Join(allowed, ", ")))
	}
}

func required(p *problems, key, v, why string) {
	if v == "" {
		p.add(key, strings.TrimSpace("is required "+why))
	}
}

func secret(p *problems, key string, s Secret) {
	switch {
	case s == "":
		p.add(key, "is required")
	case len(s) < minSecretLen:
		p.warn(key, fmt.Sprintf("is shorter than %d characters; use a long random secret", minSecretLen))
	}
}

func intRange(p *problems, key string, v, lo, hi int) {
	if v < lo || v > hi {
		p.add(key, fmt.Sprintf("%d is out of range %d..%d", v, lo, hi))
	}
}

func positive(p *problems, key string, d time.Duration) {
	if d <= 0 {
		p.add(key, fmt.Sprintf("%s must be positive", d))
	}
}

func notNegative(p *problems, key string, d time.Duration) {
	if d < 0 {
		p.add(key, fmt.Sprintf("%s must not be negative", d))
	}
}

// vlan accepts "" (no VLAN), an id 1..4094, or a VLAN name.
func vlan(p *problems, key, v string) {
	if v == "" {
		return
	}
	if n, err := strconv.Atoi(v); err == nil {
		intRange(p, key, n, 1, 4094)
		return
	}
	if len(v) > 253 || strings.ContainsFunc(v, func(r rune) bool { return r < ' ' || r == 0x7f }) {
		p.add(key, fmt.Sprintf("%q is not a VLAN id or name", v))
	}
}

func httpURL(p *problems, key, v string) {
	if v == "" {
		return
	}
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		p.add(key, fmt.Sprintf("%q is not an http(s) URL", v))
	}
}

// listenAddr checks host:port for a listener; the host may be empty (all addresses).
func listenAddr(p *problems, key, v string) {
	host, port, err := net.SplitHostPort(v)
	if err != nil {
		err = addrErr(err)
	} else {
		err = checkPort(port, true)
	}
	if err == nil && host != "" && !validHost(host) {
		err = fmt.Errorf("bad host %q", host)
	}
	if err != nil {
		p.add(key, fmt.Sprintf("%q is not a listen address (host:port): %v", v, err))
	}
}

// hostPort normalises "host" or "host:port" to host:port. With no default
// port, the port is required. Hosts may be IPs or DNS names.
func hostPort(v, defaultPort string) (string, error) {
	host, port, err := net.SplitHostPort(v)
	if err != nil {
		// A bare host: "example.net", "192.0.2.1", "2001:db8::1" or "[2001:db8::1]".
		host = strings.TrimSuffix(strings.TrimPrefix(v, "["), "]")
		if !validHost(host) {
			if !strings.Contains(host, ":") {
				return "", fmt.Errorf("bad host %q", host)
			}
			return "", addrErr(err)
		}
		if defaultPort == "" {
			return "", fmt.Errorf("missing port")
		}
		port = defaultPort
	}
	if err := checkPort(port, false); err != nil {
		return "", err
	}
	if !validHost(host) {
		return "", fmt.Errorf("bad host %q", host)
	}
	return net.JoinHostPort(host, port), nil
}

// addrErr drops the address that net.SplitHostPort repeats in its message.
func addrErr(err error) error {
	if ae, ok := err.(*net.AddrError); ok {
		return fmt.Errorf("%s", ae.Err)
	}
	return err
}

func checkPort(port string, zeroOK bool) error {
	n, err := strconv.Atoi(port)
	if err != nil || n < 0 || n > 65535 || (n == 0 && !zeroOK) {
		return fmt.Errorf("bad port %q", port)
	}
	return nil
}

func validHost(h string) bool {
	if _, err := netip.ParseAddr(h); err == nil {
		return true
	}
	return validDNSName(h)
}

func validDNSName(h string) bool {
	h = strings.TrimSuffix(h, ".")
	if h == "" || len(h) > 253 {
		return false
	}
	for label := range strings.SplitSeq(h, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
				return false
			}
		}
	}
	return true
}
