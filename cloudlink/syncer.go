package cloudlink

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mxedge/mxedge/cache"
)

// Store is the part of the cache the Syncer needs.
type Store interface {
	ApplySync(cache.SyncPage) error
	BeginFull() error
	Cursor() string
	PendingEvents(max int) ([]cache.Event, error)
	AckEvents(ids ...string) error
	OutboxLen() int
	Count() int
}

// Defaults of SyncerConfig.
const (
	DefaultSyncInterval      = 30 * time.Minute
	DefaultHeartbeatInterval = time.Minute
	DefaultEventInterval     = 5 * time.Second
	DefaultPageSize          = 5000
	DefaultEventBatch        = 500
	DefaultMaxBackoff        = 5 * time.Minute

	// ConfigFile keeps the last config pulled, with its ETag, so that an
	// edge restarted during an outage still has it.
	ConfigFile = "cloud-config.json"
	// ConfigDir receives the certificate files of the cloud config.
	ConfigDir = "cloud"

	// maxPagesPerRound bounds the cache pages one sync round pulls, so a
	// cloud that never says "last page" cannot keep a round going.
	maxPagesPerRound = 100_000
)

const (
	opConfig    = "config"
	opCache     = "cache"
	opEvents    = "events"
	opHeartbeat = "heartbeat"
)

// SyncerConfig configures a Syncer. Client is required; Store may be nil
// (survivability off), which leaves config and heartbeats only.
type SyncerConfig struct {
	Client            *Client
	Store             Store
	EdgeID            string
	StateDir          string // "" keeps the pulled config in memory only
	SyncInterval      time.Duration
	HeartbeatInterval time.Duration
	EventInterval     time.Duration // outbox poll
	PageSize          int
	EventBatch        int
	MaxBackoff        time.Duration
	// CachingSiteIDs limits the cache to clients of these sites; empty
	// takes the cloud config's list, and if that is empty too, every site.
	CachingSiteIDs []string
	// OnConfig is called with each new config (and the persisted one at
	// start). It must not block for long.
	OnConfig func(*EdgeConfig)
	// HeartbeatStatus adds fields (mode, upstreams) to each heartbeat.
	HeartbeatStatus func() map[string]string
	Version         string
	Logger          *slog.Logger
	Registerer      prometheus.Registerer
	Now             func() time.Time
	// Heartbeats registers each loop (config, cache, events, heartbeat)
	// with the daemon's watchdog: a beat as each round starts, idle while
	// it waits for the next. Nil: no watchdog.
	Heartbeats func(loop string) LoopHeartbeat
}

// Syncer keeps the edge in step with the cloud in the background.
type Syncer struct {
	cfg SyncerConfig
	log *slog.Logger
	m   *metrics

	panics *prometheus.CounterVec // mxedge_panics_total{component="cloudlink"}

	kickConfig chan struct{}
	kickCache  chan struct{}
	syncMu     sync.Mutex // one cache sync at a time
	uploadMu   sync.Mutex // one upload at a time: the outbox drains in order

	mu     sync.Mutex
	st     Status
	etag   string
	remote *EdgeConfig
}

// Status is a snapshot for `mxedge status`.
type Status struct {
	EdgeID              string    `json:"edge_id"`
	APIURL              string    `json:"api_url"`
	LastSync            time.Time `json:"last_sync,omitzero"`
	LastSyncPages       int       `json:"last_sync_pages"`
	Entries             int       `json:"entries"`
	Outbox              int       `json:"outbox"`
	EventsUploaded      int64     `json:"events_uploaded"`
	ConfigETag          string    `json:"config_etag,omitempty"`
	LastConfig          time.Time `json:"last_config,omitzero"`
	LastHeartbeat       time.Time `json:"last_heartbeat,omitzero"`
	LastError           string    `json:"last_error,omitempty"`
	LastErrorAt         time.Time `json:"last_error_at,omitzero"`
	ConsecutiveFailures int       `json:"consecutive_failures"`
}

