package notify_test

import (
	"log/slog"

	"github.com/mxedge/mxedge/edge/internal/notify"
)

// The daemon names the loops that do the work; each reports progress once
// per round (a blocked reader wakes on a read deadline shorter than the
// ping interval to do so). Only then does systemd get WATCHDOG=1.
func ExamplePinger() {
	wd := notify.NewPinger(slog.Default(), "radius-auth", "radsec", "sync")

	// In the auth loop, after each packet or read-deadline wake-up:
	wd.Progress("radius-auth")
	// On a ticker at a fraction of notify.WatchdogInterval():
	_, _ = wd.Ping()

	_ = notify.Ready() // listeners are open

	// On SIGHUP:
	_ = notify.Reloading()
	// ... reload config ...
	_ = notify.Ready()

	// On SIGTERM, before draining:
	_ = notify.Stopping()
}
