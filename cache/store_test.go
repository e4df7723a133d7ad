package cache

import (
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	berrors "go.etcd.io/bbolt/errors"
)

func TestLookupTTLBoundary(t *testing.T) {
	clk := newClock()
	s := mustOpen(t, "", Options{TTL: 24 * time.Hour, Now: clk.Now})
	if err := s.Upsert(mab(1, clk.Now())); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		at   time.Duration // since the last cloud auth
		want bool
	}{
		{0, true},
		{24*time.Hour - time.Nanosecond, true},
		{24 * time.Hour, false}, // exactly at expiry: not served
		{24*time.Hour + time.Nanosecond, false},
		{30 * 24 * time.Hour, false},
	}
	for _, tt := range tests {
		clk.t = epoch.Add(tt.at)
		_, ok, err := s.Lookup(macN(1), "")
		if err != nil || ok != tt.want {
			t.Errorf("Lookup at +%s = %v, %v; want %v", tt.at, ok, err, tt.want)
		}
	}
	// Not served but still stored until swept.
	if n := s.Count(); n != 1 {
		t.Errorf("Count = %d, want 1 before sweep", n)
	}
}

func TestUpsertExpiry(t *testing.T) {
	clk := newClock()
	tests := []struct {
		name       string
		last, exp  time.Time
		wantExp    time.Time
		wantStored bool
	}{
		{"default from last auth", epoch.Add(-time.Hour), time.Time{}, epoch.Add(-time.Hour + 7*24*time.Hour), true},
		{"zero last auth is now", time.Time{}, time.Time{}, epoch.Add(7 * 24 * time.Hour), true},
		{"explicit expiry kept", epoch, epoch.Add(2 * time.Hour), epoch.Add(2 * time.Hour), true},
		{"already expired not stored", epoch.Add(-8 * 24 * time.Hour), time.Time{}, time.Time{}, false},
		{"expiring now not stored", epoch.Add(-7 * 24 * time.Hour), time.Time{}, time.Time{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := mustOpen(t, "", Options{Now: clk.Now})
			e := mab(1, tt.last)
			e.ExpiresAt = tt.exp
			if err := s.Upsert(e); err != nil {
				t.Fatal(err)
			}
			got, ok, err := s.Lookup(macN(1), "")
			if err != nil || ok != tt.wantStored {
				t.Fatalf("Lookup = %v, %v; want %v", ok, err, tt.wantStored)
			}
			if ok && !got.ExpiresAt.Equal(tt.wantExp) {
				t.Errorf("ExpiresAt = %s, want %s", got.ExpiresAt, tt.wantExp)
			}
			if want := map[bool]int{true: 1, false: 0}[tt.wantStored]; s.Count() != want {
				t.Errorf("Count = %d, want %d", s.Count(), want)
			}
		})
	}
}

