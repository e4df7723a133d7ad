package edge

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mxedge/mxedge/edge/config"
)

// Mode is the uplink's state as the health checker sees it.
type Mode string

// The modes. Starting lasts until the first verdict and routes to the
// cloud: a fresh edge must not answer locally because its first probe has
// not come back yet. Recovering still routes new conversations locally; it
// ends in cloud after up_after good probes in a row, or back in survival
// at the first failure.
const (
	ModeStarting   Mode = "starting"
	ModeCloud      Mode = "cloud"
	ModeSurvival   Mode = "survival"
	ModeRecovering Mode = "recovering"
)

// Transition reasons: the reason label of mxedge_mode_transitions_total.
const (
	reasonProbeAnswered   = "probe_answered"    // starting → cloud, survival → recovering
	reasonCloudAnswered   = "cloud_answered"    // starting → cloud on a live answer
	reasonProbesAnswered  = "probes_answered"   // recovering (or survival) → cloud
	reasonProbesFailed    = "probes_failed"     // → survival: down_after failures in a row
	reasonRecoveryFailed  = "recovery_failed"   // recovering → survival
	reasonLiveTimeout     = "request_timeout"   // detail of a live failure
	reasonLiveUnreachable = "cloud_unreachable" // detail of a live failure
)

// Transition is one change of mode.
type Transition struct {
	From   Mode      `json:"from"`
	To     Mode      `json:"to"`
	Reason string    `json:"reason"`
	Detail string    `json:"detail,omitempty"` // the last failure, when there was one
	At     time.Time `json:"at"`
}

// healthFSM is the uplink state machine without clocks or goroutines, so
// that its rules can be driven step by step. Failures count in cloud (and
// starting) and reset on any success; successes count in survival and
// recovering and reset on any failure. A single lost probe therefore never
// moves the edge, and a link has to hold up_after probes in a row before
// traffic goes back to it.
type healthFSM struct {
	downAfter, upAfter int

	mode   Mode
	since  time.Time
	fails  int
	goods  int
	last   Transition
	detail string // last failure
}

func newHealthFSM(downAfter, upAfter int, now time.Time) healthFSM {
	return healthFSM{downAfter: max(downAfter, 1), upAfter: max(upAfter, 1), mode: ModeStarting, since: now}
}

// observe feeds one result: a probe round (probe true) or a live request
// (probe false). Live answers end the start-up wait and reset the failure
// count, but only probes bring the edge back from survival: the cloud has
// to show it answers reliably before it gets the site's traffic again.
func (h *healthFSM) observe(now time.Time, ok, probe bool, detail string) (Transition, bool) {
	if !ok {
		h.detail = detail
	}
	switch h.mode {
	case ModeStarting, ModeCloud:
		if ok {
			h.fails = 0
			if h.mode == ModeStarting {
				reason := reasonProbeAnswered
				if !probe {
					reason = reasonCloudAnswered
				}
				return h.move(now, ModeCloud, reason), true
			}
			return Transition{}, false
		}
		h.fails++
		if h.fails >= h.downAfter {
			return h.move(now, ModeSurvival, reasonProbesFailed), true
		}
	case ModeSurvival:
		if !probe {
			return Transition{}, false
		}
		if !ok {
			h.goods = 0
			return Transition{}, false
		}
		h.goods = 1
		if h.goods >= h.upAfter {
			return h.move(now, ModeCloud, reasonProbesAnswered), true
		}
		return h.move(now, ModeRecovering, reasonProbeAnswered), true
	case ModeRecovering:
		if !probe {
			return Transition{}, false
		}
		if !ok {
			return h.move(now, ModeSurvival, reasonRecoveryFailed), true
		}
		h.goods++
		if h.goods >= h.upAfter {
			return h.move(now, ModeCloud, reasonProbesAnswered), true
		}
	}
	return Transition{}, false
}

func (h *healthFSM) move(now time.Time, to Mode, reason string) Transition {
	t := Transition{From: h.mode, To: to, Reason: reason, At: now}
	if to == ModeSurvival || reason == reasonRecoveryFailed {
		t.Detail = h.detail
	}
	if to != ModeRecovering {
		h.goods = 0
	}
	h.fails = 0
	h.mode, h.since, h.last = to, now, t
	return t
}

// suspect reports whether a failure has been seen since the last success
// in cloud mode: the checker then probes every probe_timeout instead of
// every probe_interval, so a real cut is confirmed in seconds.
func (h *healthFSM) suspect() bool {
	return (h.mode == ModeCloud || h.mode == ModeStarting) && h.fails > 0
}

