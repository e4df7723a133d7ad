package load

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// FloodSpec is one bounded flood: the same datagram, with its identifier
// byte varied, sent as fast as Workers goroutines can from Source toward
// Target, until Count datagrams are sent or Duration passes. Nothing is
// read back: a flood only costs the target.
type FloodSpec struct {
	// Source is the local address to send from ("127.0.0.2:0" for an
	// unknown client on loopback); empty lets the kernel choose.
	Source   string
	Target   string
	Datagram []byte
	Workers  int
	Count    int
	Duration time.Duration
}

// FloodResult is what a flood sent.
type FloodResult struct {
	Sent    int
	Errors  int // writes refused locally (ENOBUFS and the like)
	Elapsed time.Duration
}

// Rate is datagrams sent per second.
func (r FloodResult) Rate() float64 { return float64(r.Sent) / r.Elapsed.Seconds() }

// Flood sends spec's flood and returns when it is done or ctx ends.
func Flood(ctx context.Context, spec FloodSpec) (FloodResult, error) {
	if spec.Workers <= 0 || spec.Count <= 0 || spec.Duration <= 0 || len(spec.Datagram) < 2 {
		return FloodResult{}, errors.New("load: flood needs workers, a count, a duration and a datagram")
	}
	ctx, cancel := context.WithTimeout(ctx, spec.Duration)
	defer cancel()
	var la *net.UDPAddr
	if spec.Source != "" {
		a, err := net.ResolveUDPAddr("udp", spec.Source)
		if err != nil {
			return FloodResult{}, err
		}
		la = a
	}
	ra, err := net.ResolveUDPAddr("udp", spec.Target)
	if err != nil {
		return FloodResult{}, err
	}
	var (
		sent, errs atomic.Int64
		wg         sync.WaitGroup
	)
	start := time.Now()
	for range spec.Workers {
		conn, err := net.DialUDP("udp", la, ra)
		if err != nil {
			cancel()
			wg.Wait()
			return FloodResult{}, fmt.Errorf("load: flood socket: %w", err)
		}
		wg.Go(func() {
			defer conn.Close()
			b := append([]byte(nil), spec.Datagram...)
			for i := 0; ; i++ {
				// Checking the context on every datagram costs as much
				// as sending it; every 64 is soon enough.
				if i%64 == 0 && ctx.Err() != nil {
					return
				}
				if sent.Add(1) > int64(spec.Count) {
					return
				}
				b[1] = byte(i)
				if _, err := conn.Write(b); err != nil {
					errs.Add(1)
				}
			}
		})
	}
	wg.Wait()
	return FloodResult{
		Sent:    int(min(sent.Load(), int64(spec.Count))) - int(errs.Load()),
		Errors:  int(errs.Load()),
		Elapsed: time.Since(start),
	}, nil
}

// RSS returns a process's resident set size, from /proc/PID/status.
func RSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(v) // "12345 kB"
			if len(f) == 2 && f[1] == "kB" {
				kb, err := strconv.ParseInt(f[0], 10, 64)
				return kb << 10, err
			}
		}
	}
	return 0, errors.New("load: no VmRSS")
}
