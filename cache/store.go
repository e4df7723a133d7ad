package cache

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// Bucket and meta key names. They are the on-disk schema: renaming one
// needs a migration.
var (
	bucketMeta     = []byte("meta")
	bucketEntries  = []byte("entries")
	bucketTTL      = []byte("ttl")       // expiry‖entry key → nil
	bucketFullSeen = []byte("full-seen") // entry keys received in the running full resync
	// The event outbox (outbox.go).
	bucketBatches    = []byte("event-batches") // batch sequence → bucket {"r": records}
	bucketBatchState = []byte("event-state")   // batch sequence → count ‖ bitmap of gone events
	keyRecords       = []byte("r")
	// The accounting hold (accounting.go).
	bucketAcct = []byte("accounting") // big-endian sequence → held record

	metaSchema    = []byte("schema")
	metaEntries   = []byte("entries")
	metaEvents    = []byte("events")
	metaDropped   = []byte("events-dropped")
	metaCursor    = []byte("cursor")
	metaAcct      = []byte("acct-held")
	metaAcctBytes = []byte("acct-bytes")
)

// initialMmapSize is 1 GiB on 64-bit platforms; 32-bit ones grow on demand.
const initialMmapSize = (strconv.IntSize / 64) << 30

// Store is the bbolt-backed client cache and event outbox. It is safe for
// concurrent use.
type Store struct {
	// db is the open file. A move-aside (fault.go) swaps in a new one, or
	// nil when none could be created; callers keep the same *Store.
	db      atomic.Pointer[bolt.DB]
	path    string
	opts    Options
	log     *slog.Logger
	metrics *metrics

	// wmu orders write transactions with the counter updates that follow
	// their commit, so the in-memory counts never run behind an older commit.
	wmu     sync.Mutex
	recs    []byte // appendBatch's buffer, under wmu
	entries atomic.Int64
	events  atomic.Int64
	dropped atomic.Int64
	commits atomic.Int64 // write transactions committed; tests check batching

	acctHeld, acctBytes atomic.Int64 // held accounting records, under wmu like entries
	// The accounting group commit (HoldAccounting): requests waiting for
	// a commit, and whether a caller is leading one.
	acctMu      sync.Mutex
	acctQueue   []*acctReq
	acctLeading bool

	// Damage handling (fault.go).
	closing   atomic.Bool    // Close has begun: no more move-asides
	resetting atomic.Bool    // a move-aside is running, or ran within FaultCooldown
	bg        sync.WaitGroup // move-asides, salvages and the verifier
	stopBg    chan struct{}
	faultMu   sync.Mutex
	lastFault *Fault
}

// Stats is a snapshot for `mxedge status` and `mxedge cache ls`.
type Stats struct {
	Entries       int    // stored, including expired ones not yet swept
	Events        int    // outbox depth
	EventsDropped int64  // events dropped because the outbox was full
	Cursor        string // last committed sync cursor
	FullSync      bool   // a full resync is in progress
	SchemaVersion int
	FileSize      int64

	AccountingHeld   int       // accounting records held for replay
	AccountingBytes  int64     // their size as stored
	AccountingOldest time.Time // when the oldest held record was received; zero if none
	AccountingFull   bool      // at Options.MaxAccounting: new records are refused

	// LastFault is the last time the file was found damaged and moved
	// aside (with where to, and what was salvaged); nil if never since
	// the store was opened. Unavailable: no file could be recreated.
	LastFault   *Fault
	Unavailable bool
}

// Open opens (creating if needed) the store at path and runs any pending
// schema migrations in a single transaction. It fails after
// Options.LockTimeout if another process holds the file.
func Open(path string, opts Options) (*Store, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	s := &Store{path: path, opts: opts, log: opts.Logger, stopBg: make(chan struct{})}
	db, err := s.openDB()
	if err != nil {
		return nil, err
	}
	s.db.Store(db)
	s.metrics, err = newMetrics(s, opts.Registerer)
	if err != nil {
		db.Close()
		return nil, err
	}
	if opts.CheckInterval > 0 {
		s.bg.Add(1)
		go func() { defer s.bg.Done(); s.runVerifier(opts.CheckInterval) }()
	}
	return s, nil
}

