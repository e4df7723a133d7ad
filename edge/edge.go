package edge

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"reflect"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mxedge/mxedge/cache"
	"github.com/mxedge/mxedge/cloudlink"
	"github.com/mxedge/mxedge/edge/config"
	"github.com/mxedge/mxedge/edge/internal/notify"
	"github.com/mxedge/mxedge/proxy"
	"github.com/mxedge/mxedge/proxy/radsec"
	"github.com/mxedge/mxedge/proxy/udp"
)

// radsecSecret is the RADIUS shared secret used inside every RadSec link
// (RFC 6614 §2.3).
var radsecSecret = []byte("radsec")

// Options are what cmd/mxedge hands the daemon.
type Options struct {
	ConfigPath string
	Config     *config.Config
	Version    string
	Stderr     io.Writer
}

// App is a running edge.
type App struct {
	opts    Options
	log     *slog.Logger
	reg     *prometheus.Registry
	cfg     atomic.Pointer[config.Config]
	clients atomic.Pointer[proxy.ClientTable]
	router  *Router
	fed     *Federation // in front of the router (federation.go)
	reauth  *reauth     // re-authorisation after an outage (reauth.go)
	cloud   *radsec.Client
	cloudRS config.CloudRadSec // what cloud was built from
	// cloudLoaded are the modification times of the certificate, key and
	// CA files cloud was built from: a rotated file is a change too.
	cloudLoaded [3]time.Time
	servers     []*udp.Server
	radsecL     *radsecListener // nil while off (radseclisten.go)
	conns       []boundConn
	metrics     net.Listener
	// selfSecret authenticates the watchdog's self-check (see watchdog.go).
	selfSecret []byte
	// beats are the working loops' heartbeats (watchdog.go); nil without
	// a systemd watchdog.
	beats     *notify.Heartbeats
	unchecked sync.Map // netip.AddrPort → true: listeners the self-check could not reach, logged once
	reloads   *prometheus.CounterVec
	reloadOK  prometheus.Gauge
	local     *localNAC // nil unless survivability built it (local.go)
	// link is the cloud link (cloud.go), which a registration made while
	// the daemon runs starts (register.go).
	link link
	side sidecars   // control socket and cache learning (control.go, learn.go)
	cc   cloudState // the cloud's pushed config (cloudconfig.go)
	// health decides cloud or survival (health.go); bgStop ends it, the
	// accounting replay and the cache sweeper.
	health *health
	bgStop context.CancelFunc
	bgWG   sync.WaitGroup
	panics *prometheus.CounterVec // mxedge_panics_total{component="edge"}
	// resync refills the cache from the cloud at once after a damaged
	// file was replaced by an empty one; nil until the cloud link runs.
	resync atomic.Pointer[cloudlink.Syncer]

	console consoleWire  // the web console's decision recorder (consolewire.go)
	restart restartState // settings a reload changed that need a restart (restart.go)
}

