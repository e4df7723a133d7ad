package cache

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"os"
	"runtime/debug"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// A damaged cache file must never take the daemon down: the cache is a
// cache, the cloud can rebuild it. The store defends in three places:
//
//   - before bbolt maps a file, CheckFile reads its two meta pages and
//     refuses a file shorter than the newest valid one says (bbolt would
//     map past the end of the file, and the first read there is a SIGBUS
//     that no recover catches);
//   - every read and write transaction runs with the goroutine's
//     SetPanicOnFault on and a recover, so a fault in the map or a panic
//     in bbolt's page walking becomes an error wrapping ErrDamaged;
//   - such an error, an unreadable record, or the background verify
//     (Options.CheckInterval) moves the file aside with a timestamp,
//     reopens an empty store on the same path under the same *Store, and
//     salvages the moved file's pending events and held accounting into
//     it (Recover). The cloud sync refills the entries: an empty store has
//     no cursor, so its next sync is a full one.

// ErrDamaged marks errors caused by a damaged cache file.
var ErrDamaged = errors.New("cache: file damaged")

// ErrUnavailable is returned by every operation of a store whose file was
// moved aside and could not be recreated (state_dir unwritable, disk full).
var ErrUnavailable = errors.New("cache: unavailable (the damaged file was moved aside and no new one could be created)")

// Fault is the last time the store found its file damaged.
type Fault struct {
	At      time.Time `json:"at"`
	Reason  string    `json:"reason"` // "open", "read", "write", "verify"
	Err     string    `json:"error"`
	MovedTo string    `json:"moved_to"` // where the damaged file went; "" if it could not be moved
	// Recovered is what was salvaged from MovedTo into the new file
	// (filled in once the salvage has run).
	Recovered RecoverResult `json:"recovered"`
}

// Fault reasons, the label values of mxedge_cache_faults_total.
const (
	FaultOpen   = "open"
	FaultRead   = "read"
	FaultWrite  = "write"
	FaultVerify = "verify"
)

// The bbolt meta page: a 16-octet page header, then magic, version, page
// size, flags (4 octets each), the root bucket (root page, sequence), the
// freelist page, the high-water page id, the transaction id and an FNV-64a
// checksum of everything before it (8 octets each), in host byte order
// (little-endian on every platform mxedge ships for).
const (
	boltMagic     = 0xED0CDAED
	boltVersion   = 2
	metaOffset    = 16
	metaSumLen    = 56 // magic … txid
	metaLen       = metaSumLen + 8
	noFreelist    = ^uint64(0)
	minPageSize   = 512
	maxPageSize   = 1 << 16
	fallbackPgLen = 4096
)

// boltMeta is the part of a meta page CheckFile needs.
type boltMeta struct {
	pageSize            uint32
	root, freelist, hwm uint64
	txid                uint64
}

// parseMeta decodes and validates the meta page that starts at b.
func parseMeta(b []byte) (boltMeta, error) {
	if len(b) < metaOffset+metaLen {
		return boltMeta{}, errors.New("short meta page")
	}
	m := b[metaOffset : metaOffset+metaLen]
	le := binary.LittleEndian
	if le.Uint32(m[0:]) != boltMagic {
		return boltMeta{}, errors.New("bad magic")
	}
	if v := le.Uint32(m[4:]); v != boltVersion {
		return boltMeta{}, fmt.Errorf("version %d", v)
	}
	h := fnv.New64a()
	h.Write(m[:metaSumLen])
	if h.Sum64() != le.Uint64(m[metaSumLen:]) {
		return boltMeta{}, errors.New("bad checksum")
	}
	meta := boltMeta{
		pageSize: le.Uint32(m[8:]),
		root:     le.Uint64(m[16:]),
		freelist: le.Uint64(m[32:]),
		hwm:      le.Uint64(m[40:]),
		txid:     le.Uint64(m[48:]),
	}
	ps := meta.pageSize
	if ps < minPageSize || ps > maxPageSize || ps&(ps-1) != 0 {
		return boltMeta{}, fmt.Errorf("page size %d", ps)
	}
	if meta.hwm < 4 || meta.root < 2 || meta.root >= meta.hwm || (meta.freelist != noFreelist && (meta.freelist < 2 || meta.freelist >= meta.hwm)) {
		return boltMeta{}, fmt.Errorf("page ids out of range (root %d, freelist %d, high water %d)", meta.root, meta.freelist, meta.hwm)
	}
	return meta, nil
}

