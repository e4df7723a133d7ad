package edge

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"reflect"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mxedge/mxedge/edge/config"
	"github.com/mxedge/mxedge/proxy"
	"github.com/mxedge/mxedge/proxy/packet"
	"github.com/mxedge/mxedge/proxy/realm"
	"github.com/mxedge/mxedge/proxy/udpclient"
)

// attrCUI is Chargeable-User-Identity (RFC 4372).
const attrCUI = 89

// Federation routes roaming requests before the router sees them
// (docs/federation.md):
//
//   - a visitor's request from the site's devices, for a realm that is not
//     the site's own (on a federation's SSID, when it lists any), goes out
//     to the federation's operator servers, with Operator-Name and a
//     Chargeable-User-Identity request added;
//   - a request from an operator server for the site's own realms is a
//     home user roaming elsewhere: it takes the router's usual path to
//     the cloud;
//   - what cannot be routed (a malformed identity on a federation SSID, a
//     reserved realm, a foreign realm from an operator server, no server
//     up) gets Access-Reject at once.
//
// Everything else passes to next unchanged.
type Federation struct {
	next    proxy.Handler
	log     *slog.Logger
	state   atomic.Pointer[fedState]
	cfg     []config.Federation // what state was built from (Reload)
	pm      *udpclient.Metrics
	route   *prometheus.CounterVec
	fticks  *prometheus.CounterVec
	closeIn func(time.Duration, func()) // time.AfterFunc, for retiring old pools
}

type fedState struct {
	routes    []*fedRoute
	operators map[netip.Addr][]*fedRoute // operator servers, by address
}

type fedRoute struct {
	cfg       config.Federation
	own       *realm.Matcher
	ssids     map[string]bool
	auth      *udpclient.Pool
	acct      *udpclient.Pool // nil: accounting is answered here (RFC 7593 §5)
	operator  []byte          // Operator-Name value, nil if none
	fticksPfx string
}

// NewFederation builds the federation routes of cfg in front of next.
func NewFederation(cfg *config.Config, next proxy.Handler, log *slog.Logger, reg prometheus.Registerer) (*Federation, error) {
	f := &Federation{
		next: next,
		log:  log,
		pm:   udpclient.NewMetrics(reg),
		route: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mxedge_federation_route_total",
			Help: "Requests the federation router took, by federation, path (visitor, home, reject) and reason.",
		}, []string{"federation", "path", "reason"}),
		fticks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mxedge_federation_auth_total",
			Help: "Roaming authentications by federation, direction (visitor, home) and result (ok, fail).",
		}, []string{"federation", "direction", "result"}),
		closeIn: func(d time.Duration, fn func()) { time.AfterFunc(d, fn) },
	}
	reg.MustRegister(f.route, f.fticks)
	if err := f.Reload(cfg); err != nil {
		return nil, err
	}
	return f, nil
}

// Reload rebuilds the routes and pools when the federation section
// changed; requests already in the old pools finish there.
func (f *Federation) Reload(cfg *config.Config) error {
	if f.state.Load() != nil && reflect.DeepEqual(cfg.Federation, f.cfg) {
		return nil
	}
	st, err := f.build(cfg.Federation)
	if err != nil {
		return err
	}
	f.seed(st)
	old := f.state.Swap(st)
	f.cfg = cfg.Federation
	if old != nil {
		f.closeIn(f.retireAfter(old), func() { old.close() })
	}
	if len(st.routes) > 0 {
		f.log.Info("federation routes", "federations", len(st.routes))
	}
	return nil
}

// seed creates each federation's route and auth series at zero, so that
// dashboards see zeros from start rather than nothing until the first
// roaming request. The malformed_nai_<why> reasons, one per parse error,
// are still created at their first request.
func (f *Federation) seed(st *fedState) {
	routes := [][2]string{
		{fedVisitor, "foreign_realm"}, {"cloud_visitor", "foreign_realm"}, {fedHome, "own_realm"},
		{fedReject, "malformed_nai"}, {fedReject, "not_our_realm"}, {fedReject, "no_realm"},
		{fedReject, "unroutable_realm"}, {fedReject, "not_a_visitor"}, {fedReject, "no_server_up"},
		{fedReject, "servers_silent"},
	}
	for _, r := range st.routes {
		for _, pr := range routes {
			f.route.WithLabelValues(r.cfg.Name, pr[0], pr[1])
		}
		for _, d := range []string{fedVisitor, fedHome} {
			for _, res := range []string{"ok", "fail"} {
				f.fticks.WithLabelValues(r.cfg.Name, d, res)
			}
		}
	}
}

