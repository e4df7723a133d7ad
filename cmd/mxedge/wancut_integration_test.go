package main

import (
	"context"
	"fmt"
	"net/url"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mxedge/mxedge/cmd/internal/load"
	"github.com/mxedge/mxedge/cmd/internal/peers"
)

// wanCutFor is how long each cut lasts: long enough to confirm the cut
// (≈1.5 s), serve in survival and run eapol_test there.
const wanCutFor = 12 * time.Second

// failbackBound is how soon after the WAN comes back the cloud must
// answer again: up_after good probes, one probe_interval apart, after
// waiting up to one probe_interval for the first probe; then one
// fallback_after of allowance, because the first request the edge sends
// to the cloud in mode cloud may ride a pool connection that died in the
// cut (a blackholed one is only known dead by its own timers) and is
// answered locally after fallback_after while the pool redials.
const failbackBound = wanUpAfter*wanProbeInterval + wanProbeInterval + wanFallback

// TestWANCut is the acceptance test of automatic WAN failover: the real
// daemon in mode auto between a switch-like client and FreeRADIUS (the
// cloud NAC, over RadSec) plus the lab cloud (registration, sync, events),
// both behind relays the test cuts, once by RST and once by blackhole.
func TestWANCut(t *testing.T) {
	t.Parallel()
	realPeers(t, "freeradius", "eapol_test")
	p := labPKI(t)
	fr := wanCloudNAC(t, p)
	radsec := mustRelay(t, fr.RadSecAddr)

	// The lab cloud's API behind its own relay; registration names the
	// relay, so everything the edge says to the cloud crosses the WAN.
	// The lab cloud pushes no default 802.1X VLAN, and the file sets
	// none, so an 802.1X client the cache doesn't know is rejected locally.
	cloud := startLabCloud(t, "0c0000000001=7", "--default-dot1x-vlan=")
	apiURL, err := url.Parse(cloud.API)
	if err != nil {
		t.Fatal(err)
	}
	api := mustRelay(t, apiURL.Host)
	state := t.TempDir()
	if out, code := runEdgeCmd(t, "register", "--config", freshConfig(t), "--registration-code", cloud.Code,
		"--cloud", "https://"+api.Addr(), "--cloud-ca", cloud.CA, "--state-dir", state); code != 0 {
		t.Fatalf("register: exit %d\n%s", code, out)
	}
	// cloud.radsec in the file wins over the registration's: the cloud
	// NAC is FreeRADIUS, through its relay.
	e := startEdge(t, edgeConfig{Secret: labSecret, PKI: p, StateDir: state, Mode: "auto",
		Upstreams: []string{radsec.Addr()}, Survivability: wanSurvivability(p, ""), LogLevel: "info"})
	waitMode(t, e, "cloud", 20*time.Second)

	sw, err := load.NewSwitch(load.SwitchConfig{Auth: e.Auth, Acct: e.Acct, Secret: []byte(labSecret), Timeout: 5 * time.Second, Tries: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer sw.Close()
	known := wanKnownMACs()

	const (
		warm  = 5 * time.Second
		after = 8 * time.Second // after the last failback
	)
	total := warm + 2*(wanCutFor+20*time.Second) + after
	ctx, cancel := context.WithTimeout(context.Background(), total)
	defer cancel()
	var (
		wg  sync.WaitGroup
		res load.StreamResult
	)
	wg.Go(func() {
		res, _ = sw.Stream(ctx, load.StreamSpec{Rate: 25, Count: 25 * int(total/time.Second), Duration: total, MACs: wanMACs()})
	})
	var acct acctRun
	acctDone := acct.run(ctx, sw, 4, 700*time.Millisecond, 6)

	user := func(ctx context.Context, cert string) (peers.EAPResult, error) {
		c := p.User
		if cert == "machine" {
			c = p.Machine
		}
		return peers.EAPOLTest(ctx, e.Auth, labSecret, peers.EAPTLS{
			Identity: c.X509.Subject.CommonName, CACert: p.RootFile, ClientCert: c.Chain, PrivateKey: c.Key, TLS13: true,
			CallingStationID: "02:00:00:00:ee:01",
		})
	}
	eap := func(phase, cert string, wantOK bool, wantVLAN string) {
		t.Helper()
		res, err := user(ctxFor(t, 30*time.Second), cert)
		if err != nil {
			t.Errorf("eapol_test %s (%s): %v", phase, cert, err)
			return
		}
		if res.Success != wantOK || (wantOK && (res.VLAN() != wantVLAN || res.MPPEOK != 1)) {
			t.Errorf("eapol_test %s (%s): success %v VLAN %q MPPE ok %d, want success %v VLAN %q\n%s",
				phase, cert, res.Success, res.VLAN(), res.MPPEOK, wantOK, wantVLAN, tailString(res.Output, 30))
		}
	}

	eap("before the cuts", "user", true, eapVLAN)
	time.Sleep(warm)
	// Learning: every known MAC has been accepted by the cloud through the
	// edge by now (25/s over 60 MACs), and the edge cached each at once.
	if n := e.metric(t, "mxedge_cache_learned_total", `auth_type="mab"`); n < wanKnown {
		t.Fatalf("learned %v MAB clients from the cloud's accepts, want %d", n, wanKnown)
	}

	var cuts []*wanCut
	for _, mode := range []peers.CutMode{peers.CutRST, peers.CutBlackhole} {
		c := &wanCut{Mode: mode, Cut: time.Now()}
		cuts = append(cuts, c)
		for _, r := range []*peers.Relay{radsec, api} {
			if err := r.Cut(mode); err != nil {
				t.Fatal(err)
			}
		}
		inSurvival := waitMode(t, e, "survival", 10*time.Second)
		t.Logf("%v cut: survival after %v", mode, inSurvival.Sub(c.Cut).Round(time.Millisecond))
		eap(mode.String()+" cut", "user", true, eapVLAN)         // the learned VLAN, answered locally
		eap(mode.String()+" cut, unknown", "machine", false, "") // not cached, no default_dot1x_vlan
		time.Sleep(time.Until(c.Cut.Add(wanCutFor)))
		for _, r := range []*peers.Relay{radsec, api} {
			if err := r.Restore(); err != nil {
				t.Fatal(err)
			}
		}
		c.Restored = time.Now()
		back := waitMode(t, e, "cloud", 15*time.Second)
		t.Logf("%v cut: mode cloud %v after restore", mode, back.Sub(c.Restored).Round(time.Millisecond))
		eap("after the "+mode.String()+" cut", "user", true, eapVLAN)
		time.Sleep(4 * time.Second)
	}
	time.Sleep(after)
	cancel()
	wg.Wait()
	acctDone.Wait()

	// MAB: nothing lost, every answer right for who gave it.
	measureCuts(res, cuts)
	lost, wrong := res.Lost(), 0
	for _, r := range res.Recs {
		if r.Answered() {
			if err := checkMAB(r, known); err != nil {
				if wrong++; wrong <= 10 {
					t.Error(err)
				}
			}
		}
	}
	t.Logf("MAB stream: %d sent, %d answered, %d needed a retry, %d lost, %d wrong answers",
		len(res.Recs), res.Answered(), len(res.Retried()), len(lost), wrong)
	for _, r := range lost {
		t.Errorf("MAB %s (seq %d) sent at %s exhausted its retries", r.MAC, r.Seq, r.Start.Format("15:04:05.000"))
	}
	for _, c := range cuts {
		t.Logf("%v: cut → first local answer %v; restore → first cloud answer %v (bound %v); requests in the window %d, retried %d, lost %d",
			c.Mode, c.FirstLocal.Round(time.Millisecond), c.FirstCloud.Round(time.Millisecond), failbackBound, c.Sent, c.Retried, c.Lost)
		if !c.HasLocal {
			t.Errorf("%v: no local answer during the cut", c.Mode)
		}
		if !c.HasBack {
			t.Errorf("%v: no cloud answer after restore", c.Mode)
		} else if c.FirstCloud > failbackBound {
			t.Errorf("%v: first cloud answer %v after restore, want within %v", c.Mode, c.FirstCloud, failbackBound)
		}
	}

	// Accounting: once each upstream, in order, delay raised where held.
	if !waitFor(30*time.Second, func() bool { return e.metric(t, "mxedge_cache_accounting_held") == 0 }) {
		t.Fatalf("accounting still held 30s after the last failback: %v", e.metric(t, "mxedge_cache_accounting_held"))
	}
	detail, err := fr.AccountingRecords()
	if err != nil {
		t.Fatal(err)
	}
	sent := acct.records()
	held, twice := checkAccounting(t, sent, detail, cuts)
	t.Logf("accounting: %d records sent, %d in the detail file, %d sent during cuts (held and replayed), %d in flight at a cut arrived twice; hold stored %v, replayed ok %v",
		len(sent), len(detail), held, twice, e.metric(t, "mxedge_accounting_hold_total", `result="stored"`), e.metric(t, "mxedge_accounting_replay_total", `result="ok"`))
	if held == 0 {
		t.Error("no accounting was sent during the cuts")
	}

	// The transitions: counted, shown in status, reported to the cloud.
	for _, tr := range []struct{ from, to string }{{"cloud", "survival"}, {"survival", "recovering"}, {"recovering", "cloud"}} {
		if n := e.metric(t, "mxedge_mode_transitions_total", `from="`+tr.from+`"`, `to="`+tr.to+`"`); n != 2 {
			t.Errorf("mxedge_mode_transitions_total{from=%s,to=%s} = %v, want 2", tr.from, tr.to, n)
		}
	}
	st := edgeStatus(t, e)
	if st.Mode != "cloud" || st.Health == nil || st.Health.Last == nil || st.Health.Last.From != "recovering" ||
		st.Health.Last.To != "cloud" || st.Health.Last.At.Before(cuts[1].Restored) {
		t.Errorf("status after the cuts: mode %q health %+v", st.Mode, st.Health)
	}
	var types map[string]int
	if !waitFor(60*time.Second, func() bool {
		types = cloudEventTypes(t, cloud.Dir)
		return types["NAC Edge Mode Changed"] >= 7 // starting→cloud, then 3 per cut
	}) {
		t.Errorf("the lab cloud received %d \"NAC Edge Mode Changed\" events, want 7 (%v)", types["NAC Edge Mode Changed"], types)
	}
	t.Logf("events at the lab cloud by type: %v", types)
}

// cloudEventTypes runs `mxcloud event-types` against the serve on dir.
func cloudEventTypes(t testing.TB, dir string) map[string]int {
	t.Helper()
	out, err := exec.Command(cloudBin, "event-types", "--dir", dir).CombinedOutput()
	if err != nil {
		t.Fatalf("mxcloud event-types: %v\n%s", err, out)
	}
	types := map[string]int{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		k, v, _ := strings.Cut(line, "=")
		if n, err := strconv.Atoi(v); err == nil {
			types[k] = n
		}
	}
	return types
}

// TestCloudKilledMidLoad kills the cloud NAC (SIGKILL: the kernel resets
// its connections and refuses new ones) under a steady MAB stream: no
// request may exhaust a switch's retries, and the edge ends in survival.
// Here default_dot1x_vlan is set, so an 802.1X client the cache doesn't
// know gets it.
func TestCloudKilledMidLoad(t *testing.T) {
	t.Parallel()
	realPeers(t, "freeradius", "eapol_test")
	p := labPKI(t)
	fr := wanCloudNAC(t, p)
	e := startEdge(t, edgeConfig{Secret: labSecret, PKI: p, Mode: "auto",
		Upstreams: []string{fr.RadSecAddr}, Survivability: wanSurvivability(p, "98"), LogLevel: "info"})
	waitMode(t, e, "cloud", 20*time.Second)
	sw, err := load.NewSwitch(load.SwitchConfig{Auth: e.Auth, Secret: []byte(labSecret), Timeout: 5 * time.Second, Tries: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer sw.Close()

	const warm, after = 4 * time.Second, 10 * time.Second
	ctx, cancel := context.WithTimeout(context.Background(), warm+after)
	defer cancel()
	var (
		wg  sync.WaitGroup
		res load.StreamResult
	)
	wg.Go(func() {
		res, _ = sw.Stream(ctx, load.StreamSpec{Rate: 40, Count: 40 * int((warm+after)/time.Second), Duration: warm + after, MACs: wanMACs()})
	})
	time.Sleep(warm)
	pid := fr.PID()
	if err := syscallKill(pid); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	wg.Wait()

	measureCuts(res, []*wanCut{{Cut: killed, Restored: res.End}})
	first, ok := res.FirstAnswerAfter(killed, isLocal)
	t.Logf("FreeRADIUS (pid %d) killed: %d requests, %d answered, %d retried, %d lost; first local answer %v after the kill",
		pid, len(res.Recs), res.Answered(), len(res.Retried()), len(res.Lost()), first.Answer.Sub(killed).Round(time.Millisecond))
	if !ok {
		t.Error("no local answer after the kill")
	}
	for _, r := range res.Lost() {
		t.Errorf("MAB %s (seq %d) sent at %s exhausted its retries", r.MAC, r.Seq, r.Start.Format("15:04:05.000"))
	}
	known := wanKnownMACs()
	for _, r := range res.Recs {
		if r.Answered() {
			if err := checkMAB(r, known); err != nil {
				t.Error(err)
				break
			}
		}
	}
	if st := edgeStatus(t, e); st.Mode != "survival" {
		t.Errorf("mode %q (%s) after the kill, want survival", st.Mode, st.ModeReason)
	}
	// Unknown to the cache, so the configured default 802.1X VLAN.
	r, err := peers.EAPOLTest(ctxFor(t, 30*time.Second), e.Auth, labSecret, peers.EAPTLS{
		Identity: p.Machine.X509.Subject.CommonName, CACert: p.RootFile, ClientCert: p.Machine.Chain, PrivateKey: p.Machine.Key, TLS13: true,
	})
	if err != nil || !r.Success || r.VLAN() != "98" {
		t.Errorf("eapol_test, unknown client in survival: %v success %v VLAN %q, want the default 98\n%s", err, r.Success, r.VLAN(), tailString(r.Output, 30))
	}
}

// syscallKill sends SIGKILL to a process the test started.
func syscallKill(pid int) error {
	if pid <= 0 {
		return fmt.Errorf("no such process (pid %d)", pid)
	}
	return syscall.Kill(pid, syscall.SIGKILL)
}
