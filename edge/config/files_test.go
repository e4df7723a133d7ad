package config

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mxedge/mxedge/internal/labpki"
)

var checkNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// writePair writes a self-signed certificate valid from notBefore to
// notAfter and its key, and returns their paths.
func writePair(t *testing.T, dir, name string, notBefore, notAfter time.Time) (string, string) {
	t.Helper()
	c, err := labpki.Issue(nil, labpki.ECKey(), &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: notBefore, NotAfter: notAfter, IsCA: true})
	if err != nil {
		t.Fatal(err)
	}
	// Not WriteFiles: the certificate must be world-readable, the key not.
	cert, key := filepath.Join(dir, name+".pem"), filepath.Join(dir, name+".key")
	must(t, os.WriteFile(cert, c.CertPEM(), 0o644))
	must(t, os.WriteFile(key, c.KeyPEM(), 0o600))
	return cert, key
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestCheckFiles: what run refuses about files, CheckFiles reports first,
// as FILE: KEY: reason; in mode auto the same problems are warnings,
// because run then starts cloud-only.
func TestCheckFiles(t *testing.T) {
	dir := t.TempDir()
	// The directories above must be searchable by the accounts checked.
	for d := dir; d != "/" && strings.HasPrefix(d, os.TempDir()+"/"); d = filepath.Dir(d) {
		must(t, os.Chmod(d, 0o755))
	}
	valid := [2]time.Time{checkNow.Add(-time.Hour), checkNow.Add(24 * time.Hour)}
	ca, _ := writePair(t, dir, "ca", valid[0], valid[1])
	eap, eapKey := writePair(t, dir, "eap", valid[0], valid[1])
	_, otherKey := writePair(t, dir, "other", valid[0], valid[1])
	old, oldKey := writePair(t, dir, "old", checkNow.Add(-48*time.Hour), checkNow.Add(-24*time.Hour))
	garbage := filepath.Join(dir, "garbage.pem")
	must(t, os.WriteFile(garbage, []byte("not a certificate\n"), 0o644))
	private := filepath.Join(dir, "private.pem")
	caPEM, err := os.ReadFile(ca)
	must(t, err)
	must(t, os.WriteFile(private, caPEM, 0o600))
	missing := filepath.Join(dir, "missing.pem")
	stranger := &Account{Name: "stranger", UID: 4242, GIDs: []int{4242}}

	tests := []struct {
		name             string
		mode             string
		orgCA, cert, key string
		as               *Account
		errs, warns      []string // substrings, in order
	}{
		{name: "good", mode: "local", orgCA: ca, cert: eap, key: eapKey},
		{name: "key private to root", mode: "local", orgCA: ca, cert: eap, key: eapKey, as: stranger,
			errs: []string{"survivability.eap_key: " + eapKey + ": not readable by user stranger"}},
		{name: "missing", mode: "local", orgCA: missing, cert: missing, key: missing,
			errs: []string{"survivability.org_ca: " + missing + ": no such file or directory",
				"survivability.eap_cert: " + missing + ": no such file or directory"}},
		{name: "missing in auto", mode: "auto", orgCA: missing, cert: eap, key: eapKey,
			warns: []string{"survivability.org_ca: " + missing + ": no such file or directory; survivability stays off"}},
		{name: "not PEM", mode: "local", orgCA: garbage, cert: garbage, key: eapKey,
			errs: []string{"survivability.org_ca: " + garbage + ": no PEM certificate", "survivability.eap_cert: " + garbage + ": no PEM certificate"}},
		{name: "key does not match", mode: "local", orgCA: ca, cert: eap, key: otherKey,
			errs: []string{"survivability.eap_key: " + eap + " with " + otherKey + ": tls: private key does not match public key"}},
		{name: "expired", mode: "local", orgCA: old, cert: old, key: oldKey,
			errs: []string{`survivability.org_ca: ` + old + `: certificate "old" expired on`, `survivability.eap_cert: ` + old + `: certificate "old" expired on`}},
		{name: "unreadable", mode: "local", orgCA: private, cert: eap, key: eapKey, as: &Account{Name: "mxedge", UID: 4242, GIDs: []int{4242}},
			errs: []string{"survivability.org_ca: " + private + ": not readable by user mxedge (owner root:root, mode 0600): chgrp mxedge " + private + " && chmod g+r " + private,
				"survivability.eap_key: " + eapKey + ": not readable by user mxedge"}},
		{name: "cloud mode needs none", mode: "cloud", orgCA: missing, cert: missing, key: missing},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			yml := "cloud:\n  radsec:\n    ca: " + missing + "\nsurvivability:\n  mode: " + tt.mode +
				"\n  org_ca: " + tt.orgCA + "\n  eap_cert: " + tt.cert + "\n  eap_key: " + tt.key + "\n"
			c, err := Parse("f.yaml", []byte(yml))
			if err != nil {
				t.Fatal(err)
			}
			err = c.CheckFiles(FileCheck{As: tt.as, Now: checkNow})
			var got []string
			if err != nil {
				got = strings.Split(err.Error(), "\n")
			}
			matchLines(t, "errors", got, tt.errs)
			matchLines(t, "warnings", c.Warnings(), tt.warns)
		})
	}
}

func matchLines(t *testing.T, what string, got, want []string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s:\ngot  %q\nwant %q", what, got, want)
	}
	for i := range want {
		if !strings.HasPrefix(got[i], "f.yaml: ") || !strings.Contains(got[i], want[i]) {
			t.Errorf("%s[%d] = %q, want f.yaml: …%s…", what, i, got[i], want[i])
		}
	}
}

// TestUnknownEnv: a misspelt MXEDGE_ variable is reported, not ignored.
func TestUnknownEnv(t *testing.T) {
	t.Setenv("MXEDGE_LOG_LEVL", "debug")
	t.Setenv("MXEDGE_LIBCRYPTO", "off") // read by edge/internal/libcrypto
	c, err := Parse("f.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"f.yaml: $MXEDGE_LOG_LEVL: not a config variable: it sets nothing"}
	if got := c.Warnings(); len(got) != 1 || !strings.HasPrefix(got[0], want[0]) {
		t.Errorf("warnings = %q, want %q…", got, want)
	}
}

func TestStateDir(t *testing.T) {
	tests := []struct{ file, want string }{
		{"state_dir: /srv/edge\nradius: {clients: [{bogus: 1}]}\n", "/srv/edge"},
		{"state_dir: relative\n", "/var/lib/mxedge"},
		{"{{{ not yaml", "/var/lib/mxedge"},
		{"", "/var/lib/mxedge"},
	}
	for _, tt := range tests {
		if got := StateDir([]byte(tt.file)); got != tt.want {
			t.Errorf("StateDir(%q) = %q, want %q", tt.file, got, tt.want)
		}
	}
	t.Setenv("MXEDGE_STATE_DIR", "/env/dir")
	if got := StateDir([]byte("state_dir: /srv/edge\n")); got != "/env/dir" {
		t.Errorf("with MXEDGE_STATE_DIR: %q", got)
	}
}
