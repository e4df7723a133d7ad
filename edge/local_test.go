package edge

import (
	"context"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mxedge/mxedge/internal/labpki"
	"github.com/mxedge/mxedge/internal/syncbuf"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mxedge/mxedge/edge/config"
)

// writePair writes a self-signed CA certificate and key; it serves as both
// the org CA and the EAP server certificate here.
func writePair(t *testing.T, dir, name, cn string) (certPath, keyPath string) {
	t.Helper()
	c, err := labpki.Issue(nil, labpki.ECKey(), &x509.Certificate{Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.WriteFiles(dir, name); err != nil {
		t.Fatal(err)
	}
	return c.Cert, c.Key
}

func TestNewLocal(t *testing.T) {
	dir := t.TempDir()
	ca, _ := writePair(t, dir, "org-ca", "Org CA")
	cert, key := writePair(t, dir, "eap", "eap.example")
	missing := filepath.Join(dir, "missing.pem")
	cases := []struct {
		name    string
		edit    func(*config.Survivability)
		wantErr string
	}{
		{"ok", func(*config.Survivability) {}, ""},
		{"org_ca missing", func(s *config.Survivability) { s.OrgCA = missing }, "survivability.org_ca"},
		{"crl missing", func(s *config.Survivability) { s.CRL = []string{missing} }, "survivability.crl[0]"},
		{"eap_cert missing", func(s *config.Survivability) { s.EAPCert = missing }, "survivability.eap_cert"},
		{"eap_key missing", func(s *config.Survivability) { s.EAPKey = missing }, "survivability.eap_key"},
		{"org_ca not a CA bundle", func(s *config.Survivability) { s.OrgCA = key }, "survivability.org_ca"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := config.Default()
			cfg.StateDir = t.TempDir()
			s := &cfg.Survivability
			s.OrgCA, s.EAPCert, s.EAPKey, s.DefaultDot1XVLAN = ca, cert, key, "51"
			c.edit(s)
			log := slog.New(slog.DiscardHandler)
			store, err := openCache(cfg, log, prometheus.NewRegistry())
			if err != nil {
				t.Fatal(err)
			}
			defer store.Close()
			n, err := newLocal(cfg, store, log, prometheus.NewRegistry(), nil)
			if c.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				(&localNAC{store: store, nac: n}).close(t.Context())
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Fatalf("err %v, want it to name %s", err, c.wantErr)
			}
		})
	}
}

func TestCertFileReload(t *testing.T) {
	dir := t.TempDir()
	cert, key := writePair(t, dir, "eap", "first")
	cf := &certFile{cert: cert, key: key, log: slog.New(slog.DiscardHandler)}
	c1, err := cf.get()
	if err != nil {
		t.Fatal(err)
	}
	writePair(t, dir, "eap", "second")
	future := time.Now().Add(time.Minute)
	os.Chtimes(cert, future, future)
	cf.checked = time.Time{} // skip the once-a-second throttle
	c2, err := cf.get()
	if err != nil {
		t.Fatal(err)
	}
	if c1 == c2 || c2.Leaf == nil || c2.Leaf.Subject.CommonName != "second" {
		t.Fatal("new certificate not picked up")
	}
	os.WriteFile(key, []byte("garbage"), 0o600)
	os.Chtimes(key, future.Add(time.Minute), future.Add(time.Minute))
	cf.checked = time.Time{}
	if c3, err := cf.get(); err != nil || c3 != c2 {
		t.Fatalf("a broken pair must keep the current certificate: %v", err)
	}
}

// An edge that started in auto mode without its certificates (a fresh
// edge before the cloud's first push) gets a local NAC from a reload once
// they exist, and loses it again when survivability is switched off.
func TestReloadBuildsLocalNAC(t *testing.T) {
	dir := t.TempDir()
	ca, _ := writePair(t, dir, "org-ca", "Org CA")
	cert, key := writePair(t, dir, "eap", "eap.example")
	base := testYAML(t, "auto")
	path := filepath.Join(dir, "config.yaml")
	write := func(extra string) *config.Config {
		if err := os.WriteFile(path, []byte(base+extra), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg, err := config.Load(path)
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	cfg := write("  org_ca: " + filepath.Join(dir, "not-yet.pem") + "\n")
	a, err := Start(t.Context(), Options{ConfigPath: path, Config: cfg, Stderr: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Shutdown(context.Background())
	if p, _ := a.router.decide(nil); p != PathNone {
		t.Fatalf("before the certificates: path %s, want none", p)
	}

	write(fmt.Sprintf("  org_ca: %s\n  eap_cert: %s\n  eap_key: %s\n  default_dot1x_vlan: \"51\"\n", ca, cert, key))
	if err := a.Reload(); err != nil {
		t.Fatal(err)
	}
	if p, why := a.router.decide(nil); p != PathLocal {
		t.Fatalf("after the certificates arrived: path %s (%s), want local", p, why)
	}

	write("  enabled: false\n")
	if err := a.Reload(); err != nil {
		t.Fatal(err)
	}
	if p, _ := a.router.decide(nil); p != PathNone {
		t.Fatalf("with survivability off: path %s, want none", p)
	}
}

// A fresh install in mode auto has no org CA or EAP certificate until the
// cloud's sync delivers them: the edge says it waits (log at info, status
// Waiting), it does not log an error.
func TestLocalWaitsForCertificates(t *testing.T) {
	dir := t.TempDir()
	cfg, err := config.Parse("test.yaml", []byte(testYAML(t, "auto")+fmt.Sprintf(`  org_ca: %[1]s/org-ca.pem
  eap_cert: %[1]s/eap.pem
  eap_key: %[1]s/eap.key
`, dir)))
	if err != nil {
		t.Fatal(err)
	}
	var logs syncbuf.Buffer
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a, err := Start(ctx, Options{Config: cfg, Version: "test", Stderr: &logs})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Shutdown(context.Background())
	if strings.Contains(logs.String(), "level=ERROR") {
		t.Errorf("missing certificates logged as an error:\n%s", logs.String())
	}
	if !strings.Contains(logs.String(), "local NAC waits for its certificates") {
		t.Errorf("no waiting line:\n%s", logs.String())
	}
	st := ask(t, a, ControlRequest{Cmd: CmdStatus}).Status
	if !slices.ContainsFunc(st.Waiting, func(w string) bool { return strings.HasPrefix(w, "local NAC certificates (survivability.org_ca:") }) {
		t.Errorf("status waiting %q, want the local NAC's certificates", st.Waiting)
	}

	// Once the certificates are there, a reload builds the NAC and the
	// waiting line goes.
	writePair(t, dir, "org-ca", "Org CA")
	writePair(t, dir, "eap", "eap.example")
	a.reloadLocal(cfg)
	st = ask(t, a, ControlRequest{Cmd: CmdStatus}).Status
	if slices.ContainsFunc(st.Waiting, func(w string) bool { return strings.HasPrefix(w, "local NAC") }) {
		t.Errorf("after the certificates came: waiting %q", st.Waiting)
	}
}
