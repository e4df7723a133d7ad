package edge

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/mxedge/mxedge/cache"
	"github.com/mxedge/mxedge/cloudlink"
)

// The control socket lets `mxedge status` and `mxedge cache …` reach the
// running daemon: bbolt lets one process hold cache.db, so while the daemon
// runs only it can read or purge the cache. The protocol is one JSON
// request line per connection and one JSON response, so that `socat` is a
// sufficient client in an emergency.

// ControlSocketName is the control socket's name under state_dir.
const ControlSocketName = "control.sock"

// Bounds of the control socket: it is local and permissioned, but a stuck
// or hostile client must still not pin the daemon.
const (
	controlMaxConns     = 8
	controlMaxRequest   = 4 << 10
	controlReadTimeout  = 5 * time.Second
	controlWriteTimeout = 30 * time.Second
	// ControlMaxList caps the entries one cache_ls returns; the response
	// says when it was cut (Total counts them all).
	ControlMaxList = 10000
)

// Control commands.
const (
	CmdStatus     = "status"
	CmdCacheList  = "cache_ls"
	CmdCacheShow  = "cache_show"
	CmdCachePurge = "cache_purge"
)

// ControlPath returns the control socket's path for a state directory.
func ControlPath(stateDir string) string { return filepath.Join(stateDir, ControlSocketName) }

// ControlRequest is one request on the control socket.
type ControlRequest struct {
	Cmd string `json:"cmd"`
	MAC string `json:"mac,omitempty"` // cache_show; cache_purge ("" purges all)
}

// ControlResponse is the daemon's answer. Error is set when the command
// failed; the other fields depend on the command.
type ControlResponse struct {
	Error     string        `json:"error,omitempty"`
	Status    *StatusReport `json:"status,omitempty"`
	Entries   []EntryView   `json:"entries,omitempty"`
	Total     int           `json:"total,omitempty"`     // cache_ls: entries stored
	Truncated bool          `json:"truncated,omitempty"` // cache_ls: Entries is cut at ControlMaxList
	Purged    *int          `json:"purged,omitempty"`
}

// StatusReport is what `mxedge status` shows.
type StatusReport struct {
	Running    bool              `json:"running"` // false: the CLI read the stopped edge's files
	Version    string            `json:"version"`
	PID        int               `json:"pid"`
	Mode       string            `json:"mode"` // starting, cloud, survival, recovering; local or none when forced
	ModeReason string            `json:"mode_reason"`
	Health     *HealthStatus     `json:"health,omitempty"` // the uplink checker: since when, last change, probes
	Since      time.Time         `json:"since"`
	Upstreams  []UpstreamStatus  `json:"upstreams"`
	Registered bool              `json:"registered"`
	Cloud      *cloudlink.Status `json:"cloud,omitempty"`
	Cache      *CacheStatus      `json:"cache,omitempty"` // nil when no cache is open (mode cloud)
	Config     ConfigSources     `json:"config"`
	// Waiting names what the edge still needs to serve through the cloud
	// (a registration, say), with what to do about it.
	Waiting []string `json:"waiting,omitempty"`
	// Federations are the roaming routes and their servers (federation.go);
	// CoATargets the devices the cloud's CoA/Disconnect can reach (coa.go).
	Federations []FederationStatus `json:"federations,omitempty"`
	CoATargets  []CoATargetStatus  `json:"coa_targets,omitempty"`
}

// UpstreamStatus is one cloud RadSec server.
type UpstreamStatus struct {
	Server string `json:"server"`
	Up     bool   `json:"up"`
}

// CacheStatus summarises the client cache.
type CacheStatus struct {
	Path          string `json:"path"`
	Entries       int    `json:"entries"`
	Outbox        int    `json:"outbox"`
	EventsDropped int64  `json:"events_dropped"`
	FullSync      bool   `json:"full_sync_running"`
	SchemaVersion int    `json:"schema_version"`
	FileSize      int64  `json:"file_size"`
	// Accounting received while the cloud could not take it, held for
	// replay; Full means new accounting is not answered.
	AccountingHeld   int       `json:"accounting_held"`
	AccountingOldest time.Time `json:"accounting_oldest,omitzero"`
	AccountingFull   bool      `json:"accounting_full,omitempty"`

	LastFault *cache.Fault `json:"last_fault,omitempty"` // the file last found damaged: when, why, moved where
}

