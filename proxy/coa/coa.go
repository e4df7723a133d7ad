package coa

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mxedge/mxedge/proxy"
	"github.com/mxedge/mxedge/proxy/packet"
	"github.com/mxedge/mxedge/proxy/ratelog"
)

// AttrEventTimestamp is Event-Timestamp (RFC 2869 §5.3), seconds since the
// Unix epoch.
const AttrEventTimestamp = 55

// Error-Cause values (RFC 5176 §3.6) the relay answers with.
const (
	// NASIdentificationMismatch: the request's NAS-IP-Address,
	// NAS-IPv6-Address or NAS-Identifier names no device behind this
	// edge, or names two different ones.
	NASIdentificationMismatch uint32 = 403
	// SessionContextNotFound: the request carries no NAS identification,
	// and the edge keeps no session table to find the device by.
	SessionContextNotFound uint32 = 503
	// OtherProxyProcessingError: the edge could not build or send the
	// request (§3.6: "reasons not otherwise specified").
	OtherProxyProcessingError uint32 = 505
	// ResourcesUnavailable: the device did not answer (the NAS was
	// unavailable to honour the request).
	ResourcesUnavailable uint32 = 506
)

// DefaultWindow is the Event-Timestamp replay window RFC 5176 §3.4 suggests
// (300 s).
const DefaultWindow = 300 * time.Second

// Target is a device that takes CoA and Disconnect requests.
type Target struct {
	Name   string
	Addr   netip.AddrPort // the device's address and CoA port
	Secret []byte
	// RequireMessageAuthenticator discards an ACK or NAK without a valid
	// Message-Authenticator (the edge always sends one).
	RequireMessageAuthenticator bool
	// IgnoreEventTimestamp turns the replay window off for this device
	// (the cloud's DAS setting disable_event_timestamp_check).
	IgnoreEventTimestamp bool
}

// Directory finds devices: by the address a request names (the device
// table's longest prefix) and by name (NAS-Identifier). A device found by
// name must have a single address for ok to be true.
type Directory interface {
	ByAddr(a netip.Addr) (Target, bool)
	ByName(name string) (Target, bool)
}

// Config configures a Relay.
type Config struct {
	Directory Directory
	// Timeout bounds one try at the device (2 s when zero); Retries are
	// the resends after the first (none when zero).
	Timeout time.Duration
	Retries int
	// Window is the Event-Timestamp replay window (DefaultWindow when zero).
	Window time.Duration
	// Now is the clock (time.Now when nil).
	Now        func() time.Time
	Logger     *slog.Logger
	Registerer prometheus.Registerer
	// Targets names the devices known at New: their ack and nak series
	// are created at zero, so that dashboards see zeros from start rather
	// than nothing until the cloud's first CoA. A device added later is
	// created at its first request.
	Targets []string
}

// Relay is a proxy.Handler for CoA-Request and Disconnect-Request.
type Relay struct {
	cfg   Config
	log   *slog.Logger
	warn  *ratelog.Limiter
	total *prometheus.CounterVec
}

