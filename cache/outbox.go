package cache

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Event is a NAC event produced while the cloud was unreachable, kept until
// the cloud acknowledges it.
type Event struct {
	ID       string // idempotency key; random 128-bit hex if empty
	Type     string // e.g. "NAC Client Access Allowed"
	Time     time.Time
	MAC      string
	Identity string
	Reason   string
	Fields   map[string]string
}

// AppendEvent stores ev durably at the end of the outbox. An event whose
// ID is already pending is not stored twice, so a caller retrying after an
// error cannot duplicate it. Past Options.MaxEvents the oldest event is
// dropped (and counted): recent events matter more to an operator.
func (s *Store) AppendEvent(ev Event) error { return s.AppendEvents([]Event{ev}) }

// AppendEvents stores evs durably, in order, in one transaction: one fsync
// for the batch, which is what lets the local NAC log every decision at
// its authentication rate. Semantics per event are those of AppendEvent.
func (s *Store) AppendEvents(evs []Event) error {
	if len(evs) == 0 {
		return nil
	}
	vals := make([][]byte, len(evs))
	ids := make([]string, len(evs))
	for i := range evs {
		ev := evs[i]
		if ev.ID == "" {
			var id [16]byte
			_, _ = rand.Read(id[:]) // never fails (crypto/rand, Go 1.24+)
			ev.ID = hex.EncodeToString(id[:])
		}
		if ev.Time.IsZero() {
			ev.Time = s.opts.Now()
		}
		v, err := encodeEvent(&ev)
		if err != nil {
			return err
		}
		vals[i], ids[i] = v, ev.ID
	}
	return s.update(func(w *wtx) error {
		out, idx := w.tx.Bucket(bucketOutbox), w.tx.Bucket(bucketEventIDs)
		out.FillPercent = 0.9 // sequence keys only ever append
		idx.FillPercent = 0.5
		for i, v := range vals {
			if idx.Get([]byte(ids[i])) != nil {
				continue
			}
			for w.events >= int64(w.s.opts.MaxEvents) && w.events > 0 {
				k, old := out.Cursor().First()
				if k == nil {
					break
				}
				var o Event
				if err := json.Unmarshal(old, &o); err == nil {
					if err := idx.Delete([]byte(o.ID)); err != nil {
						return err
					}
				}
				if err := out.Delete(k); err != nil {
					return err
				}
				w.events--
				w.dropped++
			}
			seq, err := out.NextSequence()
			if err != nil {
				return err
			}
			key := binary.BigEndian.AppendUint64(nil, seq)
			if err := out.Put(key, v); err != nil {
				return err
			}
			w.events++
			if err := idx.Put([]byte(ids[i]), key); err != nil {
				return err
			}
		}
		return nil
	})
}

// PendingEvents returns up to max of the oldest unacknowledged events, in
// append order (max <= 0: all).
func (s *Store) PendingEvents(max int) ([]Event, error) {
	var evs []Event
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketOutbox).Cursor()
		for k, v := c.First(); k != nil && (max <= 0 || len(evs) < max); k, v = c.Next() {
			ev, err := decodeEvent(v)
			if err != nil {
				s.log.Warn("cache: skipping unreadable event", "seq", binary.BigEndian.Uint64(k), "err", err)
				continue
			}
			evs = append(evs, ev)
		}
		return nil
	})
	return evs, err
}

// AckEvents removes events the cloud has accepted. Unknown IDs (already
// acknowledged, or dropped) are ignored.
func (s *Store) AckEvents(ids ...string) error {
	if len(ids) == 0 {
		return nil
	}
	return s.update(func(w *wtx) error {
		out, idx := w.tx.Bucket(bucketOutbox), w.tx.Bucket(bucketEventIDs)
		for _, id := range ids {
			seq := idx.Get([]byte(id))
			if seq == nil {
				continue
			}
			if out.Get(seq) != nil {
				if err := out.Delete(bytes.Clone(seq)); err != nil {
					return err
				}
				w.events--
			}
			if err := idx.Delete([]byte(id)); err != nil {
				return err
			}
		}
		return nil
	})
}

// OutboxLen returns the number of pending events.
func (s *Store) OutboxLen() int { return int(s.events.Load()) }

// Events are stored as JSON: they are few, and their Fields are free-form.
type eventRecord struct {
	ID       string            `json:"id"`
	Type     string            `json:"type"`
	Time     time.Time         `json:"time"`
	MAC      string            `json:"mac,omitempty"`
	Identity string            `json:"identity,omitempty"`
	Reason   string            `json:"reason,omitempty"`
	Fields   map[string]string `json:"fields,omitempty"`
}

func encodeEvent(ev *Event) ([]byte, error) {
	b, err := json.Marshal(eventRecord(*ev))
	if err != nil {
		return nil, fmt.Errorf("cache: encode event: %w", err)
	}
	return b, nil
}

func decodeEvent(b []byte) (Event, error) {
	var r eventRecord
	if err := json.Unmarshal(b, &r); err != nil {
		return Event{}, fmt.Errorf("cache: decode event: %w", err)
	}
	if r.ID == "" {
		return Event{}, fmt.Errorf("cache: decode event: no id")
	}
	return Event(r), nil
}