func (f *Federation) retireAfter(st *fedState) time.Duration {
	d := time.Second
	for _, r := range st.routes {
		d = max(d, 2*r.cfg.Timeout+time.Second)
	}
	return d
}

// Close stops every pool.
func (f *Federation) Close() {
	if st := f.state.Swap(&fedState{}); st != nil {
		st.close()
	}
}

func (st *fedState) close() {
	for _, r := range st.routes {
		r.auth.Close()
		if r.acct != nil {
			r.acct.Close()
		}
	}
}

func (f *Federation) build(feds []config.Federation) (*fedState, error) {
	st := &fedState{operators: map[netip.Addr][]*fedRoute{}}
	for _, fc := range feds {
		r, err := f.buildRoute(fc)
		if err != nil {
			st.close()
			return nil, fmt.Errorf("federation %s: %w", fc.Name, err)
		}
		st.routes = append(st.routes, r)
		for _, s := range append(append([]config.Server(nil), fc.AuthServers...), fc.AcctServers...) {
			for _, a := range serverAddrs(s.Address) {
				st.operators[a] = append(st.operators[a], r)
			}
		}
	}
	return st, nil
}

// serverAddrs resolves a server's host to the addresses its requests come
// from.
func serverAddrs(hostport string) []netip.Addr {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		return nil
	}
	if a, err := netip.ParseAddr(host); err == nil {
		return []netip.Addr{a.Unmap()}
	}
	ips, _ := net.LookupIP(host)
	var out []netip.Addr
	for _, ip := range ips {
		if a, ok := netip.AddrFromSlice(ip); ok {
			out = append(out, a.Unmap())
		}
	}
	return out
}

func (f *Federation) buildRoute(fc config.Federation) (*fedRoute, error) {
	// The cloud's pushed federations carry no timers: fill the defaults.
	if fc.Timeout <= 0 {
		fc.Timeout = 3 * time.Second
	}
	own, err := realm.NewMatcher(fc.ExcludeRealms)
	if err != nil {
		return nil, err
	}
	r := &fedRoute{cfg: fc, own: own, ssids: map[string]bool{}}
	for _, s := range fc.SSIDs {
		r.ssids[s] = true
	}
	if fc.OperatorName != "" {
		r.operator = []byte(fc.OperatorName)
	}
	r.fticksPfx = fmt.Sprintf("F-TICKS/%s/1.0", fc.Name)
	mk := func(kind string, ss []config.Server) (*udpclient.Pool, error) {
		var sc []udpclient.ServerConfig
		for _, s := range ss {
			sc = append(sc, udpclient.ServerConfig{Address: s.Address, Secret: s.Secret.Reveal(),
				RequireMessageAuthenticator: s.RequireMessageAuthenticator})
		}
		si := fc.StatusInterval
		if si == 0 {
			si = -1 // off
		}
		return udpclient.New(udpclient.Config{
			Name: fc.Name + "/" + kind, Servers: sc, Mode: udpclient.Mode(fc.LoadBalance),
			Timeout: fc.Timeout, Retries: fc.Retries, StatusInterval: si,
			Metrics: f.pm, Logger: f.log.With("federation", fc.Name, "pool", kind),
		})
	}
	if r.auth, err = mk("auth", fc.AuthServers); err != nil {
		return nil, err
	}
	if len(fc.AcctServers) > 0 {
		if r.acct, err = mk("acct", fc.AcctServers); err != nil {
			r.auth.Close()
			return nil, err
		}
	}
	return r, nil
}

// Route kinds.
const (
	fedPass    = ""        // not the federation's: the router decides
	fedVisitor = "visitor" // out to the federation
	fedHome    = "home"    // from an operator server for the site's own realm
	fedReject  = "reject"  // Access-Reject at once
)