// Run starts the edge and blocks until ctx ends, then shuts down in order:
// stop reading, finish in-flight requests under a deadline, close upstreams.
// SIGHUP reloads the config file.
func Run(ctx context.Context, opts Options) error {
	a, err := Start(ctx, opts)
	if err != nil {
		return err
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for {
		select {
		case <-ctx.Done():
			notify.Stopping()
			a.log.Info("stopping")
			sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			return a.Shutdown(sctx)
		case <-hup:
			notify.Reloading()
			if err := a.Reload(); err != nil {
				a.log.Error("reload refused; keeping the running config", "err", err)
			}
			notify.Ready()
		}
	}
}

// Start builds everything from opts.Config and binds the listeners.
func Start(ctx context.Context, opts Options) (*App, error) {
	cfg := opts.Config
	if opts.Stderr == nil {
		opts.Stderr = os.Stderr
	}
	a := &App{opts: opts, log: newLogger(opts.Stderr, cfg.Log), reg: newRegistry(), selfSecret: newSelfCheckSecret()}
	a.beats = newBeats()        // before the loops that report to it start
	cfg = a.startWithCloud(cfg) // cloudconfig.go: the persisted cloud config fills what the file leaves out
	a.cfg.Store(cfg)
	a.restart.started = cfg
	a.registerMetrics()
	for _, w := range cfg.Warnings() {
		a.log.Warn("config", "note", w)
	}

	table, err := buildClients(cfg, a.selfSecret)
	if err != nil {
		return nil, err
	}
	a.clients.Store(table)

	fwd := proxy.NewForwarder(radsecSecret, cfg.Cloud.RadSec.Timeout)
	fwd.Describe = true // the cloud is told which client asked (docs/cloud-api.md)
	a.router = newRouter(a.log, a.reg, fwd)
	if m := cfg.Survivability.Mode; m == "cloud" || m == "local" {
		a.router.forced.Store(m)
	}
	a.router.fallback.Store(int64(cfg.Survivability.FallbackAfter))
	if a.fed, err = NewFederation(cfg, a.router, a.log.With("component", "federation"), a.reg); err != nil {
		return nil, err
	}
	if a.reauth, err = a.newReauth(); err != nil {
		return nil, err
	}
	a.router.localSeen = a.reauth.seen
	a.health = newHealth(cfg.Survivability.Health, a.log.With("component", "health"), a.reg, a.probeTarget, a.onModeChange)
	a.router.health = a.health
	a.cloudRS = cloudRadSec(cfg)
	a.cloudLoaded = certTimes(a.cloudRS)
	if a.cloud, err = a.newCloudPool(a.cloudRS); err != nil {
		return nil, err
	}
	if a.cloud != nil {
		a.router.setCloud(a.cloud)
	} else if _, err := cloudlink.LoadRegistration(cfg.StateDir); !errors.Is(err, cloudlink.ErrNotRegistered) {
		// Unregistered, the edge waits for the registration (register.go).
		a.log.Warn("no cloud RadSec servers (cloud.radsec.servers, or a registration): requests have nowhere to go")
	}

	if err := a.startLocal(cfg); err != nil {
		a.closeAll()
		return nil, err
	}
	var store *cache.Store
	if a.local != nil {
		store = a.local.store
	}
	bg, bgStop := context.WithCancel(context.WithoutCancel(ctx))
	a.bgStop = bgStop
	if p, servers := a.probeTarget(); p != nil {
		a.health.seed(servers)
	}
	a.bgGo(bg, "health", func() { a.health.run(bg) })
	if store != nil {
		a.router.hold = newAcctHold(store, a.log.With("component", "accounting"), a.reg)
		a.bgGo(bg, "accounting_replay", func() { a.router.hold.runReplay(bg, a.replayReady, a.replaySend) })
		a.bgGo(bg, "cache_sweeper", func() { store.RunSweeper(bg, sweepInterval) })
	}
	a.router.learn = a.startLearning(cfg, store)
	a.link.ctx, a.link.store = ctx, store
	stopLink, linkStatus, err := a.startCloud(ctx, cfg, store)
	if err != nil {
		a.closeAll()
		return nil, err
	}
	a.setLink(stopLink, linkStatus)
	if err := a.listen(ctx, cfg); err != nil {
		a.closeAll()
		return nil, err
	}
	if err := a.startRadSec(ctx, cfg); err != nil {
		a.closeAll()
		return nil, err
	}
	if err := a.startControl(ctx); err != nil {
		a.closeAll()
		return nil, err
	}
	notify.Ready()
	// The addresses bound, not the configured ones: with port 0 in the
	// config this line is where a supervisor or a test learns the ports.
	a.log.Info("mxedge ready", "version", opts.Version, "auth", a.boundAddrs("auth"),
		"acct", a.boundAddrs("acct"), "radsec", a.radsecAddrs(), "clients", len(cfg.RADIUS.Clients),
		"cloud", a.cloudRS.Servers, "metrics", a.metricsAddr())
	go a.runWatchdog(ctx)
	return a, nil
}

func (a *App) registerMetrics() {
	info := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "mxedge_build_info", Help: "Build information; always 1.",
	}, []string{"version"})
	info.WithLabelValues(a.opts.Version).Set(1)
	a.reloads = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "mxedge_config_reloads_total", Help: "Config reloads by result.",
	}, []string{"result"})
	a.reloads.WithLabelValues("ok")
	a.reloads.WithLabelValues("error")
	a.reloadOK = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "mxedge_config_last_reload_successful",
		Help: "1 if the last config reload was applied; see mxedge_config_restart_pending for settings it left for a restart.",
	})
	a.reloadOK.Set(1)
	a.panics = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name:        "mxedge_panics_total",
		Help:        "Panics recovered in background goroutines, which then restart.",
		ConstLabels: prometheus.Labels{"component": "edge"},
	}, []string{"goroutine"})
	a.reg.MustRegister(info, a.reloads, a.reloadOK, a.panics)
	a.registerRestartMetrics()
}

