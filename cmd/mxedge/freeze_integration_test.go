package main

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mxedge/mxedge/cmd/internal/load"
	"github.com/mxedge/mxedge/proxy/packet"
)

// mabPoll is one single MAB request sent to the edge on its own socket.
type mabPoll struct {
	sent, answered time.Time // answered is zero when no answer came
}

// pollMAB sends one MAB request every interval until ctx is done (a
// bounded loop: ctx carries a deadline) and returns when the last one
// has been answered or given up on.
func pollMAB(ctx context.Context, t *testing.T, target string, macs []string, every, wait time.Duration) []mabPoll {
	var (
		mu    sync.Mutex
		polls []mabPoll
		wg    sync.WaitGroup
	)
	tick := time.NewTicker(every)
	defer tick.Stop()
	for i := 0; ; i++ {
		select {
		case <-ctx.Done():
			wg.Wait()
			return polls
		case <-tick.C:
		}
		wg.Go(func() {
			p := mabPoll{sent: time.Now()}
			if askMAB(target, macs[i%len(macs)], uint8(i), wait) {
				p.answered = time.Now()
			}
			mu.Lock()
			polls = append(polls, p)
			mu.Unlock()
		})
	}
}

// askMAB sends one MAB request and reports whether a verified answer
// came within wait.
func askMAB(target, mac string, id uint8, wait time.Duration) bool {
	c, err := net.Dial("udp", target)
	if err != nil {
		return false
	}
	defer c.Close()
	req := load.MABRequest(nil, id, mac, []byte(labSecret))
	if _, err := c.Write(req); err != nil {
		return false
	}
	c.SetReadDeadline(time.Now().Add(wait))
	buf := make([]byte, packet.MaxLen)
	for {
		n, err := c.Read(buf)
		if err != nil {
			return false
		}
		var p packet.Packet
		if p.Parse(buf[:n]) != nil || p.ID != id {
			continue
		}
		if _, err := packet.VerifyResponse(&p, [16]byte(req[4:20]), []byte(labSecret)); err == nil {
			return true
		}
	}
}

// TestCloudFreezeRecovery freezes the cloud NAC (SIGSTOP: its sockets
// stay open, nothing answers, new TLS handshakes hang) under steady MAB
// load, thaws it, and requires the edge to answer again within a second,
// without churning its RadSec connection on the late replies that the
// thawed server sends for the requests it had queued.
//
// Two cases: with the production Status-Server interval the connection
// outlives an 8 s freeze, so the thawed server's answers to every request
// that timed out meanwhile arrive on it, late (the bug this guards
// against: their identifiers had been reused, and each late reply reset
// the connection); with a 2 s interval the watchdog fails the connection
// during the freeze and recovery rides on a dial that hangs in the TLS
// handshake until the thaw.
func TestCloudFreezeRecovery(t *testing.T) {
	t.Parallel()
	realPeers(t, "freeradius")
	for _, tc := range []struct {
		name           string
		statusInterval time.Duration
		freeze         time.Duration
	}{
		{"connection outlives the freeze", 10 * time.Second, 8 * time.Second},
		{"watchdog fails the connection", 2 * time.Second, 8 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) { freezeAndThaw(t, tc.statusInterval, tc.freeze) })
	}
}

func freezeAndThaw(t *testing.T, statusInterval, freeze time.Duration) {
	const (
		warm  = 2 * time.Second
		after = 4 * time.Second
		bound = time.Second
	)
	p := labPKI(t)
	nac := labNAC(t, p)
	cloud := fmt.Sprintf(`cloud:
  radsec:
    servers: [%q]
    ca: %s
    cert: %s
    key: %s
    timeout: 3s
    status_interval: %s
`, nac.RadSecAddr, p.RadSecCAFile, p.RadSecClient.Chain, p.RadSecClient.Key, statusInterval)
	e := startEdge(t, edgeConfig{Secret: labSecret, PKI: p, Mode: "cloud", NoCloudSection: true, Extra: cloud})
	macs := loadMACs(64)
	if !waitFor(10*time.Second, func() bool { return askMAB(e.Auth, macs[0], 1, time.Second) }) {
		t.Fatal("no answer before the freeze")
	}

	run := warm + freeze + after
	ctx, cancel := context.WithTimeout(context.Background(), run)
	defer cancel()
	var wg sync.WaitGroup
	var res load.LoadResult
	var loadErr error
	wg.Go(func() {
		res, loadErr = load.RunLoad(context.Background(), load.LoadSpec{
			Target: e.Auth, Secret: []byte(labSecret), MACs: macs,
			Concurrency: 16, Pace: 50 * time.Millisecond, Count: 5000,
			Duration: run, Timeout: 500 * time.Millisecond,
		})
	})
	var polls []mabPoll
	wg.Go(func() { polls = pollMAB(ctx, t, e.Auth, macs, 20*time.Millisecond, 2*time.Second) })

	time.Sleep(warm) // the load's own pace sets the timeline, not readiness
	if err := nac.Pause(); err != nil {
		t.Fatal(err)
	}
	paused := true
	defer func() {
		if paused {
			nac.Resume()
		}
	}()
	time.Sleep(freeze)
	logAt := len(e.Log())
	if err := nac.Resume(); err != nil {
		t.Fatal(err)
	}
	resumed := time.Now()
	paused = false
	wg.Wait()
	if loadErr != nil {
		t.Fatal(loadErr)
	}

	var first time.Time
	var late, lateLost int
	for _, p := range polls {
		if p.sent.Before(resumed) {
			continue
		}
		if !p.answered.IsZero() && (first.IsZero() || p.answered.Before(first)) {
			first = p.answered
		}
		if p.sent.After(resumed.Add(bound)) {
			late++
			if p.answered.IsZero() {
				lateLost++
			}
		}
	}
	log := e.Log()
	resets := strings.Count(log[logAt:], "radsec connection lost")
	t.Logf("freeze %v, status_interval %v: first answer %v after SIGCONT; polls sent from %v after: %d, unanswered %d; connection losses after SIGCONT: %d",
		freeze, statusInterval, first.Sub(resumed).Round(time.Millisecond), bound, late, lateLost, resets)
	t.Logf("load: sent %d answered %d lost %d", res.Sent, res.Answered, res.Lost)
	t.Logf("dropped replies: late %v unmatched %v unverified %v; reconnects %v",
		e.metric(t, "mxedge_upstream_dropped_replies_total", `reason="late"`),
		e.metric(t, "mxedge_upstream_dropped_replies_total", `reason="unmatched"`),
		e.metric(t, "mxedge_upstream_dropped_replies_total", `reason="unverified"`),
		e.metric(t, "mxedge_upstream_reconnects_total"))
	if first.IsZero() {
		t.Fatalf("no answer after the resume (%d polls)", len(polls))
	}
	if d := first.Sub(resumed); d > bound {
		t.Errorf("answers resumed %v after SIGCONT, want within %v", d, bound)
	}
	if lateLost > 0 {
		t.Errorf("%d of %d requests sent more than %v after SIGCONT went unanswered", lateLost, late, bound)
	}
	if strings.Contains(log, "does not verify") {
		t.Error("the edge logged a reply that does not verify")
	}
	if resets > 0 {
		t.Errorf("the RadSec connection was lost %d times after SIGCONT", resets)
	}
}
