package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mxedge/mxedge/cache"
	"github.com/mxedge/mxedge/cmd/internal/peers"
	"github.com/mxedge/mxedge/edge"
)

// cloudProc is one run of `mxcloud serve` on a lab directory that outlives
// it, so that the cloud can be stopped and restarted on the same ports.
type cloudProc struct {
	cmd    *exec.Cmd
	done   chan struct{}
	stderr *bytes.Buffer
	lab    labCloud
}

func startCloudProc(t *testing.T, args ...string) *cloudProc {
	t.Helper()
	cmd := exec.Command(cloudBin, append([]string{"serve"}, args...)...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	c := &cloudProc{cmd: cmd, done: make(chan struct{}), stderr: &bytes.Buffer{}}
	cmd.Stderr = c.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { cmd.Wait(); close(c.done) }()
	t.Cleanup(c.stop)
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "mxcloud ready") {
				ready <- sc.Text()
			}
		}
	}()
	select {
	case line := <-ready:
		kv := map[string]string{}
		for _, f := range strings.Fields(line)[2:] {
			k, v, _ := strings.Cut(f, "=")
			kv[k] = v
		}
		c.lab = labCloud{API: kv["api"], RadSec: kv["radsec"], CA: kv["ca"], Code: kv["code"]}
	case <-c.done:
		t.Fatalf("mxcloud exited:\n%s", c.stderr)
	case <-time.After(30 * time.Second):
		t.Fatalf("mxcloud not ready:\n%s", c.stderr)
	}
	return c
}

func (c *cloudProc) stop() {
	select {
	case <-c.done:
		return
	default:
	}
	c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(10 * time.Second):
		c.cmd.Process.Kill()
		<-c.done
	}
}

// cloudStats runs `mxcloud stats` against the serve on dir.
func cloudStats(t *testing.T, dir string) map[string]int {
	t.Helper()
	out, err := exec.Command(cloudBin, "stats", "--dir", dir).CombinedOutput()
	if err != nil {
		t.Fatalf("mxcloud stats: %v\n%s", err, out)
	}
	st := map[string]int{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		k, v, _ := strings.Cut(line, "=")
		n, err := strconv.Atoi(v)
		if err == nil {
			st[k] = n
		}
	}
	return st
}

