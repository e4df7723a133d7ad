package edge

// The RadSec listener: managed access points and switches list the edge as
// their backup RadSec server and fail over to it when the WAN drops; the
// cloud connects to it too, for the CoA/Disconnect and roaming requests it
// will send. Device requests take the router, exactly as UDP requests do.

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mxedge/mxedge/edge/config"
	"github.com/mxedge/mxedge/proxy"
	"github.com/mxedge/mxedge/proxy/packet"
	"github.com/mxedge/mxedge/proxy/radsec"
	"github.com/mxedge/mxedge/proxy/ratelog"
)

// Peer kinds on the RadSec listener.
const (
	peerDevice = "device"
	peerCloud  = "cloud"
)

// errorCauseUnsupportedService is Error-Cause 405 (RFC 5176 §3.5).
const errorCauseUnsupportedService = 405

// radsecListener is the running listener: one radsec.Server on every
// radsec.listen address, and the trust it checks peers against, swapped
// whole on reload.
type radsecListener struct {
	log    *slog.Logger
	srv    *radsec.Server
	lns    []net.Listener
	trust  atomic.Pointer[radsecTrust]
	listen []string // what lns were bound from; changing it needs a restart
	wg     sync.WaitGroup
	// warn limits the cloud's requests' log lines (one per request) to
	// a few per kind in each interval; the next line says how many were
	// suppressed.
	warn *ratelog.Limiter
	fed  *Federation   // the cloud's roaming requests (nil: refused)
	coa  proxy.Handler // the cloud's CoA and Disconnect requests
}

// radsecTrust is everything a handshake is checked against.
type radsecTrust struct {
	conf    *tls.Config // what GetConfigForClient hands out
	devices *x509.CertPool
	cloud   *x509.CertPool // nil: no cloud CA to recognise the cloud by
	allowed []string
	sites   []config.RadSecSite
	loaded  [4]time.Time // modification times of cert, key, client_ca, cloud CA
}

// startRadSec binds radsec.listen and serves it; with the listener off
// (see config.RadSecListenerOff) it only says why.
func (a *App) startRadSec(ctx context.Context, cfg *config.Config) error {
	if off := cfg.RadSecListenerOff(); off != "" {
		if len(cfg.RadSec.Listen) > 0 {
			// The file left radsec at its defaults and their certificate
			// files are not installed, as on a fresh install: not a fault.
			a.log.Info(off)
		}
		return nil
	}
	l := &radsecListener{log: a.log.With("component", "radsec-listener"), listen: slices.Clone(cfg.RadSec.Listen), fed: a.fed}
	l.warn = ratelog.New(l.log, 10*time.Second, 5, nil)
	relay, err := a.newCoARelay()
	if err != nil {
		return err
	}
	l.coa = relay
	tr, err := loadRadSecTrust(cfg)
	if err != nil {
		return err
	}
	l.trust.Store(tr)
	rs := cfg.RadSec
	l.srv, err = radsec.NewServer(radsec.ServerConfig{
		Handler:           a.router,
		Identify:          func(st tls.ConnectionState) (radsec.Peer, error) { return l.identify(st, a.log) },
		MaxInFlight:       rs.MaxInflightPerConnection,
		MaxConns:          rs.MaxConnections,
		MaxConnsPerSource: rs.MaxConnectionsPerSource,
		IdleTimeout:       rs.IdleTimeout,
		HandshakeTimeout:  rs.HandshakeTimeout,
		Logger:            l.log,
		Registerer:        a.reg,
	})
	if err != nil {
		return err
	}
	a.radsecL = l
	base := &tls.Config{
		MinVersion: tls.VersionTLS12,
		// Every handshake takes the trust current at its start, so a
		// reload reaches new connections and leaves open ones alone.
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) { return l.trust.Load().conf, nil },
	}
	for _, addr := range rs.Listen {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return fmt.Errorf("radsec.listen: %w", err)
		}
		l.lns = append(l.lns, ln)
		tln := tls.NewListener(ln, base)
		l.wg.Go(func() {
			if err := l.srv.Serve(tln); err != nil && !errors.Is(err, radsec.ErrServerClosed) && ctx.Err() == nil {
				l.log.Error("radsec listener stopped", "addr", ln.Addr().String(), "err", err)
			}
		})
	}
	l.log.Info("radsec listener ready", "listen", l.addrs(), "allowed_subjects", rs.AllowedSubjects,
		"cloud_ca", tr.cloud != nil, "max_connections", rs.MaxConnections, "max_connections_per_source", rs.MaxConnectionsPerSource)
	return nil
}

