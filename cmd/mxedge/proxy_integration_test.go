package main

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mxedge/mxedge/cmd/internal/load"
	"github.com/mxedge/mxedge/cmd/internal/peers"
	"github.com/mxedge/mxedge/internal/labpki"
)

const (
	labSecret = "lab-switch-secret-8f2a91c4"
	mabMAC    = "aabbccddeeff"
	mabVLAN   = "41"
	eapVLAN   = "51"
	ma        = "Message-Authenticator = 0x00"
)

// sharedPKI is one throwaway PKI for the whole test binary, removed by
// TestMain.
var sharedPKI labpki.Shared

func labPKI(t *testing.T) *labpki.PKI {
	t.Helper()
	return sharedPKI.Get(t)
}

// realPeers skips a test that drives real peer processes under -short,
// and skips (fails in CI) when one of the peer binaries is missing.
func realPeers(t *testing.T, bins ...string) {
	t.Helper()
	if testing.Short() {
		t.Skip("real-peer test")
	}
	for _, b := range bins {
		peers.RequireBin(t, b)
	}
}

// loadMACs are allow-listed on the lab NAC for request streams.
func loadMACs(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("02000000%04x", i)
	}
	return out
}

func labNAC(t *testing.T, p *labpki.PKI) *peers.FreeRADIUS {
	mab := map[string]string{mabMAC: mabVLAN}
	for _, m := range loadMACs(64) {
		mab[m] = "42"
	}
	return peers.MustFreeRADIUS(t, peers.FreeRADIUSOptions{
		PKI:    p,
		RadSec: true,
		MAB:    mab,
		Users: map[string]peers.User{
			"alice": {Password: "wonderland", ReplyMessage: "hello alice", TunnelPassword: "tunnel-secret"},
		},
		EAPVLAN: map[string]string{"user@example.org": eapVLAN},
	})
}

func mabAttrs(mac string) []string {
	return []string{
		`User-Name = "` + mac + `"`, `User-Password = "` + mac + `"`,
		`Service-Type = Call-Check`, `NAS-Port-Type = Ethernet`,
		`Calling-Station-Id = "AA-BB-CC-DD-EE-FF"`, ma,
	}
}

