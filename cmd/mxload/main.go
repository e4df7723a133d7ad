// Command mxload is mxedge's load generator and benchmark driver.
//
//	mxload run --target 127.0.0.1:1812 --secret S [--concurrency 32] [--count 20000]
//	mxload compare [--mxedge bin/mxedge] [--count 20000] [--rounds 2]
//
// compare builds the same lab on loopback twice over — FreeRADIUS as the
// RadSec NAC, then mxedge and radsecproxy (Debian's) each in front of it —
// and alternates MAB load through the two proxies at concurrency 32 and
// 128, printing req/s, latency quantiles, losses and each proxy process's
// CPU time per request (from /proc/PID/stat), the figure that carries
// across machines.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/mxedge/mxedge/cmd/internal/load"
	"github.com/mxedge/mxedge/cmd/internal/peers"
	"github.com/mxedge/mxedge/internal/labpki"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: mxload run|compare [flags] (see the package comment)")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	switch os.Args[1] {
	case "run":
		err = runCmd(ctx, os.Args[2:], os.Stdout)
	case "compare":
		err = compareCmd(ctx, os.Args[2:], os.Stdout)
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "mxload:", err)
		os.Exit(1)
	}
}

func macs(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("02000000%04x", i)
	}
	return out
}

func runCmd(ctx context.Context, args []string, w io.Writer) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	target := fs.String("target", "127.0.0.1:1812", "RADIUS auth address (loopback only)")
	secret := fs.String("secret", "", "shared secret")
	conc := fs.Int("concurrency", 32, "workers, one request in flight each")
	count := fs.Int("count", 20000, "requests to send")
	dur := fs.Duration("duration", 60*time.Second, "upper bound on run time")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if !strings.HasPrefix(*target, "127.") && !strings.HasPrefix(*target, "[::1]") && !strings.HasPrefix(*target, "localhost") {
		return fmt.Errorf("--target must be a loopback address")
	}
	res, err := load.RunLoad(ctx, load.LoadSpec{Target: *target, Secret: []byte(*secret),
		Concurrency: *conc, Count: *count, Duration: *dur, MACs: macs(256)})
	if err != nil {
		return err
	}
	tw := header(w)
	row(tw, "target", *conc, res, 0)
	return tw.Flush()
}

func header(w io.Writer) *tabwriter.Writer {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "proxy\tc\treq/s\tp50\tp99\tmax\tlost\trejected\tCPU µs/req\t")
	return tw
}

func row(tw *tabwriter.Writer, name string, c int, r load.LoadResult, cpu time.Duration) {
	per := "-"
	if cpu > 0 && r.Answered > 0 {
		per = strconv.FormatFloat(float64(cpu.Microseconds())/float64(r.Answered), 'f', 1, 64)
	}
	fmt.Fprintf(tw, "%s\t%d\t%.0f\t%v\t%v\t%v\t%d\t%d\t%s\t\n", name, c, r.Rate(),
		r.Quantile(0.50).Round(time.Microsecond), r.Quantile(0.99).Round(time.Microsecond),
		r.Max().Round(time.Microsecond), r.Lost, r.Rejected, per)
}

type proxyUnderTest struct {
	name string
	addr string
	pid  int
}

