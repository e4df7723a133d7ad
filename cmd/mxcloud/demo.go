package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"time"

	"github.com/mxedge/mxedge/cmd/internal/labpki"
	"github.com/mxedge/mxedge/cmd/internal/peers"
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
	line("  (making a throwaway PKI; the first run on a machine spends ~20 s on RSA keys, cached after)")
	pki, err := labpki.Generate(sub("pki"), labpki.Options{})
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
	nac, err := peers.StartFreeRADIUS(sctx, sub("cloud-nac"), peers.FreeRADIUSOptions{
		PKI: pki, RadSec: true,
		MAB:     map[string]string{mac: vlan},
		Users:   map[string]peers.User{"alice": {Password: "wonderland", ReplyMessage: "hello alice", TunnelPassword: "tunnel-secret"}},
		EAPVLAN: map[string]string{"user@example.org": "51"},
	})
	if err != nil {
		return fmt.Errorf("lab cloud NAC: %w", err)
	}
	defer nac.Stop()
	line("  lab cloud NAC    RadSec (TLS, mutual auth) on %-21s FreeRADIUS pid %d", nac.RadSecAddr, nac.PID())

	const secret = "demo-switch-secret-2c9e4b71"
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
	edge, err := peers.StartMxedge(sctx, sub("edge"), peers.MxedgeOptions{
		Bin: *bin, PKI: pki, Upstreams: []string{nac.RadSecAddr},
		Clients: []peers.MxedgeClient{{Name: "demo-switch", Address: "127.0.0.1/32", Secret: secret}},
		Extra:   survival,
	})
	if err != nil {
		return fmt.Errorf("mxedge: %w", err)
	}
	defer edge.Stop()
	line("  mxedge           RADIUS auth %s acct %s → RadSec     pid %d", edge.AuthAddr, edge.AcctAddr, edge.PID())
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
		{"switch: PAP alice", "auth", []string{`User-Name = "alice"`, `User-Password = "wonderland"`, ma}, func(r peers.Result) string {
			return fmt.Sprintf("%q, Tunnel-Password %q", r.Attr("Reply-Message"), r.Attr("Tunnel-Password"))
		}},
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
			Identity: cert.X509.Subject.CommonName, CACert: pki.RootFile, ClientCert: cert.Chain,
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
	line("  WAN down: the lab cloud NAC is stopped; mxedge switches to its local NAC")
	nac.Stop()
	deadline := time.Now().Add(15 * time.Second)
	for !modeIs(edge.MetricsAddr, "local") {
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