// classify says what the federation router does with req, the route it
// belongs to, and why.
func (f *Federation) classify(req *proxy.Request) (kind string, r *fedRoute, reason string) {
	st := f.state.Load()
	if st == nil || len(st.routes) == 0 {
		return fedPass, nil, ""
	}
	p := req.Packet
	if p.Code != packet.CodeAccessRequest && p.Code != packet.CodeAccountingRequest {
		return fedPass, nil, ""
	}
	un, _ := p.Lookup(packet.AttrUserName)
	if ops := st.operators[req.Source.Addr().Unmap()]; len(ops) > 0 {
		n, err := realm.Parse(string(un))
		if err != nil {
			return fedReject, ops[0], "malformed_nai"
		}
		for _, r := range ops {
			if r.own.Match(n.Realm) {
				return fedHome, r, "own_realm"
			}
		}
		// Never send what the federation sent us back to it.
		return fedReject, ops[0], "not_our_realm"
	}
	return st.classifyVisitor(p, un)
}

// classifyVisitor classifies a request from the site's side (a device, or
// the cloud relaying one): out to a federation, rejected, or not the
// federation's.
func (st *fedState) classifyVisitor(p *packet.Packet, un []byte) (kind string, r *fedRoute, reason string) {
	var ssid string
	if cs, ok := p.Lookup(packet.AttrCalledStationID); ok {
		ssid, _ = realm.SSID(string(cs))
	}
	for _, r := range st.routes {
		onSSID := len(r.ssids) > 0 && r.ssids[ssid]
		if len(r.ssids) > 0 && !onSSID {
			continue
		}
		n, err := realm.Parse(string(un))
		if err != nil {
			if onSSID {
				var e *realm.Error
				reason := "malformed_nai"
				if errors.As(err, &e) {
					reason = "malformed_nai_" + string(e.Reason)
				}
				return fedReject, r, reason
			}
			continue
		}
		switch {
		case n.Realm == "":
			if onSSID {
				return fedReject, r, "no_realm"
			}
			continue
		case r.own.Match(n.Realm):
			return fedPass, r, "own_realm" // a home user on campus: the cloud answers
		}
		if _, bad := realm.Unroutable(n.Realm); bad {
			if onSSID {
				return fedReject, r, "unroutable_realm"
			}
			continue
		}
		return fedVisitor, r, "foreign_realm"
	}
	return fedPass, nil, ""
}

// ServeCloud answers a roaming request the cloud sends over RadSec: a
// visitor at the site whose realm the cloud cannot serve. It goes to the
// federation exactly as a device's request would; what is not a visitor's
// (the site's own realm, no federation, no route) is rejected, never
// handed back to the cloud it came from.
func (f *Federation) ServeCloud(ctx context.Context, req *proxy.Request) ([]byte, proxy.Outcome) {
	p := req.Packet
	if p.Code != packet.CodeAccessRequest && p.Code != packet.CodeAccountingRequest {
		return nil, proxy.OutcomeDropped
	}
	kind, r, reason := fedPass, (*fedRoute)(nil), "no_federation"
	if st := f.state.Load(); st != nil && len(st.routes) > 0 {
		kind, r, reason = st.classifyVisitor(p, lookup(p, packet.AttrUserName))
		if r == nil {
			reason = "no_route"
		}
	}
	switch {
	case kind == fedVisitor:
		f.route.WithLabelValues(r.cfg.Name, "cloud_visitor", reason).Inc()
		return f.serveVisitor(ctx, req, r)
	case r != nil:
		if kind == fedPass {
			reason = "not_a_visitor"
		}
		f.route.WithLabelValues(r.cfg.Name, fedReject, reason).Inc()
		f.log.Info("federation reject", "federation", r.cfg.Name, "reason", reason, "client", req.Client.Name,
			"user", string(lookup(p, packet.AttrUserName)))
		return f.reject(req, r, reason)
	}
	f.log.Info("request from the cloud for no federation; rejected", "user", string(lookup(p, packet.AttrUserName)))
	return f.reject(req, nil, reason)
}