// openDB checks, opens and migrates the file at s.path and loads the
// counters from it. Damage found on the way wraps ErrDamaged. Callers
// other than Open hold wmu.
func (s *Store) openDB() (*bolt.DB, error) {
	// A file shorter than its meta page says would be mapped past its
	// end, and bbolt's first read there (the freelist, at open) is a
	// SIGBUS: check before mapping.
	if err := CheckFile(s.path); err != nil {
		return nil, err
	}
	var db *bolt.DB
	err := guard(func() error {
		var err error
		db, err = bolt.Open(s.path, 0o600, &bolt.Options{
			Timeout:      s.opts.LockTimeout,
			FreelistType: bolt.FreelistMapType,
			NoSync:       s.opts.noSync,
			// Address space only (the file grows as written): a map that
			// already fits a 1M store means no re-mmap, so a long List or
			// lookup never stalls a sync commit, and big commits don't copy
			// every dirty node out of the old map first.
			InitialMmapSize: initialMmapSize,
		})
		return err
	})
	if errors.Is(err, berrors.ErrTimeout) {
		return nil, fmt.Errorf("cache: %s is locked by another process (waited %s): %w", s.path, s.opts.LockTimeout, err)
	}
	if err != nil {
		if isDamage(err) && !errors.Is(err, ErrDamaged) {
			err = fmt.Errorf("%w: %w", ErrDamaged, err)
		}
		return nil, fmt.Errorf("cache: open %s: %w", s.path, err)
	}
	err = guard(func() error {
		return db.Update(func(tx *bolt.Tx) error {
			if err := s.migrate(tx); err != nil {
				return err
			}
			meta := tx.Bucket(bucketMeta)
			s.entries.Store(getInt(meta, metaEntries))
			s.events.Store(getInt(meta, metaEvents))
			s.dropped.Store(getInt(meta, metaDropped))
			s.acctHeld.Store(getInt(meta, metaAcct))
			s.acctBytes.Store(getInt(meta, metaAcctBytes))
			return nil
		})
	})
	if err != nil {
		_ = guard(db.Close)
		if isDamage(err) && !errors.Is(err, ErrDamaged) {
			err = fmt.Errorf("%w: %w", ErrDamaged, err)
		}
		return nil, err
	}
	return db, nil
}

// Close unregisters the metrics and closes the file. Pending read
// transactions finish first.
func (s *Store) Close() error {
	if s.closing.Swap(true) {
		return nil
	}
	close(s.stopBg)
	s.bg.Wait() // a move-aside or salvage in progress
	s.metrics.unregister()
	s.wmu.Lock()
	db := s.db.Swap(nil)
	s.wmu.Unlock()
	if db == nil {
		return nil
	}
	return guard(db.Close)
}

// Lookup returns the entry for a client: identity "" for MAB, the
// certificate identity (Identity.Key of the presented certificate's fields)
// for EAP-TLS. mac may be in any form NormalizeMAC accepts. An entry at or
// past its expiry is never returned, swept or not.
func (s *Store) Lookup(mac, identity string) (Entry, bool, error) {
	key, err := encodeKey(Key{MAC: mac, Identity: identity})
	if err != nil {
		return Entry{}, false, err
	}
	now := s.opts.Now().UnixNano()
	var (
		e     Entry
		found bool
	)
	err = s.view(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketEntries).Get(key)
		if v == nil {
			return nil
		}
		exp, ok := recordExpiry(v)
		if !ok {
			return fmt.Errorf("%w: %s", errCorrupt, decodeKey(key))
		}
		if now >= exp {
			s.metrics.expired.Inc()
			return nil
		}
		var err error
		e, err = decodeEntry(v)
		found = err == nil
		return err
	})
	if err != nil {
		s.metrics.fail.Inc()
		return Entry{}, false, err
	}
	if found {
		s.metrics.hit.Inc()
	} else {
		s.metrics.miss.Inc()
	}
	return e, found, nil
}

// Upsert stores e, replacing the entry under the same key. A zero
// LastAuthAt means now; a zero ExpiresAt means LastAuthAt + TTL. An entry
// already expired is not stored, and removes the one it would replace.
func (s *Store) Upsert(e Entry) error {
	return s.update(func(w *wtx) error { return w.upsert(e) })
}

// UpsertMany stores entries as Upsert does, all in one transaction: one
// fsync for the batch.
func (s *Store) UpsertMany(entries []Entry) error {
	if len(entries) == 0 {
		return nil
	}
	return s.update(func(w *wtx) error {
		for _, e := range entries {
			if err := w.upsert(e); err != nil {
				return err
			}
		}
		return nil
	})
}

// Delete removes one entry. Deleting a missing entry is not an error.
func (s *Store) Delete(k Key) error {
	key, err := encodeKey(k)
	if err != nil {
		return err
	}
	return s.update(func(w *wtx) error {
		w.del(key)
		return nil
	})
}