// prober is what the checker needs of the cloud pool: one Status-Server
// (RFC 5997) on a connection of its own, so it works on servers the pool
// has given up on.
type prober interface {
	Probe(ctx context.Context, server string) (time.Duration, error)
}

// ServerHealth is the last probe of one cloud RadSec server.
type ServerHealth struct {
	Server  string        `json:"server"`
	OK      bool          `json:"ok"`
	RTT     time.Duration `json:"rtt_ns,omitempty"`
	Error   string        `json:"error,omitempty"`
	Checked time.Time     `json:"checked"`
}

// HealthStatus is a snapshot for `mxedge status` and the heartbeat.
type HealthStatus struct {
	Mode    Mode           `json:"mode"`
	Since   time.Time      `json:"since"`
	Last    *Transition    `json:"last_transition,omitempty"`
	Servers []ServerHealth `json:"servers,omitempty"`
}

// health runs the probes and owns the state machine. Its mode is read
// lock-free by the router on every request.
type health struct {
	cfg     config.Health
	log     *slog.Logger
	now     func() time.Time
	target  func() (prober, []string) // the pool and its servers, as of now
	onMove  func(Transition)
	mode    atomic.Value // Mode
	kickc   chan struct{}
	metrics *healthMetrics

	mu           sync.Mutex
	fsm          healthFSM
	servers      []ServerHealth
	lastLiveFail time.Time // last live failure counted
}

type healthMetrics struct {
	transitions *prometheus.CounterVec
	probes      *prometheus.CounterVec
	rtt         *prometheus.HistogramVec
}

func newHealth(cfg config.Health, log *slog.Logger, reg prometheus.Registerer, target func() (prober, []string), onMove func(Transition)) *health {
	h := &health{
		cfg: cfg, log: log, now: time.Now, target: target, onMove: onMove,
		kickc: make(chan struct{}, 1),
		metrics: &healthMetrics{
			transitions: prometheus.NewCounterVec(prometheus.CounterOpts{
				Name: "mxedge_mode_transitions_total",
				Help: "Changes of the uplink mode (starting, cloud, survival, recovering) by from, to and reason.",
			}, []string{"from", "to", "reason"}),
			probes: prometheus.NewCounterVec(prometheus.CounterOpts{
				Name: "mxedge_cloud_probes_total",
				Help: "Status-Server probes of the cloud RadSec servers by server and result (ok, fail).",
			}, []string{"server", "result"}),
			rtt: prometheus.NewHistogramVec(prometheus.HistogramOpts{
				Name:    "mxedge_cloud_probe_rtt_seconds",
				Help:    "Round-trip time of answered probes, by server.",
				Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
			}, []string{"server"}),
		},
	}
	reg.MustRegister(h.metrics.transitions, h.metrics.probes, h.metrics.rtt)
	// Every from/to/reason the machine can produce, so that alerts see
	// zeros from the start instead of a missing series.
	for _, t := range []struct {
		from, to Mode
		reason   string
	}{
		{ModeStarting, ModeCloud, reasonProbeAnswered}, {ModeStarting, ModeCloud, reasonCloudAnswered},
		{ModeStarting, ModeSurvival, reasonProbesFailed}, {ModeCloud, ModeSurvival, reasonProbesFailed},
		{ModeSurvival, ModeRecovering, reasonProbeAnswered}, {ModeSurvival, ModeCloud, reasonProbesAnswered},
		{ModeRecovering, ModeCloud, reasonProbesAnswered}, {ModeRecovering, ModeSurvival, reasonRecoveryFailed},
	} {
		h.metrics.transitions.WithLabelValues(string(t.from), string(t.to), t.reason)
	}
	h.fsm = newHealthFSM(cfg.DownAfter, cfg.UpAfter, h.now())
	h.mode.Store(ModeStarting)
	return h
}

// Mode is the current mode.
func (h *health) Mode() Mode { return h.mode.Load().(Mode) }

// setConfig applies a reloaded survivability.health: thresholds count from
// the next result, intervals from the next probe.
func (h *health) setConfig(cfg config.Health) {
	h.mu.Lock()
	h.cfg = cfg
	h.fsm.downAfter, h.fsm.upAfter = max(cfg.DownAfter, 1), max(cfg.UpAfter, 1)
	h.mu.Unlock()
	h.kick()
}

