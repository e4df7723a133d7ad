package config

import (
	"bytes"
	"errors"
	"io/fs"
	"log/slog"
	"maps"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spf13/viper"
)

// TestBad parses every testdata/bad/NAME.yaml and wants exactly the lines in NAME.err.
func TestBad(t *testing.T) {
	files, err := filepath.Glob("testdata/bad/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no bad configs: %v", err)
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			want, err := os.ReadFile(strings.TrimSuffix(file, ".yaml") + ".err")
			if err != nil {
				t.Fatal(err)
			}
			c, err := Load(file)
			if err == nil {
				t.Fatalf("Load succeeded: %+v", c)
			}
			if got, want := err.Error(), strings.TrimSpace(string(want)); got != want {
				t.Errorf("errors:\ngot:\n%s\nwant:\n%s", got, want)
			}
			var list Errors
			if !errors.As(err, &list) {
				t.Fatalf("error is %T, not Errors", err)
			}
			var p *Problem
			if !errors.As(err, &p) || p != list[0] {
				t.Errorf("errors.As(*Problem) = %v, want the first problem", p)
			}
		})
	}
}

func TestDefaults(t *testing.T) {
	tests := []struct {
		file string
		want func(*Config)
		warn []string
	}{
		{file: "testdata/good/empty.yaml", want: func(*Config) {}},
		{
			file: "testdata/good/minimal.yaml",
			want: func(c *Config) {
				c.RADIUS.Clients = []Client{{
					Name:                        "192.0.2.0/24",
					Address:                     netip.MustParsePrefix("192.0.2.0/24"),
					Secret:                      "short",
					Vendor:                      "generic",
					RequireMessageAuthenticator: true,
					CoAPort:                     3799, CoARequireMessageAuthenticator: true,
				}}
			},
			warn: []string{"testdata/good/minimal.yaml: radius.clients[0].secret: is shorter than 16 characters; use a long random secret"},
		},
	}
	for _, tt := range tests {
		t.Run(filepath.Base(tt.file), func(t *testing.T) {
			want := Default()
			tt.want(want)
			got := mustLoad(t, tt.file)
			if !slices.Equal(got.Warnings(), tt.warn) {
				t.Errorf("warnings:\ngot  %q\nwant %q", got.Warnings(), tt.warn)
			}
			got.warnings, got.local, got.name = nil, nil, ""
			if !reflect.DeepEqual(got, want) {
				t.Errorf("got  %+v\nwant %+v", got, want)
			}
		})
	}
}

