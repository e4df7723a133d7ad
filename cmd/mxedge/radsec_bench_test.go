package main

import (
	"context"
	"crypto/x509"
	"net"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/mxedge/mxedge/cmd/internal/load"
	"github.com/mxedge/mxedge/cmd/internal/peers"
	"github.com/mxedge/mxedge/internal/labpki"
)

// BenchmarkRadSecListenerMAB measures CPU per answered MAB request for
// three paths to the same FreeRADIUS RadSec "cloud", in the same run:
//
//	udp:         load → mxedge UDP → cloud                 (mxedge's CPU)
//	radsec:      load → AP radsecproxy → mxedge RadSec → cloud (mxedge's CPU)
//	radsecproxy: load → AP radsecproxy → radsecproxy RadSec → cloud (the second radsecproxy's CPU)
func BenchmarkRadSecListenerMAB(b *testing.B) {
	for _, bin := range []string{"freeradius", "radsecproxy"} {
		peers.RequireBin(b, bin)
	}
	p, err := labpki.Generate(b.TempDir(), labpki.Options{})
	if err != nil {
		b.Fatal(err)
	}
	macs := loadMACs(64)
	mab := map[string]string{}
	for _, m := range macs {
		mab[m] = "42"
	}
	cloud := peers.MustFreeRADIUS(b, peers.FreeRADIUSOptions{PKI: p, RadSec: true, MAB: mab})
	sec := radsecSection(p, "")
	e := startEdge(b, edgeConfig{Secret: labSecret, Upstreams: []string{cloud.RadSecAddr}, PKI: p, Extra: sec, LogLevel: "info"})
	edgeRS := e.RadSec

	now := time.Now()
	dev := mintDevice(b, p.RadSecCA, "ap-bench.ap.example.net", now.Add(-time.Hour), now.Add(24*time.Hour))
	// radsecproxy presents one certificate as client and server.
	both := mintLeaf(b, p.RadSecCA, "localhost", now.Add(-time.Hour), now.Add(24*time.Hour), func(c *x509.Certificate) {
		c.DNSNames = []string{"localhost"}
		c.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
		c.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
	})
	rp := func(opts peers.RadsecproxyOptions) *peers.Radsecproxy {
		opts.CAFile = p.RadSecCAFile
		opts.LogLevel = 3
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		r, err := peers.StartRadsecproxy(ctx, b.TempDir(), opts)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(r.Stop)
		return r
	}
	tlsPort := peers.FreeLoopbackPort(b, "tcp")
	relay := rp(peers.RadsecproxyOptions{Server: cloud.RadSecAddr, CertFile: both.Cert, KeyFile: both.Key, ListenTLS: tlsPort})
	apEdge := rp(peers.RadsecproxyOptions{Server: edgeRS, CertFile: dev.Cert, KeyFile: dev.Key})
	apRelay := rp(peers.RadsecproxyOptions{Server: "127.0.0.1:" + strconv.Itoa(tlsPort), CertFile: dev.Cert, KeyFile: dev.Key})

	type path struct {
		name, target, secret string
		pid                  int
		cpu                  time.Duration
		answered, lost       int
		rate                 []float64
	}
	paths := []*path{
		{name: "udp", target: e.Auth, secret: labSecret, pid: e.cmd.Process.Pid},
		{name: "radsec", target: apEdge.Addr, secret: apEdge.Secret, pid: e.cmd.Process.Pid},
		{name: "radsecproxy", target: apRelay.Addr, secret: apRelay.Secret, pid: relay.PID()},
	}
	spec := func(s *path, n int) load.LoadSpec {
		return load.LoadSpec{Target: s.target, Secret: []byte(s.secret), Concurrency: 16, Count: n,
			Duration: 30 * time.Second, MACs: macs}
	}
	for _, s := range paths { // warm-up: connections up, caches hot
		if res, err := load.RunLoad(context.Background(), spec(s, 300)); err != nil || res.Answered == 0 {
			b.Fatalf("%s warm-up: %v %+v", s.name, err, res)
		}
	}
	const rounds = 3
	perRound := max(b.N/rounds, 1000)
	b.ResetTimer()
	for range rounds {
		for _, s := range paths {
			runtime.GC()
			cpu0, err := load.CPUTime(s.pid)
			if err != nil {
				b.Fatal(err)
			}
			res, err := load.RunLoad(context.Background(), spec(s, perRound))
			cpu1, _ := load.CPUTime(s.pid)
			if err != nil || res.Answered == 0 {
				b.Fatal(s.name, err)
			}
			s.cpu += cpu1 - cpu0
			s.answered += res.Answered
			s.lost += res.Lost + res.Rejected
			s.rate = append(s.rate, res.Rate())
		}
	}
	b.StopTimer()
	for _, s := range paths {
		b.ReportMetric(float64(s.cpu)/float64(time.Microsecond)/float64(s.answered), s.name+"-cpu-µs/answer")
		b.ReportMetric(median(s.rate), s.name+"-answers/s")
		b.ReportMetric(float64(s.lost), s.name+"-lost+rejected")
	}
}
