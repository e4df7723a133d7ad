package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/mxedge/mxedge/cmd/internal/peers"
	"github.com/mxedge/mxedge/internal/labpki"
)

// demoCmd runs the whole product on loopback: a lab PKI, the lab cloud's
// RadSec NAC, mxedge in front of it, and a switch and a supplicant sending
// traffic through it. It prints what happened and stops everything it
// started.
func demoCmd(ctx context.Context, args []string, w io.Writer) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	bin := fs.String("mxedge", "", "mxedge binary (default: next to mxcloud)")
	keep := fs.Bool("keep", false, "keep the demo directory (configs, logs) afterwards")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *bin == "" {
		self, _ := os.Executable()
		*bin = filepath.Join(filepath.Dir(self), "mxedge")
	}
	// Peers run in their own directories: make the path absolute.
	if abs, err := filepath.Abs(*bin); err == nil {
		*bin = abs
	}
	dir, err := os.MkdirTemp("", "mxedge-demo-")
	if err != nil {
		return err
	}
	if !*keep {
		defer os.RemoveAll(dir)
	}
	sub := func(n string) string { d := filepath.Join(dir, n); os.MkdirAll(d, 0o755); return d }
	line := func(format string, a ...any) { fmt.Fprintf(w, format+"\n", a...) }

	line("mxedge demo: a lab cloud and an edge on loopback, traffic through it; all stopped on exit")
	keys := demoKeyCache()
	if keys != "" {
		line("  (making a throwaway PKI; the first run on a machine spends ~20 s on RSA keys, kept in %s for the next runs)", keys)
	} else {
		line("  (making a throwaway PKI: ~20 s on RSA keys; no cache directory to keep them in)")
	}
	pki, err := labpki.Generate(sub("pki"), labpki.Options{KeyCacheDir: keys})
	if err != nil {
		return err
	}
	line("  lab PKI          RadSec CA, org CA with CRL, EAP server cert        %s", filepath.Join(dir, "pki"))

	sctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	const (
		mac  = "aabbccddeeff"
		vlan = "41"
	)
	// The lab cloud runs in this process; cancelling cloudCtx is the WAN
	// going down.
	cloudCtx, cutWAN := context.WithCancel(ctx)
	defer cutWAN()
	readyR, readyW := io.Pipe()
	cloudLog, err := os.Create(filepath.Join(dir, "cloud.log"))
	if err != nil {
		return err
	}
	defer cloudLog.Close()
	cloudDone := make(chan error, 1)
	go func() {
		cloudDone <- serveCmd(cloudCtx, []string{"--dir", sub("cloud"), "--mab", mac + "=" + vlan,
			"--org-ca", pki.OrgCAFile, "--org-crl", pki.OrgCRL, "--eap-vlan", "user@example.org=51"}, readyW, cloudLog)
		readyW.Close()
	}()
	var cloud map[string]string
	sc := bufio.NewScanner(readyR)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "mxcloud ready") {
			cloud = map[string]string{}
			for _, f := range strings.Fields(sc.Text())[2:] {
				k, v, _ := strings.Cut(f, "=")
				cloud[k] = v
			}
			break
		}
	}
	go io.Copy(io.Discard, readyR)
	if cloud == nil {
		return fmt.Errorf("lab cloud did not start: %v (log: %s)", <-cloudDone, filepath.Join(dir, "cloud.log"))
	}
	line("  lab cloud        edge API %s, RadSec NAC %s (mutual TLS)", cloud["api"], cloud["radsec"])

	// Register the edge with the one-time code, as an operator would.
	edgeDir := sub("edge")
	// As on a fresh install: a config file with every key at its default
	// (the edge's own is written once it is registered).
	if err := os.WriteFile(filepath.Join(edgeDir, "config.yaml"), []byte("# every key at its default\n"), 0o600); err != nil {
		return err
	}
	out, err := exec.CommandContext(sctx, *bin, "register", "--config", filepath.Join(edgeDir, "config.yaml"),
		"--registration-code", cloud["code"], "--cloud", cloud["api"], "--cloud-ca", cloud["ca"],
		"--state-dir", filepath.Join(edgeDir, "state")).CombinedOutput()
	if err != nil {
		return fmt.Errorf("mxedge register: %v: %s", err, out)
	}
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		line("  mxedge register  %s", l)
	}

	// Survivability on: the edge learns clients from the cloud's accepts
	// and answers from that cache, or the default VLANs, while the cloud
	// is unreachable.
	const defMAB, defDot1X = "99", "98"
	survival := fmt.Sprintf(`survivability:
  mode: auto
  org_ca: %s
  crl: [%s]
  eap_cert: %s
  eap_key: %s
  default_mab_vlan: "%s"
  default_dot1x_vlan: "%s"
`, pki.OrgCAFile, pki.OrgCRL, pki.EAPServerECDSA.Chain, pki.EAPServerECDSA.Key, defMAB, defDot1X)
	const secret = "demo-switch-secret-2c9e4b71"
	edge, err := peers.StartMxedge(sctx, edgeDir, peers.MxedgeOptions{
		Bin: *bin, PKI: pki,
		Clients: []peers.MxedgeClient{{Name: "demo-switch", Address: "127.0.0.1/32", Secret: secret}},
		Extra:   survival,
	})
	if err != nil {
		return fmt.Errorf("mxedge: %w", err)
	}
	defer edge.Stop()
	line("  mxedge run       RADIUS auth %s acct %s → the cloud's RadSec NAC, from the registration", edge.AuthAddr, edge.AcctAddr)
	line("  web console      http://%s/console/ (read-only; on loopback no token is needed)", edge.MetricsAddr)
	// The laptop trusts both EAP servers: the cloud's NAC and the edge's.
	caBundle := filepath.Join(dir, "eap-trust.pem")
	if err := concatFiles(caBundle, cloud["ca"], pki.RootFile); err != nil {
		return err
	}
	line("")

	ma := "Message-Authenticator = 0x00"
	radius := func(label, code string, attrs []string, show func(peers.Result) string) error {
		addr := edge.AuthAddr
		if code == "acct" {
			addr = edge.AcctAddr
		}
		t0 := time.Now()
		res, err := peers.Radclient(ctx, addr, secret, code, attrs)
		if err != nil {
			return fmt.Errorf("%s: %w", label, err)
		}
		line("  %-46s → %-20s %s (%v)", label, res.Code, show(res), time.Since(t0).Round(time.Millisecond))
		return nil
	}
	vlanOf := func(r peers.Result) string {
		if v := r.Attr("Tunnel-Private-Group-Id"); v != "" {
			return "VLAN " + v
		}
		return ""
	}
	steps := []struct {
		label, code string
		attrs       []string
		show        func(peers.Result) string
	}{
		{"switch: MAB aa:bb:cc:dd:ee:ff (allow-listed)", "auth", []string{`User-Name = "` + mac + `"`, `User-Password = "` + mac + `"`, `Service-Type = Call-Check`, `Calling-Station-Id = "AA-BB-CC-DD-EE-FF"`, ma}, vlanOf},
		{"switch: MAB 00:11:22:33:44:55 (unknown)", "auth", []string{`User-Name = "001122334455"`, `User-Password = "001122334455"`, `Service-Type = Call-Check`, ma}, vlanOf},
		{"switch: accounting start", "acct", []string{`User-Name = "alice"`, `Acct-Status-Type = Start`, `Acct-Session-Id = "demo-1"`}, func(peers.Result) string { return "" }},
		{"switch: accounting stop", "acct", []string{`User-Name = "alice"`, `Acct-Status-Type = Stop`, `Acct-Session-Id = "demo-1"`}, func(peers.Result) string { return "" }},
	}
	for _, s := range steps {
		if err := radius(s.label, s.code, s.attrs, s.show); err != nil {
			return err
		}
	}
	eap := func(label string, cert *labpki.Cert, mac string, tls13 bool) error {
		t0 := time.Now()
		res, err := peers.EAPOLTest(ctx, edge.AuthAddr, secret, peers.EAPTLS{
			Identity: cert.X509.Subject.CommonName, CACert: caBundle, ClientCert: cert.Chain,
			PrivateKey: cert.Key, TLS13: tls13, CallingStationID: mac,
		})
		if err != nil {
			return fmt.Errorf("eapol_test: %w", err)
		}
		verdict := "Access-Reject"
		if res.Success {
			verdict = "Access-Accept"
		}
		detail := res.TLSVersion
		if res.Success {
			keys := "MPPE keys differ"
			if res.MPPEOK == 1 && res.MPPEMismatch == 0 {
				keys = "MPPE keys match"
			}
			detail = fmt.Sprintf("VLAN %s, %s, %s", res.VLAN(), keys, res.TLSVersion)
		}
		line("  %-46s → %-20s %s (%v)", label, verdict, detail, time.Since(t0).Round(time.Millisecond))
		return nil
	}
	const laptopMAC = "02:00:00:00:00:01"
	if err := eap("laptop: EAP-TLS user@example.org", pki.User, laptopMAC, false); err != nil {
		return err
	}
	if err := eap("laptop: EAP-TLS user@example.org", pki.User, laptopMAC, true); err != nil {
		return err
	}

	// The WAN goes down: the cloud's NAC stops answering.
	line("")
	status, _ := exec.CommandContext(ctx, *bin, "status", "--config", edge.Config).CombinedOutput()
	line("  mxedge status:")
	for _, l := range strings.Split(strings.TrimRight(string(status), "\n"), "\n") {
		line("    %s", l)
	}
	line("")
	line("  WAN down: the lab cloud is stopped; mxedge switches to its local NAC")
	cutWAN()
	<-cloudDone
	deadline := time.Now().Add(15 * time.Second)
	for !modeIs(edge.MetricsAddr, "survival") {
		if time.Now().After(deadline) {
			return fmt.Errorf("mxedge did not switch to its local NAC within 15s")
		}
		time.Sleep(100 * time.Millisecond)
	}
	line("")
	for _, s := range []struct {
		label, mac string
	}{
		{"printer: MAB aa:bb:cc:dd:ee:ff (cached)", mac},
		{"camera: MAB 00:11:22:33:44:55 (never seen)", "001122334455"},
	} {
		if err := radius(s.label, "auth", []string{`User-Name = "` + s.mac + `"`, `User-Password = "` + s.mac + `"`,
			`Service-Type = Call-Check`, `Calling-Station-Id = "` + s.mac + `"`, ma}, vlanOf); err != nil {
			return err
		}
	}
	if err := eap("laptop: EAP-TLS user@example.org (cached)", pki.User, laptopMAC, true); err != nil {
		return err
	}
	if err := eap("laptop: EAP-TLS machine cert (never seen)", pki.Machine, "02:00:00:00:00:02", true); err != nil {
		return err
	}
	if err := eap("laptop: EAP-TLS revoked certificate", pki.Revoked, "02:00:00:00:00:03", true); err != nil {
		return err
	}
	line("  cached clients keep the VLANs the cloud gave them (learned from its accepts);")
	line("  devices never seen get the default VLANs (%s for MAB, %s for 802.1X)", defMAB, defDot1X)
	answered, drops := scrape(edge.MetricsAddr)
	line("")
	line("  mxedge metrics   %s requests answered (cloud and local), %s dropped", answered, drops)
	if shot, err := consoleShots(ctx, edge.MetricsAddr); err != nil {
		line("  console          no screenshot (%v); open http://%s/console/ while the demo runs", err, edge.MetricsAddr)
	} else {
		line("  console          screenshot of the decisions in survival: %s", shot)
	}
	if *keep {
		line("  kept             %s (edge config and logs under edge/)", dir)
	}
	line("done: everything stopped")
	return nil
}