// Purge removes every entry of mac (MAB and EAP-TLS alike), or every entry
// when mac is "", and returns how many it removed.
func (s *Store) Purge(mac string) (int, error) {
	var n int
	if mac == "" {
		err := s.update(func(w *wtx) error {
			n = int(w.entriesN)
			for _, name := range [][]byte{bucketEntries, bucketTTL} {
				if err := w.tx.DeleteBucket(name); err != nil {
					return err
				}
				if _, err := w.tx.CreateBucket(name); err != nil {
					return err
				}
			}
			w.entriesN = 0
			return nil
		})
		return n, err
	}
	norm, ok := NormalizeMAC(mac)
	if !ok {
		return 0, fmt.Errorf("%w: %q", ErrBadMAC, mac)
	}
	prefix := []byte(norm)
	err := s.update(func(w *wtx) error {
		var keys [][]byte
		c := w.entries.Cursor()
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			keys = append(keys, bytes.Clone(k))
		}
		n = 0
		for _, k := range keys {
			if w.del(k) {
				n++
			}
		}
		return nil
	})
	return n, err
}

// List calls fn for every unexpired entry in key order until fn returns
// false. It holds one read transaction throughout, which would stall a
// writer that needs to grow the map past its initial size: keep fn quick.
func (s *Store) List(fn func(Entry) bool) error {
	_, err := s.ListCount(fn)
	return err
}

// ListCount is List that also returns the number of stored entries
// (Count) as of the same snapshot: Count alone may lag a commit that List
// already sees.
func (s *Store) ListCount(fn func(Entry) bool) (stored int, err error) {
	now := s.opts.Now().UnixNano()
	err = s.view(func(tx *bolt.Tx) error {
		stored = int(getInt(tx.Bucket(bucketMeta), metaEntries))
		c := tx.Bucket(bucketEntries).Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			if exp, ok := recordExpiry(v); ok && now >= exp {
				continue
			}
			e, err := decodeEntry(v)
			if err != nil {
				s.log.Warn("cache: skipping unreadable entry", "key", decodeKey(k).String(), "err", err)
				continue
			}
			if !fn(e) {
				return nil
			}
		}
		return nil
	})
	return stored, err
}

// Count returns the number of stored entries, including expired ones the
// sweeper has not removed yet.
func (s *Store) Count() int { return int(s.entries.Load()) }

// Stats returns counters and sync state.
func (s *Store) Stats() Stats {
	st := Stats{
		Entries:       int(s.entries.Load()),
		Events:        int(s.events.Load()),
		EventsDropped: s.dropped.Load(),
		SchemaVersion: schemaVersion,

		AccountingHeld:  int(s.acctHeld.Load()),
		AccountingBytes: s.acctBytes.Load(),
	}
	st.AccountingFull = st.AccountingHeld >= s.opts.MaxAccounting
	st.LastFault = s.LastFault()
	st.Unavailable = s.db.Load() == nil
	_ = s.view(func(tx *bolt.Tx) error {
		st.Cursor = string(tx.Bucket(bucketMeta).Get(metaCursor))
		st.FullSync = tx.Bucket(bucketFullSeen) != nil
		st.FileSize = tx.Size()
		st.AccountingOldest = oldestHeldIn(tx)
		return nil
	})
	return st
}

// Path is the file the store lives in.
func (s *Store) Path() string { return s.path }

// wtx is one write transaction with the counters it moves. Counters are
// persisted in the meta bucket by the same commit, so a reopen needs no
// scan of a million keys to know them.
type wtx struct {
	s                         *Store
	tx                        *bolt.Tx
	meta, entries, ttl, seen  *bolt.Bucket
	entriesN, events, dropped int64
	acctN, acctBytes          int64
	swept, evicted, rejected  int
	now                       int64
	recsTaken                 bool // appendBatch used Store.recs
}

func (s *Store) update(fn func(w *wtx) error) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	var (
		w        wtx
		dropped0 int64
	)
	db := s.db.Load()
	if db == nil {
		return ErrUnavailable
	}
	err := guard(func() error {
		return db.Update(func(tx *bolt.Tx) error {
			w = wtx{s: s, tx: tx, now: s.opts.Now().UnixNano()}
			w.bind()
			w.entriesN = getInt(w.meta, metaEntries)
			w.events = getInt(w.meta, metaEvents)
			w.dropped = getInt(w.meta, metaDropped)
			w.acctN = getInt(w.meta, metaAcct)
			w.acctBytes = getInt(w.meta, metaAcctBytes)
			dropped0 = w.dropped
			if err := fn(&w); err != nil {
				return err
			}
			w.bind() // fn may have recreated buckets
			if err := w.evict(); err != nil {
				return err
			}
			return errors.Join(
				putInt(w.meta, metaEntries, w.entriesN),
				putInt(w.meta, metaEvents, w.events),
				putInt(w.meta, metaDropped, w.dropped),
				putInt(w.meta, metaAcct, w.acctN),
				putInt(w.meta, metaAcctBytes, w.acctBytes),
			)
		})
	})
	if err != nil {
		if isDamage(err) {
			s.fault(FaultWrite, err)
		}
		return err
	}
	s.commits.Add(1)
	s.entries.Store(w.entriesN)
	s.events.Store(w.events)
	s.dropped.Store(w.dropped)
	s.acctHeld.Store(w.acctN)
	s.acctBytes.Store(w.acctBytes)
	s.metrics.swept.Add(float64(w.swept))
	s.metrics.evictions.Add(float64(w.evicted))
	s.metrics.rejected.Add(float64(w.rejected))
	s.metrics.eventsDropped.Add(float64(w.dropped - dropped0))
	return nil
}

