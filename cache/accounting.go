package cache

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// The accounting hold keeps Accounting-Requests received while the cloud
// was unreachable. The edge answers such a request only once HoldAccounting
// has returned: the Accounting-Response is a promise that the record will
// reach the cloud, so the hold is durable on return, bounded by refusing
// (never by evicting), and emptied only by ReleaseAccounting once the cloud
// has the record.
//
// Its records live in their own bucket, "accounting" (big-endian sequence →
// record), with their count and size in the meta bucket. No schema bump:
// an older mxedge of the same schema (v3) opens such a file, ignores the
// bucket and the meta keys, and leaves the held records untouched (its
// Purge and Compact keep them), so they are replayed once a newer mxedge
// runs again. It does not replay them itself.

// AcctRecord is an accounting request held while the cloud was unreachable.
type AcctRecord struct {
	Seq      uint64 // order of arrival, assigned by the store; never reused
	Received time.Time
	Client   string // RADIUS client name the request came from
	Packet   []byte // the request as received, opaque to the store
}

// ErrAccountingFull is returned by HoldAccounting when Options.MaxAccounting
// records are held. Nothing was stored: the caller must not answer the
// request, so that the device keeps it and retransmits.
var ErrAccountingFull = errors.New("cache: accounting store full")

// maxAcctCommit bounds the records one group commit writes; the rest wait
// for the next, led by the first of them.
const maxAcctCommit = 1024

// acctReq is one HoldAccounting call waiting for a group commit.
type acctReq struct {
	rec  []byte
	seq  uint64
	err  error
	done chan bool // true: committed, seq and err are set; false: lead the next commit
}

// HoldAccounting stores an accounting request durably and returns its
// sequence number. The record is on disk (fdatasync'd) when it returns nil.
// A zero received time means now.
//
// Concurrent callers share commits, and so fsyncs: the first caller commits
// at once with whatever is queued; callers arriving meanwhile queue, and
// the first of them leads the next commit. Unlike bbolt's DB.Batch there is
// no delay to wait for company: a lone request costs one fsync, and under
// load the batch is whatever arrived during the previous fsync.
func (s *Store) HoldAccounting(client string, received time.Time, pkt []byte) (uint64, error) {
	if len(pkt) == 0 {
		return 0, errors.New("cache: hold accounting: empty packet")
	}
	if received.IsZero() {
		received = s.opts.Now()
	}
	if y := received.Year(); y < 1678 || y > 2261 {
		return 0, fmt.Errorf("cache: hold accounting: received time %s out of range", received)
	}
	// The count runs behind a hold's commit and ahead of a release's, by
	// the width of the call that moves it: refusing on it is refusing as
	// of a moment during this call. The commit checks again.
	if s.acctHeld.Load() >= int64(s.opts.MaxAccounting) {
		s.metrics.acctRefused.Inc()
		return 0, ErrAccountingFull
	}
	r := &acctReq{rec: encodeAcct(received, client, pkt), done: make(chan bool, 1)}
	s.acctMu.Lock()
	s.acctQueue = append(s.acctQueue, r)
	lead := !s.acctLeading
	s.acctLeading = true
	s.acctMu.Unlock()
	if lead || !<-r.done {
		s.commitHeld(r)
	}
	if errors.Is(r.err, ErrAccountingFull) {
		s.metrics.acctRefused.Inc()
	}
	return r.seq, r.err
}

// commitHeld writes the queued requests, of which me is the first, in one
// transaction, answers them, and hands the lead to the first request that
// queued meanwhile.
func (s *Store) commitHeld(me *acctReq) {
	s.acctMu.Lock()
	n := min(len(s.acctQueue), maxAcctCommit)
	batch := s.acctQueue[:n:n]
	s.acctQueue = s.acctQueue[n:]
	s.acctMu.Unlock()

	// Answer the batch and pass the lead on even if the commit panics:
	// the edge recovers a panic per packet, and the holders queued
	// behind this one must not wait forever.
	committed := false
	defer func() {
		if !committed {
			for _, r := range batch {
				r.seq, r.err = 0, errors.New("cache: hold accounting: commit panicked")
			}
		}
		s.handOff(me, batch)
	}()
	err := s.update(func(w *wtx) error { return w.holdAcct(batch) })
	if err != nil {
		// Rolled back: none of the batch is stored, whatever holdAcct set.
		for _, r := range batch {
			r.seq, r.err = 0, fmt.Errorf("cache: hold accounting: %w", err)
		}
	}
	committed = true
}

// handOff answers the batch me led and passes the lead to the first
// request that queued meanwhile, if any.
func (s *Store) handOff(me *acctReq, batch []*acctReq) {
	s.acctMu.Lock()
	var next *acctReq
	if len(s.acctQueue) > 0 {
		next = s.acctQueue[0]
	} else {
		s.acctQueue = nil // drop the backing array a burst grew
		s.acctLeading = false
	}
	s.acctMu.Unlock()
	for _, r := range batch {
		if r != me {
			r.done <- true
		}
	}
	if next != nil {
		next.done <- false
	}
}

