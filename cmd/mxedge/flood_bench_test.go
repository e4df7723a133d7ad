package main

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/mxedge/mxedge/cmd/internal/load"
	"github.com/mxedge/mxedge/internal/labpki"
	"github.com/mxedge/mxedge/proxy/packet"
)

// BenchmarkFlood measures what floods cost a legitimate switch: the share
// of its MAB requests the daemon (local mode, no cloud) answers within a
// second, and their p99, while a loader sends as fast as it can on
// loopback (a) from an unknown source, 127.0.0.2, and (b) from the
// switch's own address with a garbage Message-Authenticator, as a forger
// spoofing a known device would. Each case runs 10 s; the daemon's RSS is read before and after. Run it with
// -benchtime 1x: each case is bounded in time, not in b.N.
func BenchmarkFlood(b *testing.B) {
	const caseTime = 10 * time.Second
	p, err := labpki.Generate(b.TempDir(), labpki.Options{})
	if err != nil {
		b.Fatal(err)
	}
	e, _ := startLocalEdge(b, p, p.EAPServerECDSA)
	pid := e.cmd.Process.Pid
	macs := []string{localMABMAC}
	secret := []byte(labSecret)

	// The switch: 32 requests in flight, each worker pausing 20 ms
	// between answers, about 1,500 requests a second when nothing
	// interferes; a request unanswered within a second counts as lost
	// (and holds its worker that second, as a NAS's timer would).
	sw := load.LoadSpec{Target: e.Auth, Secret: secret, Concurrency: 32, Count: 1 << 20,
		Duration: caseTime, Timeout: time.Second, Pace: 20 * time.Millisecond, MACs: macs}
	if _, err := load.RunLoad(context.Background(), load.LoadSpec{Target: e.Auth, Secret: secret,
		Concurrency: 4, Count: 200, Duration: 5 * time.Second, MACs: macs}); err != nil {
		b.Fatal(err)
	}

	valid := load.MABRequest(nil, 1, localMABMAC, secret)
	forged := append([]byte(nil), valid...)
	// The Message-Authenticator is the first attribute: its value is
	// octets 22..37. Garbage there fails the HMAC.
	for i := packet.HeaderLen + 2; i < packet.HeaderLen+18; i++ {
		forged[i] ^= 0xa5
	}
	type row struct {
		name                 string
		floodRate            float64
		sent, answered       int
		p50, p99             time.Duration
		rssBefore, rssAfter  int64
		dropsUnknown, dropMA float64
		dropShed             float64
	}
	cases := []struct {
		name  string
		flood *load.FloodSpec
	}{
		{"no flood", nil},
		{"unknown source", &load.FloodSpec{Source: "127.0.0.2:0", Datagram: valid}},
		{"bad authenticator, known source", &load.FloodSpec{Source: "127.0.0.1:0", Datagram: forged}},
	}
	var rows []row
	b.ResetTimer()
	for _, c := range cases {
		r := row{name: c.name}
		r.rssBefore, _ = load.RSS(pid)
		du0 := e.metric(b, "mxedge_drops_total", `reason="unknown_client"`)
		dm0 := e.metric(b, "mxedge_drops_total", `reason="bad_message_authenticator"`)
		ds0 := e.metric(b, "mxedge_drops_total", `reason="auth_failures_rate_limited"`)
		ctx, cancel := context.WithCancel(context.Background())
		floodDone := make(chan load.FloodResult, 1)
		if c.flood != nil {
			f := *c.flood
			f.Target, f.Workers, f.Count, f.Duration = e.Auth, 2, 1<<30, caseTime+time.Second
			go func() {
				res, err := load.Flood(ctx, f)
				if err != nil {
					b.Error(err)
				}
				floodDone <- res
			}()
			time.Sleep(200 * time.Millisecond) // the flood at full rate first
		} else {
			floodDone <- load.FloodResult{}
		}
		res, err := load.RunLoad(context.Background(), sw)
		cancel()
		fr := <-floodDone
		if err != nil {
			b.Fatal(c.name, err)
		}
		r.rssAfter, _ = load.RSS(pid)
		if fr.Elapsed > 0 {
			r.floodRate = fr.Rate()
		}
		r.sent, r.answered = res.Sent, res.Answered
		r.p50, r.p99 = res.Quantile(0.5), res.Quantile(0.99)
		r.dropsUnknown = e.metric(b, "mxedge_drops_total", `reason="unknown_client"`) - du0
		r.dropMA = e.metric(b, "mxedge_drops_total", `reason="bad_message_authenticator"`) - dm0
		r.dropShed = e.metric(b, "mxedge_drops_total", `reason="auth_failures_rate_limited"`) - ds0
		rows = append(rows, r)
		b.ReportMetric(100*float64(r.answered)/float64(max(r.sent, 1)), metricName(c.name)+"-answered-%")
		b.ReportMetric(float64(r.p99)/float64(time.Millisecond), metricName(c.name)+"-p99-ms")
		b.ReportMetric(float64(r.rssAfter)/(1<<20), metricName(c.name)+"-rss-MiB")
		time.Sleep(time.Second) // let the socket drain between cases
	}
	b.StopTimer()
	var t strings.Builder
	fmt.Fprintf(&t, "\n%-33s %12s %8s %9s %9s %9s %9s %9s %12s %12s %12s\n", "case", "flood pkt/s", "sent", "answered", "p50 ms", "p99 ms",
		"RSS0 MiB", "RSS1 MiB", "drop unknown", "drop bad MA", "drop shed")
	for _, r := range rows {
		fmt.Fprintf(&t, "%-33s %12.0f %8d %8.1f%% %9.2f %9.2f %9.1f %9.1f %12.0f %12.0f %12.0f\n", r.name, r.floodRate, r.sent,
			100*float64(r.answered)/float64(max(r.sent, 1)),
			float64(r.p50)/float64(time.Millisecond), float64(r.p99)/float64(time.Millisecond),
			float64(r.rssBefore)/(1<<20), float64(r.rssAfter)/(1<<20), r.dropsUnknown, r.dropMA, r.dropShed)
	}
	b.Log(t.String())
}

func metricName(s string) string {
	s, _, _ = strings.Cut(s, ",")
	return strings.ReplaceAll(s, " ", "-")
}
