package main

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/mxedge/mxedge/cmd/internal/peers"
)

// TestCloudAnswersByClientVendor: the edge tells the cloud which
// configured client asked (docs/cloud-api.md), so the lab cloud answers the
// same MAC with a Cisco-AVPair for the cisco switch and an Aruba-User-Role
// for the aruba one.
func TestCloudAnswersByClientVendor(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("real-process test")
	}
	peers.RequireBin(t, "radclient")
	cloud := startLabCloud(t, mabMAC+"="+mabVLAN)
	state := t.TempDir()
	cfgPath := filepath.Join(t.TempDir(), "config.yaml") // defaults
	if err := os.WriteFile(cfgPath, []byte("log:\n  level: info\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, code := runEdgeCmd(t, "register", "--config", cfgPath,
		"--registration-code", cloud.Code, "--cloud", cloud.API, "--cloud-ca", cloud.CA, "--state-dir", state); code != 0 {
		t.Fatalf("register: exit %d\n%s", code, out)
	}
	const arubaSecret = "aruba-controller-secret-4c1d"
	e := startEdge(t, edgeConfig{Secret: labSecret, StateDir: state, Mode: "cloud", NoCloudSection: true,
		MoreClients: `    - name: wlc-aruba
      address: 127.0.0.8/32
      secret: "` + arubaSecret + `"
      vendor: aruba
      site: lab
`})
	for _, tc := range []struct {
		client, src, secret, attr, want string
	}{
		{"lab-switch (cisco)", "", labSecret, "Cisco-AVPair", "shell:roles=lab-mab"},
		{"wlc-aruba (aruba)", "127.0.0.8", arubaSecret, "Aruba-User-Role", "lab-mab"},
	} {
		attrs := mabAttrs(mabMAC)
		if tc.src != "" {
			attrs = append(attrs, "Packet-Src-IP-Address = "+tc.src)
		}
		res, err := peers.Radclient(ctxFor(t, 10*time.Second), e.Auth, tc.secret, "auth", attrs)
		if err != nil {
			t.Fatal(err)
		}
		if res.Code != "Access-Accept" || res.Attr("Tunnel-Private-Group-Id") != mabVLAN {
			t.Fatalf("%s: MAB:\n%s", tc.client, res.Output)
		}
		if got := res.Attr(tc.attr); got != tc.want {
			t.Fatalf("%s: %s %q, want %q:\n%s", tc.client, tc.attr, got, tc.want, res.Output)
		}
		for _, other := range []string{"Cisco-AVPair", "Aruba-User-Role", "Filter-Id"} {
			if other != tc.attr && res.Attr(other) != "" {
				t.Errorf("%s: also got %s %q", tc.client, other, res.Attr(other))
			}
		}
		t.Logf("%s: %s = %q", tc.client, tc.attr, res.Attr(tc.attr))
	}
}
