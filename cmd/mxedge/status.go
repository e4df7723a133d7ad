package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	berrors "go.etcd.io/bbolt/errors"

	"github.com/mxedge/mxedge/cache"
	"github.com/mxedge/mxedge/cloudlink"
	"github.com/mxedge/mxedge/edge"
	"github.com/mxedge/mxedge/edge/config"
)

// `mxedge status` and `mxedge cache` ask the running daemon over its
// control socket, because bbolt lets one process hold cache.db; only when
// no daemon answers do they open the file themselves.

const (
	controlTimeout = 10 * time.Second
	// offlineLockTimeout is how long the CLI waits for cache.db's lock: a
	// daemon that holds it but does not answer is reported, not waited on.
	offlineLockTimeout = 300 * time.Millisecond
)

// cliFlags are the flags every status/cache command takes. They may come
// before or after the positional arguments.
type cliFlags struct {
	config    string
	configSet bool // --config given: a missing file is an error
	stateDir  string
	json      bool
	args      []string
}

// parseCLI parses a status/cache/console-token command line; cmd keys
// synopses. done is set with the exit code (0 after --help).
func parseCLI(cmd string, args []string, stdout, stderr io.Writer) (f cliFlags, code int, done bool) {
	fs, cfg := newFlags(cmd, stdout, stderr)
	fs.BoolVar(&f.json, "json", false, "print JSON")
	if strings.Contains(synopses[cmd], "--state-dir") {
		fs.StringVar(&f.stateDir, "state-dir", "", "state directory of the daemon to ask; the config file is then not read")
	}
	for {
		if code, done := parseHelpToStdout(fs, args, stdout); done {
			return f, code, true
		}
		args = fs.Args()
		if len(args) == 0 {
			break
		}
		f.args = append(f.args, args[0])
		args = args[1:]
	}
	f.config, f.configSet = *cfg, flagSet(fs, "config")
	return f, 0, false
}

// loadCLIConfig reads the config for a command that needs more of it
// than state_dir (console-token, cache recover).
func loadCLIConfig(f cliFlags, stderr io.Writer) (*config.Config, bool) {
	cfg, err := loadConfig(f.config, f.configSet)
	if err != nil {
		fmt.Fprintln(stderr, describe(f.config, err))
		return nil, false
	}
	return cfg, true
}

// stateConfig is the config status and cache use: they need only the
// state directory, to find the daemon's control socket. --state-dir needs
// no file at all; a file that is invalid (just edited, say) still names
// it, which is when an operator needs status most. A --config FILE that
// does not exist is an error.
func stateConfig(cmd string, f cliFlags, stderr io.Writer) (*config.Config, bool) {
	if f.stateDir != "" {
		if !filepath.IsAbs(f.stateDir) {
			abs, err := filepath.Abs(f.stateDir)
			if err != nil {
				fmt.Fprintf(stderr, "mxedge %s: --state-dir: %v\n", cmd, err)
				return nil, false
			}
			f.stateDir = abs
		}
		cfg := config.Default()
		cfg.StateDir = f.stateDir
		return cfg, true
	}
	cfg, err := loadConfig(f.config, f.configSet)
	if err == nil {
		return cfg, true
	}
	var invalid config.Errors
	if !errors.As(err, &invalid) {
		fmt.Fprintln(stderr, describe(f.config, err))
		return nil, false
	}
	data, _ := os.ReadFile(f.config)
	cfg = config.Default()
	cfg.StateDir = config.StateDir(data)
	fmt.Fprintf(stderr, "warning: %s is invalid (%d problems: mxedge check-config --config %s lists them); using state_dir %s\n",
		f.config, len(invalid), f.config, cfg.StateDir)
	return cfg, true
}

// statusCmd implements `mxedge status [--config F] [--json]`.
func statusCmd(args []string, stdout, stderr io.Writer) int {
	f, code, done := parseCLI("status", args, stdout, stderr)
	if done {
		return code
	}
	if len(f.args) > 0 {
		fmt.Fprintf(stderr, "mxedge status: unexpected argument %q\n", f.args[0])
		return 2
	}
	cfg, ok := stateConfig("status", f, stderr)
	if !ok {
		return 1
	}
	st, err := askStatus(cfg)
	if err != nil {
		fmt.Fprintln(stderr, "mxedge status:", err)
		return 1
	}
	if f.json {
		return printJSON(stdout, stderr, st)
	}
	printStatus(stdout, st)
	return 0
}

