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
	"github.com/mxedge/mxedge/proxy/packet"
)

// floodIdentities sends first-round EAP-Response/Identity Access-Requests,
// each under a new identity and Calling-Station-Id, from src to dst at
// about rate a second, until count were sent or ctx ends. A socket
// serves 256 requests (its identifiers), so none is taken for a
// retransmission. Replies are read and dropped. It returns how many were
// sent and answered.
func floodIdentities(ctx context.Context, t *testing.T, src, dst string, rate float64, count int) (sent, answered int64) {
	t.Helper()
	la, _ := net.ResolveUDPAddr("udp", src)
	ra, _ := net.ResolveUDPAddr("udp", dst)
	var wg sync.WaitGroup
	var ans atomic.Int64
	tick := time.NewTicker(time.Duration(float64(time.Second) / rate * 64))
	defer tick.Stop()
	defer wg.Wait()
	var c *net.UDPConn
	defer func() {
		if c != nil {
			c.Close()
		}
	}()
	for i := 0; i < count; i++ {
		if i%256 == 0 {
			if c != nil {
				c.Close()
			}
			var err error
			if c, err = net.DialUDP("udp", la, ra); err != nil {
				t.Error(err)
				return sent, ans.Load()
			}
			wg.Add(1)
			go func(c *net.UDPConn) {
				defer wg.Done()
				buf := make([]byte, 4096)
				for {
					if _, err := c.Read(buf); err != nil {
						return
					}
					ans.Add(1)
				}
			}(c)
		}
		if i%64 == 0 && i > 0 {
			select {
			case <-ctx.Done():
				return sent, ans.Load()
			case <-tick.C:
			}
		}
		name := fmt.Sprintf("flood%d@example.org", i)
		eap := append([]byte{2, 1, 0, byte(5 + len(name)), 1}, name...)
		b := packet.Append(nil, packet.CodeAccessRequest, uint8(i), packet.RandomAuthenticator())
		b = packet.AppendMessageAuthenticator(b)
		b, _ = packet.AppendAttr(b, packet.AttrUserName, []byte(name))
		b, _ = packet.AppendAttr(b, packet.AttrCallingStationID, []byte(fmt.Sprintf("02-ee-%02X-%02X-%02X-%02X", i>>24&0xff, i>>16&0xff, i>>8&0xff, i&0xff)))
		b, _ = packet.AppendAttr(b, packet.AttrEAPMessage, eap)
		if err := packet.Sign(b, []byte(labSecret), nil); err != nil {
			t.Error(err)
			return sent, ans.Load()
		}
		if _, err := c.Write(b); err != nil {
			t.Error(err)
			return sent, ans.Load()
		}
		sent++
	}
	return sent, ans.Load()
}

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
	type result struct{ sent, answered int64 }
	flood := make(chan result, 1)
	const rate, count = 1500, 30000 // 20 s; the table (4096) is full after 3 s
	go func() {
		s, a := floodIdentities(ctx, t, "127.0.0.2:0", e.Auth, rate, count)
		flood <- result{s, a}
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
		case r := <-flood:
			t.Fatalf("flood ended (%d sent) before authentication %d", r.sent, i)
		default:
		}
	}
	evicted := e.metric(t, "mxedge_nac_eap_evicted_total", `scope="client"`)
	cancel()
	r := <-flood
	t.Logf("flood: %d sent, %d answered; %v evicted at the flooder's cap", r.sent, r.answered, evicted)
	if r.sent < 4096 || evicted == 0 {
		t.Fatalf("the flood (%d sent, %v evicted) did not reach the caps", r.sent, evicted)
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
