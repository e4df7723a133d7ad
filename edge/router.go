package edge

import (
	"context"
	"log/slog"
	"reflect"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mxedge/mxedge/edge/nac"
	"github.com/mxedge/mxedge/proxy"
	"github.com/mxedge/mxedge/proxy/packet"
)

// Path names where a request went, as logged and counted.
type Path string

// The paths a request can take.
const (
	PathCloud      Path = "cloud"
	PathLocal      Path = "local"
	PathFederation Path = "federation"
	PathNone       Path = "none"
)

// upstream is what the router needs of a pool: send a request, and say
// whether anything behind it is reachable.
type upstream interface {
	proxy.Exchanger
	Healthy() bool
}

// Router implements proxy.Handler for every listener. Each request takes
// one path, decided here: the cloud while the uplink is healthy (and until
// its first verdict after start), the local NAC in survival, and always
// the path its EAP conversation started on. A MAB request or first EAP
// round that the cloud leaves unanswered for fallback_after is answered
// locally, so that a device's first try already gets an answer at a cut.
type Router struct {
	log     *slog.Logger
	fwd     *proxy.Forwarder
	cloud   atomic.Pointer[upstreamBox]
	local   atomic.Pointer[handlerBox] // nil until the local NAC exists
	forced  atomic.Value               // "", "cloud" or "local" (survivability.mode)
	metrics *routerMetrics
	// health decides between cloud and survival; nil follows the pool's
	// own connection state (tests, and edges without a cloud).
	health *health
	// hold keeps accounting that the cloud cannot take now; nil leaves it
	// to the local NAC.
	hold *acctHold
	// fallback is survivability.fallback_after in nanoseconds; 0 waits
	// for the cloud's full timeout.
	fallback atomic.Int64
	// learn, if set, sees every request the cloud answered with the reply
	// sent to the device (learning clients into the cache happens there).
	// It runs on the request's goroutine and must be quick.
	learn func(req *proxy.Request, reply []byte)
	// localSeen, if set, sees every request the local NAC answered with
	// its reply (re-authorisation after the outage, reauth.go).
	localSeen func(req *proxy.Request, reply []byte)
}

type upstreamBox struct{ u upstream }

type handlerBox struct{ h proxy.Handler }

// setLocal hands the router a (new) local NAC; nil takes it away.
func (r *Router) setLocal(h proxy.Handler) {
	if h == nil {
		r.local.Store(nil)
		return
	}
	r.local.Store(&handlerBox{h})
}

// routeReasons is every path and reason decide and Serve can count, so
// that mxedge_route_total shows each series at zero from start: an alert
// on a rate of "cloud_unreachable" must see a series before the first cut.
var routeReasons = []struct {
	path Path
	why  string
}{
	{PathCloud, "starting"}, {PathCloud, "cloud_reachable"}, {PathCloud, "forced_cloud"}, {PathCloud, "no_local_nac"},
	{PathLocal, "cloud_unreachable"}, {PathLocal, "recovering"}, {PathLocal, "local_conversation"},
	{PathLocal, "forced_local"}, {PathLocal, "no_cloud_configured"}, {PathLocal, "accounting_held"}, {PathLocal, "cloud_silent"},
	{PathNone, "no_cloud_configured"},
}

type routerMetrics struct {
	route     *prometheus.CounterVec
	decisions *prometheus.CounterVec // shared with the local NAC (nac.NewDecisions)
	fallback  *prometheus.CounterVec
}

func newRouter(log *slog.Logger, reg prometheus.Registerer, fwd *proxy.Forwarder) *Router {
	m := &routerMetrics{
		route: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mxedge_route_total",
			Help: "Requests by the path the router chose and why.",
		}, []string{"path", "reason"}),
		decisions: nac.NewDecisions(),
		fallback: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mxedge_cloud_fallback_total",
			Help: "Requests sent to the cloud that it left unanswered, by what the edge did instead (local, held, eap_failure, none).",
		}, []string{"action"}),
	}
	reg.MustRegister(m.route, m.decisions, m.fallback)
	for _, at := range []string{authMAB, authEAP, authPassword} {
		for _, res := range []string{"accept", "reject"} {
			m.decisions.WithLabelValues(at, res, "cloud")
		}
	}
	for _, a := range []string{"local", "held", "eap_failure", "none"} {
		m.fallback.WithLabelValues(a)
	}
	for _, pr := range routeReasons {
		m.route.WithLabelValues(string(pr.path), pr.why)
	}
	r := &Router{log: log, fwd: fwd, metrics: m}
	r.forced.Store("")
	// mxedge_mode{mode} is 1 for the mode in force, read at scrape time so
	// it never disagrees with the router: the health checker's (starting,
	// cloud, survival, recovering), or local / none when no choice is left.
	for _, mode := range []string{string(ModeStarting), string(ModeCloud), string(ModeSurvival), string(ModeRecovering),
		string(PathLocal), string(PathNone)} {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name:        "mxedge_mode",
			Help:        "1 for the uplink mode in force: starting, cloud, survival, recovering; local when forced (survivability.mode local), none when there is nowhere to send requests.",
			ConstLabels: prometheus.Labels{"mode": mode},
		}, func() float64 {
			if r.Mode() == mode {
				return 1
			}
			return 0
		}))
	}
	return r
}

