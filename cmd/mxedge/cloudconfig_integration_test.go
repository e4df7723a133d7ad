package main

import (
	"encoding/json"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/mxedge/mxedge/cmd/internal/peers"
	"github.com/mxedge/mxedge/edge"
)

// registerEdge registers a fresh state directory with cloud.
func registerEdge(t *testing.T, cloud *labCloud) string {
	t.Helper()
	state := t.TempDir()
	out, code := runEdgeCmd(t, "register", "--config", freshConfig(t),
		"--registration-code", cloud.Code, "--cloud", cloud.API, "--cloud-ca", cloud.CA, "--state-dir", state)
	if code != 0 || !regexp.MustCompile(`registration finished successfully`).MatchString(out) {
		t.Fatalf("register: exit %d\n%s", code, out)
	}
	return state
}

// TestCloudPushesRADIUSClients runs an edge whose file has no
// radius.clients: it starts with none (a fresh registration has no cloud
// config yet), pulls the lab cloud's config, swaps in the cloud's client
// at runtime, and a switch using that client's secret authenticates.
// `mxedge status --json` says the clients came from the cloud.
func TestCloudPushesRADIUSClients(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("real-process test")
	}
	peers.RequireBin(t, "radclient")
	const cloudSecret = "cloud-pushed-secret-5d1e7a"
	cloud := startLabCloud(t, mabMAC+"="+mabVLAN, "--client", "cloud-switch=127.0.0.1/32:"+cloudSecret)
	state := registerEdge(t, cloud)
	e := startEdge(t, edgeConfig{StateDir: state, Mode: "cloud", NoCloudSection: true, NoClients: true})

	if !waitFor(20*time.Second, func() bool { return strings.Contains(e.Log(), "cloud config applied") }) {
		t.Fatal("the cloud config was not applied")
	}
	res, err := peers.Radclient(ctxFor(t, 10*time.Second), e.Auth, cloudSecret, "auth", mabAttrs(mabMAC))
	if err != nil {
		t.Fatal(err)
	}
	if res.Code != "Access-Accept" || res.Attr("Tunnel-Private-Group-Id") != mabVLAN {
		t.Fatalf("MAB from the cloud-pushed client:\n%s", res.Output)
	}

	out, code := runEdgeCmd(t, "status", "--config", e.cfgPath, "--json")
	if code != 0 {
		t.Fatalf("status: exit %d\n%s", code, out)
	}
	var st edge.StatusReport
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("status --json: %v\n%s", err, out)
	}
	want := map[string]string{
		edge.KeyClients: edge.SourceCloud, edge.KeyDefaultMABVLAN: edge.SourceCloud,
		edge.KeyEAPCert: edge.SourceCloud, edge.KeyFederation: edge.SourceDefault,
	}
	for k, v := range want {
		if st.Config.Sections[k] != v {
			t.Errorf("status: %s from %q, want %q (all: %v)", k, st.Config.Sections[k], v, st.Config.Sections)
		}
	}
}

// TestLabCloudEAPTLSThroughEdge authenticates a real supplicant
// (eapol_test) through the real edge to the lab cloud's EAP-TLS NAC, which
// checks the client certificate against --org-ca and gives the VLAN that
// --eap-vlan names for its identity.
func TestLabCloudEAPTLSThroughEdge(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("real-process test")
	}
	peers.RequireBin(t, "eapol_test")
	p := labPKI(t)
	const userVLAN = "60"
	cloud := startLabCloud(t, mabMAC+"="+mabVLAN, "--org-ca", p.OrgCAFile, "--org-crl", p.OrgCRL,
		"--eap-vlan", p.User.X509.Subject.CommonName+"="+userVLAN, "--default-dot1x-vlan", eapVLAN)
	state := registerEdge(t, cloud)
	e := startEdge(t, edgeConfig{Secret: labSecret, StateDir: state, Mode: "cloud", NoCloudSection: true})

	cases := []struct {
		name   string
		cert   string
		key    string
		accept bool
		vlan   string
	}{
		{"identity VLAN", p.User.Chain, p.User.Key, true, userVLAN},
		{"default 802.1X VLAN", p.Machine.Chain, p.Machine.Key, true, eapVLAN},
		{"revoked", p.Revoked.Chain, p.Revoked.Key, false, ""},
		{"untrusted", p.Untrusted.Chain, p.Untrusted.Key, false, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			res, err := peers.EAPOLTest(ctxFor(t, 30*time.Second), e.Auth, labSecret, peers.EAPTLS{
				Identity: "anonymous@example.org", CACert: cloud.CA,
				ClientCert: c.cert, PrivateKey: c.key, TLS13: true,
			})
			if err != nil {
				t.Fatal(err)
			}
			if res.Success != c.accept {
				t.Fatalf("success=%v, want %v\n%s", res.Success, c.accept, tailString(res.Output, 40))
			}
			if c.accept && (res.MPPEOK != 1 || res.MPPEMismatch != 0 || res.VLAN() != c.vlan) {
				t.Fatalf("MPPE ok=%d mismatch=%d VLAN %q (want %q)\n%s", res.MPPEOK, res.MPPEMismatch, res.VLAN(), c.vlan,
					tailString(res.Output, 40))
			}
		})
	}
	// The lab records accepts (from the NAC's events, written in the
	// background) and serves them as cache entries.
	var stats string
	ok := waitFor(10*time.Second, func() bool {
		out, err := exec.Command(cloudBin, "stats", "--dir", cloud.Dir).CombinedOutput()
		stats = string(out)
		return err == nil && strings.Contains(stats, "accepts=2\n") && strings.Contains(stats, "cache_entries=2\n")
	})
	if !ok {
		t.Fatalf("mxcloud stats:\n%s", stats)
	}
}
