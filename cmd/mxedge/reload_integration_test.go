package main

import (
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mxedge/mxedge/cmd/internal/load"
	"github.com/mxedge/mxedge/proxy/packet"
)

// TestReloadRotatesSecret changes one client's secret in the config file
// and sends SIGHUP to the real daemon: the old secret stops working, the
// new one works, and a request stream from another client running across
// the reload loses nothing.
func TestReloadRotatesSecret(t *testing.T) {
	t.Parallel()
	realPeers(t, "freeradius")
	p := labPKI(t)
	nac := labNAC(t, p)
	const (
		oldSecret = "rotating-switch-old-secret-71"
		newSecret = "rotating-switch-new-secret-93"
		rotSrc    = "127.0.0.5:0"
	)
	client := func(secret string) string {
		return "    - name: rotating-switch\n      address: 127.0.0.5/32\n      secret: \"" + secret + "\"\n"
	}
	cfg := edgeConfig{Secret: labSecret, Upstreams: []string{nac.RadSecAddr}, PKI: p, MoreClients: client(oldSecret)}
	e := startEdge(t, cfg)

	answered := func(secret string) bool {
		p, _ := packet.Parse(load.MABRequest(nil, 1, mabMAC, []byte(secret)))
		return sendFrom(t, rotSrc, e.Auth, p.Raw, 2*time.Second)
	}
	if !answered(oldSecret) {
		t.Fatal("the configured secret is not answered before the reload")
	}

	wait := pacedStream(t, e, 8, 1500)
	body, err := os.ReadFile(e.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	rotated := strings.Replace(string(body), oldSecret, newSecret, 1)
	if err := os.WriteFile(e.cfgPath, []byte(rotated), 0o600); err != nil {
		t.Fatal(err)
	}
	reloaded := time.Now()
	if err := e.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	if !waitFor(10*time.Second, func() bool {
		return e.metric(t, "mxedge_config_reloads_total", `result="ok"`) >= 1
	}) {
		t.Fatal("reload not reported")
	}
	if answered(oldSecret) {
		t.Fatal("the old secret still works after the reload")
	}
	if !answered(newSecret) {
		t.Fatal("the new secret does not work after the reload")
	}
	res := wait()
	if !res.End.After(reloaded) {
		t.Fatal("the stream ended before the reload: nothing was tested")
	}
	t.Logf("reload: stream of %d requests across the reload, %d answered, %d lost", res.Sent, res.Answered, res.Lost)
	if res.Lost != 0 || res.Answered != res.Sent {
		t.Fatalf("the stream lost %d requests across the reload", res.Lost)
	}

	// An invalid file is refused and the running config stays.
	if err := os.WriteFile(e.cfgPath, []byte(rotated+"\nbogus_key: 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	e.cmd.Process.Signal(syscall.SIGHUP)
	if !waitFor(10*time.Second, func() bool {
		return e.metric(t, "mxedge_config_last_reload_successful") == 0
	}) {
		t.Fatal("an invalid config was not refused")
	}
	if !answered(newSecret) {
		t.Fatal("the running config did not survive a refused reload")
	}
	if !strings.Contains(e.Log(), "bogus_key: unknown key") {
		t.Fatal("the refusal does not name the key")
	}
}
