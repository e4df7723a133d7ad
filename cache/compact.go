package cache

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
)

// CompactResult is what Compact did, for the caller to log and to pass to
// Open (Options.Compaction), which exports it as metrics: Compact runs
// before the store and its registerer exist.
type CompactResult struct {
	Before, After int64         // file size in bytes; equal when not compacted
	Free          float64       // fraction of the file that was free (0..1)
	Compacted     bool          // false: not sparse enough, left as it was
	Took          time.Duration // including the sync and rename
}

// Compact rewrites the store at path into a fresh, dense file when at least
// minFree (0..1) of it is free pages, and reports what it did. bbolt files
// never shrink, so after a mass purge or a large site shrinking, the caller
// runs this before it opens the store, while nothing else has the file
// open (the edge does it each time it opens its cache). The old file is
// replaced by an atomic
// rename only once the copy is complete and synced. On error the file is
// as it was.
func Compact(path string, minFree float64, lockTimeout time.Duration) (CompactResult, error) {
	start := time.Now()
	// A damaged file is Open's to move aside: mapping one that is
	// shorter than it says is a SIGBUS.
	if err := CheckFile(path); err != nil {
		return CompactResult{}, fmt.Errorf("cache: compact: %w", err)
	}
	var res CompactResult
	err := guard(func() error {
		var err error
		res, err = compact(path, minFree, lockTimeout)
		return err
	})
	res.Took = time.Since(start)
	return res, err
}

func compact(path string, minFree float64, lockTimeout time.Duration) (CompactResult, error) {
	if lockTimeout <= 0 {
		lockTimeout = DefaultLockTimeout
	}
	src, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: lockTimeout, FreelistType: bolt.FreelistMapType})
	if err != nil {
		return CompactResult{}, fmt.Errorf("cache: compact %s: %w", path, err)
	}
	defer src.Close()
	before := fileSize(path)
	res := CompactResult{Before: before, After: before}
	// Free means free pages plus the tail bbolt grew the file by but has
	// not used yet (it grows in large steps).
	var used int64
	_ = src.View(func(tx *bolt.Tx) error { used = tx.Size(); return nil })
	st := src.Stats()
	free := before - used + int64(st.FreePageN+st.PendingPageN)*int64(src.Info().PageSize)
	if before > 0 {
		res.Free = float64(free) / float64(before)
	}
	if before == 0 || res.Free < minFree {
		return res, nil
	}
	tmp := path + ".compact"
	_ = os.Remove(tmp)
	dst, err := bolt.Open(tmp, 0o600, &bolt.Options{Timeout: lockTimeout, FreelistType: bolt.FreelistMapType, NoSync: true})
	if err != nil {
		return res, fmt.Errorf("cache: compact %s: %w", path, err)
	}
	err = bolt.Compact(dst, src, 64<<20)
	if err == nil {
		err = dst.Sync() // NoSync above: one fdatasync at the end instead of per batch
	}
	if cerr := dst.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return res, fmt.Errorf("cache: compact %s: %w", path, err)
	}
	syncDir(path)
	res.After, res.Compacted = fileSize(path), true
	return res, nil
}

// syncDir makes a rename in path's directory durable.
func syncDir(path string) {
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		_ = d.Sync()
		d.Close()
	}
}
