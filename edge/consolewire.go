package edge

import (
	"bytes"
	"crypto/tls"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/mxedge/mxedge/cache"
	"github.com/mxedge/mxedge/edge/config"
	"github.com/mxedge/mxedge/edge/console"
	"github.com/mxedge/mxedge/edge/nac"
	"github.com/mxedge/mxedge/proxy"
	"github.com/mxedge/mxedge/proxy/packet"
)

// consoleWire connects the web console (edge/console) to the daemon: the
// recorder that the local NAC's and the cloud's decisions go into, and the
// Source its pages read. The recorder exists only while the console is
// served; until then the hooks cost an atomic load.
type consoleWire struct {
	rec atomic.Pointer[console.Recorder]
}

// nacDecision is the local NAC's OnDecision hook: Allowed and Denied
// events are decisions; the certificate events around them are not.
func (w *consoleWire) nacDecision(ev cache.Event, fields []cache.Field) {
	rec := w.rec.Load()
	if rec == nil || (ev.Type != nac.EventAllowed && ev.Type != nac.EventDenied) {
		return
	}
	d := console.Decision{Time: ev.Time, MAC: console.FormatMAC(ev.MAC), Identity: ev.Identity, Reason: ev.Reason}
	for _, f := range fields {
		switch f.Key {
		case "auth_type":
			d.Method = f.Value
		case "nas":
			d.Client = f.Value
		case "result":
			d.Result = f.Value
		case "vlan":
			d.VLAN = f.Value
		case "source":
			d.Source = f.Value
		case "reason":
			if d.Reason == "" {
				d.Reason = f.Value
			}
		}
	}
	if d.Method == cache.AuthMAB && d.Identity == ev.MAC {
		d.Identity = "" // a MAB User-Name is the MAC again
	}
	if d.Source == "" {
		d.Source = "none"
	}
	rec.Record(d)
}

// firstHook is newLocal's optional decision hook: tests build a local
// NAC without one.
func firstHook(hs []func(cache.Event, []cache.Field)) func(cache.Event, []cache.Field) {
	if len(hs) == 0 {
		return nil
	}
	return hs[0]
}

// cloudDecision records an Access-Accept or Access-Reject the cloud sent
// back for req. It is chained onto the router's learn hook, which sees
// every answered cloud forward on the request's goroutine.
func (w *consoleWire) cloudDecision(req *proxy.Request, reply []byte) {
	rec := w.rec.Load()
	if rec == nil || req == nil || req.Packet == nil || req.Packet.Code != packet.CodeAccessRequest || len(reply) == 0 {
		return
	}
	d := console.Decision{Time: req.Received, Source: "cloud"}
	switch packet.Code(reply[0]) {
	case packet.CodeAccessAccept:
		d.Result = "accept"
	case packet.CodeAccessReject:
		d.Result = "reject"
	default:
		return // a challenge: the conversation goes on
	}
	if d.Time.IsZero() {
		d.Time = time.Now()
	}
	if req.Client != nil {
		d.Client = req.Client.Name
	}
	user, _ := req.Packet.Lookup(packet.AttrUserName)
	csid, _ := req.Packet.Lookup(packet.AttrCallingStationID)
	d.MAC, d.Identity = console.FormatMAC(string(csid)), string(user)
	_, userMAC := cache.NormalizeMAC(string(user))
	switch {
	case req.Packet.Count(packet.AttrEAPMessage) > 0:
		d.Method = authEAP
	case userMAC && (len(csid) == 0 || console.FormatMAC(string(user)) == d.MAC):
		// MAB by the same rule of thumb as nac.MABAddress, without
		// decrypting the password: the console only labels it.
		d.Method, d.Identity = authMAB, ""
	default:
		d.Method = authPassword
	}
	if d.MAC == "" {
		d.MAC = console.FormatMAC(string(user))
	}
	if d.Result == "accept" {
		if p, err := packet.Parse(reply); err == nil {
			if v, ok := p.Lookup(packet.AttrTunnelPrivateGroupID); ok {
				if len(v) > 0 && v[0] <= maxTunnelTag {
					v = v[1:] // RFC 2868 tag octet
				}
				d.VLAN = string(bytes.Clone(v))
			}
		}
	}
	rec.Record(d)
}

// chainLearn runs the console's cloud hook after learn (which may be nil).
func (w *consoleWire) chainLearn(learn func(*proxy.Request, []byte)) func(*proxy.Request, []byte) {
	if learn == nil {
		return w.cloudDecision
	}
	return func(req *proxy.Request, reply []byte) {
		learn(req, reply)
		w.cloudDecision(req, reply)
	}
}

