package edge

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/mxedge/mxedge/edge/config"
)

// The state machine's rules, step by step: probe (P) or live (L) results,
// ok (+) or failed (-), and the mode after each.
func TestHealthFSM(t *testing.T) {
	for _, tc := range []struct {
		name  string
		steps string // e.g. "P+ P- L-"
		modes []Mode
	}{
		{"first probe answers", "P+", []Mode{ModeCloud}},
		{"first live answer", "L+", []Mode{ModeCloud}},
		{"unreachable from the start", "P- P- P-", []Mode{ModeStarting, ModeStarting, ModeSurvival}},
		{"cut", "P+ P- P- P-", []Mode{ModeCloud, ModeCloud, ModeCloud, ModeSurvival}},
		{"live failures count", "P+ L- P- L-", []Mode{ModeCloud, ModeCloud, ModeCloud, ModeSurvival}},
		{"a success resets", "P+ P- P- P+ P- P-", []Mode{ModeCloud, ModeCloud, ModeCloud, ModeCloud, ModeCloud, ModeCloud}},
		{"live answers reset too", "P+ P- P- L+ P- P-", []Mode{ModeCloud, ModeCloud, ModeCloud, ModeCloud, ModeCloud, ModeCloud}},
		{"recovery", "P- P- P- P+ P+ P+", []Mode{ModeStarting, ModeStarting, ModeSurvival, ModeRecovering, ModeRecovering, ModeCloud}},
		{"recovery fails", "P- P- P- P+ P+ P- P+", []Mode{ModeStarting, ModeStarting, ModeSurvival, ModeRecovering, ModeRecovering, ModeSurvival, ModeRecovering}},
		{"live results do not recover", "P- P- P- L+ L+ L+ L-", []Mode{ModeStarting, ModeStarting, ModeSurvival, ModeSurvival, ModeSurvival, ModeSurvival, ModeSurvival}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHealthFSM(3, 3, time.Unix(0, 0))
			var steps []string
			for i := 0; i < len(tc.steps); i += 3 {
				steps = append(steps, tc.steps[i:i+2])
			}
			if len(steps) != len(tc.modes) {
				t.Fatalf("bad case: %d steps, %d modes", len(steps), len(tc.modes))
			}
			for i, s := range steps {
				h.observe(time.Unix(int64(i+1), 0), s[1] == '+', s[0] == 'P', "x")
				if h.mode != tc.modes[i] {
					t.Fatalf("after step %d (%s): mode %s, want %s", i+1, s, h.mode, tc.modes[i])
				}
			}
		})
	}
}

// fakeProber answers probes by a rule of the call count.
type fakeProber struct {
	calls atomic.Int64
	fail  func(n int64) bool
}

func (p *fakeProber) Probe(ctx context.Context, _ string) (time.Duration, error) {
	n := p.calls.Add(1)
	if p.fail(n) {
		<-ctx.Done() // a blackhole: no answer until the probe times out
		return 0, ctx.Err()
	}
	return time.Millisecond, nil
}

func testHealth(t *testing.T, p prober, downAfter, upAfter int) (*health, *[]Transition, *sync.Mutex) {
	var mu sync.Mutex
	var moves []Transition
	h := newHealth(config.Health{ProbeInterval: 5 * time.Second, ProbeTimeout: 2 * time.Second, DownAfter: downAfter, UpAfter: upAfter},
		slog.New(slog.DiscardHandler), prometheus.NewRegistry(),
		func() (prober, []string) { return p, []string{"cloud:2083"} },
		func(tr Transition) { mu.Lock(); moves = append(moves, tr); mu.Unlock() })
	return h, &moves, &mu
}

// A link that drops one probe in three never leaves cloud mode with
// down_after 3, however long it flaps.
func TestHealthFlappingLinkStaysInCloud(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := &fakeProber{fail: func(n int64) bool { return n%3 == 0 }}
		h, moves, mu := testHealth(t, p, 3, 3)
		ctx, cancel := context.WithCancel(t.Context())
		go h.run(ctx)
		time.Sleep(6 * time.Hour)
		cancel()
		synctest.Wait()
		mu.Lock()
		defer mu.Unlock()
		if len(*moves) != 1 || (*moves)[0].To != ModeCloud {
			t.Fatalf("transitions %+v, want only starting → cloud", *moves)
		}
		if n := p.calls.Load(); n < 3000 {
			t.Fatalf("only %d probes in 6 h", n)
		}
	})
}

