package edge

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/mxedge/mxedge/cloudlink"
	"github.com/mxedge/mxedge/edge/config"
)

func fullDoc() *cloudlink.EdgeConfig {
	return &cloudlink.EdgeConfig{
		Survivability: &cloudlink.Survivability{Enabled: false, CacheTTLDays: 14,
			DefaultMABVLAN: "141", DefaultDot1XVLAN: "151"},
		RADIUSClients: []cloudlink.RADIUSClient{
			{Name: "cloud-sw", Address: "198.51.100.0/24", Secret: "cloud-secret-0123456789", RequireMessageAuthenticator: true},
		},
		Federation:     []cloudlink.Federation{{Name: "eduroam", AuthServers: []cloudlink.RADIUSServer{{Address: "192.0.2.10:1812", Secret: "s"}}}},
		CachingSiteIDs: []string{"site-1"},
		OrgCA:          &cloudlink.OrgCA{Certificates: "PEM", CRLs: []string{"CRL0", "CRL1"}},
		ServerCert:     &cloudlink.CertificateKey{Certificate: "PEM", Key: "KEY"},
	}
}

func TestMergeCloudPrecedence(t *testing.T) {
	const base = "state_dir: /st\n"
	all := map[string]string{
		KeyClients: SourceCloud, KeyEnabled: SourceCloud, KeyCacheTTLDays: SourceCloud,
		KeyDefaultMABVLAN: SourceCloud, KeyDefaultDot1X: SourceCloud, KeyOrgCA: SourceCloud,
		KeyEAPCert: SourceCloud, KeyFederation: SourceCloud, KeyCachingSiteIDs: SourceCloud,
	}
	with := func(kv ...string) map[string]string {
		m := map[string]string{}
		for k, v := range all {
			m[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	tests := []struct {
		name  string
		file  string
		doc   *cloudlink.EdgeConfig
		want  map[string]string
		check func(t *testing.T, c *config.Config)
	}{
		{
			name: "no cloud config: defaults", file: base, doc: nil,
			want: with(KeyClients, SourceDefault, KeyEnabled, SourceDefault, KeyCacheTTLDays, SourceDefault,
				KeyDefaultMABVLAN, SourceDefault, KeyDefaultDot1X, SourceDefault, KeyOrgCA, SourceDefault,
				KeyEAPCert, SourceDefault, KeyFederation, SourceDefault, KeyCachingSiteIDs, SourceDefault),
			check: func(t *testing.T, c *config.Config) {
				d := config.Default()
				if !c.Survivability.Enabled || c.Survivability.OrgCA != d.Survivability.OrgCA || len(c.RADIUS.Clients) != 0 {
					t.Errorf("defaults changed: %+v", c.Survivability)
				}
			},
		},
		{
			name: "empty file: all from the cloud", file: base, doc: fullDoc(), want: all,
			check: func(t *testing.T, c *config.Config) {
				s := c.Survivability
				if s.Enabled || s.CacheTTLDays != 14 || s.DefaultMABVLAN != "141" || s.DefaultDot1XVLAN != "151" {
					t.Errorf("survivability %+v", s)
				}
				if s.OrgCA != "/st/cloud/org-ca.pem" || !reflect.DeepEqual(s.CRL, []string{"/st/cloud/crl-0.pem", "/st/cloud/crl-1.pem"}) {
					t.Errorf("org CA %q CRL %q", s.OrgCA, s.CRL)
				}
				if s.EAPCert != "/st/cloud/server.pem" || s.EAPKey != "/st/cloud/server.key" {
					t.Errorf("eap %q %q", s.EAPCert, s.EAPKey)
				}
				want := config.Client{Name: "cloud-sw", Address: netip.MustParsePrefix("198.51.100.0/24"),
					Secret: "cloud-secret-0123456789", Vendor: "generic", RequireMessageAuthenticator: true, CoAPort: 3799, CoARequireMessageAuthenticator: true}
				if len(c.RADIUS.Clients) != 1 || !reflect.DeepEqual(c.RADIUS.Clients[0], want) {
					t.Errorf("clients %+v", c.RADIUS.Clients)
				}
				if len(c.Federation) != 1 || c.Federation[0].LoadBalance != "round_robin" || c.Federation[0].AuthServers[0].Secret != "s" {
					t.Errorf("federation %+v", c.Federation)
				}
				if len(c.Cloud.CachingSiteIDs) != 0 {
					t.Error("caching_site_ids merged: the syncer must keep telling file from cloud")
				}
			},
		},
		{
			name: "file clients win",
			file: base + "radius:\n  clients:\n    - {address: 10.0.0.1, secret: file-secret-0123456789}\n",
			doc:  fullDoc(), want: with(KeyClients, SourceFile),
			check: func(t *testing.T, c *config.Config) {
				if len(c.RADIUS.Clients) != 1 || c.RADIUS.Clients[0].Secret != "file-secret-0123456789" {
					t.Errorf("clients %+v", c.RADIUS.Clients)
				}
			},
		},
		{
			name: "file tunes health only: cloud still fills the rest",
			file: base + "survivability:\n  health:\n    down_after: 5\n",
			doc:  fullDoc(), want: all,
			check: func(t *testing.T, c *config.Config) {
				if c.Survivability.Health.DownAfter != 5 || c.Survivability.DefaultMABVLAN != "141" {
					t.Errorf("survivability %+v", c.Survivability)
				}
			},
		},
		{
			name: "file survivability keys win one by one",
			file: base + "survivability:\n  enabled: true\n  default_mab_vlan: \"41\"\n  crl: [/etc/crl.pem]\n  eap_key: /etc/eap.key\n",
			doc:  fullDoc(),
			want: with(KeyEnabled, SourceFile, KeyDefaultMABVLAN, SourceFile, KeyOrgCA, SourceFile, KeyEAPCert, SourceFile),
			check: func(t *testing.T, c *config.Config) {
				s, d := c.Survivability, config.Default().Survivability
				if !s.Enabled || s.DefaultMABVLAN != "41" || s.DefaultDot1XVLAN != "151" || s.CacheTTLDays != 14 {
					t.Errorf("survivability %+v", s)
				}
				// A CA and its CRLs, a certificate and its key, come from one place.
				if s.OrgCA != d.OrgCA || !reflect.DeepEqual(s.CRL, []string{"/etc/crl.pem"}) || s.EAPCert != d.EAPCert || s.EAPKey != "/etc/eap.key" {
					t.Errorf("files %+v", s)
				}
			},
		},
		{
			name: "file federation and site list win",
			file: base + "federation: []\ncloud:\n  caching_site_ids: [mine]\n",
			doc:  fullDoc(), want: with(KeyFederation, SourceFile, KeyCachingSiteIDs, SourceFile),
			check: func(t *testing.T, c *config.Config) {
				if len(c.Federation) != 0 {
					t.Errorf("federation %+v", c.Federation)
				}
			},
		},
		{
			name: "unusable cloud values fall back to defaults",
			file: base,
			doc: &cloudlink.EdgeConfig{
				Survivability: &cloudlink.Survivability{Enabled: true, CacheTTLDays: 90},
				RADIUSClients: []cloudlink.RADIUSClient{{Address: "not-an-ip", Secret: "x"}, {Address: "192.0.2.1"}},
				OrgCA:         &cloudlink.OrgCA{},
			},
			want: with(KeyClients, SourceDefault, KeyCacheTTLDays, SourceDefault, KeyDefaultMABVLAN, SourceDefault,
				KeyDefaultDot1X, SourceDefault, KeyOrgCA, SourceDefault, KeyEAPCert, SourceDefault,
				KeyFederation, SourceDefault, KeyCachingSiteIDs, SourceDefault),
			check: func(t *testing.T, c *config.Config) {
				if c.Survivability.CacheTTLDays != 7 || len(c.RADIUS.Clients) != 0 {
					t.Errorf("got %+v", c)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			file, err := config.Parse("t.yaml", []byte(tt.file))
			if err != nil {
				t.Fatal(err)
			}
			before := *file
			got, src, _ := mergeCloud(file, tt.doc)
			if !reflect.DeepEqual(src, tt.want) {
				t.Errorf("sources\n got  %v\n want %v", src, tt.want)
			}
			tt.check(t, got)
			if !reflect.DeepEqual(*file, before) {
				t.Error("mergeCloud modified the file's config")
			}
		})
	}
}

func TestCloudClients(t *testing.T) {
	got, notes := cloudClients([]cloudlink.RADIUSClient{
		{Address: "::ffff:192.0.2.7", Secret: "a"},
		{Name: "n", Address: "192.0.2.7/32", Secret: "b"}, // the same prefix
		{Address: "2001:db8::/32", Secret: "c", Vendor: "aruba", CoAPort: 1700},
		{Address: "192.0.2.8", Secret: ""},
		{Address: "fe80::1%eth0", Secret: "d"},
		{Address: "192.0.2.9", Secret: "e", Vendor: "acme", CoAPort: 70000},
	})
	if len(got) != 3 || got[0].Address != netip.MustParsePrefix("192.0.2.7/32") || got[0].Name != "192.0.2.7/32" ||
		got[1].Vendor != "aruba" || got[1].CoAPort != 1700 || got[2].Vendor != "generic" || got[2].CoAPort != 3799 {
		t.Errorf("clients %+v", got)
	}
	if len(notes) != 5 {
		t.Errorf("notes %q", notes)
	}
}

func TestLoadCloudDocUnregistered(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, cloudlink.ConfigFile), []byte(`{"config":{"radius_clients":[]}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	doc, err := loadCloudDoc(dir)
	if err != nil || doc != nil {
		t.Errorf("unregistered: %v, %v", doc, err)
	}
}

// A config pushed at runtime swaps the client table when the file leaves
// radius.clients out, and does not when the file has its own.
func TestCloudConfigAppliedAtRuntime(t *testing.T) {
	tests := []struct {
		name       string
		fileClient bool
		wantSecret string
		wantSource string
	}{
		{"cloud clients used", false, "cloud-secret-0123456789", SourceCloud},
		{"file clients kept", true, "a-long-enough-test-secret", SourceFile},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			y := "state_dir: " + dir + "\nmetrics:\n  listen: \"\"\nradius:\n  auth_listen: [\"127.0.0.1:0\"]\n  acct_listen: []\n"
			if tt.fileClient {
				y += "  clients:\n    - {address: 127.0.0.2, secret: a-long-enough-test-secret}\n"
			}
			y += "survivability:\n  mode: cloud\n"
			path := filepath.Join(dir, "config.yaml")
			if err := os.WriteFile(path, []byte(y), 0o600); err != nil {
				t.Fatal(err)
			}
			cfg, err := config.Load(path)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			a, err := Start(ctx, Options{ConfigPath: path, Config: cfg, Version: "test", Stderr: &bytes.Buffer{}})
			if err != nil {
				t.Fatal(err)
			}
			defer a.Shutdown(context.Background())
			addr := netip.MustParseAddr("127.0.0.2")
			if c := a.clients.Load().Lookup(addr); (c != nil) != tt.fileClient {
				t.Fatalf("before: client %+v", c)
			}

			doc := &cloudlink.EdgeConfig{RADIUSClients: []cloudlink.RADIUSClient{
				{Name: "cloud-sw", Address: "127.0.0.2", Secret: "cloud-secret-0123456789", RequireMessageAuthenticator: true}}}
			a.onCloudConfig(doc)
			a.onCloudConfig(doc) // the same document again: nothing more to do
			a.stopApplies()      // waits for the apply

			c := a.clients.Load().Lookup(addr)
			if c == nil || string(c.Secret) != tt.wantSecret {
				t.Fatalf("after: client %+v", c)
			}
			if got := a.configSources()[KeyClients]; got != tt.wantSource {
				t.Errorf("source %q, want %q", got, tt.wantSource)
			}
			st := a.statusReport(a.side.control.since)
			if st.Config.Sections[KeyClients] != tt.wantSource {
				t.Errorf("status sections %v", st.Config.Sections)
			}
			// After stopApplies nothing reloads a closing app.
			a.onCloudConfig(&cloudlink.EdgeConfig{})
			if a.clients.Load().Lookup(addr) == nil {
				t.Error("apply after stop")
			}
		})
	}
}

// An edge restarted while the cloud is unreachable starts with the cloud
// config it persisted: the cloud's clients are in the table when Start
// returns.
func TestStartAppliesPersistedCloudConfig(t *testing.T) {
	lab, srv := startLabAPI(t)
	lab.SetEndpoints(srv.URL, "")
	state := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := cloudlink.Register(ctx, srv.URL, lab.NewCode(), state, cloudlink.RegisterOptions{CAFile: lab.CAFile()}); err != nil {
		t.Fatal(err)
	}
	srv.Close() // the WAN is down from here on

	doc := map[string]any{"etag": `"x"`, "config": &cloudlink.EdgeConfig{
		RADIUSClients: []cloudlink.RADIUSClient{{Name: "cloud-sw", Address: "127.0.0.3", Secret: "cloud-secret-0123456789"}},
		Survivability: &cloudlink.Survivability{Enabled: true, CacheTTLDays: 3, DefaultMABVLAN: "141"},
	}}
	b, _ := json.Marshal(doc)
	if err := os.WriteFile(filepath.Join(state, cloudlink.ConfigFile), b, 0o600); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "config.yaml")
	y := "state_dir: " + state + "\nmetrics:\n  listen: \"\"\nradius:\n  auth_listen: [\"127.0.0.1:0\"]\n  acct_listen: []\nsurvivability:\n  mode: cloud\n"
	if err := os.WriteFile(path, []byte(y), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	a, err := Start(ctx, Options{ConfigPath: path, Config: cfg, Version: "test", Stderr: &bytes.Buffer{}})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Shutdown(context.Background())
	if c := a.clients.Load().Lookup(netip.MustParseAddr("127.0.0.3")); c == nil || c.Name != "cloud-sw" {
		t.Fatalf("cloud client not in the table at start: %+v", c)
	}
	got := a.cfg.Load().Survivability
	if got.CacheTTLDays != 3 || got.DefaultMABVLAN != "141" {
		t.Errorf("survivability %+v", got)
	}
	src := a.configSources()
	if src[KeyClients] != SourceCloud || src[KeyCacheTTLDays] != SourceCloud || src[KeyOrgCA] != SourceDefault {
		t.Errorf("sources %v", src)
	}
}

// Whatever the cloud sends, the merged clients make a valid client table.
func FuzzMergeCloudClients(f *testing.F) {
	f.Add([]byte(`{"radius_clients":[{"address":"192.0.2.1","secret":"s"},{"address":"192.0.2.1/32","secret":"t"}]}`))
	f.Add([]byte(`{"radius_clients":[{"address":"::ffff:10.0.0.1/120","secret":"s","coa_port":-1}]}`))
	file := config.Default()
	f.Fuzz(func(t *testing.T, b []byte) {
		var doc cloudlink.EdgeConfig
		if json.Unmarshal(b, &doc) != nil {
			return
		}
		cfg, _, _ := mergeCloud(file, &doc)
		if _, err := buildClients(cfg, []byte("self")); err != nil {
			t.Fatalf("client table from %s: %v", b, err)
		}
	})
}

// Sources follow the running config: a merge whose reload was refused
// does not show.
func TestConfigSourcesFollowRunningConfig(t *testing.T) {
	a := &App{log: slog.New(slog.DiscardHandler)}
	a.cc.doc = fullDoc()
	parse := func(y string) *config.Config {
		c, err := config.Parse("t.yaml", []byte(y))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	fromCloud := parse("state_dir: /st\n")
	fromFile := parse("state_dir: /st\nradius:\n  clients:\n    - {address: 10.0.0.1, secret: file-secret-0123456789}\n")

	a.cfg.Store(a.withCloud(fromCloud)) // start
	steps := []struct {
		file    *config.Config
		applied bool
		want    string
	}{
		{fromFile, false, SourceCloud}, // refused
		{fromFile, true, SourceFile},
		{fromCloud, false, SourceFile}, // refused
		{fromCloud, true, SourceCloud},
	}
	for i, s := range steps {
		cfg := a.withCloud(s.file)
		if s.applied {
			a.cfg.Store(cfg)
		}
		if got := a.configSources()[KeyClients]; got != s.want {
			t.Errorf("step %d: %s from %q, want %q", i, KeyClients, got, s.want)
		}
	}
}
