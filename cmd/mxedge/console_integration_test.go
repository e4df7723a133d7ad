package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/mxedge/mxedge/cmd/internal/peers"
	"github.com/mxedge/mxedge/edge/console"
)

// artifactDir is where a test keeps what a person may want to look at
// afterwards (the console's screenshots): $MXEDGE_TEST_ARTIFACTS/NAME, or
// a directory of that name under the system's temp dir. It survives the
// test, and its path is logged.
func artifactDir(t *testing.T) string {
	t.Helper()
	root := os.Getenv("MXEDGE_TEST_ARTIFACTS")
	if root == "" {
		root = filepath.Join(os.TempDir(), "mxedge-test-artifacts")
	}
	dir := filepath.Join(root, t.Name())
	os.RemoveAll(dir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Logf("artifacts (screenshots) in %s", dir)
	return dir
}

// TestConsoleThroughOutage runs the lab cloud and mxedge as processes,
// lets the cloud answer a MAB client (which the edge learns), cuts the
// cloud, and loads the web console in headless Chromium: the Now page
// says survival, the decisions list shows the cached client answered from
// the cache and an unknown one given the default VLAN, and the client
// page shows the cached VLAN. Screenshots of every page are kept.
func TestConsoleThroughOutage(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("real-process test")
	}
	peers.RequireBin(t, "radclient")
	peers.RequireBin(t, "chromium")
	const (
		unknownMAC  = "001122334455"
		defaultVLAN = "99"
	)
	labDir, state := t.TempDir(), t.TempDir()
	cloud := startCloudProc(t, "--dir", labDir, "--mab="+mabMAC+"="+mabVLAN)
	if out, code := runEdgeCmd(t, "register", "--config", freshConfig(t), "--registration-code", cloud.lab.Code,
		"--cloud", cloud.lab.API, "--cloud-ca", cloud.lab.CA, "--state-dir", state); code != 0 {
		t.Fatalf("register: exit %d\n%s", code, out)
	}
	p := labPKI(t)
	e := startEdge(t, edgeConfig{Secret: labSecret, StateDir: state, Mode: "auto", NoCloudSection: true,
		Survivability: fmt.Sprintf("  org_ca: %s\n  eap_cert: %s\n  eap_key: %s\n  default_mab_vlan: %q\n"+
			"  health: {probe_interval: 1s, probe_timeout: 500ms, down_after: 2, up_after: 2}\n",
			p.OrgCAFile, p.EAPServerECDSA.Chain, p.EAPServerECDSA.Key, defaultVLAN)})
	base := "http://" + e.Metrics + console.Prefix
	now := func() console.Now {
		var n console.Now
		resp, err := http.Get(base + "api/now")
		if err == nil {
			json.NewDecoder(resp.Body).Decode(&n)
			resp.Body.Close()
		}
		return n
	}
	if !waitFor(20*time.Second, func() bool { return now().Mode == "cloud" }) {
		t.Fatalf("edge never in mode cloud: %+v\n%s", now(), tailString(e.Log(), 30))
	}
	// console-token builds the URL from the config, where startEdge asks
	// for port 0 (the daemon's ready line has the port it bound).
	out, code := runEdgeCmd(t, "console-token", "--config", e.cfgPath)
	if code != 0 || !strings.Contains(out, "http://127.0.0.1:0"+console.Prefix) || !strings.Contains(out, "not needed") {
		t.Errorf("console-token: exit %d\n%s", code, out)
	}

	mab := func(mac string) string {
		t.Helper()
		res, err := peers.Radclient(ctxFor(t, 10*time.Second), e.Auth, labSecret, "auth", []string{`User-Name = "` + mac + `"`,
			`User-Password = "` + mac + `"`, `Service-Type = Call-Check`, `Calling-Station-Id = "` + mac + `"`, ma})
		if err != nil || res.Code != "Access-Accept" {
			t.Fatalf("MAB %s: %v\n%s", mac, err, res.Output)
		}
		return res.Attr("Tunnel-Private-Group-Id")
	}
	// The cloud answers; the edge learns the client into its cache.
	if v := mab(mabMAC); v != mabVLAN {
		t.Fatalf("cloud MAB: VLAN %q, want %s", v, mabVLAN)
	}
	if !waitFor(10*time.Second, func() bool {
		out, code := runEdgeCmd(t, "cache", "show", mabMAC, "--config", e.cfgPath)
		return code == 0 && strings.Contains(out, mabVLAN)
	}) {
		t.Fatalf("client not learned\n%s", tailString(e.Log(), 30))
	}

	// WAN down.
	cloud.stop()
	if !waitFor(20*time.Second, func() bool { return now().Mode == "survival" }) {
		t.Fatalf("edge never in survival: %+v\n%s", now(), tailString(e.Log(), 30))
	}
	if v := mab(mabMAC); v != mabVLAN {
		t.Errorf("cached MAB in survival: VLAN %q, want %s", v, mabVLAN)
	}
	if v := mab(unknownMAC); v != defaultVLAN {
		t.Errorf("unknown MAB in survival: VLAN %q, want the default %s", v, defaultVLAN)
	}

	dir := artifactDir(t)
	chrome := peers.Chromium{Width: 1280, Height: 1000}
	shot := func(name, url string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		if err := chrome.Screenshot(ctx, url, filepath.Join(dir, name+".png")); err != nil {
			t.Errorf("screenshot %s: %v", name, err)
		}
	}
	dom := func(url string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		html, err := chrome.DumpDOM(ctx, url, 0)
		if err != nil {
			t.Fatalf("chromium %s: %v", url, err)
		}
		return html
	}
	check := func(page, html string, res ...string) {
		t.Helper()
		for _, re := range res {
			if !regexp.MustCompile(re).MatchString(html) {
				t.Errorf("%s page: no match for %s in\n%s", page, re, html)
			}
		}
	}
	check("Now", dom(base), `data-mode="survival"`, `<strong>survival</strong>`, `cloud → survival at .*because probes_failed`,
		`not answering`, `id="cache-entries">[1-9]`)
	shot("now", base)
	pretty := console.FormatMAC(mabMAC)
	check("Decisions", dom(base+"decisions"),
		// newest first: the default answer, the cache answer, then the cloud's
		`(?s)data-source="default">.*?`+regexp.QuoteMeta(console.FormatMAC(unknownMAC))+`.*?class="vlan">`+defaultVLAN+`<.*?source-default">default<`+
			`.*?data-source="cache">.*?`+regexp.QuoteMeta(pretty)+`.*?class="vlan">`+mabVLAN+`<.*?source-cache">cache<`+
			`.*?data-source="cloud">.*?`+regexp.QuoteMeta(pretty)+`.*?class="vlan">`+mabVLAN+`<`)
	shot("decisions", base+"decisions")
	check("Client", dom(base+"client?mac="+mabMAC), `id="vlan-mab">`+mabVLAN+`<`, `data-source="cache"`)
	shot("client", base+"client?mac="+pretty)
	check("Devices", dom(base+"devices"), `lab-switch`, `127\.0\.0\.1/32`)
	shot("devices", base+"devices")

	// Live updates: a decision made after the page loaded appears
	// without a reload once its script has polled.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	liveDone := make(chan string, 1)
	go func() {
		html, err := chrome.DumpDOM(ctx, base+"decisions?mac=020000000042", 6000)
		if err != nil {
			html = err.Error()
		}
		liveDone <- html
	}()
	time.Sleep(1500 * time.Millisecond) // the page is loaded; virtual time runs its polls
	mab("020000000042")
	html := <-liveDone
	if !strings.Contains(html, "02:00:00:00:00:42") {
		t.Logf("live update not seen within the page's virtual time (timing-dependent; the list is still correct on reload)\n%s", html)
	}
	for _, n := range []string{"now", "decisions", "client", "devices"} {
		if fi, err := os.Stat(filepath.Join(dir, n+".png")); err != nil || fi.Size() < 1000 {
			t.Errorf("screenshot %s: %v", n, err)
		}
	}
}
