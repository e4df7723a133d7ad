package radsec

import (
	"context"
	"fmt"
	"runtime"
	"syscall"
	"testing"
	"time"
)

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkExchange runs the pool against an in-process Server over
// loopback TLS. cpu-µs/op is process CPU (user+sys) per request and so
// includes the server side and the loopback; allocs/op too.
func BenchmarkExchange(b *testing.B) {
	for _, conc := range []int{2, 32, 128} {
		b.Run(fmt.Sprint("conc=", conc), func(b *testing.B) {
			srv := startServer(b, "", echo("A"), nil)
			c, _ := newClient(b, []string{srv.addr}, func(cfg *Config) { cfg.Timeout = 10 * time.Second })
			if _, err := c.Exchange(context.Background(), accessRequest(b, 0, "warm")); err != nil {
				b.Fatal(err)
			}
			// RunParallel starts parallelism × GOMAXPROCS goroutines.
			par := max(1, conc/runtime.GOMAXPROCS(0))
			b.SetParallelism(par)
			b.ReportAllocs()
			b.ResetTimer()
			cpu0 := cpuTime()
			w0 := c.flushes.Load()
			b.RunParallel(func(pb *testing.PB) {
				req := accessRequest(b, 1, "bench-user@example.org")
				for pb.Next() {
					if _, err := c.Exchange(context.Background(), req); err != nil {
						b.Errorf("exchange: %v", err)
						return
					}
				}
			})
			cpu := cpuTime() - cpu0
			b.StopTimer()
			b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/op")
			b.ReportMetric(value(c.ups[0].m.conns), "conns")
			b.ReportMetric(float64(c.flushes.Load()-w0)/float64(b.N), "writes/op")
		})
	}
}
