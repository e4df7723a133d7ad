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
			ev.ID = newEventID(s.opts.Now())
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
				if id, err := eventID(old); err == nil {
					if err := idx.Delete([]byte(id)); err != nil {
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

// newEventID returns a unique idempotency key that sorts by time: 8
// octets of nanoseconds then 8 random ones, in hex. Time order keeps the
// ID index append-only and its evictions at the front; random keys made
// every commit of a full outbox rewrite pages all over the index.
func newEventID(now time.Time) string {
	var id [16]byte
	binary.BigEndian.PutUint64(id[:8], uint64(now.UnixNano()))
	_, _ = rand.Read(id[8:]) // never fails (crypto/rand, Go 1.24+)
	return hex.EncodeToString(id[:])
}

// eventRecordV2 marks a record that starts with its idempotency ID
// (uvarint length, then the ID) before the JSON. Evicting the oldest event
// from a full outbox needs only the ID, and during a long outage that
// happens on every append: decoding the JSON there made event writing most
// of the daemon's CPU. Records without the mark are plain JSON.
const eventRecordV2 = 0x01

func encodeEvent(ev *Event) ([]byte, error) {
	j, err := json.Marshal(eventRecord(*ev))
	if err != nil {
		return nil, fmt.Errorf("cache: encode event: %w", err)
	}
	b := make([]byte, 0, 1+binary.MaxVarintLen64+len(ev.ID)+len(j))
	b = append(b, eventRecordV2)
	b = binary.AppendUvarint(b, uint64(len(ev.ID)))
	b = append(b, ev.ID...)
	return append(b, j...), nil
}

// splitEvent returns a record's ID prefix (empty for plain JSON) and JSON.
func splitEvent(b []byte) (id string, js []byte, err error) {
	if len(b) == 0 || b[0] != eventRecordV2 {
		return "", b, nil
	}
	n, k := binary.Uvarint(b[1:])
	if k <= 0 || n == 0 || uint64(len(b)-1-k) < n {
		return "", nil, fmt.Errorf("cache: decode event: bad id prefix")
	}
	return string(b[1+k : 1+k+int(n)]), b[1+k+int(n):], nil
}

// eventID reads a record's idempotency ID without decoding its JSON.
func eventID(b []byte) (string, error) {
	id, js, err := splitEvent(b)
	if err != nil || id != "" {
		return id, err
	}
	ev, err := decodeEvent(js)
	return ev.ID, err
}

func decodeEvent(b []byte) (Event, error) {
	id, js, err := splitEvent(b)
	if err != nil {
		return Event{}, err
	}
	var r eventRecord
	if err := json.Unmarshal(js, &r); err != nil {
		return Event{}, fmt.Errorf("cache: decode event: %w", err)
	}
	if id != "" && r.ID != id {
		return Event{}, fmt.Errorf("cache: decode event: id prefix %q does not match record %q", id, r.ID)
	}
	if r.ID == "" {
		return Event{}, fmt.Errorf("cache: decode event: no id")
	}
	return Event(r), nil
}