// ConfigSources says where the running configuration came from. The local
// file wins over the cloud's config document setting by setting (see
// cloudconfig.go); Sections names the source of each pushed setting.
type ConfigSources struct {
	File       string   `json:"file"`                  // "" when started from defaults
	Env        []string `json:"env,omitempty"`         // MXEDGE_* variables set in the daemon's environment
	CloudETag  string   `json:"cloud_etag,omitempty"`  // the cloud config document in effect
	LastPulled string   `json:"last_pulled,omitempty"` // RFC 3339
	// Sections maps each setting the cloud can push (KeyClients, …) to
	// SourceFile, SourceCloud or SourceDefault.
	Sections map[string]string `json:"sections,omitempty"`
	// RestartPending are settings a reload changed that take effect only
	// after a restart (restart.go).
	RestartPending []string `json:"restart_pending,omitempty"`
}

// EntryView is a cache entry as the CLI prints it: the same whether the
// daemon answered or the CLI read the file itself.
type EntryView struct {
	MAC            string            `json:"mac"`
	AuthType       string            `json:"auth_type"`
	Identity       string            `json:"identity,omitempty"`
	UserName       string            `json:"user_name,omitempty"`
	CertIdentity   *cache.Identity   `json:"cert,omitempty"`
	VLAN           string            `json:"vlan,omitempty"`
	Role           string            `json:"role,omitempty"`
	SessionTimeout int64             `json:"session_timeout_s,omitempty"`
	Attributes     []cache.Attribute `json:"attributes,omitempty"`
	Site           string            `json:"site,omitempty"`
	LastAuthAt     time.Time         `json:"last_auth_at"`
	ExpiresAt      time.Time         `json:"expires_at"`
}

// NewEntryView flattens e for display.
func NewEntryView(e cache.Entry) EntryView {
	v := EntryView{
		MAC: e.MAC, AuthType: e.AuthType, UserName: e.Identity.UserName,
		VLAN: e.Authorization.VLAN, Role: e.Authorization.Role,
		SessionTimeout: int64(e.Authorization.SessionTimeout / time.Second),
		Attributes:     e.Authorization.Attributes, Site: e.Site,
		LastAuthAt: e.LastAuthAt.UTC(), ExpiresAt: e.ExpiresAt.UTC(),
	}
	if e.AuthType != cache.AuthMAB {
		v.Identity = e.Identity.Key()
		id := e.Identity
		if id != (cache.Identity{UserName: id.UserName}) {
			v.CertIdentity = &id
		}
	}
	return v
}

// CacheCommand runs a cache_* request against store. The daemon serves it
// on the control socket; the CLI calls it directly when no daemon runs.
func CacheCommand(store *cache.Store, req ControlRequest) ControlResponse {
	if store == nil {
		return ControlResponse{Error: "no client cache open (survivability is off or mode is cloud)"}
	}
	switch req.Cmd {
	case CmdCacheList:
		var resp ControlResponse
		resp.Entries = []EntryView{}
		total, err := store.ListCount(func(e cache.Entry) bool {
			if len(resp.Entries) == ControlMaxList {
				resp.Truncated = true
				return false
			}
			resp.Entries = append(resp.Entries, NewEntryView(e))
			return true
		})
		if err != nil {
			return ControlResponse{Error: err.Error()}
		}
		resp.Total = total
		return resp
	case CmdCacheShow:
		mac, ok := cache.NormalizeMAC(req.MAC)
		if !ok {
			return ControlResponse{Error: fmt.Sprintf("%q is not a MAC address", req.MAC)}
		}
		resp := ControlResponse{Entries: []EntryView{}}
		// A client's entries are adjacent (keys start with the MAC), but
		// List has no seek: walk until past them.
		err := store.List(func(e cache.Entry) bool {
			if e.MAC == mac {
				resp.Entries = append(resp.Entries, NewEntryView(e))
			}
			return e.MAC <= mac
		})
		if err != nil {
			return ControlResponse{Error: err.Error()}
		}
		resp.Total = len(resp.Entries)
		return resp
	case CmdCachePurge:
		n, err := store.Purge(req.MAC)
		if err != nil {
			return ControlResponse{Error: err.Error()}
		}
		return ControlResponse{Purged: &n}
	}
	return ControlResponse{Error: fmt.Sprintf("unknown command %q", req.Cmd)}
}