// TestDefaultValues pins the documented defaults, so that a change to
// Default() is a deliberate one.
func TestDefaultValues(t *testing.T) {
	c := Default()
	tests := []struct {
		key       string
		got, want any
	}{
		{"state_dir", c.StateDir, "/var/lib/mxedge"},
		{"log.level", c.Log.Level, slog.LevelInfo},
		{"log.format", c.Log.Format, "text"},
		{"metrics.listen", c.Metrics.Listen, "127.0.0.1:9812"},
		{"radius.auth_listen", c.RADIUS.AuthListen, []string{":1812"}},
		{"radius.acct_listen", c.RADIUS.AcctListen, []string{":1813"}},
		{"radius.duplicate_window", c.RADIUS.DuplicateWindow, 30 * time.Second},
		{"radsec.listen", c.RadSec.Listen, []string{":2083"}},
		{"radsec.allowed_subjects", c.RadSec.AllowedSubjects, []string(nil)},
		{"radsec.handshake_timeout", c.RadSec.HandshakeTimeout, 5 * time.Second},
		{"radsec.idle_timeout", c.RadSec.IdleTimeout, 10 * time.Minute},
		{"radsec.max_connections", c.RadSec.MaxConnections, 4096},
		{"radsec.max_connections_per_source", c.RadSec.MaxConnectionsPerSource, 16},
		{"radsec.max_inflight_per_connection", c.RadSec.MaxInflightPerConnection, 256},
		{"cloud.radsec.timeout", c.Cloud.RadSec.Timeout, 3 * time.Second},
		{"cloud.radsec.idle_timeout", c.Cloud.RadSec.IdleTimeout, time.Duration(0)},
		{"cloud.radsec.status_interval", c.Cloud.RadSec.StatusInterval, 10 * time.Second},
		{"cloud.sync_interval", c.Cloud.SyncInterval, 30 * time.Minute},
		{"cloud.learn_from_accepts", c.Cloud.LearnFromAccepts, true},
		{"survivability.enabled", c.Survivability.Enabled, true},
		{"survivability.mode", c.Survivability.Mode, "auto"},
		{"survivability.cache_ttl_days", c.Survivability.CacheTTLDays, 7},
		{"survivability.CacheTTL()", c.Survivability.CacheTTL(), 7 * 24 * time.Hour},
		{"survivability.max_entries", c.Survivability.MaxEntries, 1000000},
		{"survivability.fragment_size", c.Survivability.FragmentSize, 1020},
		{"survivability.fallback_after", c.Survivability.FallbackAfter, 2 * time.Second},
		{"survivability.local_session_timeout", c.Survivability.LocalSessionTimeout, time.Hour},
		{"survivability.local_session_jitter", c.Survivability.LocalSessionJitter, Fraction(0.25)},
		{"survivability.accounting_store", c.Survivability.AccountingStore, 1000000},
		{"survivability.events_durable", c.Survivability.EventsDurable, false},
		{"survivability.health.probe_interval", c.Survivability.Health.ProbeInterval, 5 * time.Second},
		{"survivability.health.probe_timeout", c.Survivability.Health.ProbeTimeout, 2 * time.Second},
		{"survivability.health.down_after", c.Survivability.Health.DownAfter, 3},
		{"survivability.health.up_after", c.Survivability.Health.UpAfter, 3},
	}
	for _, tt := range tests {
		if !reflect.DeepEqual(tt.got, tt.want) {
			t.Errorf("%s = %v, want %v", tt.key, tt.got, tt.want)
		}
	}
}

func TestFull(t *testing.T) {
	got := mustLoad(t, "testdata/good/full.yaml")
	want := &Config{
		StateDir: "/tmp/mxedge",
		Log:      Log{Level: slog.LevelDebug, Format: "json"},
		Metrics:  Metrics{TokenFile: "/tmp/mxedge/console.token", HTTPS: true, TLSCert: "/etc/mxedge/tls/console.pem", TLSKey: "/etc/mxedge/tls/console.key"},
		RADIUS: RADIUS{
			AuthListen:      []string{"127.0.0.1:0", "[::1]:11812"},
			AcctListen:      []string{},
			DuplicateWindow: 45 * time.Second,
			Clients: []Client{
				{
					Name: "core", Address: netip.MustParsePrefix("192.0.2.0/24"), Secret: "core-switch-secret-0123",
					Vendor: "cisco", Site: "hq", LimitProxyState: true, CoAPort: 3799, CoARequireMessageAuthenticator: true,
				},
				{
					Name: "2001:db8::1/128", Address: netip.MustParsePrefix("2001:db8::1/128"), Secret: "1234567890123456",
					Vendor: "aruba", RequireMessageAuthenticator: true, CoAPort: 3799, CoARequireMessageAuthenticator: true,
				},
			},
		},
		RadSec: RadSec{
			Listen:                   []string{},
			Cert:                     "/etc/mxedge/tls/radsec.pem",
			Key:                      "/etc/mxedge/tls/radsec.key",
			ClientCA:                 "/etc/mxedge/tls/devices-ca.pem",
			AllowedSubjects:          []string{"*.ap.example.net", "switch-??.example.net"},
			Sites:                    []RadSecSite{{Match: "*.hq.ap.example.net", Site: "hq"}},
			HandshakeTimeout:         2 * time.Second,
			MaxConnections:           100,
			MaxConnectionsPerSource:  4,
			MaxInflightPerConnection: 32,
		},
		Cloud: Cloud{
			APIURL: "https://cloud.example.net",
			RadSec: CloudRadSec{
				Servers:     []string{"radsec1.example.net:2083", "192.0.2.5:2084", "[2001:db8::5]:2083", "[2001:db8::6]:2083"},
				CA:          "/etc/mxedge/tls/cloud-ca.pem",
				Cert:        "/etc/mxedge/tls/c.pem",
				Key:         "/etc/mxedge/tls/c.key",
				ServerName:  "radsec.example.net",
				Timeout:     1500 * time.Millisecond,
				IdleTimeout: 5 * time.Minute,
			},
			ProxyURL:       "http://127.0.0.1:3128",
			SyncInterval:   time.Hour,
			CachingSiteIDs: []string{"site-a", "site-b"},
		},
		Survivability: Survivability{
			Mode:                "local",
			CacheTTLDays:        30,
			MaxEntries:          1000,
			DefaultMABVLAN:      "41",
			DefaultDot1XVLAN:    "staff",
			OrgCA:               "/etc/mxedge/tls/org-ca.pem",
			CRL:                 []string{"/etc/mxedge/tls/a.crl"},
			EAPKey:              "/etc/mxedge/tls/eap.key",
			FragmentSize:        1400,
			FallbackAfter:       time.Second,
			EventsDurable:       true,
			LocalSessionTimeout: 30 * time.Minute,
			LocalSessionJitter:  0.1,
			AccountingStore:     5000,
			Health:              Health{ProbeInterval: time.Second, ProbeTimeout: time.Second, DownAfter: 1, UpAfter: 5},
		},
		Federation: []Federation{{
			Name:          "eduroam",
			SSIDs:         []string{"eduroam"},
			ExcludeRealms: []string{"example.edu"},
			OperatorName:  "1example.edu",
			LoadBalance:   "failover",
			FTicks:        true,
			Country:       "NL",
			Timeout:       2 * time.Second,
			Retries:       1,
			AuthServers:   []Server{{Address: "radius.example.net:1812", Secret: "fed-secret-0123456", RequireMessageAuthenticator: true}},
			AcctServers:   []Server{{Address: "[2001:db8::10]:1813", Secret: "fed-secret-0123456"}},
		}},
	}
	wantWarn := []string{"testdata/good/full.yaml: radius.clients[0].require_message_authenticator: false leaves this client open to BlastRADIUS (CVE-2024-3596)"}
	if !slices.Equal(got.Warnings(), wantWarn) {
		t.Errorf("warnings:\ngot  %q\nwant %q", got.Warnings(), wantWarn)
	}
	got.warnings, got.local, got.name = nil, nil, ""
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}
}