// edgeJSON runs an mxedge CLI command with --json against e's config and
// decodes its output into v.
func edgeJSON(t *testing.T, e *edgeProc, v any, args ...string) {
	t.Helper()
	out, code := runEdgeCmd(t, append(args, "--config", e.cfgPath, "--json")...)
	if code != 0 {
		t.Fatalf("mxedge %s: exit %d\n%s", strings.Join(args, " "), code, out)
	}
	if err := json.Unmarshal([]byte(out), v); err != nil {
		t.Fatalf("mxedge %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func cacheTotal(t *testing.T, e *edgeProc) int {
	var resp edge.ControlResponse
	edgeJSON(t, e, &resp, "cache", "ls")
	if resp.Total != len(resp.Entries) {
		t.Fatalf("cache ls: total %d but %d entries listed", resp.Total, len(resp.Entries))
	}
	return resp.Total
}

// TestCloudSyncLearnResyncEvents runs mxcloud and mxedge as real processes:
// the registered edge syncs the seeded cache (read back with `mxedge cache
// ls` through the control socket while the daemon runs), learns a client
// the cloud accepted through it, fully resyncs after the cloud lost its
// cursors, and uploads the NAC events it produced while the cloud was
// down, each counted once by the cloud.
func TestCloudSyncLearnResyncEvents(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("real-process test")
	}
	peers.RequireBin(t, "radclient")
	const seeded = 25
	labDir, state := t.TempDir(), t.TempDir()
	mab := "--mab=" + mabMAC + "=" + mabVLAN
	cloud := startCloudProc(t, "--dir", labDir, mab, "--seed", strconv.Itoa(seeded))
	api, err := url.Parse(cloud.lab.API)
	if err != nil {
		t.Fatal(err)
	}
	// Restarts reuse the ports: the registration names them.
	sameAddrs := []string{"--dir", labDir, mab, "--api", api.Host, "--radsec", cloud.lab.RadSec}

	if out, code := runEdgeCmd(t, "register", "--config", freshConfig(t), "--registration-code", cloud.lab.Code,
		"--cloud", cloud.lab.API, "--cloud-ca", cloud.lab.CA, "--state-dir", state); code != 0 {
		t.Fatalf("register: exit %d\n%s", code, out)
	}

	// Mode auto opens the cache; the local NAC stays off for lack of
	// certificates, so every request goes to the cloud. A long sync
	// interval leaves only the start-up sync, so that a client appearing
	// later can only have been learned.
	e := startEdge(t, edgeConfig{Secret: labSecret, StateDir: state, Mode: "auto", NoCloudSection: true,
		Extra: "cloud:\n  sync_interval: 1h\n"})
	if !waitFor(20*time.Second, func() bool { return cacheTotal(t, e) == seeded }) {
		t.Fatalf("cache never reached %d entries (have %d)\n%s", seeded, cacheTotal(t, e), tailString(e.Log(), 30))
	}
	var st edge.StatusReport
	edgeJSON(t, e, &st, "status")
	if !st.Running || !st.Registered || st.Cloud == nil || st.Cloud.LastSync.IsZero() || st.Cache == nil ||
		st.Cache.Entries != seeded || st.Mode != "cloud" || len(st.Upstreams) != 1 {
		t.Fatalf("status while running: %+v", st)
	}
	if out, code := runEdgeCmd(t, "status", "--config", e.cfgPath); code != 0 || !strings.Contains(out, "mode:") ||
		!strings.Contains(out, fmt.Sprintf("%d entries", seeded)) {
		t.Fatalf("status (human): exit %d\n%s", code, out)
	}

	// Learning: the cloud accepts a MAB client through the edge, and the
	// edge caches it at once.
	res, err := peers.Radclient(ctxFor(t, 10*time.Second), e.Auth, labSecret, "auth", mabAttrs(mabMAC))
	if err != nil {
		t.Fatal(err)
	}
	if res.Code != "Access-Accept" || res.Attr("Tunnel-Private-Group-Id") != mabVLAN {
		t.Fatalf("MAB through the edge:\n%s", res.Output)
	}
	var show edge.ControlResponse
	if !waitFor(10*time.Second, func() bool {
		show = edge.ControlResponse{}
		out, code := runEdgeCmd(t, "cache", "show", mabMAC, "--config", e.cfgPath, "--json")
		return code == 0 && json.Unmarshal([]byte(out), &show) == nil && len(show.Entries) == 1
	}) {
		t.Fatalf("learned client not in the cache: %+v\n%s", show, tailString(e.Log(), 30))
	}
	if got := show.Entries[0]; got.AuthType != "mab" || got.VLAN != mabVLAN || got.Site != "lab" {
		t.Fatalf("learned entry: %+v", got)
	}
	if n := e.metric(t, "mxedge_cache_learned_total", `auth_type="mab"`); n != 1 {
		t.Fatalf("mxedge_cache_learned_total{auth_type=mab} = %v, want 1", n)
	}
	if n := cacheTotal(t, e); n != seeded+1 {
		t.Fatalf("cache has %d entries after learning, want %d", n, seeded+1)
	}
	e.stop()

	// Offline, the CLI opens the file itself.
	out, code := runEdgeCmd(t, "cache", "ls", "--config", e.cfgPath)
	if code != 0 || !strings.Contains(out, fmt.Sprintf("%d entries", seeded+1)) {
		t.Fatalf("cache ls with the daemon stopped: exit %d\n%s", code, out)
	}

	// The cloud restarts having lost every cursor: the edge's next sync
	// is refused and it resyncs in full, keeping what the cloud lists.
	cloud.stop()
	cloud = startCloudProc(t, append(sameAddrs, "--lose-cursor")...)
	e = startEdge(t, edgeConfig{Secret: labSecret, StateDir: state, Mode: "auto", NoCloudSection: true,
		Extra: "cloud:\n  sync_interval: 1h\n"})
	if !waitFor(20*time.Second, func() bool { return e.metric(t, "mxedge_cloud_full_resyncs_total") >= 1 }) {
		t.Fatalf("no full resync after the cloud lost its cursors\n%s", tailString(e.Log(), 30))
	}
	if !waitFor(20*time.Second, func() bool {
		edgeJSON(t, e, &st, "status")
		return st.Cache != nil && !st.Cache.FullSync && st.Cloud != nil && !st.Cloud.LastSync.IsZero()
	}) {
		t.Fatalf("full resync did not finish: %+v", st)
	}
	if n := cacheTotal(t, e); n != seeded+1 {
		t.Fatalf("cache has %d entries after the full resync, want %d", n, seeded+1)
	}
	e.stop()

	// Events: with the cloud down, the edge answers MAB locally and
	// queues an event per decision; once the cloud is back every one is
	// uploaded and counted once.
	before := cloudStats(t, labDir)
	cloud.stop()
	p := labPKI(t)
	e = startEdge(t, edgeConfig{Secret: labSecret, StateDir: state, Mode: "local", NoCloudSection: true,
		Extra: "cloud:\n  sync_interval: 1h\n",
		Survivability: fmt.Sprintf("  org_ca: %s\n  eap_cert: %s\n  eap_key: %s\n",
			p.OrgCAFile, p.EAPServerECDSA.Chain, p.EAPServerECDSA.Key)})
	const events = 5
	for i := range events {
		mac := fmt.Sprintf("aabbccddee%02x", i)
		attrs := []string{`User-Name = "` + mac + `"`, `User-Password = "` + mac + `"`, `Service-Type = Call-Check`,
			`Calling-Station-Id = "` + mac + `"`, ma}
		res, err := peers.Radclient(ctxFor(t, 10*time.Second), e.Auth, labSecret, "auth", attrs)
		if err != nil || res.Code != "Access-Accept" {
			t.Fatalf("local MAB %s: %v\n%s", mac, err, res.Output)
		}
	}
	if !waitFor(10*time.Second, func() bool {
		edgeJSON(t, e, &st, "status")
		return st.Cache != nil && st.Cache.Outbox == events
	}) {
		t.Fatalf("outbox %+v, want %d events queued while the cloud is down", st.Cache, events)
	}
	startCloudProc(t, sameAddrs...)
	var after map[string]int
	if !waitFor(60*time.Second, func() bool {
		after = cloudStats(t, labDir)
		return after["events_unique"] >= before["events_unique"]+events
	}) {
		t.Fatalf("cloud received %d new events, want %d\n%s", after["events_unique"]-before["events_unique"], events, tailString(e.Log(), 30))
	}
	if !waitFor(10*time.Second, func() bool {
		edgeJSON(t, e, &st, "status")
		return st.Cache != nil && st.Cache.Outbox == 0
	}) {
		t.Fatalf("outbox not drained: %+v", st.Cache)
	}
	after = cloudStats(t, labDir)
	if got := after["events_unique"] - before["events_unique"]; got != events {
		t.Fatalf("cloud counts %d new events, want exactly %d (stats %v)", got, events, after)
	}
	if d := after["events_duplicates"] - before["events_duplicates"]; d != 0 {
		t.Logf("the cloud saw %d retried events (idempotency kept them out of the count)", d)
	}
}

// Without a daemon the CLI reads the stopped edge's files; a cache file
// locked by a process that does not answer on the control socket is
// reported as such instead of hanging.
func TestStatusCacheCLIOffline(t *testing.T) {
	t.Parallel()
	state := t.TempDir()
	cfgPath := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(cfgPath, []byte("state_dir: "+state+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		args []string
		code int
		out  string
	}{
		{"status, nothing there", []string{"status"}, 0, "not running"},
		{"cache ls, no cache file", []string{"cache", "ls"}, 1, "no daemon running and no client cache"},
		{"cache without subcommand", []string{"cache"}, 2, "usage: mxedge cache"},
		{"cache show without MAC", []string{"cache", "show"}, 2, "usage: mxedge cache"},
		{"cache show bad MAC", []string{"cache", "show", "zz"}, 2, "not a MAC address"},
		{"status extra argument", []string{"status", "now"}, 2, "unexpected argument"},
	}
	for _, c := range cases {
		out, code := runEdgeCmd(t, append(c.args, "--config", cfgPath)...)
		if code != c.code || !strings.Contains(out, c.out) {
			t.Errorf("%s: exit %d, want %d with %q\n%s", c.name, code, c.code, c.out, out)
		}
	}

	store, err := cache.Open(filepath.Join(state, "cache.db"), cache.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Upsert(cache.Entry{MAC: "02:00:00:00:00:01", AuthType: cache.AuthMAB,
		Authorization: cache.Authorization{VLAN: "12", Role: "printers"}}); err != nil {
		t.Fatal(err)
	}
	// Held open by this process, which serves no control socket.
	out, code := runEdgeCmd(t, "cache", "ls", "--config", cfgPath)
	if code != 1 || !strings.Contains(out, "locked by another process, but no mxedge answers") {
		t.Fatalf("locked cache: exit %d\n%s", code, out)
	}
	if err := store.Close(); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args []string
		out  string
	}{
		{[]string{"cache", "ls"}, "1 entries"},
		{[]string{"cache", "show", "02-00-00-00-00-01"}, "printers"},
		{[]string{"status"}, "1 entries, outbox 0 events"},
		{[]string{"cache", "purge", "020000000001"}, "purged 1 entries"},
		{[]string{"cache", "ls"}, "0 entries"},
	} {
		out, code := runEdgeCmd(t, append(c.args, "--config", cfgPath)...)
		if code != 0 || !strings.Contains(out, c.out) {
			t.Errorf("%v: exit %d, want %q\n%s", c.args, code, c.out, out)
		}
	}
}
