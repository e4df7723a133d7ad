package config

import (
	"bytes"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/viper"
)

// Config is one mxedge configuration, decoded and validated.
type Config struct {
	StateDir      string        `yaml:"state_dir"`
	Log           Log           `yaml:"log"`
	Metrics       Metrics       `yaml:"metrics"`
	RADIUS        RADIUS        `yaml:"radius"`
	RadSec        RadSec        `yaml:"radsec"`
	Cloud         Cloud         `yaml:"cloud"`
	Survivability Survivability `yaml:"survivability"`
	Federation    []Federation  `yaml:"federation"`

	name     string // the file, for problems found after Parse (CheckFiles)
	warnings []string
	// local holds every key path the file or an MXEDGE_* variable set,
	// with its parents, so that settings the cloud pushes can yield to it.
	local map[string]bool
}

// Log configures the daemon's slog handler.
type Log struct {
	Level  slog.Level `yaml:"level"`  // debug | info | warn | error
	Format string     `yaml:"format"` // text | json
}

// Metrics configures the /metrics and /healthz listener, which also
// serves the read-only web console.
type Metrics struct {
	Listen string `yaml:"listen"` // host:port; "" disables
	// Console serves the web console (edge/console) on the same listener.
	Console bool `yaml:"console"`
	// TokenFile holds the token the console asks for when the listener is
	// not on loopback; "" is state_dir/console.token (ConsoleTokenFile).
	TokenFile string `yaml:"token_file"`
	// HTTPS serves the listener over TLS, with TLSCert and TLSKey or, when
	// they are empty, the RadSec listener's certificate (radsec.cert/key):
	// off loopback the console's token must not travel in clear.
	HTTPS   bool   `yaml:"https"`
	TLSCert string `yaml:"tls_cert"`
	TLSKey  string `yaml:"tls_key"`
}

// ConsoleTokenFileName is the console token's name under state_dir.
const ConsoleTokenFileName = "console.token"

// ConsoleTokenFile is where the console's token lives.
func (c *Config) ConsoleTokenFile() string {
	if c.Metrics.TokenFile != "" {
		return c.Metrics.TokenFile
	}
	return filepath.Join(c.StateDir, ConsoleTokenFileName)
}

// MetricsTLS is the certificate and key the metrics listener serves with
// when metrics.https is on: its own, else the RadSec listener's.
func (c *Config) MetricsTLS() (cert, key string) {
	if c.Metrics.TLSCert != "" {
		return c.Metrics.TLSCert, c.Metrics.TLSKey
	}
	return c.RadSec.Cert, c.RadSec.Key
}