// NewSyncer validates cfg and loads the persisted config, if any.
func NewSyncer(cfg SyncerConfig) (*Syncer, error) {
	if cfg.Client == nil {
		return nil, errors.New("cloudlink: syncer without client")
	}
	if cfg.SyncInterval <= 0 {
		cfg.SyncInterval = DefaultSyncInterval
	}
	if cfg.HeartbeatInterval <= 0 {
		cfg.HeartbeatInterval = DefaultHeartbeatInterval
	}
	if cfg.EventInterval <= 0 {
		cfg.EventInterval = DefaultEventInterval
	}
	if cfg.PageSize <= 0 {
		cfg.PageSize = DefaultPageSize
	}
	if cfg.EventBatch <= 0 {
		cfg.EventBatch = DefaultEventBatch
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = DefaultMaxBackoff
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	s := &Syncer{cfg: cfg, log: cfg.Logger, m: m, kickConfig: make(chan struct{}, 1), kickCache: make(chan struct{}, 1)}
	if s.panics, err = newPanics(cfg.Registerer); err != nil {
		return nil, err
	}
	s.st.EdgeID, s.st.APIURL = cfg.EdgeID, cfg.Client.URL()
	if cfg.StateDir != "" {
		if err := s.loadConfig(); err != nil {
			s.log.Warn("cloudlink: ignoring persisted cloud config", "err", err)
		}
	}
	return s, nil
}

// ResyncCache asks for a cache sync now rather than at the next interval:
// after the store was replaced by an empty one (a damaged file moved
// aside) the sync has no cursor and refills it whole.
func (s *Syncer) ResyncCache() {
	select {
	case s.kickCache <- struct{}{}:
	default:
	}
}

// Start runs the background loops until stop is called or ctx ends; stop
// waits for them to return.
func (s *Syncer) Start(ctx context.Context) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	run := func(op string, interval func() time.Duration, kick <-chan struct{}, fn func(context.Context) error) {
		wg.Add(1)
		go func() { defer wg.Done(); s.loop(ctx, op, interval, kick, fn) }()
	}
	jittered := func() time.Duration { return jitter(s.cfg.SyncInterval, rand.Float64()) }
	run(opConfig, jittered, s.kickConfig, func(ctx context.Context) error { _, err := s.PullConfig(ctx); return err })
	if s.cfg.Store != nil {
		run(opCache, jittered, s.kickCache, func(ctx context.Context) error { _, err := s.SyncCache(ctx); return err })
		run(opEvents, func() time.Duration { return s.cfg.EventInterval }, nil, func(ctx context.Context) error {
			_, err := s.UploadEvents(ctx)
			return err
		})
	}
	run(opHeartbeat, func() time.Duration { return s.cfg.HeartbeatInterval }, nil, s.SendHeartbeat)
	return func() { cancel(); wg.Wait() }
}

// loop runs fn now, then after interval, or after a growing backoff while
// it fails. kick runs it early.
func (s *Syncer) loop(ctx context.Context, op string, interval func() time.Duration, kick <-chan struct{}, fn func(context.Context) error) {
	var hb LoopHeartbeat = noHeartbeat{}
	if s.cfg.Heartbeats != nil {
		hb = s.cfg.Heartbeats("cloudlink " + op)
	}
	defer hb.Done()
	fails := 0
	for {
		hb.Beat()
		err := s.call(ctx, op, fn)
		if ctx.Err() != nil {
			return
		}
		var wait time.Duration
		if err != nil {
			fails++
			wait = backoff(fails, s.cfg.MaxBackoff, rand.Float64())
			s.fail(op, err, fails, wait)
		} else {
			if fails > 0 {
				s.mu.Lock()
				s.st.ConsecutiveFailures = 0
				s.mu.Unlock()
				s.log.Info("cloud API call recovered", "op", op, "after_failures", fails)
			}
			fails = 0
			wait = interval()
		}
		t := time.NewTimer(wait)
		hb.Idle()
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		case <-kick:
			t.Stop()
		}
	}
}