// TestProxyRealPeers drives the real mxedge binary between radclient /
// eapol_test (the third-party switch and supplicant) and two FreeRADIUS
// RadSec servers (the cloud NAC).
func TestProxyRealPeers(t *testing.T) {
	t.Parallel()
	realPeers(t, "freeradius", "radclient")
	p := labPKI(t)
	nacA, nacB := labNAC(t, p), labNAC(t, p)
	e := startEdge(t, edgeConfig{Secret: labSecret, Upstreams: []string{nacA.RadSecAddr, nacB.RadSecAddr}, PKI: p})

	t.Run("MAB", func(t *testing.T) {
		res, err := peers.Radclient(ctxFor(t, 10*time.Second), e.Auth, labSecret, "auth", mabAttrs(mabMAC))
		if err != nil {
			t.Fatal(err)
		}
		if res.Code != "Access-Accept" || res.Attr("Tunnel-Private-Group-Id") != mabVLAN ||
			res.Attr("Tunnel-Type") != "VLAN" || res.Attr("Tunnel-Medium-Type") != "IEEE-802" {
			t.Fatalf("MAB answer:\n%s", res.Output)
		}
		if res.Attr("Message-Authenticator") == "" {
			t.Fatalf("answer without Message-Authenticator:\n%s", res.Output)
		}
		res, err = peers.Radclient(ctxFor(t, 10*time.Second), e.Auth, labSecret, "auth", mabAttrs("001122334455"))
		if err != nil || res.Code != "Access-Reject" {
			t.Fatalf("unknown MAC: %v\n%s", err, res.Output)
		}
	})

	t.Run("PAP re-encrypts Tunnel-Password", func(t *testing.T) {
		res, err := peers.Radclient(ctxFor(t, 10*time.Second), e.Auth, labSecret, "auth",
			[]string{`User-Name = "alice"`, `User-Password = "wonderland"`, ma})
		if err != nil {
			t.Fatal(err)
		}
		if res.Code != "Access-Accept" || res.Attr("Reply-Message") != "hello alice" || res.Attr("Tunnel-Password") != "tunnel-secret" {
			t.Fatalf("PAP answer:\n%s", res.Output)
		}
		res, err = peers.Radclient(ctxFor(t, 10*time.Second), e.Auth, labSecret, "auth",
			[]string{`User-Name = "alice"`, `User-Password = "wrong"`, ma})
		if err != nil || res.Code != "Access-Reject" {
			t.Fatalf("bad password: %v\n%s", err, res.Output)
		}
	})

	t.Run("Accounting", func(t *testing.T) {
		before, _ := nacA.CountAccountingRecords()
		for _, st := range []string{"Start", "Stop"} {
			res, err := peers.Radclient(ctxFor(t, 10*time.Second), e.Acct, labSecret, "acct", []string{
				`User-Name = "alice"`, `Acct-Status-Type = ` + st, `Acct-Session-Id = "s-1"`, `NAS-IP-Address = 127.0.0.1`,
			})
			if err != nil || res.Code != "Accounting-Response" {
				t.Fatalf("accounting %s: %v\n%s", st, err, res.Output)
			}
		}
		if after, _ := nacA.CountAccountingRecords(); after != before+2 {
			t.Fatalf("upstream recorded %d accounting records, want %d", after, before+2)
		}
	})

	t.Run("EAP-TLS through the proxy", func(t *testing.T) {
		peers.RequireBin(t, "eapol_test")
		for _, tls13 := range []bool{false, true} {
			res, err := peers.EAPOLTest(ctxFor(t, 30*time.Second), e.Auth, labSecret, peers.EAPTLS{
				Identity: "user@example.org", CACert: p.RootFile,
				ClientCert: p.User.Chain, PrivateKey: p.User.Key, TLS13: tls13,
			})
			if err != nil {
				t.Fatal(err)
			}
			if !res.Success || res.MPPEOK != 1 || res.MPPEMismatch != 0 {
				t.Fatalf("TLS1.3=%v: success=%v MPPE ok=%d mismatch=%d\n%s", tls13, res.Success, res.MPPEOK, res.MPPEMismatch, tailString(res.Output, 40))
			}
			if res.VLAN() != eapVLAN {
				t.Errorf("TLS1.3=%v: VLAN %q, want %q", tls13, res.VLAN(), eapVLAN)
			}
		}
	})

	t.Run("bad Message-Authenticator gets no answer", func(t *testing.T) {
		before := e.metric(t, "mxedge_drops_total", `reason="bad_message_authenticator"`)
		_, err := peers.Radclient(ctxFor(t, 10*time.Second), e.Auth, "not-the-secret", "auth", mabAttrs(mabMAC))
		if !errors.Is(err, peers.ErrNoReply) {
			t.Fatalf("wrong secret answered: %v", err)
		}
		if after := e.metric(t, "mxedge_drops_total", `reason="bad_message_authenticator"`); after != before+1 {
			t.Fatalf("bad_message_authenticator drops %v → %v", before, after)
		}
	})

	t.Run("missing Message-Authenticator gets no answer", func(t *testing.T) {
		attrs := mabAttrs(mabMAC)
		_, err := peers.Radclient(ctxFor(t, 10*time.Second), e.Auth, labSecret, "auth", attrs[:len(attrs)-1])
		if !errors.Is(err, peers.ErrNoReply) {
			t.Fatalf("request without Message-Authenticator answered: %v", err)
		}
		if e.metric(t, "mxedge_drops_total", `reason="missing_message_authenticator"`) < 1 {
			t.Fatal("drop not counted")
		}
	})

	t.Run("unknown source gets no answer", func(t *testing.T) {
		req := load.MABRequest(nil, 9, mabMAC, []byte(labSecret))
		if sendFrom(t, "127.0.0.3:0", e.Auth, req, 1500*time.Millisecond) {
			t.Fatal("request from an unknown address was answered")
		}
		if e.metric(t, "mxedge_drops_total", `reason="unknown_client"`) < 1 {
			t.Fatal("unknown_client drop not counted")
		}
	})

	t.Run("Status-Server answered locally", func(t *testing.T) {
		res, err := peers.Radclient(ctxFor(t, 10*time.Second), e.Auth, labSecret, "status", []string{ma})
		if err != nil || res.Code != "Access-Accept" {
			t.Fatalf("status: %v\n%s", err, res.Output)
		}
	})

	t.Run("failover when the first upstream stops", func(t *testing.T) {
		wait := backgroundLoad(t, load.LoadSpec{
			Target: e.Auth, Secret: []byte(labSecret), Concurrency: 8, Count: 3000,
			Duration: 40 * time.Second, Timeout: 5 * time.Second, MACs: loadMACs(64),
		})
		// Stop the primary once traffic flows through it.
		if !waitFor(20*time.Second, func() bool {
			return e.metric(t, "mxedge_upstream_requests_total", nacA.RadSecAddr, `result="ok"`) > 200
		}) {
			t.Fatal("no traffic reached the first upstream")
		}
		nacA.Stop()
		res := wait()
		t.Logf("failover: %d sent, %d answered, %d lost, p99 %v", res.Sent, res.Answered, res.Lost, res.Quantile(0.99))
		if res.Lost > 8 {
			t.Fatalf("lost %d requests at failover; at most the 8 in flight may go", res.Lost)
		}
		if res.Rejected > 0 {
			t.Fatalf("%d allow-listed MACs rejected", res.Rejected)
		}
		if e.metric(t, "mxedge_upstream_requests_total", nacB.RadSecAddr, `result="ok"`) == 0 {
			t.Fatal("nothing reached the second upstream")
		}
	})
}

