package edge

import (
	"context"
	"fmt"
	"runtime/debug"
	"strconv"
	"time"

	"github.com/mxedge/mxedge/cache"
	"github.com/mxedge/mxedge/proxy"
)

// sweepInterval is how often the cache's expired clients are deleted.
const sweepInterval = 10 * time.Minute

// EventModeChanged is the NAC event queued at every change of uplink mode.
const EventModeChanged = "NAC Edge Mode Changed"

// bgGo runs loop until ctx ends; closeAll waits for it. A panic in it is
// logged, counted in mxedge_panics_total{component="edge",goroutine=name}
// and the loop restarted after a backoff: a bug in one background job
// must not take the site's authentication down with it.
func (a *App) bgGo(ctx context.Context, name string, loop func()) {
	a.panics.WithLabelValues(name)
	a.bgWG.Add(1)
	go func() {
		defer a.bgWG.Done()
		for fails := 0; ; fails++ {
			if !a.runRecovered(name, loop) || ctx.Err() != nil {
				return
			}
			wait := min(time.Second<<min(fails, 6), time.Minute)
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
		}
	}()
}

// runRecovered runs f and reports whether it panicked.
func (a *App) runRecovered(name string, f func()) (panicked bool) {
	defer func() {
		if r := recover(); r != nil {
			panicked = true
			a.panics.WithLabelValues(name).Inc()
			a.log.Error("background job panicked; restarting it", "job", name, "panic", fmt.Sprint(r),
				"stack", string(debug.Stack()))
		}
	}()
	f()
	return false
}

// probeTarget is the cloud pool and its servers as they are now: a reload
// may replace both.
func (a *App) probeTarget() (prober, []string) {
	box := a.router.cloud.Load()
	if box == nil {
		return nil, nil
	}
	p, ok := box.u.(prober)
	if !ok {
		return nil, nil
	}
	return p, cloudRadSec(a.cfg.Load()).Servers
}

// onModeChange queues the transition as a NAC event for the cloud and,
// back in cloud mode, starts the accounting replay.
func (a *App) onModeChange(t Transition) {
	if a.router.hold != nil && t.To == ModeCloud {
		a.router.hold.kick()
	}
	if t.To == ModeCloud && a.reauth != nil {
		a.reauth.cloudBack()
	}
	if a.local == nil || a.local.store == nil || a.router.forced.Load().(string) != "" {
		// With survivability.mode forced the uplink's changes route
		// nothing: logged and counted, not reported as NAC events.
		return
	}
	ev := cache.Event{Type: EventModeChanged, Time: t.At, Reason: t.Reason, Fields: map[string]string{
		"from": string(t.From), "to": string(t.To), "reason": t.Reason, "detail": t.Detail,
	}}
	// Off the caller's goroutine: a live request may have caused the
	// change, and the event waits for a disk commit.
	store := a.local.store
	a.bgWG.Add(1)
	go func() {
		defer a.bgWG.Done()
		if err := store.AppendEvent(ev); err != nil {
			a.log.Error("mode change event not stored", "err", err)
		}
	}()
}

// replayReady reports whether held accounting may go to the cloud now.
func (a *App) replayReady() bool {
	return a.router.cloud.Load() != nil && a.router.Mode() == string(ModeCloud)
}

// replaySend sends one held accounting request to the cloud.
func (a *App) replaySend(ctx context.Context, req *proxy.Request) error {
	box := a.router.cloud.Load()
	if box == nil {
		return proxy.ErrTimeout
	}
	_, _, err := a.router.fwd.Forward(ctx, box.u, req)
	if err != nil {
		a.health.liveFail(reasonLiveTimeout)
		return err
	}
	a.health.liveOK()
	return nil
}

// heartbeatStatus is what each heartbeat tells the cloud of the uplink.
func (a *App) heartbeatStatus() map[string]string {
	st := a.health.Status()
	m := map[string]string{
		"mode":       a.router.Mode(),
		"mode_since": st.Since.UTC().Format(time.RFC3339),
	}
	if st.Last != nil {
		m["mode_reason"] = st.Last.Reason
	}
	if a.router.hold != nil {
		m["accounting_held"] = strconv.Itoa(a.router.hold.store.AccountingLen())
	}
	return m
}

// onCacheFault refills a cache that was just replaced by an empty one
// from the cloud at once, instead of at the next sync interval.
func (a *App) onCacheFault(f cache.Fault) {
	if f.MovedTo == "" {
		return
	}
	if s := a.resync.Load(); s != nil {
		s.ResyncCache()
	}
}
