package main

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mxedge/mxedge/internal/labpki"
	"github.com/mxedge/mxedge/proxy/packet"
)

// identityTally is what one sender of first-round EAP identities saw.
type identityTally struct {
	sent, challenged, other atomic.Int64
}

// sendIdentities sends first-round EAP-Response/Identity Access-Requests,
// each under a new identity and Calling-Station-Id (tag keeps senders
// apart), from src to dst at about rate a second until ctx ends or count
// were sent. An Access-Challenge back means the conversation was
// admitted to the session table; anything else, or silence, means not.
func sendIdentities(ctx context.Context, tb testing.TB, src, dst string, tag byte, rate float64, count int, tally *identityTally) {
	la, _ := net.ResolveUDPAddr("udp", src)
	ra, _ := net.ResolveUDPAddr("udp", dst)
	// Send in bursts of burst requests per tick: a ticker cannot tick
	// faster than the scheduler wakes.
	burst := max(1, int(rate/200))
	tick := time.NewTicker(time.Duration(float64(time.Second) / rate * float64(burst)))
	defer tick.Stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	var c *net.UDPConn
	defer func() {
		if c != nil {
			c.Close()
		}
	}()
	for i := 0; i < count; i++ {
		// A socket serves 256 identifiers, so no request is taken for a
		// retransmission of another.
		if i%256 == 0 {
			if c != nil {
				// Leave the replies in flight a moment to arrive.
				go func(c *net.UDPConn) { time.Sleep(500 * time.Millisecond); c.Close() }(c)
			}
			var err error
			if c, err = net.DialUDP("udp", la, ra); err != nil {
				tb.Error(err)
				return
			}
			wg.Add(1)
			go func(c *net.UDPConn) {
				defer wg.Done()
				buf := make([]byte, 4096)
				for {
					n, err := c.Read(buf)
					if err != nil {
						return
					}
					if n >= packet.HeaderLen && packet.Code(buf[0]) == packet.CodeAccessChallenge {
						tally.challenged.Add(1)
					} else {
						tally.other.Add(1)
					}
				}
			}(c)
		}
		if i%burst == 0 && i > 0 {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
		name := fmt.Sprintf("bench%d-%d@example.org", tag, i)
		eap := append([]byte{2, 1, 0, byte(5 + len(name)), 1}, name...)
		b := packet.Append(nil, packet.CodeAccessRequest, uint8(i), packet.RandomAuthenticator())
		b = packet.AppendMessageAuthenticator(b)
		b, _ = packet.AppendAttr(b, packet.AttrUserName, []byte(name))
		b, _ = packet.AppendAttr(b, packet.AttrCallingStationID,
			[]byte(fmt.Sprintf("02-%02X-%02X-%02X-%02X-%02X", tag, i>>24&0xff, i>>16&0xff, i>>8&0xff, i&0xff)))
		b, _ = packet.AppendAttr(b, packet.AttrEAPMessage, eap)
		if err := packet.Sign(b, []byte(labSecret), nil); err != nil {
			tb.Error(err)
			return
		}
		if _, err := c.Write(b); err != nil {
			tb.Error(err)
			return
		}
		tally.sent.Add(1)
	}
}

// BenchmarkEAPAdmission measures who gets EAP conversations admitted when
// one RADIUS client floods first-round identities: the flooder
// (127.0.0.2) sends as fast as a paced loop goes, while three other
// clients (127.0.0.1, .3, .4) each start conversations at a modest rate.
// It prints half-open conversations admitted a second (answered with an
// Access-Challenge) for the flooder and for the rest, the share of the
// rest admitted, and the table's evictions by scope. Bounded in time (10
// s of flood); run it with -benchtime 1x.
func BenchmarkEAPAdmission(b *testing.B) {
	const (
		caseTime  = 10 * time.Second
		floodRate = 8000 // a second, more than the table (4,096) holds per half-open timeout
		restRate  = 50   // a second, per other client
	)
	others := []string{"127.0.0.1", "127.0.0.3", "127.0.0.4"}
	for _, a := range append([]string{"127.0.0.2"}, others...) {
		if !sendableFrom(a + ":0") {
			b.Skipf("%s is not usable as a source address here", a)
		}
	}
	p, err := labpki.Generate(b.TempDir(), labpki.Options{})
	if err != nil {
		b.Fatal(err)
	}
	e, _ := startLocalEdge(b, p, p.EAPServerECDSA, func(c *edgeConfig) {
		var more strings.Builder
		for i, a := range []string{"127.0.0.2", "127.0.0.3", "127.0.0.4"} {
			fmt.Fprintf(&more, "    - name: bench%d\n      address: %s/32\n      secret: %q\n      vendor: generic\n", i, a, labSecret)
		}
		c.MoreClients = more.String()
		c.LogLevel = "info"
	})
	scopes := []string{"global", "client", "port", "device"}
	ev0 := map[string]float64{}
	for _, s := range scopes {
		ev0[s] = e.metric(b, "mxedge_nac_eap_evicted_total", `scope="`+s+`"`)
	}
	full0 := e.metric(b, "mxedge_nac_dropped_total", `reason="sessions_full"`)

	b.ResetTimer()
	ctx, cancel := context.WithTimeout(context.Background(), caseTime)
	defer cancel()
	var flood identityTally
	rest := make([]identityTally, len(others))
	var wg sync.WaitGroup
	start := time.Now()
	wg.Add(1 + len(others))
	go func() {
		defer wg.Done()
		sendIdentities(ctx, b, "127.0.0.2:0", e.Auth, 0xf1, floodRate, floodRate*int(caseTime/time.Second), &flood)
	}()
	for i, a := range others {
		go func() {
			defer wg.Done()
			sendIdentities(ctx, b, a+":0", e.Auth, byte(0x10+i), restRate, restRate*int(caseTime/time.Second), &rest[i])
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()

	var restSent, restAdmitted, restOther int64
	for i := range rest {
		restSent += rest[i].sent.Load()
		restAdmitted += rest[i].challenged.Load()
		restOther += rest[i].other.Load()
	}
	secs := elapsed.Seconds()
	var t strings.Builder
	fmt.Fprintf(&t, "\n%-28s %8s %9s %12s %10s %9s\n", "sender", "sent", "sent/s", "admitted/s", "admitted", "other")
	fmt.Fprintf(&t, "%-28s %8d %9.0f %12.0f %9.1f%% %9d\n", "flooder (one client)", flood.sent.Load(), float64(flood.sent.Load())/secs,
		float64(flood.challenged.Load())/secs, 100*float64(flood.challenged.Load())/float64(max(flood.sent.Load(), 1)), flood.other.Load())
	fmt.Fprintf(&t, "%-28s %8d %9.0f %12.0f %9.1f%% %9d\n", fmt.Sprintf("the rest (%d clients)", len(others)), restSent, float64(restSent)/secs,
		float64(restAdmitted)/secs, 100*float64(restAdmitted)/float64(max(restSent, 1)), restOther)
	fmt.Fprintf(&t, "evicted:")
	for _, s := range scopes {
		n := e.metric(b, "mxedge_nac_eap_evicted_total", `scope="`+s+`"`) - ev0[s]
		fmt.Fprintf(&t, " %s=%.0f", s, n)
		b.ReportMetric(n, "evicted-"+s)
	}
	full := e.metric(b, "mxedge_nac_dropped_total", `reason="sessions_full"`) - full0
	fmt.Fprintf(&t, "; refused (sessions_full) %.0f; %.1f s\n", full, secs)
	b.ReportMetric(float64(flood.challenged.Load())/secs, "flooder-admitted/s")
	b.ReportMetric(float64(restAdmitted)/secs, "rest-admitted/s")
	b.ReportMetric(100*float64(restAdmitted)/float64(max(restSent, 1)), "rest-admitted-%")
	b.Log(t.String())
}