// TestExample keeps config.example.yaml valid, safe to install as the
// default config (no clients, no federation), and complete: every key of
// Config appears in it, list entries in commented examples.
func TestExample(t *testing.T) {
	const file = "../../config.example.yaml"
	c := mustLoad(t, file)
	if w := c.Warnings(); len(w) > 0 {
		t.Errorf("example has warnings: %q", w)
	}
	if len(c.RADIUS.Clients) > 0 || len(c.Federation) > 0 {
		t.Errorf("example defines %d clients and %d federations; they belong in comments", len(c.RADIUS.Clients), len(c.Federation))
	}
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}

	// The same file with its commented entries in.
	uncommented := commentedYAML.ReplaceAll(data, []byte("$1$2"))
	c, err = Parse(file+" (uncommented)", uncommented)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.RADIUS.Clients) == 0 || len(c.Federation) == 0 || len(c.Warnings()) > 0 {
		t.Errorf("uncommented example: %d clients, %d federations, warnings %q; want some, some, none",
			len(c.RADIUS.Clients), len(c.Federation), c.Warnings())
	}

	v := viper.New()
	v.SetConfigType("yaml")
	if err := v.ReadConfig(bytes.NewReader(uncommented)); err != nil {
		t.Fatal(err)
	}
	have := map[string]bool{}
	exampleKeys(have, "", v.AllSettings())
	keys := Keys() // the function the daemon uses, not a copy of it
	refused := Refused()
	for _, key := range keys {
		if _, ok := refused[key]; ok {
			// Documented, but not as a value to uncomment: it is refused.
			last := key[strings.LastIndexAny(key, ".]")+1:]
			if !regexp.MustCompile(`(?m)^\s*#\s+` + last + ` is refused`).Match(data) {
				t.Errorf("%s: refused key %s is not documented as \"# %s is refused …\"", file, key, last)
			}
			continue
		}
		if !have[key] {
			t.Errorf("%s: key %s is not documented", file, key)
		}
	}
	if len(keys) < 50 {
		t.Errorf("only %d keys in Config?", len(keys))
	}
}

