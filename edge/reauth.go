package edge

// Re-authorisation after an outage (survivability.reauthorize_after_outage):
// while the cloud is unreachable the local NAC lets unknown clients in on
// the default VLAN; once the cloud is back, the edge asks each device to
// re-authorise those sessions so that the cloud's policy replaces the
// default. No peer does this; devices otherwise wait for the local
// Session-Timeout.

import (
	"context"
	"log/slog"
	"net/netip"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mxedge/mxedge/proxy"
	"github.com/mxedge/mxedge/proxy/coa"
	"github.com/mxedge/mxedge/proxy/packet"
)

// reauthMax bounds the sessions remembered during one outage; past it the
// rest wait for their Session-Timeout.
const reauthMax = 100_000

// reauthPace is the gap between two requests: ten a second, so that the
// re-authentications they cause reach the cloud as a trickle.
const reauthPace = 100 * time.Millisecond

// reauthSession is one default-VLAN admission to undo.
type reauthSession struct {
	client  *proxy.Client
	nas     netip.Addr // NAS-IP-Address, else the request's source
	mac     []byte     // Calling-Station-Id as the device sent it
	user    []byte
	session []byte // Acct-Session-Id, when the device sent one
}

// reauth remembers default-VLAN admissions and, when the cloud is back,
// asks their devices to re-authorise them.
type reauth struct {
	log     *slog.Logger
	enabled func() bool                // survivability.reauthorize_after_outage, live
	vlans   func() (mab, dot1x string) // the default VLANs in force
	target  func(*proxy.Client, netip.Addr) (coa.Target, bool)
	send    func(context.Context, coa.Target, *packet.Packet) (*packet.Packet, error)
	pace    time.Duration
	total   *prometheus.CounterVec
	ctx     context.Context // ends runs at shutdown
	cancel  context.CancelFunc

	mu      sync.Mutex
	pending map[string]reauthSession // by client and Calling-Station-Id
	running bool
}

func newReauthMetrics(reg prometheus.Registerer) *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "mxedge_reauth_requests_total",
		Help: "Re-authorisation requests after an outage, by kind (coa, disconnect) and result (ack, nak, timeout, error, no_target, dropped).",
	}, []string{"kind", "result"})
	// Every series from start, at zero: dashboards see zeros, not
	// nothing, until the first outage ends.
	for _, kind := range []string{"coa", "disconnect"} {
		for _, result := range []string{"ack", "nak", "timeout", "error", "no_target"} {
			c.WithLabelValues(kind, result)
		}
	}
	c.WithLabelValues("", "dropped") // the pending table is full: no kind yet
	reg.MustRegister(c)
	return c
}