// New builds a relay; its metric is mxedge_coa_requests_total.
func New(cfg Config) (*Relay, error) {
	if cfg.Directory == nil {
		return nil, errors.New("coa: no directory")
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 2 * time.Second
	}
	if cfg.Retries < 0 {
		cfg.Retries = 0
	}
	if cfg.Window <= 0 {
		cfg.Window = DefaultWindow
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	r := &Relay{cfg: cfg, log: cfg.Logger,
		total: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mxedge_coa_requests_total",
			Help: "CoA and Disconnect requests relayed to devices, by request kind (coa, disconnect), target device and result (ack, nak, stale, unknown_target, timeout, error).",
		}, []string{"kind", "target", "result"}),
	}
	r.warn = ratelog.New(r.log, 10*time.Second, 5, nil)
	for _, kind := range []string{"coa", "disconnect"} {
		r.total.WithLabelValues(kind, "", "unknown_target")
		for _, t := range cfg.Targets {
			r.total.WithLabelValues(kind, t, "ack")
			r.total.WithLabelValues(kind, t, "nak")
		}
	}
	if cfg.Registerer != nil {
		if err := cfg.Registerer.Register(r.total); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// ServeRADIUS relays a CoA-Request or Disconnect-Request and returns the
// device's answer re-signed for the requester; anything else is dropped.
func (r *Relay) ServeRADIUS(ctx context.Context, req *proxy.Request) ([]byte, proxy.Outcome) {
	p := req.Packet
	var kind string
	var nak packet.Code
	switch p.Code {
	case packet.CodeCoARequest:
		kind, nak = "coa", packet.CodeCoANAK
	case packet.CodeDisconnectRequest:
		kind, nak = "disconnect", packet.CodeDisconnectNAK
	default:
		return nil, proxy.OutcomeDropped
	}
	t, cause, why := Resolve(r.cfg.Directory, p)
	if cause != 0 {
		r.total.WithLabelValues(kind, "", "unknown_target").Inc()
		r.warn.Log(slog.LevelWarn, "coa_unknown_target", "CoA/Disconnect for no known device; NAK",
			"code", p.Code.String(), "why", why, "error_cause", cause)
		return r.nak(req, nak, cause)
	}
	if !t.IgnoreEventTimestamp {
		if ts, ok := p.Lookup(AttrEventTimestamp); ok {
			if !fresh(ts, r.cfg.Now(), r.cfg.Window) {
				// RFC 5176 §3.4: a request whose Event-Timestamp is not
				// current MUST be silently discarded.
				r.total.WithLabelValues(kind, t.Name, "stale").Inc()
				r.warn.Log(slog.LevelWarn, "coa_stale", "CoA/Disconnect with an Event-Timestamp outside the replay window; discarded",
					"code", p.Code.String(), "target", t.Name, "window", r.cfg.Window)
				return nil, proxy.OutcomeDropped
			}
		}
	}
	reply, err := r.exchange(ctx, p, t)
	if err != nil {
		if ctx.Err() != nil {
			return nil, proxy.OutcomeDropped
		}
		result, cause, outcome := "error", OtherProxyProcessingError, proxy.OutcomeUpstreamError
		if errors.Is(err, errTimeout) {
			result, cause, outcome = "timeout", ResourcesUnavailable, proxy.OutcomeUpstreamTimeout
		}
		r.total.WithLabelValues(kind, t.Name, result).Inc()
		r.warn.Log(slog.LevelWarn, "coa_failed", "CoA/Disconnect not delivered; NAK",
			"code", p.Code.String(), "target", t.Name, "addr", t.Addr.String(), "err", err, "error_cause", cause)
		b, _ := r.nak(req, nak, cause)
		return b, outcome
	}
	result := "ack"
	if reply.Code == nak {
		result = "nak"
	}
	r.total.WithLabelValues(kind, t.Name, result).Inc()
	r.log.Info("CoA/Disconnect relayed", "code", p.Code.String(), "target", t.Name, "answer", reply.Code.String())
	b, err := proxy.Reply(req, reply.Code, func(b []byte) ([]byte, error) {
		var err error
		for _, a := range reply.Attrs {
			if a.Type == packet.AttrMessageAuthenticator || a.Type == packet.AttrProxyState {
				continue // ours, and the requester's (Reply adds them)
			}
			if b, err = packet.AppendAttr(b, a.Type, a.Value); err != nil {
				return nil, err
			}
		}
		return b, nil
	})
	if err != nil {
		return nil, proxy.OutcomeDropped
	}
	return b, proxy.OutcomeAnswered
}

// Resolve finds the device p names: by NAS-IP-Address or NAS-IPv6-Address,
// else by NAS-Identifier. It returns a non-zero Error-Cause, and why, when
// there is none, or when the address and the identifier name different
// devices.
func Resolve(d Directory, p *packet.Packet) (t Target, cause uint32, why string) {
	var ip netip.Addr
	if v, ok := p.Lookup(packet.AttrNASIPAddress); ok && len(v) == 4 {
		ip = netip.AddrFrom4([4]byte(v))
	} else if v, ok := p.Lookup(packet.AttrNASIPv6Address); ok && len(v) == 16 {
		ip = netip.AddrFrom16([16]byte(v)).Unmap()
	}
	id, hasID := p.Lookup(packet.AttrNASIdentifier)
	if !ip.IsValid() && !hasID {
		return Target{}, SessionContextNotFound, "no NAS-IP-Address, NAS-IPv6-Address or NAS-Identifier"
	}
	if ip.IsValid() {
		t, ok := d.ByAddr(ip)
		if !ok {
			return Target{}, NASIdentificationMismatch, "NAS address " + ip.String() + " is no configured device"
		}
		if hasID {
			if named, ok := d.ByName(string(id)); ok && named.Name != t.Name {
				return Target{}, NASIdentificationMismatch, fmt.Sprintf("NAS-Identifier %q names %s, the address %s", id, named.Name, t.Name)
			}
		}
		return t, 0, ""
	}
	t, ok := d.ByName(string(id))
	if !ok {
		return Target{}, NASIdentificationMismatch, fmt.Sprintf("NAS-Identifier %q names no device with one address", id)
	}
	return t, 0, ""
}

// fresh says whether an Event-Timestamp is within window of now, either
// way.
func fresh(ts []byte, now time.Time, window time.Duration) bool {
	if len(ts) != 4 {
		return false
	}
	d := now.Sub(time.Unix(int64(binary.BigEndian.Uint32(ts)), 0))
	return d <= window && d >= -window
}

func (r *Relay) nak(req *proxy.Request, code packet.Code, cause uint32) ([]byte, proxy.Outcome) {
	b, err := proxy.Reply(req, code, func(b []byte) ([]byte, error) {
		return packet.AppendAttr(b, packet.AttrErrorCause, binary.BigEndian.AppendUint32(nil, cause))
	})
	if err != nil {
		return nil, proxy.OutcomeDropped
	}
	return b, proxy.OutcomeLocal
}

var errTimeout = errors.New("coa: the device did not answer")

// ErrTimeout is Send's error when the device did not answer.
var ErrTimeout = errTimeout

// Send delivers a CoA-Request or Disconnect-Request the edge itself makes
// (re-authorisation after an outage) to t and returns the device's ACK or
// NAK, checked as relayed ones are.
func (r *Relay) Send(ctx context.Context, t Target, p *packet.Packet) (*packet.Packet, error) {
	if p.Code != packet.CodeCoARequest && p.Code != packet.CodeDisconnectRequest {
		return nil, fmt.Errorf("coa: %s is not a CoA or Disconnect request", p.Code)
	}
	return r.exchange(ctx, p, t)
}

// exchange sends p to t (Message-Authenticator first, the requester's
// Proxy-State and Message-Authenticator left out, signed with t's secret)
// and waits for the matching ACK or NAK, resending on timeout.
func (r *Relay) exchange(ctx context.Context, p *packet.Packet, t Target) (*packet.Packet, error) {
	var idb [1]byte
	rand.Read(idb[:])
	out := packet.AppendMessageAuthenticator(packet.Append(make([]byte, 0, 512), p.Code, idb[0], [16]byte{}))
	var err error
	for _, a := range p.Attrs {
		if a.Type == packet.AttrMessageAuthenticator || a.Type == packet.AttrProxyState {
			continue
		}
		if out, err = packet.AppendAttr(out, a.Type, a.Value); err != nil {
			return nil, err
		}
	}
	if err := packet.Sign(out, t.Secret, nil); err != nil {
		return nil, err
	}
	var reqAuth [16]byte
	copy(reqAuth[:], out[4:20])
	conn, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(t.Addr))
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.SetReadDeadline(time.Now()) })
	defer stop()
	buf := make([]byte, packet.MaxLen)
	for try := 0; try <= r.cfg.Retries; try++ {
		if _, err := conn.Write(out); err != nil {
			return nil, err
		}
		deadline := time.Now().Add(r.cfg.Timeout)
		for {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			conn.SetReadDeadline(deadline)
			n, err := conn.Read(buf)
			if err != nil {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					break
				}
				return nil, err
			}
			rp, ok := r.check(buf[:n], idb[0], p.Code, reqAuth, t)
			if ok {
				return rp, nil
			}
		}
	}
	return nil, errTimeout
}

// check accepts a reply that answers the request sent: its identifier, an
// ACK or NAK of the request's kind, a valid Response Authenticator and,
// when the device requires it, Message-Authenticator.
func (r *Relay) check(b []byte, id uint8, reqCode packet.Code, reqAuth [16]byte, t Target) (*packet.Packet, bool) {
	rp, err := packet.Parse(append([]byte(nil), b...))
	if err != nil || rp.ID != id {
		return nil, false
	}
	switch {
	case reqCode == packet.CodeCoARequest && (rp.Code == packet.CodeCoAACK || rp.Code == packet.CodeCoANAK),
		reqCode == packet.CodeDisconnectRequest && (rp.Code == packet.CodeDisconnectACK || rp.Code == packet.CodeDisconnectNAK):
	default:
		return nil, false
	}
	hasMA, err := packet.VerifyResponse(rp, reqAuth, t.Secret)
	if err != nil || (t.RequireMessageAuthenticator && !hasMA) {
		r.warn.Log(slog.LevelWarn, "coa_bad_reply", "CoA/Disconnect answer discarded",
			"target", t.Name, "code", rp.Code.String(), "message_authenticator", hasMA, "err", err)
		return nil, false
	}
	return rp, true
}
