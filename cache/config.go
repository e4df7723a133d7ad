package cache

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Defaults and limits of Options. The TTL bounds follow cache_ttl_days (1..30).
const (
	DefaultTTL        = 7 * 24 * time.Hour
	MinTTL            = 24 * time.Hour
	MaxTTL            = 30 * 24 * time.Hour
	DefaultMaxEntries = 1_000_000
	DefaultMaxEvents  = 100_000
	// DefaultMaxAccounting is survivability.accounting_store's default.
	DefaultMaxAccounting = 1_000_000
	DefaultSweepBatch    = 1000
	DefaultLockTimeout   = time.Second
)

// Options configure a Store. The zero value is valid and means the defaults.
type Options struct {
	TTL        time.Duration // entry lifetime after the last cloud auth; 1–30 days, default 7
	MaxEntries int           // entries kept; past it the soonest-expiring go first
	MaxEvents  int           // outbox length; past it the oldest events are dropped
	// MaxAccounting bounds the accounting hold; past it new records are
	// refused (ErrAccountingFull), never old ones evicted.
	MaxAccounting int
	SweepBatch    int           // expired entries deleted per write transaction
	LockTimeout   time.Duration // wait for another process's file lock; default 1s

	// Compaction is what Compact did to the file before this Open, if
	// anything; the store exports it as metrics.
	Compaction *CompactResult

	// CheckInterval is how often the whole file is read back and every
	// record decoded, in a background goroutine (0: never). Damage found
	// moves the file aside (fault.go).
	CheckInterval time.Duration
	// FaultCooldown is how long after a move-aside further damage is only
	// counted, not acted on: a failing disk must not fill state_dir with
	// moved files. Default 1 minute.
	FaultCooldown time.Duration
	// OnFault is called after the file was found damaged and moved aside
	// (before the salvage). It must not block or call back into the store.
	OnFault func(Fault)

	Now        func() time.Time      // clock, injectable for TTL tests
	Logger     *slog.Logger          // default: discard
	Registerer prometheus.Registerer // nil: metrics are kept but not registered

	// noSync skips fdatasync; only the benchmark fixture builder sets it,
	// because a cache that can't survive a power cut is no cache.
	noSync bool
}

func (o Options) withDefaults() (Options, error) {
	if o.TTL == 0 {
		o.TTL = DefaultTTL
	}
	if o.TTL < MinTTL || o.TTL > MaxTTL {
		return o, fmt.Errorf("cache: TTL %s outside %s..%s", o.TTL, MinTTL, MaxTTL)
	}
	if o.MaxEntries == 0 {
		o.MaxEntries = DefaultMaxEntries
	}
	if o.MaxEvents == 0 {
		o.MaxEvents = DefaultMaxEvents
	}
	if o.MaxAccounting == 0 {
		o.MaxAccounting = DefaultMaxAccounting
	}
	if o.SweepBatch == 0 {
		o.SweepBatch = DefaultSweepBatch
	}
	if o.MaxEntries < 0 || o.MaxEvents < 0 || o.SweepBatch < 0 || o.MaxAccounting < 0 {
		return o, fmt.Errorf("cache: negative limit (max entries %d, max events %d, sweep batch %d, max accounting %d)",
			o.MaxEntries, o.MaxEvents, o.SweepBatch, o.MaxAccounting)
	}
	if o.LockTimeout <= 0 {
		o.LockTimeout = DefaultLockTimeout
	}
	if o.FaultCooldown == 0 {
		o.FaultCooldown = time.Minute
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o, nil
}