// CheckFile checks the bbolt file at path without mapping it: at least one
// meta page must be valid, and the file must hold every page the newest
// valid one counts. A missing or empty file is fine (Open creates it).
// Errors about the contents wrap ErrDamaged.
func CheckFile(path string) error {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	size := fi.Size()
	if size == 0 {
		return nil
	}
	m0, err0 := readMeta(f, 0)
	ps := int64(fallbackPgLen)
	if err0 == nil {
		ps = int64(m0.pageSize)
	}
	m1, err1 := readMeta(f, ps)
	var m boltMeta
	switch {
	case err0 != nil && err1 != nil:
		return fmt.Errorf("%w: %s: no valid meta page (page 0: %v; page 1: %v)", ErrDamaged, path, err0, err1)
	case err0 != nil:
		m = m1
	case err1 != nil:
		m = m0
	case m1.txid > m0.txid:
		m = m1
	default:
		m = m0
	}
	if need := int64(m.hwm) * int64(m.pageSize); size < need {
		return fmt.Errorf("%w: %s is %d octets, its meta page (txid %d) says %d", ErrDamaged, path, size, m.txid, need)
	}
	return nil
}

func readMeta(f *os.File, off int64) (boltMeta, error) {
	b := make([]byte, metaOffset+metaLen)
	if _, err := f.ReadAt(b, off); err != nil {
		if errors.Is(err, io.EOF) {
			return boltMeta{}, errors.New("past the end of the file")
		}
		return boltMeta{}, err
	}
	return parseMeta(b)
}

// guard runs fn with faults in memory-mapped pages turned into panics,
// and panics into an error wrapping ErrDamaged: a damaged bbolt file
// panics in page walking, or faults reading past a shrunken file.
func guard(fn func() error) (err error) {
	prev := debug.SetPanicOnFault(true)
	defer debug.SetPanicOnFault(prev)
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: panic: %v", ErrDamaged, r)
		}
	}()
	return fn()
}

// isDamage says whether err means the file, not the caller or the disk's
// room, is at fault.
func isDamage(err error) bool {
	return errors.Is(err, ErrDamaged) || errors.Is(err, errCorrupt) ||
		errors.Is(err, berrors.ErrInvalid) || errors.Is(err, berrors.ErrChecksum) ||
		errors.Is(err, berrors.ErrVersionMismatch) || errors.Is(err, berrors.ErrInvalidMapping)
}

// MoveAside renames the file at path to path.damaged-<UTC timestamp> and
// returns the new name. The directory is synced so the move survives a
// power cut.
func MoveAside(path string, now time.Time) (string, error) {
	to := path + ".damaged-" + now.UTC().Format("20060102T150405.000Z")
	if err := os.Rename(path, to); err != nil {
		return "", err
	}
	syncDir(path)
	return to, nil
}

// view runs a read transaction on the current file; damage found there
// starts the move-aside.
func (s *Store) view(fn func(tx *bolt.Tx) error) error {
	for range 2 {
		db := s.db.Load()
		if db == nil {
			return ErrUnavailable
		}
		err := guard(func() error { return db.View(fn) })
		if errors.Is(err, berrors.ErrDatabaseNotOpen) && s.db.Load() != db {
			continue // the file was swapped under us: read the new one
		}
		if err != nil && isDamage(err) {
			s.fault(FaultRead, err)
		}
		return err
	}
	return ErrUnavailable
}

// fault counts damage found in the file and, unless one is already
// running or ran within Options.FaultCooldown, starts a move-aside.
func (s *Store) fault(reason string, err error) {
	s.metrics.faults.WithLabelValues(reason).Inc()
	if s.closing.Load() || !s.resetting.CompareAndSwap(false, true) {
		s.log.Warn("cache: damage found again; file already moved aside recently", "reason", reason, "err", err)
		return
	}
	s.log.Error("cache: file damaged: moving it aside and starting empty", "reason", reason, "err", err, "path", s.path)
	s.bg.Add(1)
	go func() {
		defer s.bg.Done()
		s.reset(reason, err)
		if s.opts.FaultCooldown > 0 {
			time.AfterFunc(s.opts.FaultCooldown, func() { s.resetting.Store(false) })
		} else {
			s.resetting.Store(false)
		}
	}()
}