// buildClients turns the radius.clients section into a lookup table. The
// config's warnings already name every client that opted out of
// Message-Authenticator; Start logs them.
func buildClients(cfg *config.Config, selfSecret []byte) (*proxy.ClientTable, error) {
	cs := make([]*proxy.Client, 0, len(cfg.RADIUS.Clients)+2)
	for _, at := range []netip.Addr{selfCheckAddr, selfCheckAddr6} {
		self := selfCheckClientAt(at, selfSecret)
		for _, c := range cfg.RADIUS.Clients {
			if c.Address == self.Prefix {
				self = nil // the operator uses this address; skip the self-check client
			}
		}
		if self != nil {
			cs = append(cs, self)
		}
	}
	for _, c := range cfg.RADIUS.Clients {
		cs = append(cs, &proxy.Client{
			Name: c.Name, Prefix: c.Address, Secret: c.Secret.Reveal(), Vendor: c.Vendor, Site: c.Site,
			RequireMessageAuthenticator: c.RequireMessageAuthenticator,
			LimitProxyState:             c.LimitProxyState, CoAPort: c.CoAPort,
		})
	}
	return proxy.NewClientTable(cs)
}

// newCloudPool builds the RadSec pool toward the cloud; nil without
// servers.
func (a *App) newCloudPool(rs config.CloudRadSec) (*radsec.Client, error) {
	if len(rs.Servers) == 0 {
		return nil, nil
	}
	tc, err := cloudTLS(rs)
	if err != nil {
		return nil, err
	}
	c, err := radsec.New(radsec.Config{
		Servers:        rs.Servers,
		TLS:            tc,
		Timeout:        rs.Timeout,
		StatusInterval: rs.StatusInterval,
		IdleTimeout:    rs.IdleTimeout,
		Logger:         a.log.With("component", "cloud-radsec"),
		Registerer:     a.reg,
		Heartbeats:     a.heartbeat,
		OnStateChange: func(server string, up bool) {
			a.log.Info("cloud upstream state", "upstream", server, "up", up)
		},
	})
	if err != nil {
		return nil, fmt.Errorf("cloud.radsec: %w", err)
	}
	return c, nil
}

func cloudTLS(c config.CloudRadSec) (*tls.Config, error) {
	if c.Cert == "" || c.Key == "" {
		return nil, errors.New("cloud.radsec.cert and cloud.radsec.key: a client certificate is required for mutual TLS")
	}
	cert, err := tls.LoadX509KeyPair(c.Cert, c.Key)
	if err != nil {
		return nil, fmt.Errorf("cloud.radsec.cert/key: %w", err)
	}
	pool, err := loadPool(c.CA)
	if err != nil {
		return nil, fmt.Errorf("cloud.radsec.ca: %w", err)
	}
	return &tls.Config{
		Certificates: []tls.Certificate{cert},
		RootCAs:      pool,
		ServerName:   c.ServerName,
		MinVersion:   tls.VersionTLS12,
	}, nil
}

func loadPool(path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s: no PEM certificates", path)
	}
	return pool, nil
}

