package cache

import (
	"bytes"
	"errors"
	"fmt"
	"slices"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// SyncPage is one page of the cloud's cache sync. Each page commits in one
// transaction together with its cursor, so a crash mid-sync resumes from
// the last committed page.
//
// A full resync is a run of pages with Full set, the last also Final.
// While it runs, the store remembers every key the pages carried; when the
// final page lands, entries the full set did not mention are removed, in
// the same transaction. The first Full page starts a full resync if none is
// running; call BeginFull to restart one from scratch.
type SyncPage struct {
	Cursor     string  // the cloud's position after this page
	Full       bool    // part of a full resync
	Upserts    []Entry // applied after Tombstones
	Tombstones []Key
	Final      bool // last page of this sync round
}

// ApplySync applies one page. Entries the store refuses (bad MAC, unknown
// auth type) are logged and counted, not fatal: one bad record must not
// wedge every later sync.
func (s *Store) ApplySync(p SyncPage) error {
	type keyed struct {
		key []byte
		e   Entry
	}
	ups := make([]keyed, 0, len(p.Upserts))
	rejected := 0
	for _, e := range p.Upserts {
		key, err := e.normalize()
		if err != nil {
			rejected++
			s.log.Warn("cache: sync entry rejected", "mac", e.MAC, "err", err)
			continue
		}
		ups = append(ups, keyed{key, e})
	}
	// Key order keeps the B+tree writes sequential, and lets the append
	// case (an empty or fresh store) pack pages full.
	slices.SortFunc(ups, func(a, b keyed) int { return bytes.Compare(a.key, b.key) })

	return s.update(func(w *wtx) error {
		w.rejected += rejected
		if p.Full && w.seen == nil {
			if err := w.beginFull(); err != nil {
				return err
			}
		}
		for _, k := range p.Tombstones {
			key, err := encodeKey(k)
			if err != nil {
				w.rejected++
				s.log.Warn("cache: sync tombstone rejected", "mac", k.MAC, "err", err)
				continue
			}
			w.del(key)
			if w.seen != nil {
				if err := w.seen.Delete(key); err != nil {
					return err
				}
			}
		}
		if len(ups) > 0 {
			appendOnly(w.entries, ups[0].key)
			if w.seen != nil {
				appendOnly(w.seen, ups[0].key)
			}
			// New entries expire last, so the TTL index is usually appended to.
			w.ttl.FillPercent = 0.9
		}
		for i := range ups {
			if err := w.upsert(ups[i].e); err != nil {
				return err
			}
		}
		if err := w.meta.Put(metaCursor, []byte(p.Cursor)); err != nil {
			return err
		}
		if p.Full && p.Final {
			return w.finishFull()
		}
		return nil
	})
}

// appendOnly packs pages full when every new key sorts after the bucket's
// last one. FillPercent lasts one transaction, so it is set in each.
func appendOnly(b *bolt.Bucket, first []byte) {
	if last, _ := b.Cursor().Last(); last == nil || bytes.Compare(last, first) < 0 {
		b.FillPercent = 0.9
	}
}

// BeginFull (re)starts a full resync, forgetting the keys an interrupted
// one had received. Pages with Full set follow.
func (s *Store) BeginFull() error {
	return s.update(func(w *wtx) error { return w.beginFull() })
}

func (w *wtx) beginFull() error {
	if w.seen != nil {
		if err := w.tx.DeleteBucket(bucketFullSeen); err != nil {
			return err
		}
	}
	var err error
	w.seen, err = w.tx.CreateBucket(bucketFullSeen)
	if err != nil {
		return fmt.Errorf("cache: begin full resync: %w", err)
	}
	w.s.log.Info("cache: full resync started")
	return nil
}

// finishFull removes entries the full set did not carry. Entries and seen
// keys are both in key order, so one merge walk finds them.
func (w *wtx) finishFull() error {
	var stale [][]byte
	ec, sc := w.entries.Cursor(), w.seen.Cursor()
	sk, _ := sc.First()
	for ek, _ := ec.First(); ek != nil; ek, _ = ec.Next() {
		for sk != nil && bytes.Compare(sk, ek) < 0 {
			sk, _ = sc.Next()
		}
		if sk == nil || !bytes.Equal(sk, ek) {
			stale = append(stale, bytes.Clone(ek))
		}
	}
	for _, k := range stale {
		w.del(k)
	}
	if err := w.tx.DeleteBucket(bucketFullSeen); err != nil && !errors.Is(err, berrors.ErrBucketNotFound) {
		return err
	}
	w.seen = nil
	w.s.log.Info("cache: full resync complete", "stale_removed", len(stale), "entries", w.entriesN)
	return nil
}

// Cursor returns the last committed sync cursor, "" before the first sync.
func (s *Store) Cursor() string {
	var c string
	_ = s.view(func(tx *bolt.Tx) error {
		c = string(tx.Bucket(bucketMeta).Get(metaCursor))
		return nil
	})
	return c
}