// LoopHeartbeat is how a loop reports to the daemon's watchdog (not to
// be confused with the API's Heartbeat message) (edge's
// heartbeat registry): Beat as a round starts, Idle before it waits, Done
// when it ends. A round is bounded by the API client's timeout per call.
type LoopHeartbeat interface {
	Beat()
	Idle()
	Done()
}

type noHeartbeat struct{}

func (noHeartbeat) Beat() {}
func (noHeartbeat) Idle() {}
func (noHeartbeat) Done() {}

// call runs one round of a loop, turning a panic into an error: a bug,
// or a cache file damaged in a way the store did not catch, must cost a
// round and a backoff, not the daemon.
func (s *Syncer) call(ctx context.Context, op string, fn func(context.Context) error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			s.panics.WithLabelValues(op).Inc()
			s.log.Error("cloudlink: loop panicked; retrying after a backoff", "op", op, "panic", r, "stack", string(debug.Stack()))
			err = fmt.Errorf("cloudlink: %s panicked: %v", op, r)
		}
	}()
	return fn(ctx)
}

// newPanics is the loops' share of mxedge_panics_total, the family every
// package counts its recovered panics in, told apart by component.
func newPanics(reg prometheus.Registerer) (*prometheus.CounterVec, error) {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name:        "mxedge_panics_total",
		Help:        "Panics recovered in background goroutines, which then restart.",
		ConstLabels: prometheus.Labels{"component": "cloudlink"},
	}, []string{"goroutine"})
	for _, op := range []string{opConfig, opCache, opEvents, opHeartbeat} {
		c.WithLabelValues(op)
	}
	if reg != nil {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return c, nil
}

func (s *Syncer) fail(op string, err error, fails int, retry time.Duration) {
	s.m.errors.WithLabelValues(op).Inc()
	s.mu.Lock()
	s.st.LastError = op + ": " + err.Error()
	s.st.LastErrorAt = s.cfg.Now()
	s.st.ConsecutiveFailures = fails
	s.mu.Unlock()
	lvl := slog.LevelWarn
	if IsPermanent(err) {
		lvl = slog.LevelError // the cloud refuses our identity: an operator must act
	}
	s.log.Log(context.Background(), lvl, "cloud API call failed", "op", op, "err", err, "failures", fails, "retry_in", retry)
}

// backoff is 1 s doubling per failure up to max, with "equal jitter":
// between half and all of it, so that edges cut off together don't
// come back in lockstep. r is in [0,1).
func backoff(fails int, max time.Duration, r float64) time.Duration {
	d := time.Second
	for i := 1; i < fails && d < max; i++ {
		d *= 2
	}
	d = min(d, max)
	return d/2 + time.Duration(r*float64(d/2))
}

// jitter spreads d by ±10%. r is in [0,1).
func jitter(d time.Duration, r float64) time.Duration {
	return time.Duration(float64(d) * (0.9 + 0.2*r))
}

// PullConfig fetches the config if it changed since the last pull,
// persists it and hands it to OnConfig.
func (s *Syncer) PullConfig(ctx context.Context) (changed bool, err error) {
	s.mu.Lock()
	etag := s.etag
	s.mu.Unlock()
	cfg, newTag, err := s.cfg.Client.Config(ctx, etag)
	if err != nil {
		return false, err
	}
	now := s.cfg.Now()
	s.mu.Lock()
	s.st.LastConfig = now
	if cfg != nil {
		s.etag, s.remote = newTag, cfg
		s.st.ConfigETag = newTag
	}
	s.mu.Unlock()
	if cfg == nil {
		return false, nil
	}
	s.log.Info("cloud config updated", "etag", newTag)
	if s.cfg.StateDir != "" {
		if err := s.saveConfig(cfg, newTag); err != nil {
			return true, err
		}
	}
	if s.cfg.OnConfig != nil {
		s.cfg.OnConfig(cfg)
	}
	return true, nil
}

// Config returns the last config pulled (or persisted), nil if none.
func (s *Syncer) Config() *EdgeConfig {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.remote
}