// AskControl sends one request to the daemon listening at path. An error
// wrapping ErrNoDaemon means nothing listens there.
func AskControl(ctx context.Context, path string, req ControlRequest) (*ControlResponse, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ECONNREFUSED) {
			return nil, fmt.Errorf("%w: %v", ErrNoDaemon, err)
		}
		return nil, err
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	b, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	if _, err := c.Write(append(b, '\n')); err != nil {
		return nil, err
	}
	var resp ControlResponse
	if err := json.NewDecoder(c).Decode(&resp); err != nil {
		return nil, fmt.Errorf("control socket %s: %w", path, err)
	}
	return &resp, nil
}

// ErrNoDaemon is returned by AskControl when no daemon answers.
var ErrNoDaemon = errors.New("no mxedge daemon answers on the control socket")

// control is the running control socket server.
type control struct {
	ln    net.Listener
	path  string
	since time.Time
	sem   chan struct{}
	wg    sync.WaitGroup
}

// sidecars are the daemon's helpers outside the request path: the control
// socket and the learner. stopSidecars stops them before the cache closes.
type sidecars struct {
	control *control
	learner *learner
}

// startControl binds state_dir/control.sock (0660, like the state dir's
// group) and serves it. A socket left by a crashed daemon is replaced; one
// that still answers means another daemon uses this state_dir, which is an
// error. A socket that cannot be created is logged and skipped: RADIUS
// matters more than the status command.
func (a *App) startControl(ctx context.Context) error {
	cfg := a.cfg.Load()
	path := ControlPath(cfg.StateDir)
	ln, err := listenControl(path)
	if errors.Is(err, errControlInUse) {
		return err
	}
	if err != nil {
		a.log.Error("control socket unavailable: mxedge status and mxedge cache cannot reach this daemon", "path", path, "err", err)
		return nil
	}
	c := &control{ln: ln, path: path, since: time.Now(), sem: make(chan struct{}, controlMaxConns)}
	a.side.control = c
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		c.serve(a)
	}()
	a.log.Info("control socket listening", "path", path)
	return nil
}

var errControlInUse = errors.New("another mxedge answers on the control socket")

func listenControl(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	if _, err := os.Lstat(path); err == nil {
		c, err := net.DialTimeout("unix", path, time.Second)
		if err == nil {
			c.Close()
			return nil, fmt.Errorf("%w: %s", errControlInUse, path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("removing stale control socket: %w", err)
		}
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(path, 0o660); err != nil {
		ln.Close()
		return nil, err
	}
	return ln, nil
}

func (c *control) serve(a *App) {
	for {
		conn, err := c.ln.Accept()
		if err != nil {
			return // closed by stopSidecars
		}
		select {
		case c.sem <- struct{}{}:
		default:
			// Too many at once: tell the client rather than queue it.
			conn.SetWriteDeadline(time.Now().Add(time.Second))
			writeResponse(conn, ControlResponse{Error: "busy: too many control connections"})
			conn.Close()
			continue
		}
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			defer func() { <-c.sem }()
			c.handle(a, conn)
		}()
	}
}

func (c *control) handle(a *App, conn net.Conn) {
	defer conn.Close()
	defer func() {
		if r := recover(); r != nil {
			a.log.Error("control request panicked", "panic", r)
		}
	}()
	conn.SetReadDeadline(time.Now().Add(controlReadTimeout))
	req, err := readRequest(conn)
	conn.SetWriteDeadline(time.Now().Add(controlWriteTimeout))
	if err != nil {
		writeResponse(conn, ControlResponse{Error: err.Error()})
		return
	}
	writeResponse(conn, a.controlCommand(c, req))
}

// readRequest reads one request line of at most controlMaxRequest bytes.
func readRequest(r io.Reader) (ControlRequest, error) {
	var req ControlRequest
	line, err := bufio.NewReaderSize(io.LimitReader(r, controlMaxRequest+1), controlMaxRequest+1).ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) || len(line) > controlMaxRequest {
		return req, errors.New("request too long")
	}
	if err != nil && !errors.Is(err, io.EOF) {
		return req, err
	}
	if err := json.Unmarshal(line, &req); err != nil {
		return req, fmt.Errorf("bad request: %v", err)
	}
	return req, nil
}

