package main

import (
	"errors"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mxedge/mxedge/cmd/internal/peers"
)

// TestRadSecCluster: two edges registered to one lab-cloud cluster, each
// with its own code, cache and outbox, sync the same clients; an access
// point lists both as RadSec servers in failover order. The first edge is
// killed mid-stream and every request is answered by the second once
// radsecproxy has failed over (with the retransmissions a NAS makes).
func TestRadSecCluster(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("real-process test")
	}
	for _, b := range []string{"radclient", "radsecproxy"} {
		peers.RequireBin(t, b)
	}
	const seeded = 20
	p := labPKI(t)
	labDir := t.TempDir()
	cloud := startCloudProc(t, "--dir", labDir, "--mab="+mabMAC+"="+mabVLAN, "--seed", strconv.Itoa(seeded),
		"--cluster", "lab-cluster", "--edges", "2")
	out, err := exec.Command(cloudBin, "code", "--dir", labDir).CombinedOutput()
	if err != nil {
		t.Fatalf("mxcloud code: %v\n%s", err, out)
	}
	codes := []string{cloud.lab.Code, strings.TrimSpace(string(out))}

	var edges []*edgeProc
	var addrs []string
	for i, code := range codes {
		state := t.TempDir()
		if out, rc := runEdgeCmd(t, "register", "--config", freshConfig(t), "--registration-code", code,
			"--cloud", cloud.lab.API, "--cloud-ca", cloud.lab.CA, "--state-dir", state); rc != 0 {
			t.Fatalf("register edge %d: exit %d\n%s", i, rc, out)
		}
		sec := radsecSection(p, "")
		e := startEdge(t, edgeConfig{Secret: labSecret, StateDir: state, Mode: "auto", NoCloudSection: true, Extra: sec})
		edges, addrs = append(edges, e), append(addrs, e.RadSec)
	}
	for i, e := range edges {
		if !waitFor(20*time.Second, func() bool { return cacheTotal(t, e) == seeded }) {
			t.Fatalf("edge %d cache never reached %d entries (have %d)", i, seeded, cacheTotal(t, e))
		}
	}
	// Both edges hold the same clients, each in its own store.
	if a, b := cacheMACs(t, edges[0]), cacheMACs(t, edges[1]); a != b || a == "" {
		t.Fatalf("edges hold different clients:\n%s\n---\n%s", a, b)
	}
	st := cloudStats(t, labDir)
	if st["edges"] != 2 {
		t.Fatalf("cloud stats: %v", st)
	}

	now := time.Now()
	dev := mintDevice(t, p.RadSecCA, "ap-09.ap.example.net", now.Add(-time.Hour), now.Add(24*time.Hour))
	rp, err := peers.StartRadsecproxy(ctxFor(t, 20*time.Second), t.TempDir(), peers.RadsecproxyOptions{
		Servers: addrs, StatusServer: true, CertFile: dev.Cert, KeyFile: dev.Key, CAFile: p.RadSecCAFile,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rp.Stop)

	// A NAS retransmits an unanswered request a few times; so does this.
	ask := func() (tries int, err error) {
		for tries = 1; tries <= 5; tries++ {
			res, err := peers.Radclient(ctxFor(t, 10*time.Second), rp.Addr, rp.Secret, "auth", mabAttrs(mabMAC))
			if errors.Is(err, peers.ErrNoReply) {
				continue
			}
			if err != nil {
				return tries, err
			}
			if res.Code != "Access-Accept" || res.Attr("Tunnel-Private-Group-Id") != mabVLAN {
				return tries, errors.New("answered " + res.Code + " VLAN " + res.Attr("Tunnel-Private-Group-Id"))
			}
			return tries, nil
		}
		return tries, peers.ErrNoReply
	}
	const total, killAt = 30, 10
	retried := 0
	for i := range total {
		if i == killAt {
			edges[0].cmd.Process.Signal(syscall.SIGKILL)
			<-edges[0].exited
		}
		tries, err := ask()
		if err != nil {
			t.Fatalf("request %d: %v (after %d tries)\n%s", i, err, tries, tailString(fileText(rp.Logs), 30))
		}
		if tries > 1 {
			retried++
		}
	}
	served := edges[1].metric(t, "mxedge_radsec_requests_total")
	t.Logf("%d requests answered, %d after retransmission; the second edge answered %v", total, retried, served)
	if served < total-killAt {
		t.Fatalf("the second edge answered %v requests, want ≥ %d", served, total-killAt)
	}
}

// cacheMACs lists an edge's cached MACs, sorted, one a line.
func cacheMACs(t *testing.T, e *edgeProc) string {
	var resp struct {
		Entries []struct {
			MAC string `json:"mac"`
		} `json:"entries"`
	}
	edgeJSON(t, e, &resp, "cache", "ls")
	var macs []string
	for _, en := range resp.Entries {
		macs = append(macs, en.MAC)
	}
	slices.Sort(macs)
	return strings.Join(macs, "\n")
}

func fileText(path string) string {
	b, _ := os.ReadFile(path)
	return string(b)
}
