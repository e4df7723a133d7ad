package cache

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/bits"
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
	// named: the caller chose the ID, so it may already be pending. An ID
	// the store made is new, and needs no look through the outbox.
	named bool
}

// EncodeEvent gives ev an ID and a time when it has none and encodes it.
func (s *Store) EncodeEvent(ev Event) (EncodedEvent, error) {
	named := ev.ID != ""
	if !named {
		ev.ID = newEventID(s.opts.Now())
	}
	if ev.Time.IsZero() {
		ev.Time = s.opts.Now()
	}
	rec, err := encodeEvent(&ev)
	if err != nil {
		return EncodedEvent{}, err
	}
	return EncodedEvent{id: ev.ID, rec: rec, named: named}, nil
}

// Field is one of an event's fields, for EncodeEventFields.
type Field struct {
	Key, Value string
}

// EncodeEventFields is EncodeEvent with the fields given as a list, in
// place of ev.Fields: a writer logging every decision builds a short list
// without a map to allocate, hash and sort. Keys must be unique.
func (s *Store) EncodeEventFields(ev Event, fields []Field) (EncodedEvent, error) {
	named := ev.ID != ""
	if !named {
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
	return EncodedEvent{id: ev.ID, rec: b, named: named}, nil
}

// AppendEncoded is AppendEvents for events already encoded.
func (s *Store) AppendEncoded(evs []EncodedEvent) error {
	if len(evs) == 0 {
		return nil
	}
	return s.update(func(w *wtx) error {
		// Events already pending (a retry), or twice in this batch, are
		// stored once.
		fresh := evs
		var seen map[string]bool
		for _, e := range evs {
			if e.named {
				if seen == nil {
					seen = map[string]bool{}
				}
				seen[e.id] = false
			}
		}
		if seen != nil {
			pending, err := w.findPending(seen)
			if err != nil {
				return err
			}
			fresh = make([]EncodedEvent, 0, len(evs))
			for _, e := range evs {
				if e.named {
					if _, ok := pending[e.id]; ok || seen[e.id] {
						continue
					}
					seen[e.id] = true
				}
				fresh = append(fresh, e)
			}
		}
		max := int64(w.s.opts.MaxEvents)
		if over := int64(len(fresh)) - max; over > 0 {
			// More than the whole outbox in one batch: its oldest go the
			// way they would have gone one append later.
			fresh = fresh[over:]
			w.dropped += over
		}
		if err := w.evictOldest(w.events + int64(len(fresh)) - max); err != nil {
			return err
		}
		for len(fresh) > 0 {
			n := min(len(fresh), maxBatchEvents)
			if err := w.appendBatch(fresh[:n]); err != nil {
				return err
			}
			fresh = fresh[n:]
		}
		return nil
	})
}

// maxBatchEvents bounds the events in one stored batch, and so the records
// an ack or an eviction reads to find its events. Tests lower it.
var maxBatchEvents = 4096

// appendBatch stores evs as one batch: a bucket of its own holding every
// record in one value, written once by this commit and never rewritten, and
// a state value saying which of them are gone.
func (w *wtx) appendBatch(evs []EncodedEvent) error {
	batches := w.tx.Bucket(bucketBatches)
	batches.FillPercent = 0.9 // sequence keys only ever append
	seq, err := batches.NextSequence()
	if err != nil {
		return err
	}
	key := binary.BigEndian.AppendUint64(nil, seq)
	b, err := batches.CreateBucket(key)
	if err != nil {
		return err
	}
	size := 0
	for _, e := range evs {
		size += binary.MaxVarintLen32 + len(e.rec)
	}
	// The first batch of a commit uses the store's buffer: bbolt copies the
	// value into its pages at commit, and update holds wmu until then. A
	// fresh one per commit was a megabyte to allocate and zero. A second
	// batch in the same commit needs its own, the first still refers to it.
	var recs []byte
	if w.recsTaken {
		recs = make([]byte, 0, size)
	} else {
		if cap(w.s.recs) < size {
			w.s.recs = make([]byte, 0, size+size/4)
		}
		recs, w.recsTaken = w.s.recs[:0], true
	}
	for _, e := range evs {
		recs = binary.AppendUvarint(recs, uint64(len(e.rec)))
		recs = append(recs, e.rec...)
	}
	if err := b.Put(keyRecords, recs); err != nil {
		return err
	}
	state := w.tx.Bucket(bucketBatchState)
	state.FillPercent = 0.9
	if err := state.Put(key, newBatchState(len(evs))); err != nil {
		return err
	}
	w.events += int64(len(evs))
	return nil
}

// evictOldest drops the n oldest pending events. The state values say how
// many each batch still holds, so no record is read.
func (w *wtx) evictOldest(n int64) error {
	if n <= 0 {
		return nil
	}
	type victim struct {
		key  []byte
		kill int // oldest pending events to drop from this batch
	}
	var victims []victim
	c := w.tx.Bucket(bucketBatchState).Cursor()
	for k, v := c.First(); k != nil && n > 0; k, v = c.Next() {
		st, err := parseBatchState(v)
		if err != nil {
			return fmt.Errorf("cache: outbox batch %x: %w", k, err)
		}
		kill := int(min(int64(st.pending()), n))
		victims = append(victims, victim{bytes.Clone(k), kill})
		n -= int64(kill)
	}
	for _, v := range victims {
		left := v.kill
		dropped, err := w.dropFromBatch(v.key, func(int) bool {
			left--
			return left >= 0
		})
		if err != nil {
			return err
		}
		w.dropped += int64(dropped)
	}
	return nil
}

// dropFromBatch marks the pending events of batch key that drop accepts
// (called in order, with each one's index) as gone, and removes the batch
// once nothing in it is pending. It returns how many it marked.
func (w *wtx) dropFromBatch(key []byte, drop func(i int) bool) (int, error) {
	batches, state := w.tx.Bucket(bucketBatches), w.tx.Bucket(bucketBatchState)
	st, err := parseBatchState(state.Get(key))
	if err != nil {
		return 0, fmt.Errorf("cache: outbox batch %x: %w", key, err)
	}
	st = st.clone()
	marked := 0
	for i := 0; i < st.n; i++ {
		if st.gone(i) || !drop(i) {
			continue
		}
		st.setGone(i)
		marked++
	}
	w.events -= int64(marked)
	if st.pending() > 0 {
		return marked, state.Put(key, st.b)
	}
	if err := state.Delete(key); err != nil {
		return marked, err
	}
	if batches.Bucket(key) == nil {
		return marked, nil
	}
	return marked, batches.DeleteBucket(key)
}

// PendingEvents returns up to max of the oldest unacknowledged events, in
// append order (max <= 0: all).
func (s *Store) PendingEvents(max int) ([]Event, error) {
	var evs []Event
	err := s.view(func(tx *bolt.Tx) error {
		return forEachPending(tx, func(_ eventLoc, rec []byte) bool {
			ev, err := decodeEvent(rec)
			if err != nil {
				s.log.Warn("cache: skipping unreadable event", "err", err)
				return true
			}
			evs = append(evs, ev)
			return max <= 0 || len(evs) < max
		})
	})
	return evs, err
}

// forEachPending calls fn with every pending record, oldest first, until
// fn returns false. A record whose framing is unreadable ends its batch.
func forEachPending(tx *bolt.Tx, fn func(loc eventLoc, rec []byte) bool) error {
	batches := tx.Bucket(bucketBatches)
	c := tx.Bucket(bucketBatchState).Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		st, err := parseBatchState(v)
		if err != nil || len(k) != 8 {
			return fmt.Errorf("%w: outbox batch %x: state %x unreadable", errCorrupt, k, v)
		}
		var recs []byte
		if b := batches.Bucket(k); b != nil {
			recs = b.Get(keyRecords)
		}
		seq := binary.BigEndian.Uint64(k)
		for i := 0; i < st.n; i++ {
			rec, rest, ok := nextRecord(recs)
			if !ok {
				break
			}
			recs = rest
			if !st.gone(i) && !fn(eventLoc{batch: seq, i: uint32(i)}, rec) {
				return nil
			}
		}
	}
	return nil
}