// A cut is confirmed by down_after probes spaced probe_timeout apart once
// the first has failed, and failback takes up_after probes at
// probe_interval.
func TestHealthCutAndFailbackTiming(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var down atomic.Bool
		p := &fakeProber{fail: func(int64) bool { return down.Load() }}
		h, moves, mu := testHealth(t, p, 3, 3)
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		go h.run(ctx)
		time.Sleep(time.Minute)
		down.Store(true)
		cut := time.Now()
		for h.Mode() != ModeSurvival {
			time.Sleep(100 * time.Millisecond)
		}
		// Up to one interval before the first failed probe starts, then
		// three probes that each wait probe_timeout, the later two
		// started probe_timeout after the one before.
		if d := time.Since(cut); d > 5*time.Second+3*4*time.Second {
			t.Fatalf("survival %s after the cut", d)
		}
		time.Sleep(time.Minute)
		down.Store(false)
		back := time.Now()
		for h.Mode() != ModeCloud {
			time.Sleep(100 * time.Millisecond)
		}
		if d := time.Since(back); d > 3*5*time.Second+5*time.Second {
			t.Fatalf("cloud %s after the link came back; want within up_after × probe_interval plus one probe", d)
		}
		mu.Lock()
		defer mu.Unlock()
		var path []Mode
		for _, m := range *moves {
			path = append(path, m.To)
		}
		want := []Mode{ModeCloud, ModeSurvival, ModeRecovering, ModeCloud}
		if len(path) != len(want) {
			t.Fatalf("modes %v, want %v", path, want)
		}
		for i := range want {
			if path[i] != want[i] {
				t.Fatalf("modes %v, want %v", path, want)
			}
		}
		if (*moves)[1].Reason != reasonProbesFailed || (*moves)[1].Detail == "" {
			t.Fatalf("cut recorded as %+v", (*moves)[1])
		}
	})
}

// Every request in flight fails together when a link dies; that burst
// counts once per probe_timeout, not once per request.
func TestHealthLiveFailureBurstCountsOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := &fakeProber{fail: func(int64) bool { return false }}
		h, _, _ := testHealth(t, p, 3, 3)
		h.observe(true, true, "")
		for range 100 {
			h.liveFail(reasonLiveTimeout)
		}
		if h.Mode() != ModeCloud {
			t.Fatalf("mode %s after one burst", h.Mode())
		}
		h.mu.Lock()
		fails := h.fsm.fails
		h.mu.Unlock()
		if fails != 1 {
			t.Fatalf("burst counted %d times", fails)
		}
		time.Sleep(2 * time.Second)
		h.liveFail(reasonLiveTimeout)
		time.Sleep(2 * time.Second)
		h.liveFail(reasonLiveTimeout)
		if h.Mode() != ModeSurvival {
			t.Fatalf("mode %s after three spaced failures", h.Mode())
		}
	})
}

// Transitions are counted by from, to and reason, zero from the start.
func TestHealthMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	h := newHealth(config.Health{ProbeInterval: time.Second, ProbeTimeout: time.Second, DownAfter: 1, UpAfter: 1},
		slog.New(slog.DiscardHandler), reg, func() (prober, []string) { return nil, nil }, nil)
	if n := testutil.CollectAndCount(h.metrics.transitions); n != 8 {
		t.Fatalf("%d transition series at start, want 8", n)
	}
	h.observe(false, true, "dial: refused")
	if got := testutil.ToFloat64(h.metrics.transitions.WithLabelValues("starting", "survival", reasonProbesFailed)); got != 1 {
		t.Fatalf("starting→survival counted %v", got)
	}
	if st := h.Status(); st.Mode != ModeSurvival || st.Last == nil || st.Last.Detail != "dial: refused" {
		t.Fatalf("status %+v", st)
	}
}

// The heartbeat tells the cloud the mode, since when and why.
func TestHeartbeatCarriesMode(t *testing.T) {
	r, _ := testRouter(t, &fakeCloud{})
	a := &App{router: r, health: r.health}
	r.health.observe(false, true, "dial: refused")
	r.health.observe(false, true, "dial: refused")
	r.health.observe(false, true, "dial: refused")
	hb := a.heartbeatStatus()
	if hb["mode"] != "survival" || hb["mode_reason"] != reasonProbesFailed || hb["mode_since"] == "" {
		t.Fatalf("heartbeat status %v", hb)
	}
}
