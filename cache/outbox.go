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
	encs := make([]EncodedEvent, len(evs))
	for i, ev := range evs {
		e, err := s.EncodeEvent(ev)
		if err != nil {
			return err
		}
		encs[i] = e
	}
	return s.AppendEncoded(encs)
}

// EncodedEvent is an event ready for the outbox (EncodeEvent), so a
// writer can encode each event where it happens and spend its batch
// commit in the tree alone: encoding a thousand events at once held a
// CPU for a millisecond and showed in the local NAC's tail latency.
type EncodedEvent struct {
	id  string
	rec []byte
}

// EncodeEvent gives ev an ID and a time when it has none and encodes it.
func (s *Store) EncodeEvent(ev Event) (EncodedEvent, error) {
	if ev.ID == "" {
		ev.ID = newEventID(s.opts.Now())
	}
	if ev.Time.IsZero() {
		ev.Time = s.opts.Now()
	}
	rec, err := encodeEvent(&ev)
	if err != nil {
		return EncodedEvent{}, err
	}
	return EncodedEvent{id: ev.ID, rec: rec}, nil
}

// Field is one of an event's fields, for EncodeEventFields.
type Field struct {
	Key, Value string
}

// EncodeEventFields is EncodeEvent with the fields given as a list, in
// place of ev.Fields: a writer logging every decision builds a short list
// without a map to allocate, hash and sort. Keys must be unique.
func (s *Store) EncodeEventFields(ev Event, fields []Field) (EncodedEvent, error) {
	if ev.ID == "" {
		ev.ID = newEventID(s.opts.Now())
	}
	if ev.Time.IsZero() {
		ev.Time = s.opts.Now()
	}
	if y := ev.Time.Year(); y < 0 || y > 9999 {
		return EncodedEvent{}, fmt.Errorf("cache: encode event: time %s out of range", ev.Time)
	}
	size := 1 + binary.MaxVarintLen64 + 2*len(ev.ID) + len(ev.Type) + len(ev.MAC) + len(ev.Identity) + len(ev.Reason) + 96
	for _, f := range fields {
		size += len(f.Key) + len(f.Value) + 6
	}
	b := make([]byte, 0, size)
	b = append(b, eventRecordV2)
	b = binary.AppendUvarint(b, uint64(len(ev.ID)))
	b = append(b, ev.ID...)
	b = appendEventFieldsJSON(b, &ev, fields)
	return EncodedEvent{id: ev.ID, rec: b}, nil
}

// AppendEncoded is AppendEvents for events already encoded.
func (s *Store) AppendEncoded(evs []EncodedEvent) error {
	if len(evs) == 0 {
		return nil
	}
	return s.update(func(w *wtx) error {
		out, idx := w.tx.Bucket(bucketOutbox), w.tx.Bucket(bucketEventIDs)
		out.FillPercent = 0.9 // sequence keys only ever append
		idx.FillPercent = 0.5
		// Events already pending (a retry), or twice in this batch, are
		// stored once.
		fresh := make([]EncodedEvent, 0, len(evs))
		var seen map[string]struct{}
		if len(evs) > 1 {
			seen = make(map[string]struct{}, len(evs))
		}
		for _, e := range evs {
			if _, dup := seen[e.id]; dup || idx.Get([]byte(e.id)) != nil {
				continue
			}
			if seen != nil {
				seen[e.id] = struct{}{}
			}
			fresh = append(fresh, e)
		}
		max := int64(w.s.opts.MaxEvents)
		if over := int64(len(fresh)) - max; over > 0 {
			// More than the whole outbox in one batch: its oldest go the
			// way they would have gone one append later.
			fresh = fresh[over:]
			w.dropped += over
		}
		if err := w.evictOldest(out, idx, w.events+int64(len(fresh))-max); err != nil {
			return err
		}
		for _, e := range fresh {
			seq, err := out.NextSequence()
			if err != nil {
				return err
			}
			key := binary.BigEndian.AppendUint64(nil, seq)
			if err := out.Put(key, e.rec); err != nil {
				return err
			}
			w.events++
			if err := idx.Put([]byte(e.id), key); err != nil {
				return err
			}
		}
		return nil
	})
}

// evictOldest drops the n oldest events. It finds them in one cursor pass
// and then deletes them: a cursor's First after each delete walks the
// leaves emptied so far in the transaction, which made evicting a batch
// quadratic and a full outbox the costliest part of a local decision.
func (w *wtx) evictOldest(out, idx *bolt.Bucket, n int64) error {
	if n <= 0 {
		return nil
	}
	keys := make([][]byte, 0, n)
	ids := make([]string, 0, n)
	c := out.Cursor()
	for k, v := c.First(); k != nil && int64(len(keys)) < n; k, v = c.Next() {
		keys = append(keys, bytes.Clone(k))
		if id, err := eventID(v); err == nil {
			ids = append(ids, id)
		}
	}
	for _, id := range ids {
		if err := idx.Delete([]byte(id)); err != nil {
			return err
		}
	}
	for _, k := range keys {
		if err := out.Delete(k); err != nil {
			return err
		}
		w.events--
		w.dropped++
	}
	return nil
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
	size := 1 + binary.MaxVarintLen64 + 2*len(ev.ID) + len(ev.Type) + len(ev.MAC) + len(ev.Identity) + len(ev.Reason) + 96
	for k, v := range ev.Fields {
		size += len(k) + len(v) + 6
	}
	b := make([]byte, 0, size)
	b = append(b, eventRecordV2)
	b = binary.AppendUvarint(b, uint64(len(ev.ID)))
	b = append(b, ev.ID...)
	b, err := appendEventJSON(b, ev)
	if err != nil {
		return nil, fmt.Errorf("cache: encode event: %w", err)
	}
	return b, nil
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