// AckEvents removes events the cloud has accepted. Unknown IDs (already
// acknowledged, or dropped) are ignored.
//
// The outbox keeps no index of IDs: kept in bbolt it cost two B-tree
// writes per event, and in memory a hash-table miss or three, the larger
// part of storing an event. The cloud acknowledges what it was just sent,
// the oldest events, so the walk from the oldest finds them at once; only
// an ack of IDs no longer pending walks the whole outbox.
func (s *Store) AckEvents(ids ...string) error {
	if len(ids) == 0 {
		return nil
	}
	want := make(map[string]bool, len(ids))
	for _, id := range ids {
		want[id] = false
	}
	return s.update(func(w *wtx) error {
		found, err := w.findPending(want)
		if err != nil {
			return err
		}
		byBatch := map[uint64]map[int]bool{}
		for _, loc := range found {
			if byBatch[loc.batch] == nil {
				byBatch[loc.batch] = map[int]bool{}
			}
			byBatch[loc.batch][int(loc.i)] = true
		}
		for seq, is := range byBatch {
			key := binary.BigEndian.AppendUint64(nil, seq)
			if _, err := w.dropFromBatch(key, func(i int) bool { return is[i] }); err != nil {
				return err
			}
		}
		return nil
	})
}

// eventLoc is where a pending event is stored: its batch's sequence and
// its place in the batch.
type eventLoc struct {
	batch uint64
	i     uint32
}