// seen looks at a request the local NAC answered: an Access-Accept that
// carries a default VLAN is remembered (with the feature on).
func (r *reauth) seen(req *proxy.Request, reply []byte) {
	if len(reply) < packet.HeaderLen || packet.Code(reply[0]) != packet.CodeAccessAccept || !r.enabled() {
		return
	}
	mab, dot1x := r.vlans()
	if mab == "" && dot1x == "" {
		return
	}
	rp, err := packet.Parse(reply)
	if err != nil {
		return
	}
	vlan, ok := rp.Lookup(packet.AttrTunnelPrivateGroupID)
	if ok && len(vlan) > 0 && vlan[0] < 0x20 {
		vlan = vlan[1:] // the tag octet
	}
	if !ok || (string(vlan) != mab && string(vlan) != dot1x) {
		return
	}
	p := req.Packet
	csid, _ := p.Lookup(packet.AttrCallingStationID)
	if len(csid) == 0 {
		return // nothing to name the session by
	}
	s := reauthSession{client: req.Client, nas: req.Source.Addr().Unmap(), mac: clone(csid),
		user: clone(lookup(p, packet.AttrUserName)), session: clone(lookup(p, packet.AttrAcctSessionID))}
	if v, ok := p.Lookup(packet.AttrNASIPAddress); ok && len(v) == 4 {
		s.nas = netip.AddrFrom4([4]byte(v))
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.pending == nil {
		r.pending = map[string]reauthSession{}
	}
	if len(r.pending) >= reauthMax {
		r.total.WithLabelValues("", "dropped").Inc()
		return
	}
	r.pending[req.Client.Name+"\x00"+string(csid)] = s
}

func clone(b []byte) []byte { return append([]byte(nil), b...) }

// cloudBack starts working through the sessions remembered, paced; one
// run at a time (a new outage's sessions wait for the next return).
func (r *reauth) cloudBack() {
	ctx := r.ctx
	r.mu.Lock()
	if r.running || len(r.pending) == 0 || !r.enabled() {
		r.mu.Unlock()
		return
	}
	todo := r.pending
	r.pending = nil
	r.running = true
	r.mu.Unlock()
	go func() {
		defer func() { r.mu.Lock(); r.running = false; r.mu.Unlock() }()
		r.log.Info("re-authorising the sessions let in with a default VLAN during the outage", "sessions", len(todo), "pace", r.pace)
		t := time.NewTicker(r.pace)
		defer t.Stop()
		for _, s := range todo {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			r.one(ctx, s)
		}
	}()
}

// one asks s's device to re-authorise it: CoA Reauthenticate where the
// vendor has it (Cisco's subscriber:command=reauthenticate), else
// Disconnect, after which the device authenticates the client anew.
func (r *reauth) one(ctx context.Context, s reauthSession) {
	kind := "disconnect"
	code := packet.CodeDisconnectRequest
	if s.client.Vendor == "cisco" {
		kind, code = "coa", packet.CodeCoARequest
	}
	t, ok := r.target(s.client, s.nas)
	if !ok {
		r.total.WithLabelValues(kind, "no_target").Inc()
		return
	}
	p := &packet.Packet{Code: code}
	add := func(typ uint8, v []byte) {
		if len(v) > 0 {
			p.Attrs = append(p.Attrs, packet.Attr{Type: typ, Value: v})
		}
	}
	if s.nas.Is4() {
		v := s.nas.As4()
		add(packet.AttrNASIPAddress, v[:])
	}
	add(packet.AttrCallingStationID, s.mac)
	add(packet.AttrAcctSessionID, s.session)
	if code == packet.CodeCoARequest {
		vsa, _ := packet.AppendVSA(nil, 9, 1, []byte("subscriber:command=reauthenticate"))
		p.Attrs = append(p.Attrs, packet.Attr{Type: packet.AttrVendorSpecific, Value: vsa[2:]})
	} else {
		add(packet.AttrUserName, s.user)
	}
	reply, err := r.send(ctx, t, p)
	result := "ack"
	switch {
	case err == coa.ErrTimeout:
		result = "timeout"
	case err != nil:
		result = "error"
	case reply.Code == packet.CodeCoANAK || reply.Code == packet.CodeDisconnectNAK:
		result = "nak"
	}
	r.total.WithLabelValues(kind, result).Inc()
	r.log.Info("re-authorisation after the outage", "kind", kind, "client", s.client.Name, "calling_station_id", string(s.mac), "result", result)
}

// newReauth builds the re-authoriser on the running configuration; it
// sends through its own CoA relay (same directory as the cloud's CoA).
func (a *App) newReauth() (*reauth, error) {
	relay, err := coa.New(coa.Config{Directory: coaDirectory{a}, Logger: a.log.With("component", "reauth")})
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &reauth{
		log: a.log.With("component", "reauth"), ctx: ctx, cancel: cancel, pace: reauthPace,
		enabled: func() bool { return a.cfg.Load().Survivability.ReauthorizeAfterOutage },
		vlans: func() (string, string) {
			s := a.cfg.Load().Survivability
			return s.DefaultMABVLAN, s.DefaultDot1XVLAN
		},
		target: func(_ *proxy.Client, ip netip.Addr) (coa.Target, bool) { return coaDirectory{a}.ByAddr(ip) },
		send:   relay.Send,
		total:  newReauthMetrics(a.reg),
	}, nil
}

// close stops a run in progress.
func (r *reauth) close() {
	if r != nil {
		r.cancel()
	}
}