// commentedYAML matches a commented-out line of YAML: "  # - name: x",
// "  #   key: v", "  #     - {address: …}".
var commentedYAML = regexp.MustCompile(`(?m)^(\s*)# (\s*(?:- )?(?:\{|[a-z0-9_]+:(?: |$)).*)$`)

func exampleKeys(have map[string]bool, key string, v any) {
	switch x := v.(type) {
	case map[string]any:
		for k, v := range x {
			exampleKeys(have, join(key, k), v)
		}
	case []any:
		have[key] = true
		for _, item := range x {
			if _, ok := item.(map[string]any); ok {
				exampleKeys(have, key+"[]", item)
			}
		}
	default:
		have[key] = true
	}
}

func TestEnv(t *testing.T) {
	const file = "testdata/good/minimal.yaml"
	tests := []struct {
		env  map[string]string
		want func(*Config) any
		val  any
	}{
		{map[string]string{"MXEDGE_LOG_LEVEL": "debug"}, func(c *Config) any { return c.Log.Level }, slog.LevelDebug},
		{map[string]string{"MXEDGE_STATE_DIR": "/srv/mxedge"}, func(c *Config) any { return c.StateDir }, "/srv/mxedge"},
		{map[string]string{"MXEDGE_METRICS_LISTEN": "127.0.0.1:19812"}, func(c *Config) any { return c.Metrics.Listen }, "127.0.0.1:19812"},
		{map[string]string{"MXEDGE_METRICS_LISTEN": ""}, func(c *Config) any { return c.Metrics.Listen }, ""},
		{map[string]string{"MXEDGE_SURVIVABILITY_MODE": "local"}, func(c *Config) any { return c.Survivability.Mode }, "local"},
		{map[string]string{"MXEDGE_SURVIVABILITY_ENABLED": "false"}, func(c *Config) any { return c.Survivability.Enabled }, false},
		{map[string]string{"MXEDGE_SURVIVABILITY_CACHE_TTL_DAYS": "14"}, func(c *Config) any { return c.Survivability.CacheTTLDays }, 14},
		{map[string]string{"MXEDGE_SURVIVABILITY_HEALTH_DOWN_AFTER": "5"}, func(c *Config) any { return c.Survivability.Health.DownAfter }, 5},
		{map[string]string{"MXEDGE_CLOUD_RADSEC_TIMEOUT": "5s"}, func(c *Config) any { return c.Cloud.RadSec.Timeout }, 5 * time.Second},
		{map[string]string{"MXEDGE_SURVIVABILITY_LOCAL_SESSION_JITTER": "10%"}, func(c *Config) any { return c.Survivability.LocalSessionJitter }, Fraction(0.1)},
		{map[string]string{"MXEDGE_SURVIVABILITY_LOCAL_SESSION_JITTER": "0.5"}, func(c *Config) any { return c.Survivability.LocalSessionJitter }, Fraction(0.5)},
		{map[string]string{"MXEDGE_SURVIVABILITY_FALLBACK_AFTER": "1s"}, func(c *Config) any { return c.Survivability.FallbackAfter }, time.Second},
		{map[string]string{"MXEDGE_SURVIVABILITY_LOCAL_SESSION_TIMEOUT": "0"}, func(c *Config) any { return c.Survivability.LocalSessionTimeout }, time.Duration(0)},
		{map[string]string{"MXEDGE_SURVIVABILITY_ACCOUNTING_STORE": "2000"}, func(c *Config) any { return c.Survivability.AccountingStore }, 2000},
		{map[string]string{"MXEDGE_SURVIVABILITY_EVENTS_DURABLE": "true"}, func(c *Config) any { return c.Survivability.EventsDurable }, true},
		{map[string]string{"MXEDGE_CLOUD_API_URL": "https://cloud.example.net"}, func(c *Config) any { return c.Cloud.APIURL }, "https://cloud.example.net"},
		{
			map[string]string{"MXEDGE_RADIUS_AUTH_LISTEN": "127.0.0.1:1812, [::1]:1812"},
			func(c *Config) any { return c.RADIUS.AuthListen }, []string{"127.0.0.1:1812", "[::1]:1812"},
		},
		{
			map[string]string{"MXEDGE_CLOUD_RADSEC_SERVERS": "radsec.example.net"},
			func(c *Config) any { return c.Cloud.RadSec.Servers }, []string{"radsec.example.net:2083"},
		},
	}
	for _, tt := range tests {
		t.Run(strings.Join(slices.Sorted(maps.Keys(tt.env)), ","), func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			c := mustLoad(t, file)
			if got := tt.want(c); !reflect.DeepEqual(got, tt.val) {
				t.Errorf("got %#v, want %#v", got, tt.val)
			}
		})
	}
}

