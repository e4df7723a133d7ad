package cache

import (
	"path/filepath"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
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
	if res, err := Compact(path, 1.01, 0); err != nil || res.Compacted || res.After != res.Before || res.Free < 0.5 {
		t.Fatalf("Compact(1.01) = %+v, %v", res, err)
	}
	res, err := Compact(path, 0.5, 0)
	if err != nil || !res.Compacted || res.After >= res.Before/2 {
		t.Fatalf("Compact = %+v, %v", res, err)
	}
	t.Logf("compacted %d -> %d bytes (%.0f%% free)", res.Before, res.After, 100*res.Free)
	reg := prometheus.NewRegistry()
	s = mustOpen(t, path, Options{Now: clk.Now, Compaction: &res, Registerer: reg})
	for name, want := range map[string]float64{
		"mxedge_cache_compaction_before_bytes": float64(res.Before),
		"mxedge_cache_compaction_after_bytes":  float64(res.After),
		"mxedge_cache_file_bytes":              float64(res.After),
	} {
		if got := gaugeValue(t, reg, name); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	if got := labelledValue(t, reg, "mxedge_cache_compactions_total", "compacted"); got != 1 {
		t.Errorf("compactions_total{compacted} = %v", got)
	}
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

// Every metric the store registers, the compaction's included, passes the
// Prometheus lint.
func TestMetricsLint(t *testing.T) {
	reg := prometheus.NewRegistry()
	s := mustOpen(t, "", Options{Registerer: reg, Compaction: &CompactResult{Before: 1 << 20, After: 1 << 20}})
	if _, err := s.HoldAccounting("sw", epoch, []byte{4}); err != nil {
		t.Fatal(err)
	}
	problems, err := testutil.GatherAndLint(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
	if got := labelledValue(t, reg, "mxedge_cache_compactions_total", "skipped"); got != 1 {
		t.Errorf("compactions_total{skipped} = %v", got)
	}
}