func compareCmd(ctx context.Context, args []string, w io.Writer) error {
	fs := flag.NewFlagSet("compare", flag.ContinueOnError)
	bin := fs.String("mxedge", "", "mxedge binary (default: next to mxload)")
	count := fs.Int("count", 20000, "requests per run")
	rounds := fs.Int("rounds", 3, "runs per proxy and concurrency, alternating")
	concs := fs.String("concurrency", "32,128", "concurrency levels")
	keep := fs.Bool("keep", false, "keep configs and logs (printed at the end)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *bin == "" {
		self, _ := os.Executable()
		*bin = filepath.Join(filepath.Dir(self), "mxedge")
	}
	if abs, err := filepath.Abs(*bin); err == nil {
		*bin = abs
	}
	dir, err := os.MkdirTemp("", "mxload-compare")
	if err != nil {
		return err
	}
	if *keep {
		defer fmt.Fprintln(w, "kept:", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	sub := func(name string) string {
		d := filepath.Join(dir, name)
		os.MkdirAll(d, 0o755)
		return d
	}
	fmt.Fprintln(w, "mxload compare: lab PKI, FreeRADIUS RadSec NAC, mxedge and radsecproxy on loopback")
	pki, err := labpki.Generate(sub("pki"), labpki.Options{})
	if err != nil {
		return err
	}
	allow := map[string]string{}
	list := macs(256)
	for _, m := range list {
		allow[m] = "42"
	}
	sctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	fr, err := peers.StartFreeRADIUS(sctx, sub("freeradius"), peers.FreeRADIUSOptions{PKI: pki, RadSec: true, MAB: allow})
	if err != nil {
		return fmt.Errorf("FreeRADIUS: %w", err)
	}
	defer fr.Stop()
	const secret = "bench-switch-secret-5d1c0e77"
	mx, err := peers.StartMxedge(sctx, sub("mxedge"), peers.MxedgeOptions{
		Bin: *bin, PKI: pki, Upstreams: []string{fr.RadSecAddr},
		Clients: []peers.MxedgeClient{{Name: "bench", Address: "127.0.0.1/32", Secret: secret}},
	})
	if err != nil {
		return fmt.Errorf("mxedge: %w", err)
	}
	defer mx.Stop()
	rp, err := peers.StartRadsecproxy(sctx, sub("radsecproxy"), peers.RadsecproxyOptions{
		PKI: pki, Server: fr.RadSecAddr, Secret: secret,
	})
	if err != nil {
		return fmt.Errorf("radsecproxy: %w", err)
	}
	defer rp.Stop()
	targets := []proxyUnderTest{
		{"mxedge", mx.AuthAddr, mx.PID()},
		{"radsecproxy", rp.Addr, rp.PID()},
	}
	for _, t := range targets {
		// Warm up TLS connections, pools and caches; not measured.
		if _, err := load.RunLoad(ctx, load.LoadSpec{Target: t.addr, Secret: []byte(secret),
			Concurrency: 8, Count: 500, Duration: 20 * time.Second, MACs: list}); err != nil {
			return fmt.Errorf("%s warm-up: %w", t.name, err)
		}
	}
	tw := header(w)
	type key struct {
		name string
		c    int
	}
	runs := map[key][]sample{}
	var keys []key
	for _, cs := range strings.Split(*concs, ",") {
		c, err := strconv.Atoi(strings.TrimSpace(cs))
		if err != nil {
			return err
		}
		for r := 0; r < *rounds; r++ {
			order := targets
			if r%2 == 1 {
				order = []proxyUnderTest{targets[1], targets[0]}
			}
			for _, t := range order {
				before, err := load.CPUTime(t.pid)
				if err != nil {
					return err
				}
				res, err := load.RunLoad(ctx, load.LoadSpec{Target: t.addr, Secret: []byte(secret),
					Concurrency: c, Count: *count, Duration: 60 * time.Second, Timeout: 2 * time.Second, MACs: list})
				if err != nil {
					return fmt.Errorf("%s: %w", t.name, err)
				}
				after, _ := load.CPUTime(t.pid)
				row(tw, t.name, c, res, after-before)
				k := key{t.name, c}
				if _, ok := runs[k]; !ok {
					keys = append(keys, k)
				}
				runs[k] = append(runs[k], sample{res, after - before})
			}
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w, "\nmedian of the runs above (the 2 cores are shared by the load tool, the proxy and FreeRADIUS):")
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "proxy\tc\truns\treq/s\tp99\tmax\tlost\tCPU µs/req\t")
	for _, k := range keys {
		s := runs[k]
		rates, p99s, maxs, cpus := make([]float64, len(s)), make([]float64, len(s)), make([]float64, len(s)), make([]float64, len(s))
		lost := 0
		for i, r := range s {
			rates[i] = r.res.Rate()
			p99s[i] = float64(r.res.Quantile(0.99))
			maxs[i] = float64(r.res.Max())
			if r.res.Answered > 0 {
				cpus[i] = float64(r.cpu.Microseconds()) / float64(r.res.Answered)
			}
			lost += r.res.Lost
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%.0f\t%v\t%v\t%d\t%.1f\t\n", k.name, k.c, len(s), median(rates),
			time.Duration(median(p99s)).Round(time.Microsecond), time.Duration(median(maxs)).Round(time.Microsecond), lost, median(cpus))
	}
	return tw.Flush()
}

type sample struct {
	res load.LoadResult
	cpu time.Duration
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := append([]float64(nil), v...)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