func (a *App) listen(ctx context.Context, cfg *config.Config) error {
	if cfg.Metrics.Listen != "" {
		ln, err := net.Listen("tcp", cfg.Metrics.Listen)
		if err != nil {
			return fmt.Errorf("metrics.listen: %w", err)
		}
		a.metrics = ln
		if err := a.startObservability(ctx, ln, cfg); err != nil {
			return err
		}
	}
	for _, kind := range []string{"auth", "acct"} {
		addrs := cfg.RADIUS.AuthListen
		if kind == "acct" {
			addrs = cfg.RADIUS.AcctListen
		}
		if len(addrs) == 0 {
			continue
		}
		srv, err := udp.New(udp.Config{
			Kind:            udp.Kind(kind),
			Clients:         a.clients.Load,
			Handler:         a.fed,
			DuplicateWindow: cfg.RADIUS.DuplicateWindow,
			Logger:          a.log, // the server adds listener=kind itself
			Registerer:      prometheus.WrapRegistererWith(prometheus.Labels{"listener": kind}, a.reg),
			Heartbeats:      a.heartbeat,
		})
		if err != nil {
			return err
		}
		a.servers = append(a.servers, srv)
		for _, addr := range addrs {
			pc, err := net.ListenPacket("udp", addr)
			if err != nil {
				return fmt.Errorf("radius.%s_listen: %w", kind, err)
			}
			a.conns = append(a.conns, boundConn{kind, pc})
			go func() {
				if err := srv.Serve(pc); err != nil && ctx.Err() == nil {
					a.log.Error("listener stopped", "addr", pc.LocalAddr().String(), "err", err)
				}
			}()
		}
	}
	return nil
}

// boundConn is a RADIUS socket bound at start and what it serves. The kind
// is recorded at bind time: a reload may change radius.auth_listen in the
// config without rebinding anything.
type boundConn struct {
	kind string // "auth" or "acct"
	pc   net.PacketConn
}

// AuthAddrs returns the bound auth listener addresses (for tests on :0).
func (a *App) AuthAddrs() []net.Addr {
	var out []net.Addr
	for _, c := range a.conns {
		if c.kind == "auth" {
			out = append(out, c.pc.LocalAddr())
		}
	}
	return out
}

// boundAddrs returns the addresses of the RADIUS sockets of one kind
// ("auth" or "acct") as bound at start, as host:port.
func (a *App) boundAddrs(kind string) []string {
	out := []string{}
	for _, c := range a.conns {
		if c.kind == kind {
			out = append(out, c.pc.LocalAddr().String())
		}
	}
	return out
}

// radsecAddrs returns the RadSec listener's bound addresses as host:port,
// an empty list (not null) when the listener is off, so the ready line
// always names it.
func (a *App) radsecAddrs() []string {
	out := []string{}
	for _, ad := range a.RadSecAddrs() {
		out = append(out, ad.String())
	}
	return out
}

// metricsAddr returns the metrics listener's bound host:port, or "" when
// metrics.listen is empty.
func (a *App) metricsAddr() string {
	if a.metrics == nil {
		return ""
	}
	return a.metrics.Addr().String()
}

func (a *App) healthz() (bool, map[string]any) {
	// Through the router: Reload may swap a.cloud from another goroutine.
	box := a.router.cloud.Load()
	cloudUp := box != nil && box.u.Healthy()
	return true, map[string]any{"status": "serving", "cloud_reachable": cloudUp, "mode": a.router.Mode()}
}

