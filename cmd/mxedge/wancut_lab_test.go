package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"slices"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/mxedge/mxedge/cmd/internal/load"
	"github.com/mxedge/mxedge/cmd/internal/peers"
	"github.com/mxedge/mxedge/edge"
	"github.com/mxedge/mxedge/internal/labpki"
	"github.com/mxedge/mxedge/proxy/packet"
)

// The WAN-cut lab: FreeRADIUS is the cloud NAC behind a relay the test
// cuts; mxedge runs in mode auto with its local NAC built; a switch-like
// client streams MAB and accounting at it with a real switch's retry
// behaviour (5 s per try, 3 tries).
const (
	wanKnown      = 40   // MACs the cloud accepts, each with a VLAN of its own
	wanUnknown    = 20   // MACs the cloud rejects
	wanDefaultMAB = "99" // survivability.default_mab_vlan
	// Health tuned for test speed; the failback bound below derives
	// from these.
	wanProbeInterval = time.Second
	wanUpAfter       = 3
	wanFallback      = 2 * time.Second
)

// wanHealth is the survivability section shared by the test and the
// benchmark: down after 3 failed probes (≈1.5 s with probe_timeout
// 500 ms while a failure is unconfirmed), up after 3 good ones.
func wanSurvivability(p *labpki.PKI, dot1xVLAN string) string {
	s := fmt.Sprintf(`  org_ca: %s
  eap_cert: %s
  eap_key: %s
  default_mab_vlan: %q
  fallback_after: %s
  health:
    probe_interval: %s
    probe_timeout: 500ms
    down_after: 3
    up_after: %d
`, p.OrgCAFile, p.EAPServerECDSA.Chain, p.EAPServerECDSA.Key, wanDefaultMAB, wanFallback, wanProbeInterval, wanUpAfter)
	if dot1xVLAN != "" {
		s += fmt.Sprintf("  default_dot1x_vlan: %q\n", dot1xVLAN)
	}
	return s
}

func wanKnownMACs() map[string]string {
	m := map[string]string{}
	for i := range wanKnown {
		m[fmt.Sprintf("0a0000%06x", i)] = strconv.Itoa(100 + i%7)
	}
	return m
}

// wanMACs interleaves known and unknown MACs, two known for each unknown.
func wanMACs() []string {
	var known []string
	for m := range wanKnownMACs() {
		known = append(known, m)
	}
	sort.Strings(known)
	var out []string
	for i, u := 0, 0; i < len(known); i++ {
		out = append(out, known[i])
		if i%2 == 1 && u < wanUnknown {
			out = append(out, fmt.Sprintf("0b0000%06x", u))
			u++
		}
	}
	return out
}

// wanCloudNAC is FreeRADIUS as the cloud NAC: RadSec, the known MACs,
// an EAP-TLS VLAN for the lab user certificate, accounting to detail.
func wanCloudNAC(t testing.TB, p *labpki.PKI) *peers.FreeRADIUS {
	return peers.MustFreeRADIUS(t, peers.FreeRADIUSOptions{
		PKI: p, RadSec: true, MAB: wanKnownMACs(),
		EAPVLAN: map[string]string{"user@example.org": eapVLAN},
	})
}