// RadSecAddrs returns the bound RadSec listener addresses (for tests on :0).
func (a *App) RadSecAddrs() []net.Addr {
	if a.radsecL == nil {
		return nil
	}
	return a.radsecL.addrs()
}

func (l *radsecListener) addrs() []net.Addr {
	var out []net.Addr
	for _, ln := range l.lns {
		out = append(out, ln.Addr())
	}
	return out
}

// shutdown stops accepting and lets in-flight requests finish under ctx.
func (l *radsecListener) shutdown(ctx context.Context) {
	if l == nil {
		return
	}
	l.srv.Shutdown(ctx)
	l.wg.Wait()
}

// close drops everything at once (a failed start, or after shutdown).
func (l *radsecListener) close() {
	if l == nil {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	l.srv.Shutdown(ctx)
	for _, ln := range l.lns {
		ln.Close()
	}
	l.wg.Wait()
}

// reloadRadSec re-reads the listener's certificates and patterns: on
// SIGHUP and when the cloud pushes config or a renewed certificate. Open
// connections keep the TLS state they were made with. A file that fails
// to load refuses the whole reload.
func (a *App) reloadRadSec(cfg *config.Config) error {
	l := a.radsecL
	if l == nil {
		if cfg.RadSecListenerOff() == "" {
			a.log.Warn("radsec listener is not running; starting it takes a restart")
		}
		return nil
	}
	if !slices.Equal(cfg.RadSec.Listen, l.listen) {
		a.log.Warn("radsec.listen changed; the new addresses take a restart", "running", l.listen, "configured", cfg.RadSec.Listen)
	}
	tr, err := loadRadSecTrust(cfg)
	if err != nil {
		return err
	}
	old := l.trust.Swap(tr)
	if old.loaded != tr.loaded {
		l.log.Info("radsec certificates reloaded", "cert", cfg.RadSec.Cert, "not_after", tr.conf.Certificates[0].Leaf.NotAfter)
	}
	return nil
}

// loadRadSecTrust reads radsec.cert, .key, .client_ca and the cloud CA.
func loadRadSecTrust(cfg *config.Config) (*radsecTrust, error) {
	rs := cfg.RadSec
	cert, err := tls.LoadX509KeyPair(rs.Cert, rs.Key)
	if err != nil {
		return nil, fmt.Errorf("radsec.cert/key: %w", err)
	}
	devices, err := loadPool(rs.ClientCA)
	if err != nil {
		return nil, fmt.Errorf("radsec.client_ca: %w", err)
	}
	tr := &radsecTrust{devices: devices, allowed: rs.AllowedSubjects, sites: rs.Sites}
	// The cloud's certificate chains to the cloud CA; without one there is
	// simply no cloud to recognise.
	if ca := cloudRadSec(cfg).CA; ca != "" {
		if tr.cloud, err = loadPool(ca); err != nil {
			tr.cloud = nil
		}
	}
	for i, p := range []string{rs.Cert, rs.Key, rs.ClientCA, cloudRadSec(cfg).CA} {
		tr.loaded[i] = modTime(p)
	}
	tr.conf = &tls.Config{
		Certificates: []tls.Certificate{cert},
		// Verification is ours (VerifyConnection): a certificate may chain
		// to either of two CAs, and which one decides what it may do.
		ClientAuth: tls.RequireAnyClientCert,
		MinVersion: tls.VersionTLS12,
		VerifyConnection: func(st tls.ConnectionState) error {
			_, err := tr.classify(st.PeerCertificates)
			return err
		},
	}
	return tr, nil
}

// classify verifies a peer's chain: to radsec.client_ca it is a device
// (and must match allowed_subjects), else to the cloud CA it is the cloud.
// With one CA for both, every peer is a device.
func (tr *radsecTrust) classify(chain []*x509.Certificate) (string, error) {
	if len(chain) == 0 {
		return "", errors.New("no client certificate")
	}
	leaf := chain[0]
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	opts := x509.VerifyOptions{Roots: tr.devices, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	_, derr := leaf.Verify(opts)
	if derr == nil {
		if len(tr.allowed) > 0 && !matchAny(tr.allowed, certNames(leaf)) {
			return "", fmt.Errorf("certificate %q matches none of radsec.allowed_subjects", leaf.Subject.CommonName)
		}
		return peerDevice, nil
	}
	if tr.cloud != nil {
		opts.Roots = tr.cloud
		if _, err := leaf.Verify(opts); err == nil {
			return peerCloud, nil
		}
	}
	return "", derr
}

// identify turns a verified connection into the client its requests carry.
func (l *radsecListener) identify(st tls.ConnectionState, log *slog.Logger) (radsec.Peer, error) {
	tr := l.trust.Load()
	kind, err := tr.classify(st.PeerCertificates)
	if err != nil {
		return radsec.Peer{}, err
	}
	leaf := st.PeerCertificates[0]
	names := certNames(leaf)
	c := &proxy.Client{Name: names[0], Secret: radsecSecret, Vendor: "generic"}
	if kind == peerCloud {
		return radsec.Peer{Client: c, Kind: peerCloud, Handler: cloudInbound{warn: l.warn, peer: c.Name, fed: l.fed, coa: l.coa}}, nil
	}
	for _, s := range tr.sites {
		if matchAny([]string{s.Match}, names) {
			c.Site = s.Site
			break
		}
	}
	return radsec.Peer{Client: c, Kind: peerDevice}, nil
}

// certNames are a certificate's CN, then its DNS, email and URI SANs; the
// first one names the client (a certificate with neither gets its serial).
func certNames(c *x509.Certificate) []string {
	var out []string
	if c.Subject.CommonName != "" {
		out = append(out, c.Subject.CommonName)
	}
	out = append(out, c.DNSNames...)
	out = append(out, c.EmailAddresses...)
	for _, u := range c.URIs {
		out = append(out, u.String())
	}
	if len(out) == 0 {
		out = append(out, "serial:"+c.SerialNumber.String())
	}
	return out
}

func matchAny(patterns, names []string) bool {
	for _, p := range patterns {
		for _, n := range names {
			if ok, _ := path.Match(p, n); ok {
				return true
			}
		}
	}
	return false
}

// cloudInbound answers what the cloud sends over RadSec: roaming
// requests (a visitor whose realm the cloud does not serve) go to the
// federation (Federation.ServeCloud), CoA and Disconnect to the device
// (proxy/coa). What the edge does not serve gets a clear refusal and a log
// line: CoA and Disconnect (without a relay) a NAK with Error-Cause
// Unsupported Service, an Access-Request an Access-Reject; accounting has
// no negative answer, so it is logged and not acknowledged.
type cloudInbound struct {
	warn *ratelog.Limiter
	peer string
	fed  *Federation
	coa  proxy.Handler
}

func (h cloudInbound) ServeRADIUS(ctx context.Context, req *proxy.Request) ([]byte, proxy.Outcome) {
	p := req.Packet
	switch {
	case h.fed != nil && (p.Code == packet.CodeAccessRequest || p.Code == packet.CodeAccountingRequest):
		return h.fed.ServeCloud(ctx, req)
	case h.coa != nil && (p.Code == packet.CodeCoARequest || p.Code == packet.CodeDisconnectRequest):
		return h.coa.ServeRADIUS(ctx, req)
	}
	var code packet.Code
	var body func([]byte) ([]byte, error)
	switch p.Code {
	case packet.CodeCoARequest, packet.CodeDisconnectRequest:
		code = packet.CodeCoANAK
		if p.Code == packet.CodeDisconnectRequest {
			code = packet.CodeDisconnectNAK
		}
		body = func(b []byte) ([]byte, error) {
			return packet.AppendAttr(b, packet.AttrErrorCause, binary.BigEndian.AppendUint32(nil, errorCauseUnsupportedService))
		}
	case packet.CodeAccessRequest:
		code = packet.CodeAccessReject
		body = func(b []byte) ([]byte, error) {
			return packet.AppendAttr(b, packet.AttrReplyMessage, []byte("mxedge: requests from the cloud are not served yet"))
		}
	default:
		h.warn.Log(slog.LevelWarn, "cloud_unacknowledged", "request from the cloud not served (not implemented yet); not acknowledged",
			"peer", h.peer, "code", p.Code.String(), "id", p.ID)
		return nil, proxy.OutcomeDropped
	}
	reply, err := proxy.Reply(req, code, body)
	if err != nil {
		h.warn.Log(slog.LevelError, "cloud_reply_failed", "answering the cloud failed", "peer", h.peer, "code", p.Code.String(), "err", err)
		return nil, proxy.OutcomeDropped
	}
	h.warn.Log(slog.LevelWarn, "cloud_refused", "request from the cloud not served yet; refused",
		"peer", h.peer, "code", p.Code.String(), "id", p.ID, "answer", code.String())
	return reply, proxy.OutcomeLocal
}

func modTime(p string) time.Time {
	if fi, err := os.Stat(p); err == nil {
		return fi.ModTime()
	}
	return time.Time{}
}
