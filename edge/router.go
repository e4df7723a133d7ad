package edge

import (
	"context"
	"log/slog"
	"reflect"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mxedge/mxedge/proxy"
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

// Router implements proxy.Handler for every listener. The decision is
// realm route → federation pool; else cloud reachable → cloud pool; else
// the local NAC. Only the cloud path exists so far; the others are wired
// in by the survivability and federation work.
type Router struct {
	log     *slog.Logger
	fwd     *proxy.Forwarder
	cloud   atomic.Pointer[upstreamBox]
	local   atomic.Pointer[handlerBox] // nil until the local NAC exists
	forced  atomic.Value               // "", "cloud" or "local" (survivability.mode)
	metrics *routerMetrics
	// learn, if set, sees every request the cloud answered with the reply
	// sent to the device (learning clients into the cache happens there).
	// It runs on the request's goroutine and must be quick.
	learn func(req *proxy.Request, reply []byte)
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

type routerMetrics struct {
	route *prometheus.CounterVec
}

func newRouter(log *slog.Logger, reg prometheus.Registerer, fwd *proxy.Forwarder) *Router {
	m := &routerMetrics{
		route: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mxedge_route_total",
			Help: "Requests by the path the router chose and why.",
		}, []string{"path", "reason"}),
	}
	reg.MustRegister(m.route)
	r := &Router{log: log, fwd: fwd, metrics: m}
	r.forced.Store("")
	// mxedge_mode{mode} is 1 for the path new requests take now, read at
	// scrape time so it never disagrees with the router.
	for _, p := range []Path{PathCloud, PathLocal, PathNone} {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name:        "mxedge_mode",
			Help:        "1 for the path the router sends new requests to (cloud, local or none).",
			ConstLabels: prometheus.Labels{"mode": string(p)},
		}, func() float64 {
			if path, _ := r.decide(nil); path == p {
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

// decide picks the path for req and says why.
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
	case box.u.Healthy() || !hasLocal:
		return PathCloud, "cloud_reachable"
	default:
		return PathLocal, "cloud_unreachable"
	}
}

// inliner is a handler that can say a request is answered from memory.
type inliner interface {
	Inline(*proxy.Request) bool
}

// Inline tells the UDP server which requests the router answers without
// waiting: those the local NAC answers from memory. Cloud requests wait
// on the RadSec round trip and go to a worker.
func (r *Router) Inline(req *proxy.Request) bool {
	if path, _ := r.decide(req); path != PathLocal {
		return false
	}
	lb := r.local.Load()
	if lb == nil {
		return false
	}
	in, ok := lb.h.(inliner)
	return ok && in.Inline(req)
}

// ServeRADIUS routes one request.
func (r *Router) ServeRADIUS(ctx context.Context, req *proxy.Request) ([]byte, proxy.Outcome) {
	path, why := r.decide(req)
	r.metrics.route.WithLabelValues(string(path), why).Inc()
	switch path {
	case PathCloud:
		reply, outcome, err := r.fwd.Forward(ctx, r.cloud.Load().u, req)
		if err != nil {
			r.log.Debug("cloud forward failed", "client", req.Client.Name, "code", req.Packet.Code.String(),
				"id", req.Packet.ID, "outcome", outcome, "err", err)
		} else if r.learn != nil {
			r.learn(req, reply)
		}
		return reply, outcome
	case PathLocal:
		if lb := r.local.Load(); lb != nil {
			return lb.h.ServeRADIUS(ctx, req)
		}
		return nil, proxy.OutcomeNoUpstream
	default:
		return nil, proxy.OutcomeNoUpstream
	}
}