// findPending returns where the pending events with the IDs in ids are,
// walking from the oldest until it has found them all.
func (w *wtx) findPending(ids map[string]bool) (map[string]eventLoc, error) {
	found := make(map[string]eventLoc, len(ids))
	err := forEachPending(w.tx, func(loc eventLoc, rec []byte) bool {
		id, ok := recordID(rec)
		if !ok {
			s, err := eventID(rec) // a plain-JSON record
			if err != nil {
				return true
			}
			id = []byte(s)
		}
		if _, in := ids[string(id)]; in {
			found[string(id)] = loc
		}
		return len(found) < len(ids)
	})
	return found, err
}

// nextRecord splits the first record off a batch's records: a uvarint
// length, then the record.
func nextRecord(recs []byte) (rec, rest []byte, ok bool) {
	n, k := binary.Uvarint(recs)
	if k <= 0 || uint64(len(recs)-k) < n {
		return nil, nil, false
	}
	return recs[k : k+int(n)], recs[k+int(n):], true
}

// batchState is a batch's event count (4 octets, big-endian) then a bitmap
// of its events that are gone, acknowledged or dropped.
type batchState struct {
	n int
	b []byte
}

func newBatchState(n int) []byte {
	b := make([]byte, 4+(n+7)/8)
	binary.BigEndian.PutUint32(b, uint32(n))
	return b
}

func parseBatchState(v []byte) (batchState, error) {
	if len(v) < 4 {
		return batchState{}, errors.New("short batch state")
	}
	n := binary.BigEndian.Uint32(v)
	if n == 0 || n > 1<<20 || len(v) != 4+int(n+7)/8 {
		return batchState{}, fmt.Errorf("batch state of %d octets for %d events", len(v), n)
	}
	return batchState{n: int(n), b: v}, nil
}

// clone copies the state out of the read-only map before it is changed.
func (st batchState) clone() batchState { return batchState{n: st.n, b: bytes.Clone(st.b)} }

func (st batchState) gone(i int) bool { return st.b[4+i/8]&(1<<(i%8)) != 0 }

func (st batchState) setGone(i int) { st.b[4+i/8] |= 1 << (i % 8) }

func (st batchState) pending() int {
	gone := 0
	for _, x := range st.b[4:] {
		gone += bits.OnesCount8(x)
	}
	return st.n - gone
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

// recordID is the ID prefix of a record that has one, without a copy.
func recordID(b []byte) ([]byte, bool) {
	if len(b) == 0 || b[0] != eventRecordV2 {
		return nil, false
	}
	n, k := binary.Uvarint(b[1:])
	if k <= 0 || n == 0 || uint64(len(b)-1-k) < n {
		return nil, false
	}
	return b[1+k : 1+k+int(n)], true
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