// TestEnvOverridesFile: the environment wins over the file.
func TestEnvOverridesFile(t *testing.T) {
	t.Setenv("MXEDGE_LOG_LEVEL", "warn")
	c, err := Parse("c.yaml", []byte("log: {level: debug, format: json}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Log.Level != slog.LevelWarn || c.Log.Format != "json" {
		t.Errorf("log = %+v, want level warn from the environment, format json from the file", c.Log)
	}
}

func TestEnvBad(t *testing.T) {
	t.Setenv("MXEDGE_LOG_LEVEL", "verbose")
	t.Setenv("MXEDGE_SURVIVABILITY_CACHE_TTL_DAYS", "90")
	t.Setenv("MXEDGE_CLOUD_SYNC_INTERVAL", "soon")
	_, err := Parse("c.yaml", nil)
	want := `c.yaml: log.level: "verbose" is not one of debug, info, warn, error (from $MXEDGE_LOG_LEVEL)
c.yaml: cloud.sync_interval: "soon" is not a duration (e.g. 3s, 30m, 1h) (from $MXEDGE_CLOUD_SYNC_INTERVAL)
c.yaml: survivability.cache_ttl_days: 90 is out of range 1..30 (from $MXEDGE_SURVIVABILITY_CACHE_TTL_DAYS)`
	if err == nil || err.Error() != want {
		t.Errorf("got:\n%v\nwant:\n%s", err, want)
	}
}

func TestEnvName(t *testing.T) {
	for key, want := range map[string]string{
		"log.level":                          "MXEDGE_LOG_LEVEL",
		"state_dir":                          "MXEDGE_STATE_DIR",
		"survivability.health.probe_timeout": "MXEDGE_SURVIVABILITY_HEALTH_PROBE_TIMEOUT",
	} {
		if got := EnvName(key); got != want {
			t.Errorf("EnvName(%q) = %q, want %q", key, got, want)
		}
	}
}

func TestLoadMissing(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "nope.yaml"))
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Load of a missing file: %v, want fs.ErrNotExist", err)
	}
}

func mustLoad(t *testing.T, file string) *Config {
	t.Helper()
	c, err := Load(file)
	if err != nil {
		t.Fatalf("Load(%s):\n%v", file, err)
	}
	return c
}