// setCloud points the router at a new cloud pool; nil (for example, a
// reload that removed every server) means there is none.
func (r *Router) setCloud(u upstream) {
	if u == nil || reflect.ValueOf(u).IsNil() {
		r.cloud.Store(nil)
		return
	}
	r.cloud.Store(&upstreamBox{u})
}

// Mode names the mode in force for `mxedge status` and mxedge_mode.
func (r *Router) Mode() string {
	path, why := r.decide(nil)
	switch {
	case path == PathNone:
		return string(PathNone)
	case why == "forced_local" || why == "no_cloud_configured":
		return string(PathLocal)
	case why == "forced_cloud" || why == "no_local_nac":
		return string(ModeCloud)
	case r.health != nil:
		return string(r.health.Mode())
	case path == PathLocal:
		return string(ModeSurvival)
	}
	return string(ModeCloud)
}

// decide picks the path for req (nil: a new conversation) and says why.
func (r *Router) decide(req *proxy.Request) (Path, string) {
	mode := r.forced.Load().(string)
	box := r.cloud.Load()
	hasLocal := r.local.Load() != nil
	switch {
	case mode == "local" && hasLocal:
		return PathLocal, "forced_local"
	case box == nil:
		if hasLocal {
			return PathLocal, "no_cloud_configured"
		}
		return PathNone, "no_cloud_configured"
	case mode == "cloud":
		return PathCloud, "forced_cloud"
	case !hasLocal:
		return PathCloud, "no_local_nac"
	}
	if req != nil && req.Packet.Code == packet.CodeAccessRequest {
		// An EAP conversation finishes where it started, in both
		// directions: the local NAC marks the States it issues.
		if st, ok := req.Packet.Lookup(packet.AttrState); ok && nac.IsLocalState(st) {
			return PathLocal, "local_conversation"
		}
	}
	if r.health == nil {
		if box.u.Healthy() {
			return PathCloud, "cloud_reachable"
		}
		return PathLocal, "cloud_unreachable"
	}
	switch r.health.Mode() {
	case ModeStarting:
		return PathCloud, "starting"
	case ModeCloud:
		return PathCloud, "cloud_reachable"
	case ModeRecovering:
		return PathLocal, "recovering"
	}
	return PathLocal, "cloud_unreachable"
}

// inliner is a handler that can say a request is answered from memory.
type inliner interface {
	Inline(*proxy.Request) bool
}

// Inline tells the UDP server which requests the router answers without
// waiting: those the local NAC answers from memory. Cloud requests wait
// on the RadSec round trip, and held accounting on the disk, and go to a
// worker.
func (r *Router) Inline(req *proxy.Request) bool {
	if path, _ := r.decide(req); path != PathLocal {
		return false
	}
	if r.holds(req) {
		return false
	}
	lb := r.local.Load()
	if lb == nil {
		return false
	}
	in, ok := lb.h.(inliner)
	return ok && in.Inline(req)
}

// holds reports whether accounting in req goes to the hold rather than
// the local NAC.
func (r *Router) holds(req *proxy.Request) bool {
	return r.hold != nil && req != nil && req.Packet.Code == packet.CodeAccountingRequest
}

// ServeRADIUS routes one request.
func (r *Router) ServeRADIUS(ctx context.Context, req *proxy.Request) ([]byte, proxy.Outcome) {
	path, why := r.decide(req)
	if path == PathCloud && r.holds(req) && r.hold.pending() {
		// Accounting never overtakes accounting held before it: while a
		// replay is due, new records queue behind it.
		path, why = PathLocal, "accounting_held"
	}
	r.metrics.route.WithLabelValues(string(path), why).Inc()
	switch path {
	case PathCloud:
		return r.serveCloud(ctx, req, why == "no_local_nac" || why == "forced_cloud")
	case PathLocal:
		return r.serveLocal(ctx, req)
	default:
		return nil, proxy.OutcomeNoUpstream
	}
}

