package cache

import (
	"path/filepath"
	"testing"
)

func TestCompact(t *testing.T) {
	clk := newClock()
	path := filepath.Join(t.TempDir(), "cache.db")
	s, err := Open(path, Options{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	ups := make([]Entry, 20_000)
	for i := range ups {
		ups[i] = tls(i, "user", epoch)
	}
	if err := s.ApplySync(SyncPage{Cursor: "c9", Upserts: ups}); err != nil {
		t.Fatal(err)
	}
	for i := 100; i < len(ups); i += 500 {
		if _, err := s.Purge(macN(i)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Purge(""); err != nil {
		t.Fatal(err)
	}
	if err := s.ApplySync(SyncPage{Cursor: "c10", Upserts: ups[:100]}); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if err := s.AppendEvent(Event{Type: "t"}); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()

	// Not sparse enough: untouched.
	if b, a, err := Compact(path, 1.01, 0); err != nil || a != b {
		t.Fatalf("Compact(1.01) = %d, %d, %v", b, a, err)
	}
	before, after, err := Compact(path, 0.5, 0)
	if err != nil || after >= before/2 {
		t.Fatalf("Compact = %d -> %d, %v", before, after, err)
	}
	t.Logf("compacted %d -> %d bytes", before, after)
	s = mustOpen(t, path, Options{Now: clk.Now})
	checkConsistent(t, s)
	if st := s.Stats(); st.Entries != 100 || st.Events != 3 || st.Cursor != "c10" {
		t.Fatalf("after compaction: %+v", st)
	}
	if _, ok, err := s.Lookup(macN(42), "user"); !ok || err != nil {
		t.Fatalf("Lookup after compaction: %v %v", ok, err)
	}
	// The outbox sequence carried over: new events still sort last.
	if err := s.AppendEvent(Event{ID: "last", Type: "t"}); err != nil {
		t.Fatal(err)
	}
	evs, _ := s.PendingEvents(0)
	if len(evs) != 4 || evs[3].ID != "last" {
		t.Fatalf("events after compaction: %+v", evs)
	}
}