// Reload re-reads the config file and swaps in what can change without
// closing sockets: the client table (secrets included). An invalid file
// is refused and the running config stays.
func (a *App) Reload() error {
	a.cc.reloadMu.Lock() // cloud pushes reload too (cloudconfig.go)
	defer a.cc.reloadMu.Unlock()
	cfg, err := config.Load(a.opts.ConfigPath)
	if err == nil {
		err = cfg.CheckFiles(config.FileCheck{}) // what run would refuse, reload refuses
	}
	if err != nil {
		a.reloads.WithLabelValues("error").Inc()
		a.reloadOK.Set(0)
		return err
	}
	cfg = a.withCloud(cfg)
	table, err := buildClients(cfg, a.selfSecret)
	if err != nil {
		a.reloads.WithLabelValues("error").Inc()
		a.reloadOK.Set(0)
		return err
	}
	if err := a.reloadRadSec(cfg); err != nil {
		a.reloads.WithLabelValues("error").Inc()
		a.reloadOK.Set(0)
		return err
	}
	if err := a.refreshCloudPool(cfg); err != nil {
		a.reloads.WithLabelValues("error").Inc()
		a.reloadOK.Set(0)
		return err
	}
	if err := a.fed.Reload(cfg); err != nil {
		a.log.Error("federation reload refused; keeping the running routes", "err", err)
	}
	a.clients.Store(table)
	mode := cfg.Survivability.Mode
	if mode == "auto" {
		mode = ""
	}
	a.router.forced.Store(mode)
	a.router.fallback.Store(int64(cfg.Survivability.FallbackAfter))
	a.health.setConfig(cfg.Survivability.Health)
	a.reloadLocal(cfg)
	a.cfg.Store(cfg)
	a.reloads.WithLabelValues("ok").Inc()
	a.reloadOK.Set(1)
	if len(a.noteRestart(cfg)) == 0 {
		a.log.Info("config reloaded", "clients", len(cfg.RADIUS.Clients))
	}
	if err := a.startLinkIfRegistered(); err != nil { // a registration made since
		a.log.Error("registration not picked up", "err", err)
	}
	return nil
}

// refreshCloudPool replaces the cloud RadSec pool when its settings, the
// registration they come from or their files changed. The caller holds
// a.cc.reloadMu.
func (a *App) refreshCloudPool(cfg *config.Config) error {
	rs := cloudRadSec(cfg)
	if reflect.DeepEqual(rs, a.cloudRS) && !certsChanged(rs, a.cloudLoaded) {
		return nil
	}
	pool, err := a.newCloudPool(rs)
	if err != nil {
		return err
	}
	old := a.cloud
	a.cloud, a.cloudRS, a.cloudLoaded = pool, rs, certTimes(rs)
	if pool != nil {
		a.router.setCloud(pool)
	} else {
		a.router.setCloud(nil)
	}
	if old != nil {
		// Requests already in the old pool finish there; close it
		// once the longest of them has timed out.
		time.AfterFunc(old.Timeout()+time.Second, func() { old.Close() })
	}
	a.log.Info("cloud RadSec pool replaced", "servers", rs.Servers)
	return nil
}

// Shutdown stops reading, waits for in-flight requests under ctx, then
// closes upstreams.
func (a *App) Shutdown(ctx context.Context) error {
	var wg sync.WaitGroup
	for _, s := range a.servers {
		wg.Add(1)
		go func() { defer wg.Done(); s.Shutdown(ctx) }()
	}
	wg.Go(func() { a.radsecL.shutdown(ctx) })
	wg.Wait()
	a.closeAll()
	return nil
}

func (a *App) closeAll() {
	a.stopSidecars()
	if a.bgStop != nil {
		a.bgStop()
		a.bgWG.Wait() // the replay and the sweeper use the store
	}
	a.stopLink() // before the store it writes to closes
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		a.local.close(ctx)
	}()
	for _, c := range a.conns {
		c.pc.Close()
	}
	a.radsecL.close()
	if a.cloud != nil {
		a.cloud.Close()
	}
	a.reauth.close()
	if a.fed != nil {
		a.fed.Close()
	}
	if a.metrics != nil {
		a.metrics.Close()
	}
}

// certTimes returns the modification times of rs's certificate, key and CA.
func certTimes(rs config.CloudRadSec) [3]time.Time {
	var t [3]time.Time
	for i, p := range []string{rs.Cert, rs.Key, rs.CA} {
		if fi, err := os.Stat(p); err == nil {
			t[i] = fi.ModTime()
		}
	}
	return t
}

func certsChanged(rs config.CloudRadSec, loaded [3]time.Time) bool {
	return certTimes(rs) != loaded
}