func (r *Router) serveLocal(ctx context.Context, req *proxy.Request) ([]byte, proxy.Outcome) {
	if r.holds(req) {
		return r.hold.ServeRADIUS(ctx, req)
	}
	if lb := r.local.Load(); lb != nil {
		reply, outcome := lb.h.ServeRADIUS(ctx, req)
		if r.localSeen != nil {
			r.localSeen(req, reply)
		}
		return reply, outcome
	}
	return nil, proxy.OutcomeNoUpstream
}

// serveCloud forwards req to the cloud. Unless the cloud is the only
// choice, an unanswered request is not left to the device's retransmission
// timer: a MAB request, a first EAP round or accounting is answered
// locally after fallback_after, and a later EAP round (its conversation
// lives in the cloud and cannot move) gets Access-Reject with EAP-Failure
// at once, so that the supplicant starts over and lands locally.
func (r *Router) serveCloud(ctx context.Context, req *proxy.Request, only bool) ([]byte, proxy.Outcome) {
	p := req.Packet
	movable := !only && r.movable(req)
	fctx := ctx
	if d := time.Duration(r.fallback.Load()); movable && d > 0 {
		var cancel context.CancelFunc
		fctx, cancel = context.WithTimeout(ctx, d)
		defer cancel()
	}
	reply, outcome, err := r.fwd.Forward(fctx, r.cloud.Load().u, req)
	if err == nil {
		if r.health != nil {
			r.health.liveOK()
		}
		r.countCloudDecision(req, reply)
		if r.learn != nil {
			r.learn(req, reply)
		}
		return reply, outcome
	}
	r.log.Debug("cloud forward failed", "client", req.Client.Name, "code", p.Code.String(),
		"id", p.ID, "outcome", outcome, "err", err)
	switch outcome {
	case proxy.OutcomeUpstreamTimeout, proxy.OutcomeUpstreamError, proxy.OutcomeNoUpstream:
	default:
		return reply, outcome // the request itself was at fault
	}
	if ctx.Err() != nil {
		return nil, outcome // shutting down
	}
	if r.health != nil {
		detail := reasonLiveUnreachable
		if outcome == proxy.OutcomeUpstreamTimeout {
			detail = reasonLiveTimeout
		}
		r.health.liveFail(detail)
	}
	if only {
		r.metrics.fallback.WithLabelValues("none").Inc()
		return nil, outcome
	}
	switch {
	case r.holds(req):
		r.metrics.fallback.WithLabelValues("held").Inc()
	case movable:
		r.metrics.fallback.WithLabelValues("local").Inc()
	case p.Code == packet.CodeAccessRequest && p.Count(packet.AttrEAPMessage) > 0:
		// The local NAC does not know the cloud's State: it answers with
		// EAP-Failure, which is what the supplicant needs to start over.
		r.metrics.fallback.WithLabelValues("eap_failure").Inc()
	default:
		r.metrics.fallback.WithLabelValues("none").Inc()
		return nil, outcome
	}
	r.metrics.route.WithLabelValues(string(PathLocal), "cloud_silent").Inc()
	return r.serveLocal(ctx, req)
}

// movable reports whether the local NAC can take req over from a silent
// cloud: accounting (held), MAB, and the first round of an EAP
// conversation. A password method cannot be checked locally: it waits for
// the cloud's own timeout.
func (r *Router) movable(req *proxy.Request) bool {
	p := req.Packet
	switch p.Code {
	case packet.CodeAccountingRequest:
		return true
	case packet.CodeAccessRequest:
		if _, hasState := p.Lookup(packet.AttrState); hasState {
			return false
		}
		if p.Count(packet.AttrEAPMessage) > 0 {
			return true
		}
		_, mab := nac.MABAddress(req)
		return mab
	}
	return false
}

// Auth types of the cloud's decisions: the edge cannot see inside a cloud
// EAP conversation, so its method is just "eap".
const (
	authMAB      = "mab"
	authEAP      = "eap"
	authPassword = "password"
)

// countCloudDecision counts the cloud's accepts and rejects beside the
// local NAC's, with source "cloud".
func (r *Router) countCloudDecision(req *proxy.Request, reply []byte) {
	if len(reply) == 0 || req.Packet.Code != packet.CodeAccessRequest {
		return
	}
	var result string
	switch packet.Code(reply[0]) {
	case packet.CodeAccessAccept:
		result = "accept"
	case packet.CodeAccessReject:
		result = "reject"
	default:
		return
	}
	at := authPassword
	if req.Packet.Count(packet.AttrEAPMessage) > 0 {
		at = authEAP
	} else if _, ok := nac.MABAddress(req); ok {
		at = authMAB
	}
	r.metrics.decisions.WithLabelValues(at, result, "cloud").Inc()
}
