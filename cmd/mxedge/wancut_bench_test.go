package main

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/mxedge/mxedge/cmd/internal/load"
	"github.com/mxedge/mxedge/cmd/internal/peers"
	"github.com/mxedge/mxedge/internal/labpki"
)

// BenchmarkWANCut cuts the WAN between one edge and the cloud NAC
// (FreeRADIUS over RadSec, behind a relay) five times by RST and five
// times by blackhole, alternating, under a steady MAB stream from a
// switch-like client (5 s per try, 3 tries), and reports per kind: cut →
// first local answer, requests that needed a retry, requests lost (which
// fails the benchmark), cloud back → first cloud answer. Each cut lasts
// 6 s (survival is reached in about 2), then the edge gets 8 s to fail
// back: about 2.5 minutes in all. Run it with -benchtime 1x.
func BenchmarkWANCut(b *testing.B) {
	peers.RequireBin(b, "freeradius")
	const (
		perKind = 5
		cutFor  = 6 * time.Second
		settle  = 8 * time.Second
		warm    = 3 * time.Second
	)
	p, err := labpki.Generate(b.TempDir(), labpki.Options{})
	if err != nil {
		b.Fatal(err)
	}
	fr := wanCloudNAC(b, p)
	radsec := mustRelay(b, fr.RadSecAddr)
	e := startEdge(b, edgeConfig{Secret: labSecret, PKI: p, Mode: "auto", LogLevel: "info",
		Upstreams: []string{radsec.Addr()}, Survivability: wanSurvivability(p, "")})
	waitMode(b, e, "cloud", 20*time.Second)
	sw, err := load.NewSwitch(load.SwitchConfig{Auth: e.Auth, Secret: []byte(labSecret), Timeout: 5 * time.Second, Tries: 3})
	if err != nil {
		b.Fatal(err)
	}
	defer sw.Close()

	for b.Loop() {
		total := warm + 2*perKind*(cutFor+settle) + settle
		ctx, cancel := context.WithTimeout(context.Background(), total+time.Minute)
		var (
			wg  sync.WaitGroup
			res load.StreamResult
		)
		wg.Go(func() {
			res, _ = sw.Stream(ctx, load.StreamSpec{Rate: 30, Count: 30 * int(total/time.Second), Duration: total, MACs: wanMACs()})
		})
		time.Sleep(warm)
		var cuts []*wanCut
		for i := range 2 * perKind {
			mode := peers.CutRST
			if i%2 == 1 {
				mode = peers.CutBlackhole
			}
			c := &wanCut{Mode: mode, Cut: time.Now()}
			cuts = append(cuts, c)
			if err := radsec.Cut(mode); err != nil {
				b.Fatal(err)
			}
			time.Sleep(cutFor)
			if err := radsec.Restore(); err != nil {
				b.Fatal(err)
			}
			c.Restored = time.Now()
			time.Sleep(settle)
		}
		wg.Wait()
		cancel()
		measureCuts(res, cuts)

		w := os.Stdout
		fmt.Fprintf(w, "\nBenchmarkWANCut: %d requests at 30/s, %d cuts of %v each\n", len(res.Recs), len(cuts), cutFor)
		fmt.Fprintf(w, "%-10s %22s %22s %8s %6s %24s %24s\n", "cut", "first local (median)", "first local (max)", "retried", "lost", "first cloud (median)", "first cloud (max)")
		for _, mode := range []peers.CutMode{peers.CutRST, peers.CutBlackhole} {
			var local, back []time.Duration
			var retried, lost, missing int
			for _, c := range cuts {
				if c.Mode != mode {
					continue
				}
				retried += c.Retried
				lost += c.Lost
				if !c.HasLocal || !c.HasBack {
					missing++
				}
				local = append(local, c.FirstLocal)
				back = append(back, c.FirstCloud)
			}
			lm, lx := durStats(local)
			bm, bx := durStats(back)
			fmt.Fprintf(w, "%-10s %22v %22v %8d %6d %24v %24v\n", mode, lm.Round(time.Millisecond), lx.Round(time.Millisecond),
				retried, lost, bm.Round(time.Millisecond), bx.Round(time.Millisecond))
			b.ReportMetric(lm.Seconds(), mode.String()+"-first-local-median-s")
			b.ReportMetric(lx.Seconds(), mode.String()+"-first-local-max-s")
			b.ReportMetric(bm.Seconds(), mode.String()+"-first-cloud-median-s")
			b.ReportMetric(bx.Seconds(), mode.String()+"-first-cloud-max-s")
			b.ReportMetric(float64(retried), mode.String()+"-retried")
			b.ReportMetric(float64(lost), mode.String()+"-lost")
			if lost > 0 {
				b.Errorf("%v cuts: %d requests exhausted their retries", mode, lost)
			}
			if missing > 0 {
				b.Errorf("%v cuts: %d with no local answer during the cut or no cloud answer after it", mode, missing)
			}
			if bx > failbackBound {
				b.Errorf("%v cuts: first cloud answer up to %v after restore, want within %v", mode, bx, failbackBound)
			}
		}
		for _, r := range res.Recs {
			if r.Answered() {
				if err := checkMAB(r, wanKnownMACs()); err != nil {
					b.Error(err)
					break
				}
			}
		}
	}
}
