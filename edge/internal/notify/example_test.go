package notify_test

import (
	"context"
	"log/slog"
	"time"

	"github.com/mxedge/mxedge/edge/internal/notify"
)

// The daemon registers the loops that do the work; each reports progress
// once per round (a blocked reader wakes on a read deadline shorter than
// interval/2 to do so). Only then does systemd get WATCHDOG=1.
func ExamplePinger() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	log := slog.Default()

	wd := notify.NewPinger(log, "radius-auth", "radsec", "sync")
	if interval, ok := notify.WatchdogInterval(); ok {
		ticker := time.NewTicker(interval / 2)
		defer ticker.Stop()
		go wd.Run(ctx, ticker.C)
	}

	// In the auth loop, after each packet or read-deadline wake-up:
	wd.Progress("radius-auth")

	_ = notify.Ready() // listeners are open
	_ = notify.Status("cloud reachable, 1203 cached clients")

	// On SIGHUP:
	_ = notify.Reloading()
	// ... reload config ...
	_ = notify.Ready()

	// On SIGTERM, before draining:
	_ = notify.Stopping()
}
