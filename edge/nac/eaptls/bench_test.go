package eaptls_test

import (
	"crypto/tls"
	"crypto/x509"
	"syscall"
	"testing"
	"time"

	"github.com/mxedge/mxedge/edge/nac/eaptls"
)

// cpuTime is the process's user+system CPU time. Around a Handle call
// only the server side runs (the supplicant is idle), so the difference is
// the server's CPU cost, GC included, and insensitive to other load on the
// machine, unlike wall time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkFullAuth measures complete in-memory EAP-TLS authentications:
// server and supplicant, ECDSA P-256 client certificate with two
// intermediates. server-ns/op is the wall time spent inside Session.Handle
// (the server's TLS work runs on its goroutine while Handle waits), i.e.
// the server's share of one authentication; server-cpu-ns/op is the
// process CPU used during those calls; cpu-ns/op is all CPU per
// authentication, both sides.
func BenchmarkFullAuth(b *testing.B) {
	p := testPKI(b, false)
	for _, key := range []struct {
		name string
		cert *tls.Certificate
	}{{"ECDSA-P256", p.serverEC}, {"RSA-2048", p.serverRSA}} {
		for _, v := range versions {
			b.Run(key.name+"/"+v.name, func(b *testing.B) {
				f := newFixture(b, false, func(c *eaptls.Config) {
					c.Certificate = func() (*tls.Certificate, error) { return key.cert, nil }
				})
				var server, serverCPU time.Duration
				cpu0 := cpuTime()
				b.ReportAllocs()
				for b.Loop() {
					peer := f.peer(p.client, v.v, 0)
					s := f.srv.NewSession(0)
					resp := peer.IdentityResponse(1)
					for {
						t0, c0 := time.Now(), cpuTime()
						r := s.Handle(resp)
						server += time.Since(t0)
						serverCPU += cpuTime() - c0
						next, err := peer.Handle(r.EAP)
						if r.Result != nil {
							if r.Outcome != eaptls.Accept || err != nil {
								b.Fatalf("%v %s %v %v", r.Outcome, r.Result.Reason, r.Result.Err, err)
							}
							break
						}
						if err != nil {
							b.Fatal(err)
						}
						resp = next
					}
					peer.Close()
					s.Close()
				}
				b.ReportMetric(float64(server.Nanoseconds())/float64(b.N), "server-ns/op")
				b.ReportMetric(float64(serverCPU.Nanoseconds())/float64(b.N), "server-cpu-ns/op")
				b.ReportMetric(float64((cpuTime()-cpu0).Nanoseconds())/float64(b.N), "cpu-ns/op")
			})
		}
	}
}

// BenchmarkVerify is the per-handshake certificate check alone (leaf plus
// two intermediates from the peer, root in the Trust, CRL map lookups).
func BenchmarkVerify(b *testing.B) {
	p := testPKI(b, false)
	tr, err := eaptls.ParseTrust(p.rootPEM, p.root.crl(b))
	if err != nil {
		b.Fatal(err)
	}
	chain := []*x509.Certificate{p.client.Leaf, p.int2.cert, p.int1.cert}
	for b.Loop() {
		if _, err := tr.Verify(chain, testNow); err != nil {
			b.Fatal(err)
		}
	}
}