func writeResponse(w io.Writer, resp ControlResponse) {
	b, err := json.Marshal(resp)
	if err != nil {
		b, _ = json.Marshal(ControlResponse{Error: err.Error()})
	}
	w.Write(append(b, '\n'))
}

func (a *App) controlCommand(c *control, req ControlRequest) ControlResponse {
	switch req.Cmd {
	case CmdStatus:
		return ControlResponse{Status: a.statusReport(c.since)}
	case CmdRegistered:
		if err := a.adoptRegistration(); err != nil {
			return ControlResponse{Error: err.Error()}
		}
		return ControlResponse{Status: a.statusReport(c.since)}
	}
	var store *cache.Store
	if a.local != nil {
		store = a.local.store
	}
	return CacheCommand(store, req)
}

// statusReport snapshots the daemon for `mxedge status`.
func (a *App) statusReport(since time.Time) *StatusReport {
	_, why := a.router.decide(nil)
	hs := a.health.Status()
	st := &StatusReport{
		Running: true, Version: a.opts.Version, PID: os.Getpid(), Mode: a.router.Mode(), ModeReason: why,
		Health: &hs, Since: since.UTC(), Upstreams: []UpstreamStatus{},
	}
	if box := a.router.cloud.Load(); box != nil {
		if rs, ok := box.u.(interface{ Up(string) bool }); ok {
			// The servers as the pool names them, computed again rather
			// than read from a.cloudRS, which Reload writes unlocked.
			for _, s := range cloudRadSec(a.cfg.Load()).Servers {
				st.Upstreams = append(st.Upstreams, UpstreamStatus{Server: s, Up: rs.Up(s)})
			}
		}
	}
	if ls := a.linkStatus(); ls != nil {
		if cs, ok := ls.(cloudlink.Status); ok {
			st.Registered, st.Cloud = true, &cs
			st.Config.CloudETag = cs.ConfigETag
			if !cs.LastConfig.IsZero() {
				st.Config.LastPulled = cs.LastConfig.UTC().Format(time.RFC3339)
			}
		}
	}
	if a.local != nil && a.local.store != nil {
		s := a.local.store.Stats()
		st.Cache = &CacheStatus{Path: a.local.store.Path(), Entries: s.Entries, Outbox: s.Events,
			EventsDropped: s.EventsDropped, FullSync: s.FullSync, SchemaVersion: s.SchemaVersion, FileSize: s.FileSize,
			AccountingHeld: s.AccountingHeld, AccountingOldest: s.AccountingOldest, AccountingFull: s.AccountingFull, LastFault: s.LastFault}
	}
	st.Waiting = a.waitingFor()
	st.Federations, st.CoATargets = a.fed.Status(), a.coaTargets()
	st.Config.File = a.opts.ConfigPath
	st.Config.Sections = a.configSources()
	st.Config.RestartPending = a.restartPending()
	for _, kv := range os.Environ() {
		if name, _, _ := strings.Cut(kv, "="); strings.HasPrefix(name, "MXEDGE_") {
			st.Config.Env = append(st.Config.Env, name)
		}
	}
	sort.Strings(st.Config.Env)
	return st
}

// stopSidecars closes the control socket (removing its file) and drains
// the learner; closeAll calls it before the cache closes.
func (a *App) stopSidecars() {
	if c := a.side.control; c != nil {
		c.ln.Close() // also unlinks the socket file
		c.wg.Wait()
		os.Remove(c.path)
		a.side.control = nil
	}
	if l := a.side.learner; l != nil {
		l.stop() // stays set: in-flight requests may still offer, and are ignored
	}
}
