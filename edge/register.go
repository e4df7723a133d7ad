package edge

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/mxedge/mxedge/cache"
	"github.com/mxedge/mxedge/cloudlink"
)

// A packaged edge starts before it is registered: the service runs as
// soon as the package is installed, and `mxedge register` comes later.
// The daemon then waits quietly, and picks the registration up the
// moment it appears: register asks it to over the control socket
// (CmdRegistered), and a SIGHUP does the same. Picking up means the cloud
// RadSec pool built from the registration's servers and certificate, and
// the cloud link (config pull, cache sync, events) started.

// CmdRegistered asks the daemon to pick up a registration just written.
const CmdRegistered = "registered"

// link is the cloud link's state, which a registration can change while
// the daemon runs.
type link struct {
	mu     sync.Mutex
	ctx    context.Context // Start's: the link lives as long as the daemon
	store  *cache.Store    // the client cache the link syncs; may be nil
	stop   func()
	status func() any
}

// setLink records the running link (Start, adoptRegistration).
func (a *App) setLink(stop func(), status func() any) {
	a.link.mu.Lock()
	a.link.stop, a.link.status = stop, status
	a.link.mu.Unlock()
}

// linkStatus snapshots the cloud link; nil when none runs.
func (a *App) linkStatus() any {
	a.link.mu.Lock()
	status := a.link.status
	a.link.mu.Unlock()
	if status == nil {
		return nil
	}
	return status()
}

// stopLink stops the cloud link, once.
func (a *App) stopLink() {
	a.link.mu.Lock()
	stop := a.link.stop
	a.link.stop = nil
	a.link.mu.Unlock()
	if stop != nil {
		stop()
	}
}

// linkRunning reports whether a registered cloud link runs (the syncer
// exists only for a registration).
func (a *App) linkRunning() bool { return a.resync.Load() != nil }

// adoptRegistration makes a registration written while the daemon runs
// take effect: the cloud RadSec pool is rebuilt from it, and the cloud
// link starts. It does nothing more for an edge already linked.
func (a *App) adoptRegistration() error {
	if _, err := cloudlink.LoadRegistration(a.cfg.Load().StateDir); err != nil {
		if errors.Is(err, cloudlink.ErrNotRegistered) {
			return fmt.Errorf("no registration under %s", a.cfg.Load().StateDir)
		}
		return err
	}
	a.cc.reloadMu.Lock()
	err := a.refreshCloudPool(a.cfg.Load())
	a.cc.reloadMu.Unlock()
	if err != nil {
		return err
	}
	return a.startLinkIfRegistered()
}

// startLinkIfRegistered starts the cloud link when a registration exists
// and no link runs yet.
func (a *App) startLinkIfRegistered() error {
	a.link.mu.Lock()
	defer a.link.mu.Unlock()
	if a.linkRunning() || a.link.ctx == nil || a.link.ctx.Err() != nil {
		return nil
	}
	cfg := a.cfg.Load()
	if _, err := cloudlink.LoadRegistration(cfg.StateDir); err != nil {
		if errors.Is(err, cloudlink.ErrNotRegistered) {
			return nil
		}
		return err
	}
	stop, status, err := a.startCloud(a.link.ctx, cfg, a.link.store)
	if err != nil {
		return fmt.Errorf("cloud link: %w", err)
	}
	old := a.link.stop
	a.link.stop, a.link.status = stop, status
	if old != nil {
		go old() // the unregistered placeholder: nothing runs in it
	}
	a.log.Info("registration picked up: cloud link started")
	return nil
}

// waitingFor says what a running edge still needs before it serves
// through the cloud, for `mxedge status`.
func (a *App) waitingFor() []string {
	var w []string
	if !a.linkRunning() {
		w = append(w, "registration: run mxedge register --registration-code CODE; the daemon picks it up at once")
	}
	if a.router.cloud.Load() == nil {
		w = append(w, "cloud RadSec servers: they come with the registration (or cloud.radsec.servers)")
	}
	if a.local != nil {
		if m := a.local.certsMissing.Load(); m != nil {
			w = append(w, "local NAC certificates ("+*m+"): install them, or leave survivability.org_ca/eap_cert/eap_key out of the file for the cloud's config to supply them")
		}
	}
	return w
}