// askStatus asks the daemon, or reads the stopped edge's files.
func askStatus(cfg *config.Config) (*edge.StatusReport, error) {
	ctx, cancel := context.WithTimeout(context.Background(), controlTimeout)
	defer cancel()
	resp, err := edge.AskControl(ctx, edge.ControlPath(cfg.StateDir), edge.ControlRequest{Cmd: edge.CmdStatus})
	if err == nil {
		if resp.Error != "" {
			return nil, errors.New(resp.Error)
		}
		if resp.Status == nil {
			return nil, errors.New("the daemon sent no status")
		}
		resp.Status.Running = true
		return resp.Status, nil
	}
	if !errors.Is(err, edge.ErrNoDaemon) {
		return nil, err
	}
	st := &edge.StatusReport{Mode: "stopped", Upstreams: []edge.UpstreamStatus{}}
	if r, err := cloudlink.LoadRegistration(cfg.StateDir); err == nil {
		st.Registered = true
		st.Cloud = &cloudlink.Status{EdgeID: r.EdgeID, APIURL: r.APIURL}
	}
	store, err := openOffline(cfg)
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return nil, err
	default:
		defer store.Close()
		s := store.Stats()
		st.Cache = &edge.CacheStatus{Path: store.Path(), Entries: s.Entries, Outbox: s.Events,
			EventsDropped: s.EventsDropped, FullSync: s.FullSync, SchemaVersion: s.SchemaVersion, FileSize: s.FileSize}
	}
	return st, nil
}

// openOffline opens state_dir/cache.db when no daemon answers. A missing
// file is os.ErrNotExist (never created here); a locked one is explained.
func openOffline(cfg *config.Config) (*cache.Store, error) {
	path := filepath.Join(cfg.StateDir, "cache.db")
	if _, err := os.Stat(path); err != nil {
		return nil, err
	}
	s, err := cache.Open(path, cache.Options{
		TTL:         cfg.Survivability.CacheTTL(),
		MaxEntries:  cfg.Survivability.MaxEntries,
		LockTimeout: offlineLockTimeout,
	})
	if errors.Is(err, berrors.ErrTimeout) {
		return nil, fmt.Errorf("%s is locked by another process, but no mxedge answers on %s: "+
			"is a daemon with another state_dir or an older version running, or is it stuck?",
			path, edge.ControlPath(cfg.StateDir))
	}
	return s, err
}

