package nac

import (
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mxedge/mxedge/cache"
	"github.com/mxedge/mxedge/edge/nac/eaptls"
	"github.com/mxedge/mxedge/proxy"
)

// Store is the subset of the client cache the authenticator needs:
// *cache.Store satisfies it.
type Store interface {
	// Lookup finds a live entry by normalized MAC and identity ("" for
	// MAB, cache.Identity.Key for EAP-TLS).
	Lookup(mac, identity string) (cache.Entry, bool, error)
	// AppendEvent puts a NAC event in the outbox for the cloud.
	AppendEvent(cache.Event) error
}

// DefaultEventQueue is how many events may wait for the store before a
// decision waits for the store itself.
const DefaultEventQueue = 4096

// Config configures an Authenticator.
type Config struct {
	// EAP is the EAP-TLS server (certificate, org CA trust, limits).
	EAP *eaptls.Server
	// Sessions holds running conversations by State; nil builds one with
	// eaptls's defaults (caps global, per RADIUS client, per NAS port and
	// per device; half-open conversations closed after 10 s or evicted,
	// oldest first, when a cap is reached).
	Sessions *eaptls.Table
	// Store is the client cache and event outbox.
	Store Store
	// DefaultMABVLAN and DefaultDot1XVLAN are given on a cache miss. ""
	// rejects a client the cache does not know (for EAP-TLS after its
	// handshake, with EAP-Failure): an accept without VLAN attributes
	// would put it on the port's native VLAN, which nobody granted.
	DefaultMABVLAN   string
	DefaultDot1XVLAN string
	// SessionTimeout is sent as Session-Timeout, with Termination-Action
	// RADIUS-Request, in every local Access-Accept, so that a device let
	// in while the cloud was away re-authenticates, against the cloud once
	// it is back, within that time. A smaller cached Session-Timeout wins.
	// 0 adds neither attribute (a cached Session-Timeout is still sent).
	SessionTimeout time.Duration
	// SessionJitter (0..1) spreads SessionTimeout: each accept's value is
	// drawn uniformly from [SessionTimeout×(1−SessionJitter),
	// SessionTimeout], in whole seconds, so that the devices of one outage
	// do not all come back to the cloud in the same minute.
	SessionJitter float64
	// Rand returns a uniform number in [0, 1) for the jitter and must be
	// safe for concurrent use; nil is math/rand/v2's Float64.
	Rand func() float64
	// FragmentSize is the EAP-TLS payload per packet; a request's
	// Framed-MTU can only lower it. 0 keeps the EAP server's default.
	FragmentSize int
	// EventQueue bounds events waiting to be written (default 4096).
	EventQueue int
	// OnDecision, if set, sees every event as it is emitted, with its
	// fields (the edge's console keeps the last decisions from it). It
	// runs on the decision's goroutine, must be quick, and must not keep
	// fields, which the caller reuses.
	OnDecision func(ev cache.Event, fields []cache.Field)
	// Heartbeats registers the event writer with the watchdog: idle
	// while the queue is empty, a beat per batch written, so a commit
	// stuck on the disk shows. Nil: no watchdog.
	Heartbeats proxy.Heartbeats

	// BatchedEvents answers a decision without waiting for its NAC events
	// to be committed: the writer lingers EventLinger for more events to
	// share a commit, so a crash (kill -9, power loss) can lose the events
	// of answers sent in the last EventLinger plus one commit, and of the
	// queued ones. false, the default, is group commit: a decision's
	// answer waits until its events are committed (with the events of
	// every decision that came meanwhile, in one fdatasync), so nothing
	// answered is lost; it costs a commit's latency per answer.
	BatchedEvents bool

	Logger     *slog.Logger
	Registerer prometheus.Registerer // nil: metrics kept but not registered
	Now        func() time.Time
}

func (c *Config) setDefaults() error {
	var errs []error
	if c.EAP == nil {
		errs = append(errs, errors.New("nac: Config.EAP is required"))
	}
	if c.Store == nil {
		errs = append(errs, errors.New("nac: Config.Store is required"))
	}
	if c.FragmentSize < 0 {
		errs = append(errs, errors.New("nac: negative FragmentSize"))
	}
	if c.SessionTimeout < 0 {
		errs = append(errs, errors.New("nac: negative SessionTimeout"))
	}
	if !(c.SessionJitter >= 0 && c.SessionJitter <= 1) { // NaN too
		errs = append(errs, fmt.Errorf("nac: SessionJitter %v is outside 0..1", c.SessionJitter))
	}
	if c.Rand == nil {
		c.Rand = rand.Float64
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.EventQueue <= 0 {
		c.EventQueue = DefaultEventQueue
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Registerer == nil {
		c.Registerer = prometheus.NewRegistry()
	}
	return errors.Join(errs...)
}