type persistedConfig struct {
	ETag   string      `json:"etag"`
	Config *EdgeConfig `json:"config"`
}

func (s *Syncer) loadConfig() error {
	b, err := os.ReadFile(filepath.Join(s.cfg.StateDir, ConfigFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var p persistedConfig
	if err := json.Unmarshal(b, &p); err != nil {
		return err
	}
	if p.Config == nil {
		return nil
	}
	s.etag, s.remote, s.st.ConfigETag = p.ETag, p.Config, p.ETag
	if s.cfg.OnConfig != nil {
		s.cfg.OnConfig(p.Config)
	}
	return nil
}

// saveConfig writes the config document (0600: it holds RADIUS secrets
// and a private key) and its certificate material as separate PEM files
// under ConfigDir, where the local listeners' settings can point.
func (s *Syncer) saveConfig(cfg *EdgeConfig, etag string) error {
	dir := filepath.Join(s.cfg.StateDir, ConfigDir)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return err
	}
	if cfg.OrgCA != nil {
		if err := writeFileAtomic(filepath.Join(dir, "org-ca.pem"), []byte(cfg.OrgCA.Certificates), 0o644); err != nil {
			return err
		}
		for i, crl := range cfg.OrgCA.CRLs {
			if err := writeFileAtomic(filepath.Join(dir, fmt.Sprintf("crl-%d.pem", i)), []byte(crl), 0o644); err != nil {
				return err
			}
		}
	}
	if cfg.ServerCert != nil {
		if err := writeFileAtomic(filepath.Join(dir, "server.key"), []byte(cfg.ServerCert.Key), 0o600); err != nil {
			return err
		}
		if err := writeFileAtomic(filepath.Join(dir, "server.pem"), []byte(cfg.ServerCert.Certificate), 0o644); err != nil {
			return err
		}
	}
	b, err := json.MarshalIndent(persistedConfig{ETag: etag, Config: cfg}, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(s.cfg.StateDir, ConfigFile), b, 0o600)
}

// sites returns the caching site filter: local config first, then cloud.
func (s *Syncer) sites() []string {
	if len(s.cfg.CachingSiteIDs) > 0 {
		return s.cfg.CachingSiteIDs
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.remote != nil {
		return s.remote.CachingSiteIDs
	}
	return nil
}

// SyncCache pulls pages from the store's cursor until the cloud says
// Final, committing each page with its cursor. An expired cursor restarts
// as a full resync.
func (s *Syncer) SyncCache(ctx context.Context) (pages int, err error) {
	if s.cfg.Store == nil {
		return 0, nil
	}
	s.syncMu.Lock()
	defer s.syncMu.Unlock()
	st := s.cfg.Store
	sites := s.sites()
	cursor := st.Cursor()
	restarted := false
	for pages < maxPagesPerRound {
		p, err := s.cfg.Client.CachePage(ctx, cursor, s.cfg.PageSize, sites)
		if errors.Is(err, ErrCursorExpired) && !restarted {
			s.log.Info("cloud forgot our sync cursor: full resync", "cursor", cursor)
			restarted = true
			if err := st.BeginFull(); err != nil {
				return pages, err
			}
			s.m.fullResync.Inc()
			cursor = ""
			continue
		}
		if err != nil {
			return pages, err
		}
		if p.FullStart {
			if err := st.BeginFull(); err != nil {
				return pages, err
			}
			if !restarted {
				s.m.fullResync.Inc()
			}
		}
		if err := st.ApplySync(toSyncPage(p, sites)); err != nil {
			return pages, fmt.Errorf("cloudlink: apply sync page: %w", err)
		}
		pages++
		s.m.pages.Inc()
		if p.Final {
			break
		}
		if p.Cursor == cursor {
			return pages, errors.New("cloudlink: cloud sent a non-final page without advancing the cursor")
		}
		cursor = p.Cursor
	}
	now := s.cfg.Now()
	s.m.lastSync.Set(float64(now.UnixNano()) / 1e9)
	s.mu.Lock()
	s.st.LastSync, s.st.LastSyncPages = now, pages
	s.mu.Unlock()
	s.log.Debug("cache synced", "pages", pages, "entries", st.Count())
	return pages, nil
}

// toSyncPage converts a wire page. With a site filter, an entry of another
// site becomes a tombstone: the client may have moved out of a cached site.
func toSyncPage(p *CachePage, sites []string) cache.SyncPage {
	sp := cache.SyncPage{Cursor: p.Cursor, Full: p.Full, Final: p.Final}
	sp.Tombstones = make([]cache.Key, 0, len(p.Tombstones))
	for _, t := range p.Tombstones {
		sp.Tombstones = append(sp.Tombstones, t.CacheKey())
	}
	sp.Upserts = make([]cache.Entry, 0, len(p.Upserts))
	for _, e := range p.Upserts {
		if len(sites) > 0 && !slices.Contains(sites, e.SiteID) {
			sp.Tombstones = append(sp.Tombstones, e.Key())
			continue
		}
		sp.Upserts = append(sp.Upserts, e.CacheEntry())
	}
	return sp
}

// UploadEvents drains the outbox in order, batch by batch, acking exactly
// the IDs the cloud accepted. A failed batch stays for the next attempt;
// the idempotency keys make the retry safe.
func (s *Syncer) UploadEvents(ctx context.Context) (uploaded int, err error) {
	if s.cfg.Store == nil {
		return 0, nil
	}
	s.uploadMu.Lock()
	defer s.uploadMu.Unlock()
	st := s.cfg.Store
	for st.OutboxLen() > 0 {
		evs, err := st.PendingEvents(s.cfg.EventBatch)
		if err != nil {
			return uploaded, err
		}
		if len(evs) == 0 {
			return uploaded, nil
		}
		wire := make([]Event, len(evs))
		for i, ev := range evs {
			wire[i] = EventFrom(ev)
		}
		resp, err := s.cfg.Client.UploadEvents(ctx, wire)
		if err != nil {
			return uploaded, err
		}
		if len(resp.Accepted) == 0 {
			return uploaded, errors.New("cloudlink: cloud accepted none of the events")
		}
		if err := st.AckEvents(resp.Accepted...); err != nil {
			return uploaded, err
		}
		uploaded += len(resp.Accepted)
		s.m.uploaded.Add(float64(len(resp.Accepted)))
		s.mu.Lock()
		s.st.EventsUploaded += int64(len(resp.Accepted))
		s.mu.Unlock()
		if len(resp.Accepted) < len(evs) {
			return uploaded, fmt.Errorf("cloudlink: cloud accepted %d of %d events", len(resp.Accepted), len(evs))
		}
	}
	return uploaded, nil
}

// SendHeartbeat reports status and pulls the config early when the
// cloud's ETag differs from ours.
func (s *Syncer) SendHeartbeat(ctx context.Context) error {
	st := s.Status()
	hb := Heartbeat{Version: s.cfg.Version, Time: s.cfg.Now().UTC(), CacheEntries: st.Entries,
		OutboxEvents: st.Outbox, LastError: st.LastError}
	if !st.LastSync.IsZero() {
		t := st.LastSync.UTC()
		hb.LastSyncAt = &t
	}
	if s.cfg.HeartbeatStatus != nil {
		hb.Status = s.cfg.HeartbeatStatus()
	}
	resp, err := s.cfg.Client.Heartbeat(ctx, hb)
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.st.LastHeartbeat = s.cfg.Now()
	stale := resp.ConfigETag != "" && resp.ConfigETag != s.etag
	s.mu.Unlock()
	if stale {
		select {
		case s.kickConfig <- struct{}{}:
		default:
		}
	}
	return nil
}

// Status returns a snapshot.
func (s *Syncer) Status() Status {
	s.mu.Lock()
	st := s.st
	s.mu.Unlock()
	if s.cfg.Store != nil {
		st.Entries = s.cfg.Store.Count()
		st.Outbox = s.cfg.Store.OutboxLen()
	}
	return st
}