func (w *wtx) bind() {
	w.meta = w.tx.Bucket(bucketMeta)
	w.entries = w.tx.Bucket(bucketEntries)
	w.ttl = w.tx.Bucket(bucketTTL)
	w.seen = w.tx.Bucket(bucketFullSeen)
}

func (w *wtx) upsert(e Entry) error {
	key, err := e.normalize()
	if err != nil {
		return err
	}
	if e.ExpiresAt.IsZero() {
		if e.LastAuthAt.IsZero() {
			e.LastAuthAt = time.Unix(0, w.now).UTC()
		}
		e.ExpiresAt = e.LastAuthAt.Add(w.s.opts.TTL)
	}
	if w.seen != nil {
		// Seen even when expired: the cloud still has it, so it is not stale.
		if err := w.seen.Put(key, nil); err != nil {
			return err
		}
	}
	exp := unixNano(e.ExpiresAt)
	if exp <= w.now {
		w.del(key)
		return nil
	}
	if old := w.entries.Get(key); old != nil {
		if oexp, ok := recordExpiry(old); ok {
			if err := w.ttl.Delete(ttlKey(oexp, key)); err != nil {
				return err
			}
		}
	} else {
		w.entriesN++
	}
	if err := w.entries.Put(key, encodeEntry(&e)); err != nil {
		return err
	}
	return w.ttl.Put(ttlKey(exp, key), nil)
}

// del removes the entry under key and its TTL index key, if present.
func (w *wtx) del(key []byte) bool {
	old := w.entries.Get(key)
	if old == nil {
		return false
	}
	if exp, ok := recordExpiry(old); ok {
		// An unreadable record leaves an orphan index key; the sweeper
		// drops those when it reaches them.
		_ = w.ttl.Delete(ttlKey(exp, key))
	}
	_ = w.entries.Delete(key)
	w.entriesN--
	return true
}

// evict enforces MaxEntries, soonest-expiring first: those are the entries
// least likely to be needed again before they lapse anyway.
func (w *wtx) evict() error {
	over := w.entriesN - int64(w.s.opts.MaxEntries)
	if over <= 0 {
		return nil
	}
	var victims [][]byte
	c := w.ttl.Cursor()
	for k, _ := c.First(); k != nil && int64(len(victims)) < over; k, _ = c.Next() {
		victims = append(victims, bytes.Clone(k))
	}
	for _, k := range victims {
		exp, key := splitTTLKey(k)
		if v := w.entries.Get(key); v != nil {
			if vexp, ok := recordExpiry(v); ok && vexp == exp && w.del(key) {
				w.evicted++
				continue
			}
		}
		if err := w.ttl.Delete(k); err != nil {
			return err
		}
	}
	if w.evicted > 0 {
		w.s.log.Info("cache: evicted entries over the size bound", "evicted", w.evicted, "max_entries", w.s.opts.MaxEntries)
	}
	return nil
}

// ttlKey sorts by expiry: the sign bit is flipped so that big-endian byte
// order matches signed order.
func ttlKey(exp int64, key []byte) []byte {
	b := make([]byte, 8, 8+len(key))
	binary.BigEndian.PutUint64(b, uint64(exp)^1<<63)
	return append(b, key...)
}

func splitTTLKey(k []byte) (int64, []byte) {
	if len(k) < 8 {
		return 0, nil
	}
	return int64(binary.BigEndian.Uint64(k) ^ 1<<63), k[8:]
}

func getInt(b *bolt.Bucket, k []byte) int64 {
	v := b.Get(k)
	if len(v) != 8 {
		return 0
	}
	return int64(binary.BigEndian.Uint64(v))
}

func putInt(b *bolt.Bucket, k []byte, n int64) error {
	return b.Put(k, binary.BigEndian.AppendUint64(nil, uint64(n)))
}

// fileSize is for tests and benchmarks.
func fileSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}