// TestFailoverKeys: the survivability keys of the automatic failover, in
// the forms the file may write them, and fallback_after's default giving
// way to a shorter cloud timeout.
func TestFailoverKeys(t *testing.T) {
	tests := []struct {
		yaml string
		got  func(*Config) any
		want any
	}{
		{"survivability: {local_session_jitter: 25%}", func(c *Config) any { return c.Survivability.LocalSessionJitter }, Fraction(0.25)},
		{"survivability: {local_session_jitter: \" 12.5 % \"}", func(c *Config) any { return c.Survivability.LocalSessionJitter }, Fraction(0.125)},
		{"survivability: {local_session_jitter: 0.4}", func(c *Config) any { return c.Survivability.LocalSessionJitter }, Fraction(0.4)},
		{"survivability: {local_session_jitter: 0}", func(c *Config) any { return c.Survivability.LocalSessionJitter }, Fraction(0)},
		{"survivability: {local_session_jitter: 1}", func(c *Config) any { return c.Survivability.LocalSessionJitter }, Fraction(1)},
		{"survivability: {local_session_jitter: 100%}", func(c *Config) any { return c.Survivability.LocalSessionJitter }, Fraction(1)},
		{"survivability: {local_session_timeout: 0}", func(c *Config) any { return c.Survivability.LocalSessionTimeout }, time.Duration(0)},
		{"survivability: {local_session_timeout: 1m}", func(c *Config) any { return c.Survivability.LocalSessionTimeout }, time.Minute},
		{"survivability: {accounting_store: 1000}", func(c *Config) any { return c.Survivability.AccountingStore }, 1000},
		{"survivability: {events_durable: true}", func(c *Config) any { return c.Survivability.EventsDurable }, true},
		{"survivability: {fallback_after: 2900ms}", func(c *Config) any { return c.Survivability.FallbackAfter }, 2900 * time.Millisecond},
		// The default 2s yields to a cloud timeout at or below it.
		{"cloud: {radsec: {timeout: 2s}}", func(c *Config) any { return c.Survivability.FallbackAfter }, time.Second},
		{"cloud: {radsec: {timeout: 1500ms}}", func(c *Config) any { return c.Survivability.FallbackAfter }, 750 * time.Millisecond},
		{"cloud: {radsec: {timeout: 10s}}", func(c *Config) any { return c.Survivability.FallbackAfter }, 2 * time.Second},
		{"cloud: {radsec: {timeout: 2s}}\nsurvivability: {fallback_after: 1900ms}", func(c *Config) any { return c.Survivability.FallbackAfter }, 1900 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.yaml, func(t *testing.T) {
			c, err := Parse("t.yaml", []byte(tt.yaml))
			if err != nil {
				t.Fatal(err)
			}
			if got := tt.got(c); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
	if s := Fraction(0.25).String(); s != "25%" {
		t.Errorf("Fraction(0.25) prints %q", s)
	}
}

func TestMetricsConsole(t *testing.T) {
	for _, tt := range []struct {
		listen string
		loop   bool
	}{
		{"127.0.0.1:9812", true}, {"127.9.9.9:1", true}, {"[::1]:9812", true}, {"localhost:9812", true},
		{":9812", false}, {"0.0.0.0:9812", false}, {"192.0.2.1:9812", false}, {"[::]:9812", false},
		{"mxedge.example.net:9812", false}, {"garbage", false},
	} {
		if got := IsLoopbackListen(tt.listen); got != tt.loop {
			t.Errorf("IsLoopbackListen(%q) = %v, want %v", tt.listen, got, tt.loop)
		}
	}
	c := Default()
	if got := c.ConsoleTokenFile(); got != "/var/lib/mxedge/console.token" {
		t.Errorf("default token file %q", got)
	}
	if cert, key := c.MetricsTLS(); cert != c.RadSec.Cert || key != c.RadSec.Key {
		t.Errorf("default TLS %q %q, want the RadSec listener's", cert, key)
	}
	c.Metrics.TokenFile, c.Metrics.TLSCert, c.Metrics.TLSKey = "/etc/t", "/c.pem", "/c.key"
	if cert, key := c.MetricsTLS(); c.ConsoleTokenFile() != "/etc/t" || cert != "/c.pem" || key != "/c.key" {
		t.Errorf("set token file and TLS ignored")
	}

	dir := t.TempDir()
	for _, tt := range []struct {
		yaml string
		warn bool
	}{
		{"metrics: {listen: \":9812\"}\n", true},
		{"metrics: {listen: \":9812\", https: true}\n", false},
		{"metrics: {listen: \":9812\", console: false}\n", false},
		{"metrics: {listen: \"127.0.0.1:9812\"}\n", false},
	} {
		f := filepath.Join(dir, "c.yaml")
		if err := os.WriteFile(f, []byte(tt.yaml), 0o600); err != nil {
			t.Fatal(err)
		}
		c := mustLoad(t, f)
		warned := slices.ContainsFunc(c.Warnings(), func(w string) bool { return strings.Contains(w, "metrics.https") })
		if warned != tt.warn {
			t.Errorf("%q: warnings %q, want a metrics.https warning: %v", tt.yaml, c.Warnings(), tt.warn)
		}
	}
}

// envKeys is Keys without the keys of list entries, which no variable
// overrides.
func TestEnvKeys(t *testing.T) {
	env := envKeys()
	for _, k := range []string{"log.level", "radius.auth_listen", "state_dir"} {
		if !slices.Contains(env, k) {
			t.Errorf("%s missing from envKeys", k)
		}
	}
	for _, k := range Keys() {
		if strings.Contains(k, "[]") == slices.Contains(env, k) {
			t.Errorf("%s: in envKeys = %v", k, slices.Contains(env, k))
		}
	}
}
