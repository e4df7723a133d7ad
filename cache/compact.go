package cache

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Compact rewrites the store at path into a fresh, dense file when at least
// minFree (0..1) of it is free pages, and reports the sizes before and
// after. bbolt files never shrink, so after a mass purge or a large site
// shrinking, the daemon calls this at startup, before Open. The old file is
// replaced by an atomic rename only once the copy is complete and synced.
func Compact(path string, minFree float64, lockTimeout time.Duration) (before, after int64, err error) {
	if lockTimeout <= 0 {
		lockTimeout = DefaultLockTimeout
	}
	src, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: lockTimeout, FreelistType: bolt.FreelistMapType})
	if err != nil {
		return 0, 0, fmt.Errorf("cache: compact %s: %w", path, err)
	}
	defer src.Close()
	before = fileSize(path)
	// Free means free pages plus the tail bbolt grew the file by but has
	// not used yet (it grows in large steps).
	var used int64
	_ = src.View(func(tx *bolt.Tx) error { used = tx.Size(); return nil })
	st := src.Stats()
	free := before - used + int64(st.FreePageN+st.PendingPageN)*int64(src.Info().PageSize)
	if before == 0 || float64(free)/float64(before) < minFree {
		return before, before, nil
	}
	tmp := path + ".compact"
	_ = os.Remove(tmp)
	dst, err := bolt.Open(tmp, 0o600, &bolt.Options{Timeout: lockTimeout, FreelistType: bolt.FreelistMapType, NoSync: true})
	if err != nil {
		return before, before, fmt.Errorf("cache: compact %s: %w", path, err)
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
		return before, before, fmt.Errorf("cache: compact %s: %w", path, err)
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		_ = d.Sync() // make the rename durable
		d.Close()
	}
	return before, fileSize(path), nil
}