func TestEntryRoundTripAndKeys(t *testing.T) {
	clk := newClock()
	s := mustOpen(t, "", Options{Now: clk.Now})
	machine := tls(7, "host/laptop7.corp.example", epoch)
	user := tls(7, "alice", epoch)
	user.Authorization.VLAN = "staff"
	m := mab(7, epoch)
	m.MAC = strings.ToUpper(strings.ReplaceAll(m.MAC, ":", "-")) // any form goes in
	for _, e := range []Entry{machine, user, m} {
		if err := s.Upsert(e); err != nil {
			t.Fatal(err)
		}
	}
	if s.Count() != 3 {
		t.Fatalf("Count = %d, want 3", s.Count())
	}
	mac, _ := NormalizeMAC(macN(7))
	dotted := mac[:4] + "." + mac[4:8] + "." + mac[8:]
	for _, tc := range []struct {
		identity string
		want     Entry
	}{
		{"host/laptop7.corp.example", machine},
		{"alice", user},
		{"", m},
	} {
		got, ok, err := s.Lookup(dotted, tc.identity)
		if err != nil || !ok {
			t.Fatalf("Lookup(%q) = %v, %v", tc.identity, ok, err)
		}
		want := tc.want
		want.MAC = mac
		want.LastAuthAt = epoch
		want.ExpiresAt = epoch.Add(DefaultTTL)
		if !reflect.DeepEqual(got, want) {
			t.Errorf("Lookup(%q):\n got %+v\nwant %+v", tc.identity, got, want)
		}
	}
	if _, ok, _ := s.Lookup(mac, "bob"); ok {
		t.Error("Lookup of an unknown identity found something")
	}
	if _, _, err := s.Lookup("nonsense", ""); !errors.Is(err, ErrBadMAC) {
		t.Errorf("Lookup(bad MAC) err = %v, want ErrBadMAC", err)
	}
	if err := s.Delete(Key{MAC: mac, Identity: "alice"}); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := s.Lookup(mac, "alice"); ok {
		t.Error("deleted entry still served")
	}
	if n, err := s.Purge(dotted); err != nil || n != 2 {
		t.Errorf("Purge = %d, %v; want 2", n, err)
	}
	if s.Count() != 0 {
		t.Errorf("Count after purge = %d", s.Count())
	}
}

func TestUpsertRejects(t *testing.T) {
	s := mustOpen(t, "", Options{})
	tests := []struct {
		name string
		e    Entry
		want error
	}{
		{"bad mac", Entry{MAC: "aa:bb", AuthType: AuthMAB}, ErrBadMAC},
		{"bad auth type", Entry{MAC: macN(1), AuthType: "peap"}, ErrBadAuthType},
		{"tls without identity", Entry{MAC: macN(1), AuthType: AuthEAPTLS}, ErrNoIdentity},
		{"identity too long", Entry{MAC: macN(1), AuthType: AuthEAPTLS, Identity: Identity{CN: strings.Repeat("x", 1025)}}, ErrLongKey},
	}
	for _, tt := range tests {
		if err := s.Upsert(tt.e); !errors.Is(err, tt.want) {
			t.Errorf("%s: err = %v, want %v", tt.name, err, tt.want)
		}
	}
}