// Status snapshots the checker.
func (h *health) Status() HealthStatus {
	h.mu.Lock()
	defer h.mu.Unlock()
	st := HealthStatus{Mode: h.fsm.mode, Since: h.fsm.since, Servers: append([]ServerHealth(nil), h.servers...)}
	if h.fsm.last.To != "" {
		last := h.fsm.last
		st.Last = &last
	}
	return st
}

// observe feeds one result to the machine and reports a transition.
func (h *health) observe(ok, probe bool, detail string) {
	h.mu.Lock()
	t, moved := h.fsm.observe(h.now(), ok, probe, detail)
	if moved {
		h.mode.Store(t.To)
	}
	h.mu.Unlock()
	if moved {
		h.metrics.transitions.WithLabelValues(string(t.From), string(t.To), t.Reason).Inc()
		lvl := slog.LevelInfo
		if t.To == ModeSurvival {
			lvl = slog.LevelWarn
		}
		h.log.Log(context.Background(), lvl, "uplink mode changed", "from", t.From, "to", t.To,
			"reason", t.Reason, "detail", t.Detail)
		if h.onMove != nil {
			h.onMove(t)
		}
	}
}

// liveOK records a request the cloud answered.
func (h *health) liveOK() {
	if m := h.Mode(); m == ModeCloud {
		h.mu.Lock()
		h.fsm.fails = 0
		h.mu.Unlock()
		return
	} else if m != ModeStarting {
		return
	}
	h.observe(true, false, "")
}

// liveFail records a request the cloud did not answer. A burst of them
// (every request in flight when a link dies) counts once per
// probe_timeout, and asks for a probe now, so that the probes, not the
// traffic's size, decide how fast the edge moves.
func (h *health) liveFail(detail string) {
	if m := h.Mode(); m != ModeCloud && m != ModeStarting {
		return
	}
	now := h.now()
	h.mu.Lock()
	count := now.Sub(h.lastLiveFail) >= h.cfg.ProbeTimeout
	if count {
		h.lastLiveFail = now
	}
	h.mu.Unlock()
	if count {
		h.observe(false, false, detail)
	}
	h.kick()
}

func (h *health) kick() {
	select {
	case h.kickc <- struct{}{}:
	default:
	}
}

// run probes until ctx ends: every probe_interval, every probe_timeout
// while a failure is unconfirmed, and at once when a live request fails.
func (h *health) run(ctx context.Context) {
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		case <-h.kickc:
			if !timer.Stop() {
				select {
				case <-timer.C:
				default:
				}
			}
		}
		h.round(ctx)
		h.mu.Lock()
		next := h.cfg.ProbeInterval
		if h.fsm.suspect() {
			next = min(next, h.cfg.ProbeTimeout)
		}
		h.mu.Unlock()
		timer.Reset(next)
	}
}

// round probes every server at once; the round succeeds when any answers,
// since the pool fails over between them.
// seed creates the probe series of servers at zero, so that a scrape
// shows each cloud server before its first probe has ended.
func (h *health) seed(servers []string) {
	for _, s := range servers {
		h.metrics.probes.WithLabelValues(s, "ok")
		h.metrics.probes.WithLabelValues(s, "fail")
		h.metrics.rtt.WithLabelValues(s)
	}
}

func (h *health) round(ctx context.Context) {
	p, servers := h.target()
	if p == nil || len(servers) == 0 {
		return
	}
	h.seed(servers)
	h.mu.Lock()
	timeout := h.cfg.ProbeTimeout
	h.mu.Unlock()
	pctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	results := make([]ServerHealth, len(servers))
	var wg sync.WaitGroup
	for i, s := range servers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rtt, err := p.Probe(pctx, s)
			r := ServerHealth{Server: s, OK: err == nil, RTT: rtt, Checked: h.now()}
			if err != nil {
				r.Error = err.Error()
				if errors.Is(err, context.DeadlineExceeded) || pctx.Err() != nil {
					r.Error = "no answer within probe_timeout"
				}
				h.metrics.probes.WithLabelValues(s, "fail").Inc()
			} else {
				h.metrics.probes.WithLabelValues(s, "ok").Inc()
				h.metrics.rtt.WithLabelValues(s).Observe(rtt.Seconds())
			}
			results[i] = r
		}()
	}
	wg.Wait()
	if ctx.Err() != nil {
		return
	}
	ok, detail := false, ""
	for _, r := range results {
		if r.OK {
			ok = true
		} else if detail == "" {
			detail = r.Server + ": " + r.Error
		}
	}
	h.mu.Lock()
	h.servers = results
	h.mu.Unlock()
	h.observe(ok, true, detail)
}
