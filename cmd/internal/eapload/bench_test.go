package eapload_test

import (
	"context"
	"testing"
	"time"

	"github.com/mxedge/mxedge/cmd/internal/eapload"
)

// BenchmarkInProcess runs the load tool against the local NAC in this
// process: for profiling (go test -cpuprofile), not for figures, since the
// supplicant's CPU is counted too. cmd/mxedge's BenchmarkLocalEAPTLS
// measures the daemon alone.
func BenchmarkInProcess(b *testing.B) {
	p := labPKI(b)
	addr := localNAC(b, p, p.EAPServerECDSA)
	s := spec(b, p, addr, secret, p.User, 0)
	s.Count, s.Duration, s.Concurrency = max(b.N, 10), time.Minute, 4
	b.ResetTimer()
	res, err := eapload.RunEAPTLS(context.Background(), s)
	if err != nil || res.Failures > 0 {
		b.Fatal(err, res.FirstError)
	}
	b.ReportMetric(res.Rate(), "auths/s")
}