func TestPurgeAll(t *testing.T) {
	s := mustOpen(t, "", Options{})
	for i := range 10 {
		if err := s.Upsert(mab(i, time.Time{})); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := s.Purge(""); err != nil || n != 10 {
		t.Fatalf("Purge(\"\") = %d, %v", n, err)
	}
	if n, err := s.Sweep(0); n != 0 || err != nil || s.Count() != 0 {
		t.Fatalf("after purge: sweep %d %v, count %d", n, err, s.Count())
	}
	if err := s.Upsert(mab(1, time.Time{})); err != nil || s.Count() != 1 {
		t.Fatalf("upsert after purge: %v, count %d", err, s.Count())
	}
}

func TestSweepBatches(t *testing.T) {
	clk := newClock()
	reg := prometheus.NewRegistry()
	s := mustOpen(t, "", Options{TTL: 24 * time.Hour, Now: clk.Now, SweepBatch: 3, Registerer: reg})
	// Entries i = 0..14 were last authenticated i hours ago.
	for i := range 15 {
		if err := s.Upsert(mab(i, epoch.Add(-time.Duration(i)*time.Hour))); err != nil {
			t.Fatal(err)
		}
	}
	clk.Advance(14*time.Hour + 30*time.Minute) // 10..14 are now > 24h old; so are 5..9 after 5h more
	clk.Advance(5 * time.Hour)                 // 0..4 remain (ages 19.5h..23.5h)
	c0 := s.commits.Load()
	n, err := s.Sweep(4)
	if err != nil || n != 4 {
		t.Fatalf("Sweep(4) = %d, %v; want 4", n, err)
	}
	if c := s.commits.Load() - c0; c != 2 { // batches of 3 and 1
		t.Errorf("Sweep(4) took %d transactions, want 2", c)
	}
	c0 = s.commits.Load()
	// The four oldest went first.
	for i := 11; i < 15; i++ {
		if present(t, s, i) {
			t.Errorf("entry %d (oldest) survived Sweep(4)", i)
		}
	}
	n, err = s.Sweep(0)
	if err != nil || n != 6 {
		t.Fatalf("Sweep(0) = %d, %v; want 6", n, err)
	}
	if c := s.commits.Load() - c0; c != 2 { // 3, 3
		t.Errorf("Sweep(0) took %d transactions, want 2", c)
	}
	if s.Count() != 5 {
		t.Fatalf("Count = %d, want 5", s.Count())
	}
	for i := range 5 {
		if !present(t, s, i) {
			t.Errorf("unexpired entry %d swept", i)
		}
	}
	if got := counterValue(t, reg, "mxedge_cache_swept_total"); got != 10 {
		t.Errorf("swept_total = %v, want 10", got)
	}
	c0 = s.commits.Load()
	if n, _ := s.Sweep(0); n != 0 || s.commits.Load() != c0 {
		t.Errorf("idle sweep removed %d in %d transactions", n, s.commits.Load()-c0)
	}
	// Three sweeps ran, the idle one included; none failed.
	if ok, failed := labelledValue(t, reg, "mxedge_cache_sweeps_total", "ok"), labelledValue(t, reg, "mxedge_cache_sweeps_total", "error"); ok != 3 || failed != 0 {
		t.Errorf("sweeps_total ok %v error %v, want 3 and 0", ok, failed)
	}
}

func TestSweepSkipsReupserted(t *testing.T) {
	clk := newClock()
	s := mustOpen(t, "", Options{TTL: 24 * time.Hour, Now: clk.Now})
	if err := s.Upsert(mab(1, epoch)); err != nil {
		t.Fatal(err)
	}
	clk.Advance(23 * time.Hour)
	if err := s.Upsert(mab(1, clk.Now())); err != nil { // re-authenticated: lives on
		t.Fatal(err)
	}
	clk.Advance(2 * time.Hour)
	if n, err := s.Sweep(0); err != nil || n != 0 || !present(t, s, 1) {
		t.Fatalf("Sweep removed a refreshed entry: %d, %v", n, err)
	}
}

func TestEvictionOrder(t *testing.T) {
	clk := newClock()
	reg := prometheus.NewRegistry()
	s := mustOpen(t, "", Options{Now: clk.Now, MaxEntries: 3, Registerer: reg})
	// Entry i was authenticated at epoch - perm[i] hours; the store keeps
	// the three authenticated most recently whatever the insert order.
	ages := []int{5, 1, 9, 3, 7, 2}
	for i, age := range ages {
		if err := s.Upsert(mab(i, epoch.Add(-time.Duration(age)*time.Hour))); err != nil {
			t.Fatal(err)
		}
		if s.Count() > 3 {
			t.Fatalf("Count = %d past the bound", s.Count())
		}
	}
	for i, age := range ages {
		if want := age <= 3; present(t, s, i) != want {
			t.Errorf("entry %d (age %dh): present = %v, want %v", i, age, !want, want)
		}
	}
	if got := counterValue(t, reg, "mxedge_cache_evictions_total"); got != 3 {
		t.Errorf("evictions_total = %v, want 3", got)
	}
}

func TestApplySyncTombstonesAndCursor(t *testing.T) {
	clk := newClock()
	s := mustOpen(t, "", Options{Now: clk.Now})
	var ups []Entry
	for i := range 20 {
		ups = append(ups, mab(i, epoch))
	}
	ups = append(ups, tls(3, "alice", epoch), Entry{MAC: "junk", AuthType: AuthMAB})
	if err := s.ApplySync(SyncPage{Cursor: "c1", Upserts: ups, Final: true}); err != nil {
		t.Fatal(err)
	}
	if s.Count() != 21 || s.Cursor() != "c1" {
		t.Fatalf("after page 1: count %d cursor %q", s.Count(), s.Cursor())
	}
	err := s.ApplySync(SyncPage{
		Cursor:     "c2",
		Tombstones: []Key{{MAC: macN(1)}, {MAC: macN(3), Identity: "alice"}, {MAC: macN(99)}, {MAC: "bad"}},
		Upserts:    []Entry{mab(1, epoch.Add(time.Minute))}, // tombstones first: this one stays
	})
	if err != nil {
		t.Fatal(err)
	}
	if s.Count() != 20 || s.Cursor() != "c2" {
		t.Fatalf("after page 2: count %d cursor %q", s.Count(), s.Cursor())
	}
	if !present(t, s, 1) || !present(t, s, 3) {
		t.Error("entry 1 or MAB 3 missing")
	}
	if _, ok, _ := s.Lookup(macN(3), "alice"); ok {
		t.Error("tombstoned EAP-TLS entry still served")
	}
}

func TestFullResyncRemovesStale(t *testing.T) {
	clk := newClock()
	path := filepath.Join(t.TempDir(), "cache.db")
	s, err := Open(path, Options{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	var old []Entry
	for i := range 10 {
		old = append(old, mab(i, epoch))
	}
	if err := s.ApplySync(SyncPage{Cursor: "d1", Upserts: old, Final: true}); err != nil {
		t.Fatal(err)
	}
	// Full set: 0..4 and 10..12, over two pages with a restart in between.
	if err := s.ApplySync(SyncPage{Cursor: "f1", Full: true, Upserts: []Entry{mab(0, epoch), mab(1, epoch), mab(2, epoch), mab(10, epoch)}}); err != nil {
		t.Fatal(err)
	}
	if !s.Stats().FullSync || s.Count() != 11 {
		t.Fatalf("mid resync: stats %+v", s.Stats())
	}
	// A local upsert during the resync is not stale.
	if err := s.Upsert(mab(20, epoch)); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = mustOpen(t, path, Options{Now: clk.Now})
	if !s.Stats().FullSync || s.Cursor() != "f1" {
		t.Fatalf("after reopen: %+v", s.Stats())
	}
	if err := s.ApplySync(SyncPage{Cursor: "f2", Full: true, Final: true, Upserts: []Entry{mab(3, epoch), mab(4, epoch), mab(11, epoch), mab(12, epoch)}}); err != nil {
		t.Fatal(err)
	}
	want := []int{0, 1, 2, 3, 4, 10, 11, 12, 20}
	for i := range 21 {
		if got := present(t, s, i); got != slices.Contains(want, i) {
			t.Errorf("entry %d present = %v", i, got)
		}
	}
	checkConsistent(t, s)
	if st := s.Stats(); st.FullSync || st.Entries != len(want) || st.Cursor != "f2" {
		t.Errorf("after resync: %+v", st)
	}
}

func TestBeginFullRestarts(t *testing.T) {
	s := mustOpen(t, "", Options{})
	if err := s.ApplySync(SyncPage{Upserts: []Entry{mab(1, time.Time{}), mab(2, time.Time{})}}); err != nil {
		t.Fatal(err)
	}
	// An interrupted resync saw entry 1; the cloud then restarts from scratch
	// and its full set no longer has entry 1.
	if err := s.ApplySync(SyncPage{Full: true, Upserts: []Entry{mab(1, time.Time{})}}); err != nil {
		t.Fatal(err)
	}
	if err := s.BeginFull(); err != nil {
		t.Fatal(err)
	}
	if err := s.ApplySync(SyncPage{Full: true, Final: true, Upserts: []Entry{mab(2, time.Time{})}}); err != nil {
		t.Fatal(err)
	}
	if present(t, s, 1) || !present(t, s, 2) || s.Count() != 1 {
		t.Errorf("after restarted resync: 1=%v 2=%v count=%d", present(t, s, 1), present(t, s, 2), s.Count())
	}
}

func TestReopenPersistence(t *testing.T) {
	clk := newClock()
	path := filepath.Join(t.TempDir(), "cache.db")
	s, err := Open(path, Options{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.ApplySync(SyncPage{Cursor: "abc", Upserts: []Entry{mab(1, epoch), tls(2, "bob", epoch)}}); err != nil {
		t.Fatal(err)
	}
	if err := s.AppendEvent(Event{ID: "e1", Type: "NAC Client Access Allowed", MAC: macN(1)}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = mustOpen(t, path, Options{Now: clk.Now})
	st := s.Stats()
	if st.Entries != 2 || st.Events != 1 || st.Cursor != "abc" || st.SchemaVersion != schemaVersion {
		t.Fatalf("after reopen: %+v", st)
	}
	if e, ok, err := s.Lookup(macN(2), "bob"); err != nil || !ok || e.Authorization.Attributes[1].VendorID != 14823 {
		t.Fatalf("Lookup after reopen = %+v, %v, %v", e, ok, err)
	}
	var listed []string
	if err := s.List(func(e Entry) bool { listed = append(listed, e.Key().String()); return true }); err != nil {
		t.Fatal(err)
	}
	if len(listed) != 2 {
		t.Errorf("List = %v", listed)
	}
}

func TestOpenLocked(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cache.db")
	mustOpen(t, path, Options{})
	_, err := Open(path, Options{LockTimeout: 20 * time.Millisecond})
	if err == nil || !errors.Is(err, berrors.ErrTimeout) || !strings.Contains(err.Error(), "locked by another process") {
		t.Fatalf("second Open err = %v", err)
	}
}

func TestOptionsValidation(t *testing.T) {
	tests := []struct {
		opts Options
		ok   bool
	}{
		{Options{}, true},
		{Options{TTL: 24 * time.Hour}, true},
		{Options{TTL: 30 * 24 * time.Hour}, true},
		{Options{TTL: 23 * time.Hour}, false},
		{Options{TTL: 31 * 24 * time.Hour}, false},
		{Options{MaxEntries: -1}, false},
	}
	for _, tt := range tests {
		o, err := tt.opts.withDefaults()
		if (err == nil) != tt.ok {
			t.Errorf("%+v: err = %v", tt.opts, err)
		}
		if err == nil && (o.TTL == 0 || o.MaxEntries == 0 || o.Now == nil || o.Logger == nil) {
			t.Errorf("defaults not applied: %+v", o)
		}
	}
}

func TestMetricNames(t *testing.T) {
	reg := prometheus.NewRegistry()
	s := mustOpen(t, "", Options{Registerer: reg})
	if _, _, err := s.Lookup(macN(1), ""); err != nil {
		t.Fatal(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, mf := range mfs {
		name := mf.GetName()
		names[name] = true
		// mxedge_panics_total is one family across packages (component label).
		if !(strings.HasPrefix(name, "mxedge_cache_") || name == "mxedge_panics_total") || mf.GetHelp() == "" {
			t.Errorf("metric %q: want mxedge_cache_ prefix and help", name)
		}
		if (mf.GetType() == dto.MetricType_COUNTER) != strings.HasSuffix(name, "_total") {
			t.Errorf("metric %q: counters, and only counters, end in _total", name)
		}
	}
	for _, want := range []string{"mxedge_cache_entries", "mxedge_cache_outbox_events", "mxedge_cache_swept_total", "mxedge_cache_evictions_total"} {
		if !names[want] {
			t.Errorf("metric %s missing", want)
		}
	}
	// Reopening against the same registry works once the first is closed.
	s.Close()
	s2, err := Open(s.Path(), Options{Registerer: reg})
	if err != nil {
		t.Fatalf("reopen with same registry: %v", err)
	}
	s2.Close()
}

func present(t *testing.T, s *Store, i int) bool {
	t.Helper()
	_, ok, err := s.Lookup(macN(i), "")
	if err != nil {
		t.Fatal(err)
	}
	return ok
}

// family gathers reg and returns the metrics of the family name.
func family(t *testing.T, reg *prometheus.Registry, name string) []*dto.Metric {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()
		}
	}
	t.Fatalf("no metric %s", name)
	return nil
}

// counterValue is the value of an unlabelled counter.
func counterValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	return family(t, reg, name)[0].GetCounter().GetValue()
}

// gaugeValue is the value of an unlabelled gauge.
func gaugeValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	return family(t, reg, name)[0].GetGauge().GetValue()
}

// labelledValue is the value of the counter name whose one label is value.
func labelledValue(t *testing.T, reg *prometheus.Registry, name, value string) float64 {
	t.Helper()
	for _, m := range family(t, reg, name) {
		if len(m.GetLabel()) == 1 && m.GetLabel()[0].GetValue() == value {
			return m.GetCounter().GetValue()
		}
	}
	t.Fatalf("no metric %s{%s}", name, value)
	return 0
}

func TestConcurrentUse(t *testing.T) {
	clk := newClock()
	s := mustOpen(t, "", Options{Now: clk.Now, MaxEntries: 500, SweepBatch: 7})
	done := make(chan error, 4)
	go func() { // cloud sync
		for p := range 20 {
			ups := make([]Entry, 50)
			for j := range ups {
				ups[j] = mab(p*50+j, clk.Now().Add(-time.Duration(j)*time.Hour))
			}
			if err := s.ApplySync(SyncPage{Cursor: fmt.Sprint(p), Upserts: ups, Tombstones: []Key{{MAC: macN(p)}}}); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	go func() { // local authenticator
		for i := range 2000 {
			if _, _, err := s.Lookup(macN(i%1000), ""); err != nil {
				done <- err
				return
			}
			if i%100 == 0 {
				if err := s.AppendEvent(Event{Type: "NAC Client Access Allowed", MAC: macN(i)}); err != nil {
					done <- err
					return
				}
			}
		}
		done <- nil
	}()
	go func() { // sweeper and clock
		for range 20 {
			clk.Advance(3 * time.Hour)
			if _, err := s.Sweep(0); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	go func() { // status and uploader
		for range 50 {
			_ = s.Stats()
			evs, err := s.PendingEvents(5)
			if err == nil && len(evs) > 0 {
				err = s.AckEvents(evs[0].ID)
			}
			if err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	for range 4 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	checkConsistent(t, s)
	if s.Count() > 500 {
		t.Errorf("Count %d past the bound", s.Count())
	}
}

func TestUpsertMany(t *testing.T) {
	s := mustOpen(t, "", Options{})
	now := time.Now()
	if err := s.UpsertMany([]Entry{mab(1, now), mab(2, now), mab(1, now)}); err != nil {
		t.Fatal(err)
	}
	if s.Count() != 2 {
		t.Fatalf("count %d, want 2 (one key given twice)", s.Count())
	}
	if _, ok, err := s.Lookup(mab(2, now).MAC, ""); !ok || err != nil {
		t.Fatalf("lookup: %v %v", ok, err)
	}
}

// ListCount's count is of the snapshot it listed, even while a writer
// commits: the control socket reported "total 0" next to 25 entries.
func TestListCountIsOneSnapshot(t *testing.T) {
	s := mustOpen(t, "", Options{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 200 {
			if err := s.Upsert(mab(i, epoch)); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	for running := true; running; {
		select {
		case <-done:
			running = false
		default:
		}
		listed := 0
		stored, err := s.ListCount(func(Entry) bool { listed++; return true })
		if err != nil {
			t.Fatal(err)
		}
		if stored != listed {
			t.Fatalf("snapshot holds %d entries, count says %d", listed, stored)
		}
	}
}
