package cache

import (
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

func TestOutboxOrderAckIdempotency(t *testing.T) {
	clk := newClock()
	path := filepath.Join(t.TempDir(), "cache.db")
	s, err := Open(path, Options{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	in := []Event{
		{Type: "NAC Client Access Allowed", MAC: macN(1), Fields: map[string]string{"vlan": "100"}},
		{ID: "fixed-id", Type: "NAC Client Access Denied", MAC: macN(2), Reason: "unknown CA"},
		{Type: "NAC Client Access Allowed", MAC: macN(3), Identity: "alice", Time: epoch.Add(-time.Minute)},
	}
	for _, ev := range in {
		if err := s.AppendEvent(ev); err != nil {
			t.Fatal(err)
		}
	}
	// A retried append of a pending event is a no-op.
	if err := s.AppendEvent(Event{ID: "fixed-id", Type: "dup"}); err != nil {
		t.Fatal(err)
	}
	got, err := s.PendingEvents(0)
	if err != nil || len(got) != 3 || s.OutboxLen() != 3 {
		t.Fatalf("PendingEvents = %d events, %v; OutboxLen %d", len(got), err, s.OutboxLen())
	}
	for i, ev := range got {
		if ev.MAC != in[i].MAC || ev.Type != in[i].Type {
			t.Errorf("event %d = %+v, want %+v", i, ev, in[i])
		}
		if len(ev.ID) != 32 && ev.ID != "fixed-id" {
			t.Errorf("event %d ID %q: want 128-bit hex", i, ev.ID)
		}
	}
	if !got[0].Time.Equal(epoch) || !got[2].Time.Equal(epoch.Add(-time.Minute)) {
		t.Errorf("times: %s, %s", got[0].Time, got[2].Time)
	}
	if got[0].Fields["vlan"] != "100" || got[1].Reason != "unknown CA" {
		t.Errorf("fields lost: %+v", got)
	}
	// IDs are stable across reads and reopen: the cloud dedupes on them.
	s.Close()
	s = mustOpen(t, path, Options{Now: clk.Now})
	again, err := s.PendingEvents(2)
	if err != nil || !reflect.DeepEqual(again, got[:2]) {
		t.Fatalf("after reopen PendingEvents(2) = %+v, %v\nwant %+v", again, err, got[:2])
	}
	if err := s.AckEvents(got[0].ID, "fixed-id", "never-existed"); err != nil {
		t.Fatal(err)
	}
	rest, _ := s.PendingEvents(0)
	if len(rest) != 1 || rest[0].ID != got[2].ID || s.OutboxLen() != 1 {
		t.Fatalf("after ack: %+v (len %d)", rest, s.OutboxLen())
	}
	// An acked ID may be appended again (it is a new event to us).
	if err := s.AppendEvent(Event{ID: "fixed-id", Type: "again"}); err != nil || s.OutboxLen() != 2 {
		t.Fatalf("re-append after ack: %v, len %d", err, s.OutboxLen())
	}
}

func TestOutboxBound(t *testing.T) {
	reg := prometheus.NewRegistry()
	s := mustOpen(t, "", Options{MaxEvents: 3, Registerer: reg})
	for i := range 5 {
		if err := s.AppendEvent(Event{ID: string(rune('a' + i)), Type: "t"}); err != nil {
			t.Fatal(err)
		}
	}
	evs, _ := s.PendingEvents(0)
	var ids string
	for _, ev := range evs {
		ids += ev.ID
	}
	if ids != "cde" || s.OutboxLen() != 3 || s.Stats().EventsDropped != 2 {
		t.Fatalf("ids %q len %d stats %+v; want the newest three, 2 dropped", ids, s.OutboxLen(), s.Stats())
	}
	if got := counterValue(t, reg, "mxedge_cache_outbox_dropped_total"); got != 2 {
		t.Errorf("outbox_dropped_total = %v", got)
	}
	// The dropped IDs are forgotten, so acking them is harmless.
	if err := s.AckEvents("a", "b", "c"); err != nil || s.OutboxLen() != 2 {
		t.Fatalf("ack: %v len %d", err, s.OutboxLen())
	}
}

func FuzzDecodeEvent(f *testing.F) {
	b, _ := encodeEvent(&Event{ID: "x", Type: "NAC Client Access Allowed", Time: epoch, Fields: map[string]string{"a": "b"}})
	f.Add(b)
	f.Add([]byte(`{"id":""}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		ev, err := decodeEvent(b)
		if err != nil {
			return
		}
		b2, err := encodeEvent(&ev)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := decodeEvent(b2); err != nil {
			t.Fatalf("re-decode: %v", err)
		}
	})
}

func TestAppendEventsBatch(t *testing.T) {
	s := mustOpen(t, "", Options{MaxEvents: 3})
	evs := []Event{{ID: "a", Type: "x"}, {ID: "b", Type: "x"}, {ID: "a", Type: "dup"}, {ID: "c"}, {ID: "d"}}
	if err := s.AppendEvents(evs); err != nil {
		t.Fatal(err)
	}
	ids := pendingIDs(t, s)
	// "a" is not stored twice; past MaxEvents the oldest goes first.
	if ids != "b,c,d" || s.OutboxLen() != 3 {
		t.Fatalf("outbox = %v (len %d)", ids, s.OutboxLen())
	}
}

// A full outbox evicts by the record's ID prefix; plain-JSON records from
// before the prefix still read.
func TestEventRecordFormats(t *testing.T) {
	ev := Event{ID: "abc", Type: "NAC Client Access Allowed", Fields: map[string]string{"vlan": "41"}}
	b, err := encodeEvent(&ev)
	if err != nil {
		t.Fatal(err)
	}
	if id, err := eventID(b); err != nil || id != "abc" {
		t.Fatalf("eventID = %q, %v", id, err)
	}
	got, err := decodeEvent(b)
	if err != nil || got.ID != "abc" || got.Fields["vlan"] != "41" {
		t.Fatalf("decode = %+v, %v", got, err)
	}
	legacy := []byte(`{"id":"old","type":"x","time":"2026-01-01T00:00:00Z"}`)
	if id, err := eventID(legacy); err != nil || id != "old" {
		t.Fatalf("legacy eventID = %q, %v", id, err)
	}
	if _, err := decodeEvent(append([]byte{eventRecordV2, 9}, "ab"...)); err == nil {
		t.Fatal("a truncated prefix decoded")
	}
}

// A batch into a full outbox evicts exactly as many of the oldest as it
// adds, forgets their IDs, and counts them.
func TestAppendEventsEvictsOldestInBatch(t *testing.T) {
	for _, tc := range []struct {
		name        string
		batch       []string
		want        string
		wantDropped int64
	}{
		{"two new", []string{"x", "y"}, "c,d,e,x,y", 2},
		{"pending id skipped", []string{"e", "x"}, "b,c,d,e,x", 1},
		{"bigger than the outbox", []string{"p", "q", "r", "s", "t", "u", "v"}, "r,s,t,u,v", 7},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := mustOpen(t, "", Options{MaxEvents: 5})
			var first []Event
			for _, id := range []string{"a", "b", "c", "d", "e"} {
				first = append(first, Event{ID: id, Type: "t"})
			}
			if err := s.AppendEvents(first); err != nil {
				t.Fatal(err)
			}
			var batch []Event
			for _, id := range tc.batch {
				batch = append(batch, Event{ID: id, Type: "t"})
			}
			if err := s.AppendEvents(batch); err != nil {
				t.Fatal(err)
			}
			ids := pendingIDs(t, s)
			if ids != tc.want || s.OutboxLen() != 5 || s.Stats().EventsDropped != tc.wantDropped {
				t.Fatalf("outbox %v len %d dropped %d; want %s, 5, %d", ids, s.OutboxLen(), s.Stats().EventsDropped, tc.want, tc.wantDropped)
			}
			// An evicted ID is forgotten: appending it again stores it.
			if err := s.AppendEvent(Event{ID: "a", Type: "again"}); err != nil {
				t.Fatal(err)
			}
			if got, _ := s.PendingEvents(0); got[len(got)-1].ID != "a" {
				t.Fatalf("evicted id not appended again: %+v", got)
			}
		})
	}
}

// pendingIDs is the outbox's pending event IDs, oldest first, joined by
// commas.
func pendingIDs(t *testing.T, s *Store) string {
	t.Helper()
	evs, err := s.PendingEvents(0)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Join(idsOf(evs), ",")
}

// TestOutboxMatchesModel drives the outbox with random appends (with
// retried and repeated IDs), acks (of pending, gone and unknown IDs) and
// reopens, in batches small enough to span several stored batches, and
// checks it against a list after each step.
func TestOutboxMatchesModel(t *testing.T) {
	defer func(n int) { maxBatchEvents = n }(maxBatchEvents)
	maxBatchEvents = 7
	for seed := range uint64(8) {
		rng := rand.New(rand.NewPCG(seed, 7))
		const maxEvents = 40
		path := filepath.Join(t.TempDir(), "cache.db")
		s, err := Open(path, Options{MaxEvents: maxEvents, noSync: true})
		if err != nil {
			t.Fatal(err)
		}
		var model []string // pending IDs, oldest first
		dropped := int64(0)
		in := func(id string) bool { return slices.Contains(model, id) }
		// IDs come from a small pool, in both forms the index keeps.
		idOf := func(i int) string {
			if i%2 == 0 {
				return fmt.Sprintf("%032x", i)
			}
			return fmt.Sprintf("id-%d", i)
		}
		for step := range 300 {
			switch op := rng.IntN(10); {
			case op < 5:
				n := 1 + rng.IntN(20)
				if rng.IntN(8) == 0 {
					n = maxEvents + rng.IntN(10)
				}
				var batch []Event
				var fresh []string
				for range n {
					id := idOf(rng.IntN(150))
					batch = append(batch, Event{ID: id, Type: "t"})
					if !in(id) && !slices.Contains(fresh, id) {
						fresh = append(fresh, id)
					}
				}
				if err := s.AppendEvents(batch); err != nil {
					t.Fatal(err)
				}
				if over := len(fresh) - maxEvents; over > 0 {
					fresh, dropped = fresh[over:], dropped+int64(over)
				}
				model = append(model, fresh...)
				if over := len(model) - maxEvents; over > 0 {
					model, dropped = model[over:], dropped+int64(over)
				}
			case op < 8:
				var ack []string
				for range rng.IntN(10) {
					if len(model) > 0 && rng.IntN(3) > 0 {
						ack = append(ack, model[rng.IntN(len(model))])
					} else {
						ack = append(ack, idOf(rng.IntN(150)))
					}
				}
				if err := s.AckEvents(ack...); err != nil {
					t.Fatal(err)
				}
				model = slices.DeleteFunc(model, func(id string) bool { return slices.Contains(ack, id) })
			case op < 9:
				if err := s.Close(); err != nil {
					t.Fatal(err)
				}
				if s, err = Open(path, Options{MaxEvents: maxEvents, noSync: true}); err != nil {
					t.Fatal(err)
				}
			default:
				n := 1 + rng.IntN(maxEvents)
				evs, err := s.PendingEvents(n)
				if err != nil {
					t.Fatal(err)
				}
				want := model[:min(n, len(model))]
				if got := idsOf(evs); !slices.Equal(got, want) {
					t.Fatalf("seed %d step %d: PendingEvents(%d) = %v, want %v", seed, step, n, got, want)
				}
			}
			if got := pendingIDs(t, s); got != strings.Join(model, ",") {
				t.Fatalf("seed %d step %d: outbox\n%s\nwant\n%s", seed, step, got, strings.Join(model, ","))
			}
			if s.Stats().EventsDropped != dropped {
				t.Fatalf("seed %d step %d: dropped %d, want %d", seed, step, s.Stats().EventsDropped, dropped)
			}
			checkConsistent(t, s)
		}
		s.Close()
	}
}

func idsOf(evs []Event) []string {
	ids := make([]string, len(evs))
	for i, e := range evs {
		ids[i] = e.ID
	}
	return ids
}

// A record of the v1 outbox and of the first v2 one, plain JSON, still
// reads and still leaves on ack.
func TestOutboxReadsPlainJSONRecords(t *testing.T) {
	s := mustOpen(t, "", Options{})
	rec := []byte(`{"id":"old","type":"NAC Client Access Allowed","time":"2026-01-01T00:00:00Z"}`)
	if err := s.update(func(w *wtx) error {
		return w.appendBatch([]EncodedEvent{{id: "old", rec: rec}})
	}); err != nil {
		t.Fatal(err)
	}
	if got := pendingIDs(t, s); got != "old" {
		t.Fatalf("outbox %q", got)
	}
	if err := s.AckEvents("old"); err != nil || s.OutboxLen() != 0 {
		t.Fatalf("ack: %v, len %d", err, s.OutboxLen())
	}
	checkConsistent(t, s)
}