// consoleHandler builds the console for the metrics listener, or nil when
// metrics.console is off. Off loopback it asks for the token in
// cfg.ConsoleTokenFile, creating the file when there is none.
func (a *App) consoleHandler(cfg *config.Config, secure bool) (http.Handler, error) {
	if !cfg.Metrics.Console {
		return nil, nil
	}
	rec := console.NewRecorder(console.DefaultRecorderSize)
	var auth console.Auth
	if !config.IsLoopbackListen(cfg.Metrics.Listen) {
		path := cfg.ConsoleTokenFile()
		if _, created, err := console.EnsureToken(path); err != nil {
			return nil, err
		} else if created {
			a.log.Info("console token created; `mxedge console-token` prints it", "token_file", path)
		}
		tf := &console.TokenFile{Path: path}
		auth = console.Auth{Token: tf.Get, Secure: secure}
	}
	h, err := console.New(console.Config{
		Source: consoleSource{a}, Recorder: rec, Gatherer: a.reg, Auth: auth,
		Logger: a.log.With("component", "console"),
	})
	if err != nil {
		return nil, err
	}
	a.console.rec.Store(rec)
	a.log.Info("web console serving", "url", consoleURL(cfg.Metrics.Listen, secure), "token_required", auth.Required())
	return h, nil
}

// consoleURL is the console's address for the log line.
func consoleURL(listen string, secure bool) string {
	scheme := "http"
	if secure {
		scheme = "https"
	}
	return scheme + "://" + listen + console.Prefix
}

// metricsTLS is the TLS config of the metrics listener with metrics.https:
// the certificate is read again when its files change.
func (a *App) metricsTLS(cfg *config.Config) (*tls.Config, error) {
	certPath, keyPath := cfg.MetricsTLS()
	cf := &certFile{cert: certPath, key: keyPath, log: a.log.With("component", "console")}
	if _, err := cf.get(); err != nil {
		return nil, err
	}
	return &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return cf.get() },
	}, nil
}

// consoleSource answers the console's pages from the running App.
type consoleSource struct{ a *App }

func (s consoleSource) Now() console.Now {
	a := s.a
	st := a.statusReport(time.Now())
	n := console.Now{Mode: st.Mode, ModeReason: st.ModeReason, Registered: st.Registered, Servers: []console.Server{}}
	probes := map[string]ServerHealth{}
	if hs := st.Health; hs != nil {
		n.Since = hs.Since
		if t := hs.Last; t != nil {
			n.Last = &console.Transition{From: string(t.From), To: string(t.To), Reason: t.Reason, Detail: t.Detail, At: t.At}
		}
		for _, p := range hs.Servers {
			probes[p.Server] = p
		}
	}
	for _, u := range st.Upstreams {
		sv := console.Server{Server: u.Server}
		if p, ok := probes[u.Server]; ok {
			sv.Probed, sv.OK, sv.Error, sv.Checked = true, p.OK, p.Error, p.Checked
			sv.RTTms = float64(p.RTT.Microseconds()) / 1000
		}
		n.Servers = append(n.Servers, sv)
	}
	if c := st.Cloud; c != nil {
		n.LastSync, n.LastSyncError = c.LastSync, c.LastError
	}
	if c := st.Cache; c != nil {
		n.Cache = &console.CacheNow{Entries: c.Entries, Outbox: c.Outbox, AccountingHeld: c.AccountingHeld,
			AccountingOldest: c.AccountingOldest, AccountingFull: c.AccountingFull}
		if c.Outbox > 0 && a.local != nil && a.local.store != nil {
			if evs, err := a.local.store.PendingEvents(1); err == nil && len(evs) > 0 {
				n.Cache.OutboxOldest = evs[0].Time
			}
		}
	}
	return n
}

func (s consoleSource) Entries(mac string) ([]console.Entry, error) {
	a := s.a
	if a.local == nil || a.local.store == nil {
		return nil, console.ErrNoCache
	}
	resp := CacheCommand(a.local.store, ControlRequest{Cmd: CmdCacheShow, MAC: mac})
	if resp.Error != "" {
		return nil, errorString(resp.Error)
	}
	out := make([]console.Entry, 0, len(resp.Entries))
	for _, e := range resp.Entries {
		out = append(out, console.Entry{MAC: e.MAC, AuthType: e.AuthType, Identity: e.Identity, Cert: e.CertIdentity,
			VLAN: e.VLAN, Role: e.Role, SessionTimeout: e.SessionTimeout, Attributes: e.Attributes, Site: e.Site,
			LastAuthAt: e.LastAuthAt, ExpiresAt: e.ExpiresAt})
	}
	return out, nil
}

func (s consoleSource) Devices() console.Devices {
	a := s.a
	var d console.Devices
	for _, c := range a.clients.Load().Clients() {
		if c.Name == "self-check" && c.Prefix.Addr() == selfCheckAddr {
			continue // the watchdog's own client (watchdog.go)
		}
		d.Clients = append(d.Clients, console.RADIUSClient{Name: c.Name, Address: c.Prefix.String(), Vendor: c.Vendor, Site: c.Site})
	}
	for _, srv := range cloudRadSec(a.cfg.Load()).Servers {
		d.Upstreams = append(d.Upstreams, console.Upstream{Server: srv})
	}
	return d
}

type errorString string

func (e errorString) Error() string { return string(e) }

var _ console.Source = consoleSource{}