func printStatus(w io.Writer, st *edge.StatusReport) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	defer tw.Flush()
	if !st.Running {
		fmt.Fprintf(tw, "daemon:\tnot running\n")
	} else {
		fmt.Fprintf(tw, "daemon:\tpid %d, version %s, since %s (%s)\n", st.PID, st.Version,
			st.Since.Format(time.RFC3339), time.Since(st.Since).Round(time.Second))
		fmt.Fprintf(tw, "mode:\t%s (%s)\n", st.Mode, st.ModeReason)
		if h := st.Health; h != nil {
			fmt.Fprintf(tw, "mode since:\t%s (%s ago)\n", h.Since.UTC().Format(time.RFC3339), time.Since(h.Since).Round(time.Second))
			if t := h.Last; t != nil {
				detail := ""
				if t.Detail != "" {
					detail = ": " + t.Detail
				}
				fmt.Fprintf(tw, "last change:\t%s → %s, %s%s\n", t.From, t.To, t.Reason, detail)
			}
		}
		probes := map[string]edge.ServerHealth{}
		if st.Health != nil {
			for _, p := range st.Health.Servers {
				probes[p.Server] = p
			}
		}
		ups := make([]string, 0, len(st.Upstreams))
		for _, u := range st.Upstreams {
			state := "down"
			if u.Up {
				state = "up"
			}
			if p, ok := probes[u.Server]; ok {
				if p.OK {
					state += fmt.Sprintf(", probe %s", p.RTT.Round(100*time.Microsecond))
				} else {
					state += ", probe failed: " + p.Error
				}
			}
			ups = append(ups, u.Server+" "+state)
		}
		if len(ups) == 0 {
			ups = append(ups, "none")
		}
		fmt.Fprintf(tw, "upstreams:\t%s\n", strings.Join(ups, ", "))
	}
	for _, w := range st.Waiting {
		fmt.Fprintf(tw, "waiting for:\t%s\n", w)
	}
	if !st.Registered || st.Cloud == nil {
		fmt.Fprintf(tw, "cloud:\tnot registered\n")
	} else {
		c := st.Cloud
		fmt.Fprintf(tw, "cloud:\tedge %s at %s\n", c.EdgeID, c.APIURL)
		if st.Running {
			last := "never"
			if !c.LastSync.IsZero() {
				last = fmt.Sprintf("%s (%s ago, %d pages)", c.LastSync.UTC().Format(time.RFC3339),
					time.Since(c.LastSync).Round(time.Second), c.LastSyncPages)
			}
			fmt.Fprintf(tw, "last sync:\t%s\n", last)
			fmt.Fprintf(tw, "events uploaded:\t%d\n", c.EventsUploaded)
			if c.LastError != "" {
				fmt.Fprintf(tw, "last error:\t%s (%s, %d in a row)\n", c.LastError,
					c.LastErrorAt.UTC().Format(time.RFC3339), c.ConsecutiveFailures)
			}
		}
	}
	if st.Cache == nil {
		fmt.Fprintf(tw, "cache:\tnone open\n")
	} else {
		c := st.Cache
		full := ""
		if c.FullSync {
			full = ", full resync running"
		}
		fmt.Fprintf(tw, "cache:\t%d entries, outbox %d events (%d dropped)%s\n", c.Entries, c.Outbox, c.EventsDropped, full)
		fmt.Fprintf(tw, "cache file:\t%s (%d bytes, schema %d)\n", c.Path, c.FileSize, c.SchemaVersion)
		held := fmt.Sprintf("%d records held for the cloud", c.AccountingHeld)
		if c.AccountingHeld > 0 && !c.AccountingOldest.IsZero() {
			held += fmt.Sprintf(", oldest %s ago", time.Since(c.AccountingOldest).Round(time.Second))
		}
		if c.AccountingFull {
			held += ", FULL: new accounting is not answered"
		}
		fmt.Fprintf(tw, "accounting:\t%s\n", held)
		if f := c.LastFault; f != nil {
			moved := ""
			if f.MovedTo != "" {
				moved = fmt.Sprintf(", moved aside to %s (recovered %d events, %d accounting records)",
					f.MovedTo, f.Recovered.Events, f.Recovered.Accounting)
			}
			fmt.Fprintf(tw, "cache fault:\t%s %s: %s%s\n", f.At.UTC().Format(time.RFC3339), f.Reason, f.Err, moved)
		}
	}
	for _, f := range st.Federations {
		fmt.Fprintf(tw, "federation %s:\t%s, own realms %s, ssids %s\n", f.Name, f.LoadBalance,
			orDefault(strings.Join(f.OwnRealms, ","), "none"), orDefault(strings.Join(f.SSIDs, ","), "any"))
		server := func(kind, addr string, up bool) {
			state := "down"
			if up {
				state = "up"
			}
			fmt.Fprintf(tw, "  %s server:\t%s %s\n", kind, addr, state)
		}
		for _, s := range f.AuthServers {
			server("auth", s.Address, s.Up)
		}
		for _, s := range f.AcctServers {
			server("acct", s.Address, s.Up)
		}
	}
	for _, c := range st.CoATargets {
		checks := []string{}
		if c.RequireMessageAuthenticator {
			checks = append(checks, "Message-Authenticator required")
		}
		if c.EventTimestampCheck {
			checks = append(checks, "Event-Timestamp checked")
		}
		fmt.Fprintf(tw, "coa target:\t%s %s port %d (%s)\n", c.Name, c.Address, c.Port, orDefault(strings.Join(checks, ", "), "no checks"))
	}
	if st.Running {
		src := []string{"file " + orDefault(st.Config.File, "(defaults)")}
		if len(st.Config.Env) > 0 {
			src = append(src, "env "+strings.Join(st.Config.Env, ","))
		}
		if st.Config.CloudETag != "" {
			src = append(src, "cloud config "+st.Config.CloudETag)
		}
		fmt.Fprintf(tw, "config:\t%s\n", strings.Join(src, "; "))
		if p := st.Config.RestartPending; len(p) > 0 {
			fmt.Fprintf(tw, "restart pending:\t%s (changed by a reload; applied at the next restart)\n", strings.Join(p, ", "))
		}
		keys := slices.Sorted(maps.Keys(st.Config.Sections))
		for _, k := range keys {
			fmt.Fprintf(tw, "  %s:\tfrom %s\n", k, st.Config.Sections[k])
		}
	}
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

