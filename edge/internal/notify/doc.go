// Package notify tells systemd what the daemon is doing (sd_notify(3)):
// ready, reloading, stopping, and watchdog pings.
//
// It is a thin layer over github.com/coreos/go-systemd/v22/daemon. It exists
// for two reasons: so the daemon never sends a malformed or partial state
// (RELOADING=1 must carry MONOTONIC_USEC, a status must not smuggle in other
// assignments through a newline), and so the watchdog proves progress rather
// than liveness. A [Pinger] sends WATCHDOG=1 only when every loop that does
// real work has reported progress since the previous ping; a goroutine that
// pings on a timer would keep a wedged daemon alive forever.
//
// Every call is a no-op returning nil when NOTIFY_SOCKET is unset, so the
// daemon behaves the same when run by hand or in tests.
package notify
