package notify

import (
	"github.com/coreos/go-systemd/v22/daemon"
)

// monotonicUsec is swapped by tests; it returns "MONOTONIC_USEC=N\n" or "".
var monotonicUsec = daemon.SdNotifyMonotonicUsec

// send delivers one datagram. The environment is left alone (false) because
// Reloading and the watchdog keep using NOTIFY_SOCKET for the whole run.
func send(state string) error {
	_, err := daemon.SdNotify(false, state)
	return err
}

// Ready reports that startup, or a reload started with [Reloading], is done.
func Ready() error { return send(daemon.SdNotifyReady) }

// Reloading reports that a configuration reload has begun; call [Ready] when
// it ends. systemd ≥ 253 (Type=notify-reload) needs MONOTONIC_USEC to tell this
// reload from an earlier one, and older versions ignore it, so it is always sent.
func Reloading() error {
	return send(daemon.SdNotifyReloading + "\n" + monotonicUsec())
}

// Stopping reports that shutdown has begun, so systemd applies TimeoutStopSec
// rather than the watchdog while the daemon drains.
func Stopping() error { return send(daemon.SdNotifyStopping) }