// TestProxyUpstreamRestart restarts the only upstream in the middle of a
// request stream: mxedge must be back within about a second of the
// upstream's return and lose at most what was in flight at the restart.
func TestProxyUpstreamRestart(t *testing.T) {
	t.Parallel()
	realPeers(t, "freeradius")
	p := labPKI(t)
	nac := labNAC(t, p)
	e := startEdge(t, edgeConfig{Secret: labSecret, Upstreams: []string{nac.RadSecAddr}, PKI: p})

	const conc = 8
	wait := pacedStream(t, e, conc, 2000)
	if err := nac.Restart(ctxFor(t, 30*time.Second)); err != nil {
		t.Fatal(err)
	}
	back := time.Now()
	okBefore := e.metric(t, "mxedge_upstream_requests_total", `result="ok"`)
	if !waitFor(10*time.Second, func() bool {
		return e.metric(t, "mxedge_upstream_requests_total", `result="ok"`) > okBefore
	}) {
		t.Fatal("no answer from the restarted upstream within 10s")
	}
	reconnect := time.Since(back)
	res := wait()
	t.Logf("restart: reconnected %v after the upstream was ready; %d sent, %d answered, %d lost",
		reconnect.Round(time.Millisecond), res.Sent, res.Answered, res.Lost)
	if !res.End.After(back) {
		t.Fatal("the request stream ended before the upstream was back: nothing was tested")
	}
	if res.Lost > conc {
		t.Fatalf("lost %d requests; at most the %d in flight at the restart may go", res.Lost, conc)
	}
	// The target is one second; the margin covers a loaded CI machine
	// scraping metrics every 20 ms.
	if reconnect > 1500*time.Millisecond {
		t.Fatalf("took %v to use the upstream again; mxedge log:\n%s", reconnect, grepLines(e.Log(), "radsec", "upstream"))
	}
}

// grepLines keeps the lines of s that contain any of words.
func grepLines(s string, words ...string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		for _, w := range words {
			if strings.Contains(l, w) {
				out = append(out, l)
				break
			}
		}
	}
	return strings.Join(out, "\n")
}

// pacedStream runs a paced MAB stream (about 800 requests/s) from
// 127.0.0.1 through e in the background and returns once more than 200
// requests reached the upstream, with a function that waits for the
// stream's end and returns what it measured.
func pacedStream(t *testing.T, e *edgeProc, conc, count int) func() load.LoadResult {
	t.Helper()
	wait := backgroundLoad(t, load.LoadSpec{
		Target: e.Auth, Secret: []byte(labSecret), Concurrency: conc, Count: count,
		Duration: 60 * time.Second, Timeout: 5 * time.Second, MACs: loadMACs(64),
		Pace: 10 * time.Millisecond,
	})
	if !waitFor(20*time.Second, func() bool {
		return e.metric(t, "mxedge_upstream_requests_total", `result="ok"`) > 200
	}) {
		t.Fatal("the request stream did not reach the upstream")
	}
	return wait
}

// backgroundLoad runs spec in the background and returns a function that
// waits for it and returns what it measured.
func backgroundLoad(t *testing.T, spec load.LoadSpec) func() load.LoadResult {
	var wg sync.WaitGroup
	var res load.LoadResult
	var lerr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		res, lerr = load.RunLoad(ctxFor(t, spec.Duration+30*time.Second), spec)
	}()
	return func() load.LoadResult {
		wg.Wait()
		if lerr != nil {
			t.Fatal(lerr)
		}
		return res
	}
}
