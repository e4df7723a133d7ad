package main

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mxedge/mxedge/cache"
	"github.com/mxedge/mxedge/cmd/internal/load"
	"github.com/mxedge/mxedge/cmd/internal/peers"
)

// TestLocalEAPAdmissionFlood: a second RADIUS client (127.0.0.2) opens
// EAP conversations under thousands of new identities, more than the
// whole session table holds and faster than half-open ones expire, while
// eapol_test authenticates from the first client; every real
// authentication succeeds during the flood. Before per-client caps and
// eviction, the flood filled the table for 30 s and locked everyone out.
func TestLocalEAPAdmissionFlood(t *testing.T) {
	peers.RequireBin(t, "eapol_test")
	if !sendableFrom("127.0.0.2:0") {
		t.Skip("127.0.0.2 is not usable as a source address here")
	}
	p := labPKI(t)
	e, _ := startLocalEdge(t, p, p.EAPServerECDSA, func(c *edgeConfig) {
		c.MoreClients = fmt.Sprintf(`    - name: flooder
      address: 127.0.0.2/32
      secret: %q
      vendor: generic
`, labSecret)
		c.LogLevel = "info"
	})
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	var tally identityTally
	flood := make(chan struct{})    // closed when the flood ended
	const rate, count = 1500, 30000 // 20 s; the table (4096) is full after 3 s
	go func() {
		defer close(flood)
		sendIdentities(ctx, t, "127.0.0.2:0", e.Auth, 0xee, rate, count, &tally)
	}()
	// Let the flood pass the table's size, then authenticate, several times.
	time.Sleep(4 * time.Second)
	for i := range 3 {
		res, err := peers.EAPOLTest(ctxFor(t, 30*time.Second), e.Auth, labSecret, peers.EAPTLS{
			Identity: "anonymous@example.org", CACert: p.RootFile,
			ClientCert: p.User.Chain, PrivateKey: p.User.Key,
			TLS13: i%2 == 1, CallingStationID: localCachedMAC,
		})
		if err != nil {
			t.Fatal(err)
		}
		if !res.Success || res.VLAN() != localCachedVLAN {
			t.Fatalf("authentication %d during the flood: success=%v VLAN %q\n%s", i, res.Success, res.VLAN(), tailString(res.Output, 30))
		}
		select {
		case <-flood:
			t.Fatalf("flood ended (%d sent) before authentication %d", tally.sent.Load(), i)
		default:
		}
	}
	evicted := e.metric(t, "mxedge_nac_eap_evicted_total", `scope="client"`)
	cancel()
	<-flood
	sent := tally.sent.Load()
	t.Logf("flood: %d sent, %d challenged, %d otherwise answered; %v evicted at the flooder's cap",
		sent, tally.challenged.Load(), tally.other.Load(), evicted)
	if sent < 4096 || evicted == 0 {
		t.Fatalf("the flood (%d sent, %v evicted) did not reach the caps", sent, evicted)
	}
	if n := e.metric(t, "mxedge_nac_dropped_total", `reason="sessions_full"`); n != 0 {
		t.Fatalf("%v conversations refused, want none: the flooder's half-open ones make room", n)
	}
}

// sendableFrom reports whether a UDP socket can bind to addr.
func sendableFrom(addr string) bool {
	la, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return false
	}
	c, err := net.ListenUDP("udp", la)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// TestLocalMABEventsSurviveKill: under local MAB load with
// survivability.events_durable: true, kill -9 the daemon several
// times; after each kill every request it answered has its NAC event in
// the cache file's outbox.
func TestLocalMABEventsSurviveKill(t *testing.T) {
	t.Parallel()
	p := labPKI(t)
	var stateDir string
	const kills = 4
	totalAnswered := 0
	for round := range kills {
		e, dir := startLocalEdge(t, p, p.EAPServerECDSA, func(c *edgeConfig) {
			if stateDir != "" {
				c.StateDir = stateDir
			}
			c.LogLevel = "info"
			c.Survivability += "  events_durable: true\n"
		})
		if stateDir == "" {
			stateDir = dir
		}
		sw, err := load.NewSwitch(load.SwitchConfig{Auth: e.Auth, Secret: []byte(labSecret), Timeout: 2 * time.Second, Tries: 1})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		var (
			mu       sync.Mutex
			answered []string
			wg       sync.WaitGroup
			seq      atomic.Int64
		)
		killAt := 300 + 200*round // answers before the kill
		for range 16 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for ctx.Err() == nil && seq.Load() < 100000 {
					n := seq.Add(1)
					mac := fmt.Sprintf("02%02x%08x", round, n)
					rec := sw.MAB(ctx, mac)
					if rec.Answered() {
						mu.Lock()
						answered = append(answered, mac)
						mu.Unlock()
					} else if rec.Err == nil {
						return // lost: the daemon is gone
					}
				}
			}()
		}
		if !waitFor(15*time.Second, func() bool { mu.Lock(); defer mu.Unlock(); return len(answered) >= killAt }) {
			t.Fatalf("round %d: only %d answers", round, len(answered))
		}
		if err := e.cmd.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		<-e.exited
		cancel()
		wg.Wait()
		sw.Close()

		store, err := cache.Open(filepath.Join(stateDir, "cache.db"), cache.Options{})
		if err != nil {
			t.Fatalf("round %d: the store does not open after kill -9: %v", round, err)
		}
		evs, err := store.PendingEvents(0)
		store.Close()
		if err != nil {
			t.Fatal(err)
		}
		recorded := map[string]bool{}
		for _, ev := range evs {
			if ev.Type == "NAC Client Access Allowed" {
				recorded[ev.MAC] = true
			}
		}
		mu.Lock()
		var missing []string
		for _, mac := range answered {
			norm, _ := cache.NormalizeMAC(mac)
			if !recorded[norm] {
				missing = append(missing, mac)
			}
		}
		n := len(answered)
		mu.Unlock()
		totalAnswered += n
		t.Logf("kill %d: %d answered, %d events on disk", round+1, n, len(recorded))
		if len(missing) > 0 {
			t.Fatalf("kill %d: %d of %d answered requests have no event on disk, e.g. %v", round+1, len(missing), n, missing[:min(5, len(missing))])
		}
	}
	t.Logf("%d kills, %d answered requests, every event on disk", kills, totalAnswered)
}