// reset moves the damaged file aside, opens an empty one in its place
// (the *Store stays valid: callers keep using it), then salvages the moved
// file's events and held accounting into it.
func (s *Store) reset(reason string, cause error) {
	s.wmu.Lock()
	if s.closing.Load() {
		s.wmu.Unlock()
		return
	}
	old := s.db.Load()
	f := Fault{At: s.opts.Now().UTC(), Reason: reason, Err: cause.Error()}
	moved, err := MoveAside(s.path, f.At)
	if err != nil {
		s.log.Error("cache: damaged file not moved aside", "path", s.path, "err", err)
	}
	f.MovedTo = moved
	var fresh *bolt.DB
	if err == nil {
		fresh, err = s.openDB()
	}
	if err != nil {
		s.db.Store(nil)
		s.log.Error("cache: no new cache file: survivability is off until the daemon restarts with a writable state_dir", "path", s.path, "err", err)
	} else {
		s.db.Store(fresh)
	}
	s.setFault(f)
	s.wmu.Unlock()
	if old != nil {
		_ = guard(old.Close) // waits for reads still on the old map
	}
	if moved != "" && fresh != nil {
		s.salvage(moved)
	}
}

// salvage recovers what it can of the moved file into the store, logging
// the result.
func (s *Store) salvage(moved string) {
	res, err := s.Recover(moved)
	s.faultMu.Lock()
	if s.lastFault != nil && s.lastFault.MovedTo == moved {
		s.lastFault.Recovered = res
	}
	s.faultMu.Unlock()
	if err != nil {
		s.log.Error("cache: salvage of the damaged file failed", "from", moved, "err", err, "events", res.Events, "accounting", res.Accounting)
		return
	}
	s.log.Info("cache: salvaged the damaged file", "from", moved, "events", res.Events, "accounting", res.Accounting,
		"unreadable", res.Unreadable)
}

func (s *Store) setFault(f Fault) {
	s.faultMu.Lock()
	s.lastFault = &f
	s.faultMu.Unlock()
	if s.opts.OnFault != nil {
		s.opts.OnFault(f)
	}
}

// LastFault returns the last time the file was found damaged and moved
// aside, nil if never since the store was opened.
func (s *Store) LastFault() *Fault {
	s.faultMu.Lock()
	defer s.faultMu.Unlock()
	if s.lastFault == nil {
		return nil
	}
	f := *s.lastFault
	return &f
}

// OpenOrReset is Open that, when the file is damaged (ErrDamaged), moves
// it aside (MoveAside), opens an empty store in its place, and salvages
// the moved file's pending events and held accounting into it in the
// background. Other errors (locked, unwritable, schema too new) are
// returned as they are.
func OpenOrReset(path string, opts Options) (*Store, error) {
	s, err := Open(path, opts)
	if err == nil || !errors.Is(err, ErrDamaged) {
		return s, err
	}
	now := time.Now
	if opts.Now != nil {
		now = opts.Now
	}
	log := opts.Logger
	f := Fault{At: now().UTC(), Reason: FaultOpen, Err: err.Error()}
	moved, merr := MoveAside(path, f.At)
	if merr != nil {
		return nil, fmt.Errorf("%w (and not moved aside: %v)", err, merr)
	}
	f.MovedTo = moved
	s, err2 := Open(path, opts)
	if err2 != nil {
		return nil, fmt.Errorf("%w; moved to %s, but a new file failed: %w", err, moved, err2)
	}
	if log != nil {
		log.Error("cache: file damaged at open: moved aside, starting empty", "path", path, "moved_to", moved, "err", err)
	}
	s.metrics.faults.WithLabelValues(FaultOpen).Inc()
	s.setFault(f)
	s.bg.Add(1)
	go func() {
		defer s.bg.Done()
		s.salvage(moved)
	}()
	return s, nil
}

// IsLocked says whether err is Open's wait for another process's lock on
// the file running out: a second daemon on the same file, not damage.
func IsLocked(err error) bool { return errors.Is(err, berrors.ErrTimeout) }