// ServeRADIUS routes roaming requests and hands the rest to next.
func (f *Federation) ServeRADIUS(ctx context.Context, req *proxy.Request) ([]byte, proxy.Outcome) {
	kind, r, reason := f.classify(req)
	if kind != fedPass {
		f.route.WithLabelValues(r.cfg.Name, kind, reason).Inc()
	}
	switch kind {
	case fedVisitor:
		return f.serveVisitor(ctx, req, r)
	case fedReject:
		f.log.Info("federation reject", "federation", r.cfg.Name, "reason", reason, "client", req.Client.Name,
			"user", string(lookup(req.Packet, packet.AttrUserName)))
		return f.reject(req, r, reason)
	case fedHome:
		reply, outcome := f.next.ServeRADIUS(ctx, req)
		f.observe(req, r, reply, "home")
		return reply, outcome
	}
	return f.next.ServeRADIUS(ctx, req)
}

// Inline lets the UDP server answer inline only what the router would.
func (f *Federation) Inline(req *proxy.Request) bool {
	if kind, _, _ := f.classify(req); kind != fedPass && kind != fedHome {
		return false
	}
	in, ok := f.next.(inliner)
	return ok && in.Inline(req)
}

func lookup(p *packet.Packet, t uint8) []byte {
	v, _ := p.Lookup(t)
	return v
}

func (f *Federation) serveVisitor(ctx context.Context, req *proxy.Request, r *fedRoute) ([]byte, proxy.Outcome) {
	p := req.Packet
	if p.Code == packet.CodeAccountingRequest && r.acct == nil {
		// No accounting servers: the site keeps it (RFC 7593 §5).
		b, err := proxy.Reply(req, packet.CodeAccountingResponse, nil)
		if err != nil {
			return nil, proxy.OutcomeDropped
		}
		return b, proxy.OutcomeLocal
	}
	pool := r.auth
	if p.Code == packet.CodeAccountingRequest {
		pool = r.acct
	}
	out := *req
	out.Packet = r.decorate(p)
	reply, outcome, err := pool.Forward(ctx, &out)
	if err != nil {
		f.log.Debug("federation forward failed", "federation", r.cfg.Name, "outcome", outcome, "err", err)
		if p.Code != packet.CodeAccessRequest {
			return nil, outcome
		}
		switch outcome {
		case proxy.OutcomeNoUpstream, proxy.OutcomeUpstreamTimeout, proxy.OutcomeUpstreamError:
			if ctx.Err() != nil {
				return nil, outcome
			}
			reason := "no_server_up"
			if outcome != proxy.OutcomeNoUpstream {
				reason = "servers_silent"
			}
			f.route.WithLabelValues(r.cfg.Name, fedReject, reason).Inc()
			b, _ := f.reject(req, r, reason)
			return b, outcome
		}
		return nil, outcome
	}
	f.observe(req, r, reply, "visitor")
	return reply, outcome
}

// decorate returns a copy of p with what eduroam requires of an SP on
// the wire: Operator-Name (RFC 5580) and, on an Access-Request, a
// Chargeable-User-Identity request (one NUL octet, RFC 4372 §2.1), each
// unless the request already carries one.
func (r *fedRoute) decorate(p *packet.Packet) *packet.Packet {
	q := *p
	q.Attrs = append(make([]packet.Attr, 0, len(p.Attrs)+2), p.Attrs...)
	if r.operator != nil && p.Count(packet.AttrOperatorName) == 0 {
		q.Attrs = append(q.Attrs, packet.Attr{Type: packet.AttrOperatorName, Value: r.operator})
	}
	if p.Code == packet.CodeAccessRequest && p.Count(attrCUI) == 0 {
		q.Attrs = append(q.Attrs, packet.Attr{Type: attrCUI, Value: []byte{0}})
	}
	return &q
}

