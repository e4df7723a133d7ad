package cache

import (
	"bytes"
	"context"
	"runtime/debug"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Sweep deletes expired entries, walking the TTL index from the soonest
// expiry, at most Options.SweepBatch per write transaction so that a large
// backlog never holds the writer lock for long. max bounds the total this
// call removes (max <= 0: all that are expired). Each call counts in
// mxedge_cache_sweeps_total and what it removes in mxedge_cache_swept_total.
func (s *Store) Sweep(max int) (removed int, err error) {
	for (max <= 0 || removed < max) && s.anyExpired() {
		limit := s.opts.SweepBatch
		if max > 0 && max-removed < limit {
			limit = max - removed
		}
		var (
			n    int
			more bool
		)
		err = s.update(func(w *wtx) error {
			var err error
			n, more, err = w.sweep(limit)
			w.swept += n
			return err
		})
		removed += n
		if err != nil || !more {
			break
		}
	}
	if err != nil {
		s.metrics.sweepsFailed.Inc()
	} else {
		s.metrics.sweepsOK.Inc()
	}
	if removed > 0 {
		s.log.Info("cache: swept expired entries", "removed", removed, "entries", s.Count())
	}
	return removed, err
}

// anyExpired peeks at the index in a read transaction, so that an idle
// sweep costs no write transaction (and no fsync).
func (s *Store) anyExpired() bool {
	var yes bool
	now := s.opts.Now().UnixNano()
	_ = s.view(func(tx *bolt.Tx) error {
		if k, _ := tx.Bucket(bucketTTL).Cursor().First(); k != nil {
			exp, _ := splitTTLKey(k)
			yes = exp <= now
		}
		return nil
	})
	return yes
}

// sweep removes up to limit expired index keys and the entries they point
// at, and reports whether more may be waiting.
func (w *wtx) sweep(limit int) (removed int, more bool, err error) {
	var batch [][]byte
	c := w.ttl.Cursor()
	for k, _ := c.First(); k != nil && len(batch) < limit; k, _ = c.Next() {
		if exp, _ := splitTTLKey(k); exp > w.now {
			break
		}
		batch = append(batch, bytes.Clone(k))
	}
	for _, k := range batch {
		exp, key := splitTTLKey(k)
		// The index key may be an orphan (the entry was re-upserted with a
		// later expiry in a way that left it behind); only delete the entry
		// if it is the one this key indexes.
		if v := w.entries.Get(key); v != nil {
			if vexp, ok := recordExpiry(v); ok && vexp == exp && w.del(key) {
				removed++
				continue
			}
		}
		if err := w.ttl.Delete(k); err != nil {
			return removed, false, err
		}
	}
	return removed, len(batch) == limit, nil
}

// RunSweeper sweeps once at start and then every interval until ctx is
// done. Errors are logged, not fatal: the next round retries, and reads
// never serve expired entries meanwhile. A panic is recovered, counted in
// mxedge_panics_total{component="cache",goroutine="sweeper"}, and the
// loop goes on at the next tick.
func (s *Store) RunSweeper(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		s.sweepOnce()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (s *Store) sweepOnce() {
	defer func() {
		if r := recover(); r != nil {
			s.metrics.panics.WithLabelValues("sweeper").Inc()
			s.log.Error("cache: sweeper panicked; retrying at the next tick", "panic", r, "stack", string(debug.Stack()))
		}
	}()
	if _, err := s.Sweep(0); err != nil {
		s.log.Error("cache: sweep failed", "err", err)
	}
}
