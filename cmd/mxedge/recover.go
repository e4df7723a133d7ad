package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/mxedge/mxedge/cache"
	"github.com/mxedge/mxedge/edge"
)

// cacheRecoverCmd implements `mxedge cache recover FILE`: it copies the
// pending events and held accounting of FILE (a cache file the daemon
// moved aside as damaged, state_dir/cache.db.damaged-*) into the current
// cache, where the daemon uploads and replays them. The daemon already
// does this once when it moves a file aside; the command is for a second
// pass (after freeing disk space, say) or a file from elsewhere. It works
// on the file directly, so the daemon must be stopped: bbolt's lock
// admits one process.
func cacheRecoverCmd(args []string, stdout, stderr io.Writer) int {
	f, code, done := parseCLI("cache recover", args, stdout, stderr)
	if done {
		return code
	}
	if len(f.args) != 1 {
		fmt.Fprintln(stderr, "usage: "+synopses["cache recover"])
		return 2
	}
	from := f.args[0]
	if _, err := os.Stat(from); err != nil {
		fmt.Fprintln(stderr, "mxedge cache recover:", err)
		return 1
	}
	cfg, ok := loadCLIConfig(f, stderr)
	if !ok {
		return 1
	}
	path := filepath.Join(cfg.StateDir, "cache.db")
	store, err := cache.OpenOrReset(path, cache.Options{
		TTL:           cfg.Survivability.CacheTTL(),
		MaxEntries:    cfg.Survivability.MaxEntries,
		MaxAccounting: cfg.Survivability.AccountingStore,
		LockTimeout:   offlineLockTimeout,
	})
	if cache.IsLocked(err) {
		fmt.Fprintf(stderr, "mxedge cache recover: %s is in use (pid file lock): stop the daemon first (systemctl stop mxedge), "+
			"recover, then start it again; the control socket is %s\n", path, edge.ControlPath(cfg.StateDir))
		return 1
	}
	if err != nil {
		fmt.Fprintln(stderr, "mxedge cache recover:", err)
		return 1
	}
	res, err := store.Recover(from)
	if cerr := store.Close(); err == nil {
		err = cerr
	}
	if f.json {
		if code := printJSON(stdout, stderr, res); code != 0 {
			return code
		}
	} else {
		fmt.Fprintf(stdout, "recovered from %s into %s: %d events, %d accounting records (%d refused: hold full), %d unreadable skipped\n",
			from, path, res.Events, res.Accounting, res.Refused, res.Unreadable)
	}
	if err != nil {
		if errors.Is(err, cache.ErrAlreadyRecovered) {
			fmt.Fprintln(stderr, "mxedge cache recover: already recovered into this cache (held accounting would be replayed twice)")
		} else {
			fmt.Fprintln(stderr, "mxedge cache recover:", err)
		}
		return 1
	}
	return 0
}