// reject answers an Access-Request with Access-Reject (and EAP-Failure
// for an EAP conversation), or drops what is not an Access-Request.
func (f *Federation) reject(req *proxy.Request, r *fedRoute, reason string) ([]byte, proxy.Outcome) {
	p := req.Packet
	if p.Code != packet.CodeAccessRequest {
		return nil, proxy.OutcomeDropped
	}
	b, err := proxy.Reply(req, packet.CodeAccessReject, func(b []byte) ([]byte, error) {
		if eap, ok := p.Lookup(packet.AttrEAPMessage); ok && len(eap) >= 2 {
			b, _ = packet.AppendAttr(b, packet.AttrEAPMessage, []byte{4, eap[1], 0, 4}) // EAP-Failure
		}
		return packet.AppendAttr(b, packet.AttrReplyMessage, []byte("federation: "+reason))
	})
	if err != nil {
		return nil, proxy.OutcomeDropped
	}
	if r != nil {
		f.observe(req, r, b, "visitor")
	}
	return b, proxy.OutcomeAnswered
}

// observe counts a roaming authentication's result and writes its
// F-Ticks line when the federation asks for them.
func (f *Federation) observe(req *proxy.Request, r *fedRoute, reply []byte, direction string) {
	if req.Packet.Code != packet.CodeAccessRequest || len(reply) == 0 {
		return
	}
	var result string
	switch packet.Code(reply[0]) {
	case packet.CodeAccessAccept:
		result = "OK"
	case packet.CodeAccessReject:
		result = "FAIL"
	default:
		return // a challenge: the conversation goes on
	}
	f.fticks.WithLabelValues(r.cfg.Name, direction, strings.ToLower(result)).Inc()
	if !r.cfg.FTicks {
		return
	}
	n, _ := realm.Parse(string(lookup(req.Packet, packet.AttrUserName)))
	f.log.Info(FTicks(r.fticksPfx, n.Realm, r.cfg.Country, r.cfg.OperatorName,
		string(lookup(req.Packet, packet.AttrCallingStationID)), result), "component", "fticks", "direction", direction)
}

// FTicks formats one F-Ticks line. The Calling-Station-Id is reduced to
// its vendor part and a hash of the rest (radsecproxy's "vendor hashed"),
// so that statistics count devices without naming them.
func FTicks(prefix, realmName, country, visinst, csi, result string) string {
	return fmt.Sprintf("%s#REALM=%s#VISCOUNTRY=%s#VISINST=%s#CSI=%s#RESULT=%s#",
		prefix, ftField(realmName), ftField(country), ftField(visinst), hashCSI(csi), result)
}

// ftField keeps the separator out of a field.
func ftField(s string) string { return strings.NewReplacer("#", "", "\n", "", "\r", "").Replace(s) }

func hashCSI(csi string) string {
	hexd := make([]byte, 0, 12)
	for i := 0; i < len(csi) && len(hexd) < 12; i++ {
		c := csi[i]
		switch {
		case c >= '0' && c <= '9', c >= 'a' && c <= 'f':
			hexd = append(hexd, c)
		case c >= 'A' && c <= 'F':
			hexd = append(hexd, c+'a'-'A')
		}
	}
	if len(hexd) < 12 {
		if csi == "" {
			return ""
		}
		sum := sha256.Sum256([]byte(csi))
		return hex.EncodeToString(sum[:6])
	}
	sum := sha256.Sum256(hexd)
	return fmt.Sprintf("%s-%s-%s-%s", hexd[0:2], hexd[2:4], hexd[4:6], hex.EncodeToString(sum[:6]))
}

// FederationStatus is one federation's routes and servers for `mxedge
// status`.
type FederationStatus struct {
	Name        string                   `json:"name"`
	SSIDs       []string                 `json:"ssids,omitempty"`
	OwnRealms   []string                 `json:"own_realms,omitempty"`
	LoadBalance string                   `json:"load_balance"`
	AuthServers []udpclient.ServerStatus `json:"auth_servers"`
	AcctServers []udpclient.ServerStatus `json:"acct_servers,omitempty"`
}

// Status lists the federations in force.
func (f *Federation) Status() []FederationStatus {
	st := f.state.Load()
	if st == nil {
		return nil
	}
	out := make([]FederationStatus, 0, len(st.routes))
	for _, r := range st.routes {
		s := FederationStatus{Name: r.cfg.Name, SSIDs: r.cfg.SSIDs, OwnRealms: r.cfg.ExcludeRealms,
			LoadBalance: r.cfg.LoadBalance, AuthServers: r.auth.Status()}
		if r.acct != nil {
			s.AcctServers = r.acct.Status()
		}
		out = append(out, s)
	}
	return out
}