// cacheCmd implements `mxedge cache ls|show MAC|purge [MAC] [--config F] [--json]`.
func cacheCmd(args []string, stdout, stderr io.Writer) int {
	f, code, done := parseCLI("cache", args, stdout, stderr)
	if done {
		return code
	}
	if len(f.args) == 0 {
		fmt.Fprintln(stderr, "usage: "+synopses["cache"])
		return 2
	}
	var req edge.ControlRequest
	switch sub, rest := f.args[0], f.args[1:]; {
	case sub == "ls" && len(rest) == 0:
		req.Cmd = edge.CmdCacheList
	case sub == "show" && len(rest) == 1:
		req.Cmd, req.MAC = edge.CmdCacheShow, rest[0]
	case sub == "purge" && len(rest) <= 1:
		req.Cmd = edge.CmdCachePurge
		if len(rest) == 1 {
			req.MAC = rest[0]
		}
	default:
		fmt.Fprintln(stderr, "usage: "+synopses["cache"])
		return 2
	}
	if req.MAC != "" {
		if _, ok := cache.NormalizeMAC(req.MAC); !ok {
			fmt.Fprintf(stderr, "mxedge cache: %q is not a MAC address\n", req.MAC)
			return 2
		}
	}
	cfg, ok := stateConfig("cache", f, stderr)
	if !ok {
		return 1
	}
	resp, err := askCache(cfg, req)
	if err != nil {
		fmt.Fprintln(stderr, "mxedge cache:", err)
		return 1
	}
	if resp.Error != "" {
		fmt.Fprintln(stderr, "mxedge cache:", resp.Error)
		return 1
	}
	if f.json {
		if code := printJSON(stdout, stderr, resp); code != 0 {
			return code
		}
	} else {
		printCache(stdout, req, resp)
	}
	if req.Cmd == edge.CmdCacheShow && len(resp.Entries) == 0 {
		if !f.json {
			fmt.Fprintf(stderr, "mxedge cache: no entry for %s\n", req.MAC)
		}
		return 1
	}
	return 0
}

func askCache(cfg *config.Config, req edge.ControlRequest) (*edge.ControlResponse, error) {
	ctx, cancel := context.WithTimeout(context.Background(), controlTimeout)
	defer cancel()
	resp, err := edge.AskControl(ctx, edge.ControlPath(cfg.StateDir), req)
	if !errors.Is(err, edge.ErrNoDaemon) {
		return resp, err
	}
	store, err := openOffline(cfg)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("no daemon running and no client cache at %s", filepath.Join(cfg.StateDir, "cache.db"))
	}
	if err != nil {
		return nil, err
	}
	defer store.Close()
	r := edge.CacheCommand(store, req)
	return &r, nil
}

func printCache(w io.Writer, req edge.ControlRequest, resp *edge.ControlResponse) {
	switch req.Cmd {
	case edge.CmdCachePurge:
		n := 0
		if resp.Purged != nil {
			n = *resp.Purged
		}
		what := "all clients"
		if req.MAC != "" {
			what = req.MAC
		}
		fmt.Fprintf(w, "purged %d entries (%s)\n", n, what)
	case edge.CmdCacheList:
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "MAC\tAUTH\tIDENTITY\tVLAN\tROLE\tSITE\tEXPIRES")
		for _, e := range resp.Entries {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.MAC, e.AuthType, orDefault(e.Identity, "-"),
				orDefault(e.VLAN, "-"), orDefault(e.Role, "-"), orDefault(e.Site, "-"), e.ExpiresAt.Format(time.RFC3339))
		}
		tw.Flush()
		more := ""
		if resp.Truncated {
			more = fmt.Sprintf(" (first %d shown)", len(resp.Entries))
		}
		fmt.Fprintf(w, "%d entries%s\n", resp.Total, more)
	case edge.CmdCacheShow:
		for i, e := range resp.Entries {
			if i > 0 {
				fmt.Fprintln(w)
			}
			tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
			fmt.Fprintf(tw, "mac:\t%s\n", e.MAC)
			fmt.Fprintf(tw, "auth type:\t%s\n", e.AuthType)
			if e.Identity != "" {
				fmt.Fprintf(tw, "identity:\t%s\n", e.Identity)
			}
			if e.UserName != "" {
				fmt.Fprintf(tw, "user name:\t%s\n", e.UserName)
			}
			if c := e.CertIdentity; c != nil {
				fmt.Fprintf(tw, "certificate:\tCN=%q upn=%q email=%q dns=%q serial=%s issuer=%q\n",
					c.CN, c.SANUPN, c.SANEmail, c.SANDNS, c.Serial, c.Issuer)
			}
			fmt.Fprintf(tw, "vlan:\t%s\n", orDefault(e.VLAN, "-"))
			fmt.Fprintf(tw, "role:\t%s\n", orDefault(e.Role, "-"))
			if e.SessionTimeout > 0 {
				fmt.Fprintf(tw, "session timeout:\t%s\n", time.Duration(e.SessionTimeout)*time.Second)
			}
			for _, a := range e.Attributes {
				v := a.Value
				if v == "" && a.Raw != nil {
					v = fmt.Sprintf("%q", a.Raw)
				}
				fmt.Fprintf(tw, "attribute:\t%s = %s\n", a.Name, v)
			}
			fmt.Fprintf(tw, "site:\t%s\n", orDefault(e.Site, "-"))
			fmt.Fprintf(tw, "last auth:\t%s\n", e.LastAuthAt.Format(time.RFC3339))
			fmt.Fprintf(tw, "expires:\t%s\n", e.ExpiresAt.Format(time.RFC3339))
			tw.Flush()
		}
	}
}

func printJSON(stdout, stderr io.Writer, v any) int {
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	return 0
}