// modeIs reports whether mxedge_mode{mode=m} is 1.
func modeIs(addr, m string) bool {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return regexp.MustCompile(`(?m)^mxedge_mode\{mode="` + m + `"\} 1$`).Match(b)
}

// scrape sums two counters from the edge's /metrics for the summary line.
func scrape(addr string) (answered, drops string) {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return "?", "?"
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	sum := func(re *regexp.Regexp) string {
		var t float64
		for _, m := range re.FindAllStringSubmatch(string(b), -1) {
			v, _ := strconv.ParseFloat(m[1], 64)
			t += v
		}
		return strconv.FormatFloat(t, 'f', 0, 64)
	}
	return sum(regexp.MustCompile(`(?m)^mxedge_requests_total\{[^}]*outcome="(?:answered|local)"[^}]*\} (\S+)$`)),
		sum(regexp.MustCompile(`(?m)^mxedge_drops_total\{[^}]*\} (\S+)$`))
}

func concatFiles(dst string, srcs ...string) error {
	var b []byte
	for _, s := range srcs {
		c, err := os.ReadFile(s)
		if err != nil {
			return err
		}
		b = append(b, c...)
	}
	return os.WriteFile(dst, b, 0o644)
}

// demoKeyCache is where the demo keeps its lab PKI's private keys between
// runs, the same place the tests use: $MXEDGE_LABPKI_CACHE, else
// <user cache dir>/mxedge/labpki-keys; "" when there is none. Only the
// throwaway lab's keys live there; certificates are issued anew each run.
func demoKeyCache() string {
	if d := os.Getenv("MXEDGE_LABPKI_CACHE"); d != "" {
		return d
	}
	d, err := os.UserCacheDir()
	if err != nil {
		return ""
	}
	return filepath.Join(d, "mxedge", "labpki-keys")
}