func mustRelay(t testing.TB, target string) *peers.Relay {
	t.Helper()
	r, err := peers.StartRelay("127.0.0.1:0", target)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// isLocal tells the local NAC's answers from the cloud's: local accepts
// carry Session-Timeout (survivability.local_session_timeout), the cloud
// FreeRADIUS's never do.
func isLocal(r load.AuthRec) bool { return r.Reply.SessionTimeout >= 0 }

// checkMAB checks one answered MAB record's outcome against who answered.
func checkMAB(r load.AuthRec, known map[string]string) error {
	vlan, isKnown := known[r.MAC]
	switch {
	case isLocal(r) && isKnown:
		if r.Code != packet.CodeAccessAccept || r.Reply.VLAN != vlan {
			return fmt.Errorf("local answer for known %s: %v VLAN %q, want accept VLAN %q (the learned one)", r.MAC, r.Code, r.Reply.VLAN, vlan)
		}
	case isLocal(r):
		if r.Code != packet.CodeAccessAccept || r.Reply.VLAN != wanDefaultMAB {
			return fmt.Errorf("local answer for unknown %s: %v VLAN %q, want accept VLAN %q", r.MAC, r.Code, r.Reply.VLAN, wanDefaultMAB)
		}
	case isKnown:
		if r.Code != packet.CodeAccessAccept || r.Reply.VLAN != vlan {
			return fmt.Errorf("cloud answer for known %s: %v VLAN %q, want accept VLAN %q", r.MAC, r.Code, r.Reply.VLAN, vlan)
		}
	default:
		if r.Code != packet.CodeAccessReject {
			return fmt.Errorf("cloud answer for unknown %s: %v, want reject", r.MAC, r.Code)
		}
	}
	return nil
}

// wanCut is one cut's timeline and what the switch saw of it.
type wanCut struct {
	Mode              peers.CutMode
	Cut, Restored     time.Time
	FirstLocal        time.Duration // cut → first local answer
	FirstCloud        time.Duration // restore → first cloud answer to a request sent after it
	Sent, Retried     int           // MAB requests first sent in [cut, restore + failback window)
	Lost              int
	HasLocal, HasBack bool
}

// measureCuts reads each cut's figures off the stream's records. A
// request belongs to the cut whose window [cut, next cut) its first
// transmission falls in.
func measureCuts(res load.StreamResult, cuts []*wanCut) {
	for i, c := range cuts {
		end := res.End
		if i+1 < len(cuts) {
			end = cuts[i+1].Cut
		}
		if r, ok := res.FirstAnswerAfter(c.Cut, isLocal); ok {
			c.FirstLocal, c.HasLocal = r.Answer.Sub(c.Cut), true
		}
		var first time.Time
		for _, r := range res.Recs {
			if r.Start.Before(c.Cut) || !r.Start.Before(end) {
				continue
			}
			c.Sent++
			if r.Try > 1 {
				c.Retried++
			}
			if r.Lost() {
				c.Lost++
			}
			if r.Answered() && !isLocal(r) && r.Start.After(c.Restored) && (first.IsZero() || r.Answer.Before(first)) {
				first = r.Answer
			}
		}
		if !first.IsZero() {
			c.FirstCloud, c.HasBack = first.Sub(c.Restored), true
		}
	}
}

// acctRun is the accounting a few switch ports report throughout: each
// session is Start, Interim-Updates, Stop, one record every period, in
// order (each waits for the previous answer, as a switch's per-session
// queue does), Acct-Session-Time counting up.
type acctRun struct {
	mu   sync.Mutex
	recs []load.AcctRec
}

func (a *acctRun) run(ctx context.Context, sw *load.Switch, ports int, period time.Duration, perSession int) *sync.WaitGroup {
	var wg sync.WaitGroup
	macs := slices.Sorted(func(yield func(string) bool) {
		for m := range wanKnownMACs() {
			if !yield(m) {
				return
			}
		}
	})
	for p := range ports {
		wg.Go(func() {
			tick := time.NewTicker(period)
			defer tick.Stop()
			for s := 0; ctx.Err() == nil; s++ {
				sid := fmt.Sprintf("wan-%d-%d-%d", time.Now().UnixNano()%1e6, p, s)
				for i := 0; i < perSession; i++ {
					st := load.AcctInterim
					switch {
					case i == 0:
						st = load.AcctStart
					case i == perSession-1:
						st = load.AcctStop
					}
					// Not cut short by ctx: a session once started ends
					// with its Stop, so the upstream sees whole sessions.
					rec := sw.Account(context.Background(), load.Acct{Status: st, SessionID: sid, MAC: macs[p%len(macs)], SessionTime: uint32(i * 10)})
					a.mu.Lock()
					a.recs = append(a.recs, rec)
					a.mu.Unlock()
					if i < perSession-1 {
						<-tick.C
					}
				}
			}
		})
	}
	return &wg
}

func (a *acctRun) records() []load.AcctRec {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.recs)
}

var acctStatusName = map[load.AcctStatus]string{load.AcctStart: "Start", load.AcctInterim: "Interim-Update", load.AcctStop: "Stop"}