// holdAcct appends the records of reqs in order, refusing those past the
// bound.
func (w *wtx) holdAcct(reqs []*acctReq) error {
	b := w.tx.Bucket(bucketAcct)
	b.FillPercent = 0.9 // sequence keys only ever append
	for _, r := range reqs {
		if w.acctN >= int64(w.s.opts.MaxAccounting) {
			r.err = ErrAccountingFull
			continue
		}
		seq, err := b.NextSequence()
		if err != nil {
			return err
		}
		if err := b.Put(acctKey(seq), r.rec); err != nil {
			return err
		}
		r.seq = seq
		w.acctN++
		w.acctBytes += int64(len(r.rec))
	}
	return nil
}

// HeldAccounting returns up to max of the oldest held records, oldest
// first (max <= 0: all of them, which at the bound is a million records).
func (s *Store) HeldAccounting(max int) ([]AcctRecord, error) {
	return s.HeldAccountingAfter(0, max)
}

// HeldAccountingAfter is HeldAccounting starting after sequence after, so
// that a replayer with records in flight can read on past them before
// releasing them.
func (s *Store) HeldAccountingAfter(after uint64, max int) ([]AcctRecord, error) {
	var recs []AcctRecord
	if after == ^uint64(0) {
		return nil, nil
	}
	err := s.view(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketAcct).Cursor()
		for k, v := c.Seek(acctKey(after + 1)); k != nil && (max <= 0 || len(recs) < max); k, v = c.Next() {
			rec, err := decodeAcct(k, v)
			if err != nil {
				// Kept and counted: an unreadable record is the operator's
				// to look at, not ours to drop.
				s.log.Warn("cache: skipping unreadable accounting record", "key", fmt.Sprintf("%x", k), "err", err)
				continue
			}
			recs = append(recs, rec)
		}
		return nil
	})
	return recs, err
}

// ReleaseAccounting removes records the cloud has acknowledged, in one
// transaction. Unknown sequences (already released, or never held) are
// ignored.
func (s *Store) ReleaseAccounting(seqs ...uint64) error {
	if len(seqs) == 0 {
		return nil
	}
	return s.update(func(w *wtx) error {
		b := w.tx.Bucket(bucketAcct)
		for _, seq := range seqs {
			k := acctKey(seq)
			v := b.Get(k)
			if v == nil {
				continue
			}
			n := int64(len(v))
			if err := b.Delete(k); err != nil {
				return err
			}
			w.acctN--
			w.acctBytes -= n
		}
		return nil
	})
}

// AccountingLen returns the number of held records.
func (s *Store) AccountingLen() int { return int(s.acctHeld.Load()) }

// oldestHeld returns when the oldest held record was received, or the zero
// time when none is held.
func (s *Store) oldestHeld() time.Time {
	var t time.Time
	_ = s.view(func(tx *bolt.Tx) error { t = oldestHeldIn(tx); return nil })
	return t
}

func oldestHeldIn(tx *bolt.Tx) time.Time {
	k, v := tx.Bucket(bucketAcct).Cursor().First()
	if k == nil || len(v) < 9 || v[0] != acctRecordV1 {
		return time.Time{}
	}
	return time.Unix(0, int64(binary.BigEndian.Uint64(v[1:9]))).UTC()
}

func acctKey(seq uint64) []byte { return binary.BigEndian.AppendUint64(nil, seq) }

// acctRecordV1 starts a held record: the format octet, the received time
// in Unix nanoseconds (8 octets, big-endian), the client name (uvarint
// length, then the name), then the packet to the end of the value.
const acctRecordV1 = 0x01

func encodeAcct(received time.Time, client string, pkt []byte) []byte {
	b := make([]byte, 0, 1+8+binary.MaxVarintLen64+len(client)+len(pkt))
	b = append(b, acctRecordV1)
	b = binary.BigEndian.AppendUint64(b, uint64(received.UnixNano()))
	b = binary.AppendUvarint(b, uint64(len(client)))
	b = append(b, client...)
	return append(b, pkt...)
}

// decodeAcct decodes the record v stored under key k, copying out of the
// map.
func decodeAcct(k, v []byte) (AcctRecord, error) {
	if len(k) != 8 {
		return AcctRecord{}, fmt.Errorf("cache: accounting key of %d octets", len(k))
	}
	if len(v) < 1+8+1 || v[0] != acctRecordV1 {
		return AcctRecord{}, errors.New("cache: accounting record: bad header")
	}
	ns := int64(binary.BigEndian.Uint64(v[1:9]))
	n, m := binary.Uvarint(v[9:])
	if m <= 0 || uint64(len(v)-9-m) < n {
		return AcctRecord{}, errors.New("cache: accounting record: bad client name")
	}
	rest := v[9+m:]
	pkt := rest[n:]
	if len(pkt) == 0 {
		return AcctRecord{}, errors.New("cache: accounting record: no packet")
	}
	return AcctRecord{
		Seq:      binary.BigEndian.Uint64(k),
		Received: time.Unix(0, ns).UTC(),
		Client:   string(rest[:n]),
		Packet:   bytes.Clone(pkt),
	}, nil
}
