package udp

import (
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mxedge/mxedge/proxy"
)

// Kind says which port a server is: it decides which request code is
// accepted and what Status-Server is answered with.
type Kind string

// Kinds.
const (
	Auth Kind = "auth" // Access-Request; Status-Server gets Access-Accept
	Acct Kind = "acct" // Accounting-Request; Status-Server gets Accounting-Response
)

// Defaults for Config's zero values.
const (
	DefaultDuplicateWindow = 30 * time.Second
	DefaultMaxDuplicates   = 65536
	// DefaultMaxDuplicateBytes bounds the memory charged to one server's
	// duplicate cache (so auth and acct together hold at most twice it).
	DefaultMaxDuplicateBytes = 64 << 20
	DefaultMaxInFlight       = 4096
	// DefaultAuthFailuresPerSecond is each source address and port's
	// budget of packets failing authentication before its datagrams are
	// dropped unverified (burst twice that). A device with the right
	// secret never fails; one with a wrong secret is refused either way.
	DefaultAuthFailuresPerSecond = 20
	// DefaultReceiveBuffer is the socket receive buffer asked for: at a
	// flood's rate the default (about 208 KiB) overflows in milliseconds
	// and a device's request is lost with the flood. On Linux the daemon
	// gets it in full with CAP_NET_ADMIN (SO_RCVBUFFORCE); otherwise it
	// is capped by net.core.rmem_max (Debian's default: 208 KiB), and the
	// server logs what it got. See SECURITY.md.
	DefaultReceiveBuffer = 8 << 20
)

// Config is what a Server needs. Clients and Handler are required.
type Config struct {
	// Clients returns the current client table; it is called once per
	// datagram, so make it an atomic load (a reload stores a new table).
	Clients func() *proxy.ClientTable
	// Handler answers the requests that pass the checks. It owns the
	// reply it returns no longer: the server sends it and keeps it to
	// answer retransmissions, so it must not be modified afterwards.
	Handler proxy.Handler
	Kind    Kind
	// Logger defaults to slog.Default(); Registerer to no metrics.
	Logger     *slog.Logger
	Registerer prometheus.Registerer
	// DuplicateWindow is how long answers are kept for retransmissions.
	DuplicateWindow time.Duration
	// MaxDuplicates bounds the duplicate cache's entries, and
	// MaxDuplicateBytes the bytes charged for them (each reply, up to 4
	// KiB, plus a fixed overhead). When either is reached, the source
	// address charged the most loses its oldest entries first.
	MaxDuplicates     int
	MaxDuplicateBytes int64
	// MaxInFlight bounds requests handled at once; beyond it, new
	// requests are dropped (the NAS will retransmit).
	MaxInFlight int
	// ReceiveBuffer is the socket receive buffer Serve asks for on a
	// *net.UDPConn (default DefaultReceiveBuffer; negative leaves the
	// system's default).
	ReceiveBuffer int
	// AuthFailuresPerSecond is each source address and port's budget of
	// authentication failures; beyond it its datagrams are dropped before
	// parsing (reason auth_failures_rate_limited). Negative disables.
	AuthFailuresPerSecond int
	// Readers is how many goroutines read each socket (default
	// GOMAXPROCS). With an Inliner handler they also answer what it
	// takes inline, so more than one keeps the socket read while one
	// answers.
	Readers int
	Now     func() time.Time
	// Heartbeats registers each reader with the watchdog: it idles while
	// blocked in a read and beats once per datagram. Nil: no watchdog.
	Heartbeats proxy.Heartbeats
}

func (c *Config) validate() error {
	var errs []error
	if c.Clients == nil {
		errs = append(errs, errors.New("udp: Config.Clients is nil"))
	}
	if c.Handler == nil {
		errs = append(errs, errors.New("udp: Config.Handler is nil"))
	}
	if c.Kind != Auth && c.Kind != Acct {
		errs = append(errs, fmt.Errorf("udp: Config.Kind %q is neither %q nor %q", c.Kind, Auth, Acct))
	}
	if c.DuplicateWindow < 0 || c.MaxDuplicates < 0 || c.MaxDuplicateBytes < 0 || c.MaxInFlight < 0 || c.Readers < 0 {
		errs = append(errs, errors.New("udp: negative DuplicateWindow, MaxDuplicates, MaxDuplicateBytes, MaxInFlight or Readers"))
	}
	return errors.Join(errs...)
}

func (c *Config) setDefaults() {
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Registerer == nil {
		c.Registerer = prometheus.NewRegistry() // counted, never exported
	}
	if c.DuplicateWindow == 0 {
		c.DuplicateWindow = DefaultDuplicateWindow
	}
	if c.MaxDuplicates == 0 {
		c.MaxDuplicates = DefaultMaxDuplicates
	}
	if c.MaxDuplicateBytes == 0 {
		c.MaxDuplicateBytes = DefaultMaxDuplicateBytes
	}
	if c.MaxInFlight == 0 {
		c.MaxInFlight = DefaultMaxInFlight
	}
	if c.ReceiveBuffer == 0 {
		c.ReceiveBuffer = DefaultReceiveBuffer
	}
	if c.AuthFailuresPerSecond == 0 {
		c.AuthFailuresPerSecond = DefaultAuthFailuresPerSecond
	}
	if c.Readers == 0 {
		c.Readers = runtime.GOMAXPROCS(0)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}