// checkAccounting compares what the switch sent with FreeRADIUS's detail
// file: every record answered to the switch is there, per session in the
// order sent, and those sent while the WAN was cut (held by the edge,
// replayed later) carry an Acct-Delay-Time raised above the switch's own.
//
// Each record arrives exactly once, except one that was on its way to the
// cloud at the instant of a cut: the cloud may have logged it while its
// answer was lost with the link, and the edge, which cannot tell, holds it
// and replays it. RADIUS accounting is delivered at least once (RFC 2866
// §2 has the client retransmit until answered; RFC 5080 §2.2.1 leaves
// duplicate detection to the server, by Acct-Session-Id and the session's
// own fields, never by Acct-Delay-Time). Such a record may arrive twice:
// first as the switch sent it, then replayed with a raised delay. It
// returns how many records were held and how many arrived twice.
func checkAccounting(t testing.TB, sent []load.AcctRec, detail []peers.DetailRecord, cuts []*wanCut) (held, twice int) {
	t.Helper()
	type key struct{ sid, status, stime string }
	seen := map[key][]peers.DetailRecord{}
	order := map[string][]int{} // session → Acct-Session-Time in file order
	for _, d := range detail {
		k := key{d.Get("Acct-Session-Id"), d.Get("Acct-Status-Type"), d.Get("Acct-Session-Time")}
		seen[k] = append(seen[k], d)
		n, _ := strconv.Atoi(k.stime)
		order[k.sid] = append(order[k.sid], n)
	}
	inCut := func(at time.Time) bool {
		for _, c := range cuts {
			if !at.Before(c.Cut) && at.Before(c.Restored) {
				return true
			}
		}
		return false
	}
	// atCut: sent so close to a cut that the cloud may have had it when the
	// link went: from fallback_after (and a second of slack for a loaded
	// machine) before the cut, to a second after the test called it.
	atCut := func(at time.Time) (time.Duration, bool) {
		for _, c := range cuts {
			if d := at.Sub(c.Cut); d >= -(wanFallback+time.Second) && d <= time.Second {
				return d, true
			}
		}
		return 0, false
	}
	delayOf := func(d peers.DetailRecord) int { n, _ := strconv.Atoi(d.Get("Acct-Delay-Time")); return n }
	for _, r := range sent {
		if r.Err != nil {
			t.Errorf("accounting %s/%d: %v", r.SessionID, r.Status, r.Err)
			continue
		}
		if r.Lost() {
			t.Errorf("accounting %s %s t=%d was never answered (%d tries)", r.SessionID, acctStatusName[r.Status], r.SessionTime, len(r.Delays))
			continue
		}
		k := key{r.SessionID, acctStatusName[r.Status], strconv.Itoa(int(r.SessionTime))}
		got := seen[k]
		sentDelay := int(r.Delays[r.Try-1])
		if off, ok := atCut(r.Start); ok && len(got) == 2 {
			twice++
			t.Logf("accounting %v sent %v from a cut arrived twice: Acct-Delay-Time %d then %d", k, off.Round(time.Millisecond), delayOf(got[0]), delayOf(got[1]))
			if delayOf(got[0]) < sentDelay || delayOf(got[1]) <= delayOf(got[0]) {
				t.Errorf("accounting %v at a cut arrived twice with Acct-Delay-Time %d then %d: want the switch's (%d) then a replay's, raised",
					k, delayOf(got[0]), delayOf(got[1]), sentDelay)
			}
			continue
		}
		if len(got) != 1 {
			t.Errorf("accounting %v (sent %s) arrived upstream %d times, want exactly once", k, r.Start.Format("15:04:05.000"), len(got))
			continue
		}
		delay := delayOf(got[0])
		if inCut(r.Start) {
			held++
			if delay <= int(r.Delays[len(r.Delays)-1]) {
				t.Errorf("accounting %v sent during a cut: upstream Acct-Delay-Time %d, want above the switch's %v", k, delay, r.Delays)
			}
		} else if delay < sentDelay {
			t.Errorf("accounting %v: upstream Acct-Delay-Time %d below the switch's %d", k, delay, sentDelay)
		}
	}
	for sid, times := range order {
		if !slices.IsSorted(times) {
			t.Errorf("session %s reached the cloud out of order: Acct-Session-Time %v", sid, times)
		}
	}
	return held, twice
}

// edgeStatus reads `mxedge status --json`.
func edgeStatus(t testing.TB, e *edgeProc) edge.StatusReport {
	t.Helper()
	out, code := runEdgeCmdTB(t, "status", "--config", e.cfgPath, "--json")
	var st edge.StatusReport
	if code != 0 || jsonUnmarshal(out, &st) != nil {
		t.Fatalf("mxedge status: exit %d\n%s", code, out)
	}
	return st
}

// waitMode waits for the edge to report mode and returns when it did.
func waitMode(t testing.TB, e *edgeProc, mode string, within time.Duration) time.Time {
	t.Helper()
	var st edge.StatusReport
	if !waitFor(within, func() bool { st = edgeStatus(t, e); return st.Mode == mode }) {
		t.Fatalf("edge mode %q (%s) after %v, want %q\n%s", st.Mode, st.ModeReason, within, mode, tailString(e.Log(), 40))
	}
	return time.Now()
}

func durStats(ds []time.Duration) (median, maxd time.Duration) {
	if len(ds) == 0 {
		return 0, 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2], s[len(s)-1]
}

// runEdgeCmdTB is runEdgeCmd for tests and benchmarks alike.
func runEdgeCmdTB(t testing.TB, args ...string) (string, int) {
	t.Helper()
	out, err := exec.Command(edgeBin, args...).CombinedOutput()
	if ee, ok := err.(*exec.ExitError); ok {
		return string(out), ee.ExitCode()
	}
	if err != nil {
		t.Fatal(err)
	}
	return string(out), 0
}

func jsonUnmarshal(s string, v any) error { return json.Unmarshal([]byte(s), v) }
