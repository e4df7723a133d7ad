package cache

import (
	"encoding/binary"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
)

// RecoverResult is what Recover copied from a damaged file.
type RecoverResult struct {
	Events     int `json:"events"`     // pending events appended to the outbox (ones already pending are stored once)
	Accounting int `json:"accounting"` // held accounting records added to the hold
	Refused    int `json:"refused"`    // accounting records refused because the hold is full
	Unreadable int `json:"unreadable"` // records, and faults in pages, skipped
}

// ErrAlreadyRecovered is returned by Recover for a file this store has
// already recovered: held accounting carries no idempotency key, so a
// second pass would replay it twice.
var ErrAlreadyRecovered = errors.New("cache: file already recovered into this store")

// metaRecovered prefixes the meta keys naming files already recovered.
var metaRecovered = []byte("recovered/")

// maxWalkFaults bounds the damaged places a salvage walk steps over.
const maxWalkFaults = 256

// recoverChunk is how many records one write transaction of Recover takes.
const recoverChunk = 1000

// Recover copies the pending events and held accounting records of the
// bbolt cache file at path, typically one MoveAside set aside as damaged,
// into the store. It is best effort, record by record: a record that does
// not decode, and a page that faults or panics, is skipped and counted.
// The file is opened read-only and not changed. Events keep their IDs, so
// a retry stores none twice; accounting records get new sequence numbers
// and keep their received time.
func (s *Store) Recover(path string) (RecoverResult, error) {
	var res RecoverResult
	if abs, _ := filepath.Abs(path); abs != "" {
		if me, _ := filepath.Abs(s.path); abs == me {
			return res, errors.New("cache: recover: that is the store's own file")
		}
	}
	mark := append(append([]byte(nil), metaRecovered...), filepath.Base(path)...)
	var done bool
	if err := s.view(func(tx *bolt.Tx) error {
		done = tx.Bucket(bucketMeta).Get(mark) != nil
		return nil
	}); err != nil {
		return res, err
	}
	if done {
		return res, fmt.Errorf("%w: %s", ErrAlreadyRecovered, path)
	}
	var src *bolt.DB
	err := guard(func() error {
		var err error
		src, err = bolt.Open(path, 0o400, &bolt.Options{ReadOnly: true, Timeout: s.opts.LockTimeout})
		return err
	})
	if err != nil {
		return res, fmt.Errorf("cache: recover %s: %w", path, err)
	}
	defer func() { _ = guard(src.Close) }()

	// Events: a batch's records decode one by one; gone ones are skipped.
	var evs []Event
	var werr error
	flushEvents := func() {
		if len(evs) == 0 || werr != nil {
			return
		}
		if err := s.AppendEvents(evs); err != nil {
			werr = err
			return
		}
		res.Events += len(evs)
		evs = evs[:0]
	}
	res.Unreadable += walkSeq(src, bucketBatchState, func(tx *bolt.Tx, k, v []byte) {
		st, err := parseBatchState(v)
		var recs []byte
		if b := tx.Bucket(bucketBatches); err == nil && b != nil {
			if bb := b.Bucket(k); bb != nil {
				recs = bb.Get(keyRecords)
			}
		}
		if err != nil || recs == nil {
			res.Unreadable++
			return
		}
		for i := 0; i < st.n; i++ {
			rec, rest, ok := nextRecord(recs)
			if !ok {
				res.Unreadable += st.n - i
				break
			}
			recs = rest
			if st.gone(i) {
				continue
			}
			ev, err := decodeEvent(rec)
			if err != nil {
				res.Unreadable++
				continue
			}
			evs = append(evs, ev)
			if len(evs) >= recoverChunk {
				flushEvents()
			}
		}
	})
	flushEvents()

	// Accounting: appended in chunks, one commit each.
	var reqs []*acctReq
	flushAcct := func() {
		if len(reqs) == 0 || werr != nil {
			return
		}
		if err := s.update(func(w *wtx) error { return w.holdAcct(reqs) }); err != nil {
			werr = err
			return
		}
		for _, r := range reqs {
			if r.err != nil {
				res.Refused++
			} else {
				res.Accounting++
			}
		}
		reqs = reqs[:0]
	}
	res.Unreadable += walkSeq(src, bucketAcct, func(_ *bolt.Tx, k, v []byte) {
		rec, err := decodeAcct(k, v)
		if err != nil {
			res.Unreadable++
			return
		}
		reqs = append(reqs, &acctReq{rec: encodeAcct(rec.Received, rec.Client, rec.Packet)})
		if len(reqs) >= recoverChunk {
			flushAcct()
		}
	})
	flushAcct()
	if werr != nil {
		return res, fmt.Errorf("cache: recover %s: %w", path, werr)
	}
	err = s.update(func(w *wtx) error {
		return w.meta.Put(mark, []byte(s.opts.Now().UTC().Format(time.RFC3339)))
	})
	return res, err
}