// IsLoopbackListen reports whether a listen address binds loopback only:
// an empty host binds every address.
func IsLoopbackListen(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil || host == "" {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

// RADIUS configures the plain RADIUS listeners and the devices allowed to use them.
type RADIUS struct {
	AuthListen      []string      `yaml:"auth_listen"`
	AcctListen      []string      `yaml:"acct_listen"`
	DuplicateWindow time.Duration `yaml:"duplicate_window"` // answered replies are kept this long for retransmits
	Clients         []Client      `yaml:"clients"`
}

// Client is a RADIUS client (NAS): a switch, controller or roaming operator.
type Client struct {
	Name                        string       `yaml:"name"`    // default: the address
	Address                     netip.Prefix `yaml:"address"` // a bare IP is a /32 or /128; longest prefix wins
	Secret                      Secret       `yaml:"secret"`
	Vendor                      string       `yaml:"vendor"` // cisco | aruba | juniper | hpe | paloalto | generic
	Site                        string       `yaml:"site"`
	RequireMessageAuthenticator bool         `yaml:"require_message_authenticator"`
	LimitProxyState             bool         `yaml:"limit_proxy_state"`
	// CoAPort is where the device takes CoA and Disconnect requests
	// (RFC 5176) that the cloud sends through the edge.
	CoAPort int `yaml:"coa_port"`
	// CoARequireMessageAuthenticator discards the device's CoA/Disconnect
	// ACK or NAK without a valid Message-Authenticator (the edge always
	// sends one); turn it off for devices that sign only the Authenticator.
	CoARequireMessageAuthenticator bool `yaml:"coa_require_message_authenticator"`
	// CoADisableEventTimestampCheck relays requests for this device
	// whatever their Event-Timestamp (the cloud's DAS setting of the same
	// name); otherwise one outside the 300 s window is discarded.
	CoADisableEventTimestampCheck bool `yaml:"coa_disable_event_timestamp_check"`
}

func (c *Client) setDefaults() {
	c.Vendor = "generic"
	c.RequireMessageAuthenticator = true
	c.CoAPort = 3799
	c.CoARequireMessageAuthenticator = true
}

// RadSec configures the RadSec listener (devices' backup path, and the cloud's inbound).
type RadSec struct {
	Listen   []string `yaml:"listen"`
	Cert     string   `yaml:"cert"`
	Key      string   `yaml:"key"`
	ClientCA string   `yaml:"client_ca"`
	// AllowedSubjects are shell patterns (path.Match) that a device
	// certificate's CN or one of its DNS, email or URI SANs must match;
	// empty allows every certificate that chains to ClientCA.
	AllowedSubjects []string `yaml:"allowed_subjects"`
	// Sites map device certificates to the site their requests carry
	// (for the cache, events and caching_site_ids); first match wins.
	Sites            []RadSecSite  `yaml:"sites"`
	HandshakeTimeout time.Duration `yaml:"handshake_timeout"`
	IdleTimeout      time.Duration `yaml:"idle_timeout"` // 0 never closes an idle connection
	MaxConnections   int           `yaml:"max_connections"`
	// MaxConnectionsPerSource bounds connections, handshakes included,
	// from one IP address.
	MaxConnectionsPerSource int `yaml:"max_connections_per_source"`
	// MaxInflightPerConnection bounds requests being answered at once on
	// one connection; reading stops while it is reached.
	MaxInflightPerConnection int `yaml:"max_inflight_per_connection"`
}

// RadSecSite assigns Site to device certificates whose CN or a SAN
// matches the shell pattern Match.
type RadSecSite struct {
	Match string `yaml:"match"`
	Site  string `yaml:"site"`
}

// Cloud configures how the edge reaches the cloud.
type Cloud struct {
	APIURL           string        `yaml:"api_url"`
	RadSec           CloudRadSec   `yaml:"radsec"`
	ProxyURL         string        `yaml:"proxy_url"`
	SyncInterval     time.Duration `yaml:"sync_interval"`
	LearnFromAccepts bool          `yaml:"learn_from_accepts"`
	CachingSiteIDs   []string      `yaml:"caching_site_ids"`
}

// CloudRadSec configures the RadSec connections to the cloud's NAC.
type CloudRadSec struct {
	Servers        []string      `yaml:"servers"` // host:port, in failover order; a missing port is 2083
	CA             string        `yaml:"ca"`
	Cert           string        `yaml:"cert"`
	Key            string        `yaml:"key"`
	ServerName     string        `yaml:"server_name"`
	Timeout        time.Duration `yaml:"timeout"`
	IdleTimeout    time.Duration `yaml:"idle_timeout"`    // 0 keeps connections open
	StatusInterval time.Duration `yaml:"status_interval"` // Status-Server on idle connections; 0 disables
}

// Survivability configures the local NAC used while the cloud is unreachable.
type Survivability struct {
	Enabled          bool     `yaml:"enabled"`
	Mode             string   `yaml:"mode"` // auto | cloud | local
	CacheTTLDays     int      `yaml:"cache_ttl_days"`
	MaxEntries       int      `yaml:"max_entries"`
	DefaultMABVLAN   string   `yaml:"default_mab_vlan"`
	DefaultDot1XVLAN string   `yaml:"default_dot1x_vlan"`
	OrgCA            string   `yaml:"org_ca"`
	CRL              []string `yaml:"crl"`
	EAPCert          string   `yaml:"eap_cert"`
	EAPKey           string   `yaml:"eap_key"`
	FragmentSize     int      `yaml:"fragment_size"`
	// FallbackAfter is how long the cloud may stay silent on a MAB request
	// or the first round of an EAP conversation before the local NAC
	// answers it; shorter than cloud.radsec.timeout.
	FallbackAfter time.Duration `yaml:"fallback_after"`
	// LocalSessionTimeout is the Session-Timeout of local accepts, so
	// devices let in during an outage re-authenticate against the cloud
	// after it; 0 sends none.
	LocalSessionTimeout time.Duration `yaml:"local_session_timeout"`
	// LocalSessionJitter spreads LocalSessionTimeout down by up to this
	// fraction, so recovery is no re-authentication storm.
	LocalSessionJitter Fraction `yaml:"local_session_jitter"`
	// AccountingStore is how many accounting records are held for replay
	// to the cloud after an outage.
	AccountingStore int `yaml:"accounting_store"`
	// EventsDurable commits a local decision's NAC events before its
	// answer goes out (group commit), so a crash loses no event of an
	// answered request; false answers at once and commits within 20 ms,
	// so a crash can lose the events of the last 20 ms or so of answers.
	EventsDurable bool   `yaml:"events_durable"`
	Health        Health `yaml:"health"`
	// ReauthorizeAfterOutage asks each device, once the cloud is back, to
	// re-authorise the sessions the local NAC let in with a default VLAN
	// during the outage (CoA Reauthenticate for cisco, Disconnect for the
	// others), paced, on the device's coa_port.
	ReauthorizeAfterOutage bool `yaml:"reauthorize_after_outage"`
}

// Fraction is a share between 0 and 1, written in the file as a
// percentage ("25%") or as a plain fraction (0.25).
type Fraction float64

// String is the fraction as a percentage, as the file writes it.
func (f Fraction) String() string {
	return strconv.FormatFloat(float64(f)*100, 'g', -1, 64) + "%"
}

// CacheTTL is CacheTTLDays as a duration.
func (s Survivability) CacheTTL() time.Duration {
	return time.Duration(s.CacheTTLDays) * 24 * time.Hour
}

// Health configures the probes that decide between cloud and survival.
type Health struct {
	ProbeInterval time.Duration `yaml:"probe_interval"`
	ProbeTimeout  time.Duration `yaml:"probe_timeout"`
	DownAfter     int           `yaml:"down_after"` // failed probes before survival
	UpAfter       int           `yaml:"up_after"`   // good probes before failback
}

// Federation is a roaming federation such as eduroam.
type Federation struct {
	Name  string   `yaml:"name"`
	SSIDs []string `yaml:"ssids"` // only requests on these SSIDs (Called-Station-Id); empty: any
	// ExcludeRealms are the site's own realms ("example.edu",
	// "*.example.edu"): never sent to the federation, and the only realms
	// the federation's servers may ask the edge about.
	ExcludeRealms []string `yaml:"exclude_realms"`
	OperatorName  string   `yaml:"operator_name"` // RFC 5580: "1" + the site's domain
	LoadBalance   string   `yaml:"load_balance"`  // round_robin | failover
	FTicks        bool     `yaml:"fticks"`        // an F-Ticks log line per roaming authentication
	Country       string   `yaml:"country"`       // ISO 3166 code for F-Ticks VISCOUNTRY
	// Timeout bounds one try at one server, Retries the resends within it.
	Timeout time.Duration `yaml:"timeout"`
	Retries int           `yaml:"retries"`
	// StatusInterval is the Status-Server probe period; 0 disables probes
	// (then three timeouts in a row take a server out for a while).
	StatusInterval time.Duration `yaml:"status_interval"`
	AuthServers    []Server      `yaml:"auth_servers"`
	AcctServers    []Server      `yaml:"acct_servers"`
}

func (f *Federation) setDefaults() {
	f.LoadBalance = "round_robin"
	f.Timeout = 3 * time.Second
	f.Retries = 2
	f.StatusInterval = 10 * time.Second
}

// Server is a plain RADIUS server of a federation.
type Server struct {
	Address string `yaml:"address"` // host:port
	Secret  Secret `yaml:"secret"`
	// RequireMessageAuthenticator discards replies without one; leave it
	// off for servers such as FreeRADIUS 3.2.1 that sign only EAP replies.
	RequireMessageAuthenticator bool `yaml:"require_message_authenticator"`
}

// Default returns the configuration used for every key a file leaves out.
func Default() *Config {
	return &Config{
		StateDir: "/var/lib/mxedge",
		Log:      Log{Level: slog.LevelInfo, Format: "text"},
		Metrics:  Metrics{Listen: "127.0.0.1:9812", Console: true},
		RADIUS: RADIUS{
			AuthListen:      []string{":1812"},
			AcctListen:      []string{":1813"},
			DuplicateWindow: 30 * time.Second,
		},
		RadSec: RadSec{
			Listen:   []string{":2083"},
			Cert:     "/etc/mxedge/tls/radsec.pem",
			Key:      "/etc/mxedge/tls/radsec.key",
			ClientCA: "/etc/mxedge/tls/devices-ca.pem",

			HandshakeTimeout:         5 * time.Second,
			IdleTimeout:              10 * time.Minute,
			MaxConnections:           4096,
			MaxConnectionsPerSource:  16,
			MaxInflightPerConnection: 256,
		},
		Cloud: Cloud{
			RadSec: CloudRadSec{
				CA:             "/etc/mxedge/tls/cloud-ca.pem",
				Timeout:        3 * time.Second,
				StatusInterval: 10 * time.Second,
			},
			SyncInterval:     30 * time.Minute,
			LearnFromAccepts: true,
		},
		Survivability: Survivability{
			Enabled:             true,
			Mode:                "auto",
			CacheTTLDays:        7,
			MaxEntries:          1000000,
			OrgCA:               "/etc/mxedge/tls/org-ca.pem",
			EAPCert:             "/etc/mxedge/tls/eap.pem",
			EAPKey:              "/etc/mxedge/tls/eap.key",
			FragmentSize:        1020,
			FallbackAfter:       2 * time.Second,
			LocalSessionTimeout: time.Hour,
			LocalSessionJitter:  0.25,
			AccountingStore:     1000000,
			EventsDurable:       false,
			Health: Health{
				ProbeInterval: 5 * time.Second,
				ProbeTimeout:  2 * time.Second,
				DownAfter:     3,
				UpAfter:       3,
			},
		},
	}
}

// IsLocal reports whether the file (or an MXEDGE_* environment variable)
// set key, a dotted path such as "radius.clients" or
// "survivability.default_mab_vlan"; a section counts when any key under it
// was set. A Config not read from a file has no local keys.
func (c *Config) IsLocal(key string) bool { return c.local[key] }

// Warnings are notes about a valid configuration that the operator should
// still see (short secrets, for one), formatted like errors.
func (c *Config) Warnings() []string { return c.warnings }

// Load reads, decodes and validates the file at path, with MXEDGE_*
// environment overrides applied. Problems come back as Errors.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(path, data)
}

// Parse is Load for a file already read; name is used in error messages.
func Parse(name string, data []byte) (*Config, error) {
	v := viper.New()
	v.SetConfigType("yaml")
	v.AllowEmptyEnv(true) // MXEDGE_METRICS_LISTEN= must be able to disable metrics
	env := map[string]string{}
	for _, key := range envKeys() {
		name := EnvName(key)
		if err := v.BindEnv(key, name); err != nil {
			return nil, err
		}
		if _, ok := os.LookupEnv(name); ok {
			env[key] = name
		}
	}
	p := newProblems(name, env)
	if errs := checkKeys(name, data); len(errs) > 0 {
		return nil, errs
	}
	if err := v.ReadConfig(bytes.NewReader(data)); err != nil {
		return nil, Errors{{File: name, Reason: yamlReason(err)}}
	}
	unknownEnv(p, os.Environ())

	c := Default()
	c.local = localKeys(v, env) // validate lets some defaults yield to what the file set
	p.decode("", settings(v), reflect.ValueOf(c).Elem())
	c.validate(p)
	if len(p.errs) > 0 {
		return nil, p.errs
	}
	c.warnings = p.warnings
	c.name = name
	return c, nil
}

// localKeys lists the keys written in the file or set in the environment,
// with every parent of each.
func localKeys(v *viper.Viper, env map[string]string) map[string]bool {
	m := map[string]bool{}
	for _, key := range v.AllKeys() {
		if _, ok := env[key]; !ok && !v.InConfig(key) {
			continue
		}
		for {
			m[key] = true
			i := strings.LastIndexByte(key, '.')
			if i < 0 {
				break
			}
			key = key[:i]
		}
	}
	return m
}

// settings is viper's AllSettings, except that it keeps keys whose value is
// empty, so that a misspelt key with nothing after it is still reported.
func settings(v *viper.Viper) map[string]any {
	m := map[string]any{}
	keys := v.AllKeys()
	slices.Sort(keys) // parents before children
next:
	for _, key := range keys {
		path := strings.Split(key, ".")
		val := v.Get(key)
		parent := m
		for _, name := range path[:len(path)-1] {
			child, ok := parent[name].(map[string]any)
			if !ok {
				if val == nil && parent[name] != nil {
					continue next // an empty key must not hide the value written in its place
				}
				child = map[string]any{}
				parent[name] = child
			}
			parent = child
		}
		last := path[len(path)-1]
		if _, ok := parent[last]; val != nil || !ok {
			parent[last] = val
		}
	}
	return m
}

// EnvName is the environment variable that overrides key, e.g.
// MXEDGE_LOG_LEVEL for log.level.
func EnvName(key string) string {
	return "MXEDGE_" + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
}

// envKeys lists the keys that can be overridden: every key of Keys but
// those of list entries (lists of objects have no override).
func envKeys() []string {
	return slices.DeleteFunc(Keys(), func(k string) bool { return strings.Contains(k, "[]") })
}

// yamlReason makes a parser error one line without viper's wrapping.
func yamlReason(err error) string {
	var pe viper.ConfigParseError
	if errors.As(err, &pe) && pe.Unwrap() != nil {
		err = pe.Unwrap()
	}
	fields := strings.Fields(strings.ReplaceAll(err.Error(), "\n", "; "))
	return strings.ReplaceAll(strings.Join(fields, " "), ":;", ":")
}