// walkSeq calls fn with every key (an 8-octet big-endian sequence) and
// value of the top-level bucket name, in order, surviving damage: when a
// read faults or panics, it resumes after the last key it read, skipping
// forward further at each fault in the same place, up to maxWalkFaults.
// It returns the faults it stepped over. fn must copy what it keeps.
func walkSeq(db *bolt.DB, name []byte, fn func(tx *bolt.Tx, k, v []byte)) (faults int) {
	next, skip := uint64(0), uint64(1)
	for faults < maxWalkFaults {
		var (
			last uint64
			seen bool
		)
		err := guard(func() error {
			return db.View(func(tx *bolt.Tx) error {
				b := tx.Bucket(name)
				if b == nil {
					return nil
				}
				c := b.Cursor()
				for k, v := c.Seek(binary.BigEndian.AppendUint64(nil, next)); k != nil; k, v = c.Next() {
					if len(k) != 8 || v == nil {
						continue
					}
					seq := binary.BigEndian.Uint64(k)
					if seen && seq <= last {
						return fmt.Errorf("%w: keys out of order", ErrDamaged)
					}
					fn(tx, k, v)
					last, seen = seq, true
				}
				return nil
			})
		})
		if err == nil {
			return faults
		}
		faults++
		if seen {
			next, skip = last+1, 1
		} else {
			if next+skip < next {
				return faults // past the last sequence there can be
			}
			next += skip
			skip *= 2
		}
		if next == 0 {
			return faults
		}
	}
	return faults
}

// Verify reads back every record of the file, decoding each, and reports
// the first damage found (wrapping ErrDamaged), which also moves the file
// aside. It holds one read transaction throughout.
func (s *Store) Verify() error {
	db := s.db.Load()
	if db == nil {
		return ErrUnavailable
	}
	err := guard(func() error { return db.View(verifyTx) })
	if err != nil && isDamage(err) {
		s.fault(FaultVerify, err)
	}
	return err
}

func verifyTx(tx *bolt.Tx) error {
	bad := func(what string, k []byte, err error) error {
		return fmt.Errorf("%w: %s %x: %v", ErrDamaged, what, k, err)
	}
	for _, name := range [][]byte{bucketMeta, bucketEntries, bucketTTL, bucketBatches, bucketBatchState, bucketAcct} {
		if tx.Bucket(name) == nil {
			return fmt.Errorf("%w: bucket %q missing", ErrDamaged, name)
		}
	}
	c := tx.Bucket(bucketEntries).Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		if _, err := decodeEntry(v); err != nil {
			return bad("entry", k, err)
		}
	}
	c = tx.Bucket(bucketTTL).Cursor()
	for k, _ := c.First(); k != nil; k, _ = c.Next() {
		if len(k) < 8 {
			return bad("ttl index key", k, errors.New("short"))
		}
	}
	batches := tx.Bucket(bucketBatches)
	c = tx.Bucket(bucketBatchState).Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		st, err := parseBatchState(v)
		if err != nil {
			return bad("outbox batch state", k, err)
		}
		b := batches.Bucket(k)
		if b == nil {
			return bad("outbox batch", k, errors.New("records missing"))
		}
		recs := b.Get(keyRecords)
		for i := 0; i < st.n; i++ {
			rec, rest, ok := nextRecord(recs)
			if !ok {
				return bad("outbox batch", k, fmt.Errorf("record %d of %d unreadable", i, st.n))
			}
			recs = rest
			if st.gone(i) {
				continue
			}
			if _, err := decodeEvent(rec); err != nil {
				return bad("outbox batch", k, err)
			}
		}
	}
	c = tx.Bucket(bucketAcct).Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		if _, err := decodeAcct(k, v); err != nil {
			return bad("accounting record", k, err)
		}
	}
	return nil
}

// runVerifier verifies the file at once, then every interval, until the
// store closes.
func (s *Store) runVerifier(interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if err := s.Verify(); err != nil && !errors.Is(err, ErrUnavailable) {
			s.log.Warn("cache: verify found damage", "err", err)
		}
		select {
		case <-s.stopBg:
			return
		case <-t.C:
		}
	}
}
