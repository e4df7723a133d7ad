package cache

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	bolt "go.etcd.io/bbolt"
)

// seedFile writes a closed store at dir/cache.db with entries, pending
// events (some acknowledged) and held accounting, and returns its path.
func seedFile(t testing.TB, dir string, entries, events, acct int) string {
	t.Helper()
	path := filepath.Join(dir, "cache.db")
	s, err := Open(path, Options{Now: newClock().Now})
	if err != nil {
		t.Fatal(err)
	}
	var es []Entry
	for i := range entries {
		es = append(es, mab(i, epoch))
	}
	if err := s.UpsertMany(es); err != nil {
		t.Fatal(err)
	}
	for i := range events {
		if err := s.AppendEvent(Event{ID: fmt.Sprintf("ev-%04d", i), Type: "NAC Client Access Allowed", MAC: macN(i)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.AckEvents("ev-0000"); err != nil { // gone: must not come back
		t.Fatal(err)
	}
	for i := range acct {
		if _, err := s.HoldAccounting("sw-1", epoch.Add(time.Duration(i)*time.Second), []byte(fmt.Sprintf("acct-%04d", i))); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// usedSize is the size the newest meta page of the file at path counts
// (bbolt grows files ahead of use, so the file may be larger).
func usedSize(t testing.TB, path string) int64 {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	m0, err0 := parseMeta(b)
	m1, err1 := parseMeta(b[4096:])
	if err0 != nil || (err1 == nil && m1.txid > m0.txid) {
		m0 = m1
	}
	return int64(m0.hwm) * int64(m0.pageSize)
}

func movedFiles(t testing.TB, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "cache.db.damaged-*"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestCheckFile(t *testing.T) {
	dir := t.TempDir()
	good := seedFile(t, dir, 3000, 10, 10)
	size := usedSize(t, good)
	pristine, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name    string
		mangle  func(b []byte) []byte
		damaged bool
	}{
		{"intact", func(b []byte) []byte { return b }, false},
		{"empty", func([]byte) []byte { return nil }, false},
		{"truncated to half", func(b []byte) []byte { return b[:size/2] }, true},
		{"truncated by a page", func(b []byte) []byte { return b[:size-4096] }, true},
		{"meta page 0 zeroed", func(b []byte) []byte { clear(b[:4096]); return b }, false}, // page 1 stands in
		{"both meta pages zeroed", func(b []byte) []byte { clear(b[:8192]); return b }, true},
		{"one meta checksum bit", func(b []byte) []byte { b[16+8] ^= 1; return b }, false},
		{"shorter than a meta page", func(b []byte) []byte { return b[:40] }, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "cache.db")
			if err := os.WriteFile(p, tt.mangle(append([]byte(nil), pristine...)), 0o600); err != nil {
				t.Fatal(err)
			}
			err := CheckFile(p)
			if got := errors.Is(err, ErrDamaged); got != tt.damaged {
				t.Fatalf("CheckFile: %v; damaged %v, want %v", err, got, tt.damaged)
			}
		})
	}
	if err := CheckFile(filepath.Join(dir, "missing.db")); err != nil {
		t.Errorf("missing file: %v", err)
	}
}

func FuzzParseMeta(f *testing.F) {
	path := seedFile(f, f.TempDir(), 10, 1, 1)
	b, err := os.ReadFile(path)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b[:4096])
	f.Add(b[4096:8192])
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := parseMeta(b)
		if err == nil && (m.root >= m.hwm || m.pageSize < minPageSize) {
			t.Fatalf("accepted inconsistent meta %+v", m)
		}
	})
}

// A file shorter than its meta page says was mapped and read past its end:
// SIGBUS at every start. Now it is moved aside, the store starts empty,
// and what the salvage can read comes back.
func TestOpenOrResetTruncated(t *testing.T) {
	dir := t.TempDir()
	path := seedFile(t, dir, 5000, 40, 40)
	if err := os.Truncate(path, usedSize(t, path)/2); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(path, Options{}); !errors.Is(err, ErrDamaged) {
		t.Fatalf("Open of a truncated file: %v, want ErrDamaged", err)
	}
	if _, err := Compact(path, 0, 0); !errors.Is(err, ErrDamaged) {
		t.Fatalf("Compact of a truncated file: %v, want ErrDamaged", err)
	}
	reg := prometheus.NewRegistry()
	s, err := OpenOrReset(path, Options{Registerer: reg})
	if err != nil {
		t.Fatalf("OpenOrReset: %v", err)
	}
	defer s.Close()
	f := s.Stats().LastFault
	if f == nil || f.Reason != FaultOpen || f.MovedTo == "" {
		t.Fatalf("LastFault %+v; want an open fault with the moved file", f)
	}
	if m := movedFiles(t, dir); len(m) != 1 || m[0] != f.MovedTo {
		t.Fatalf("moved files %v, want [%s]", m, f.MovedTo)
	}
	if got := testutil.ToFloat64(s.metrics.faults.WithLabelValues(FaultOpen)); got != 1 {
		t.Errorf("faults{open} = %v, want 1", got)
	}
	if err := s.Upsert(mab(1, time.Now())); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := s.Lookup(macN(1), ""); !ok || err != nil {
		t.Fatalf("Lookup on the new file: %v %v", ok, err)
	}
	if s.Cursor() != "" {
		t.Errorf("cursor %q on a fresh file: the next sync must be a full one", s.Cursor())
	}
}

// Damage in data pages (bytes overwritten at random) never crashes a
// reader: every operation returns or errs, damage moves the file aside,
// and the store keeps working on a fresh one.
func TestRandomPageDamage(t *testing.T) {
	dir := t.TempDir()
	pristine, err := os.ReadFile(seedFile(t, dir, 3000, 200, 200))
	if err != nil {
		t.Fatal(err)
	}
	const pg = 4096
	for seed := range uint64(12) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			r := rand.New(rand.NewPCG(seed, 7))
			b := append([]byte(nil), pristine...)
			for range 8 { // 8 runs of 64 random octets, past the meta pages
				off := 2*pg + r.IntN(len(b)-2*pg-64)
				for i := range 64 {
					b[off+i] = byte(r.Uint32())
				}
			}
			d := t.TempDir()
			path := filepath.Join(d, "cache.db")
			if err := os.WriteFile(path, b, 0o600); err != nil {
				t.Fatal(err)
			}
			s, err := OpenOrReset(path, Options{FaultCooldown: -1})
			if err != nil {
				t.Fatalf("OpenOrReset: %v", err)
			}
			defer s.Close()
			for i := range 3000 {
				_, _, _ = s.Lookup(macN(i), "")
			}
			_, _ = s.PendingEvents(0)
			_, _ = s.HeldAccounting(0)
			_ = s.Verify()
			_ = s.Stats()
			_ = s.List(func(Entry) bool { return true })
			// Whatever happened, the store works once any move-aside is done.
			s.bg.Wait()
			if err := s.Upsert(mab(1, time.Now())); err != nil {
				t.Fatalf("Upsert after damage: %v", err)
			}
			if _, ok, err := s.Lookup(macN(1), ""); !ok || err != nil {
				t.Fatalf("Lookup after damage: %v %v", ok, err)
			}
		})
	}
}

// A file that shrinks under the running store (the mapped pages fault,
// SIGBUS) is a read fault: the store moves it aside and goes on with a
// fresh file under the same *Store.
func TestReadFaultMovesAside(t *testing.T) {
	dir := t.TempDir()
	path := seedFile(t, dir, 5000, 20, 20)
	faults := make(chan Fault, 1)
	reg := prometheus.NewRegistry()
	s, err := Open(path, Options{Registerer: reg, OnFault: func(f Fault) { faults <- f }})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := os.Truncate(path, 2*4096); err != nil {
		t.Fatal(err)
	}
	var lerr error
	for i := range 5000 {
		if _, _, lerr = s.Lookup(macN(i), ""); lerr != nil {
			break
		}
	}
	if !errors.Is(lerr, ErrDamaged) {
		t.Fatalf("Lookup on a shrunken file: %v, want ErrDamaged", lerr)
	}
	f := <-faults
	if f.Reason != FaultRead || f.MovedTo == "" {
		t.Fatalf("fault %+v", f)
	}
	s.bg.Wait() // the salvage
	if err := s.Upsert(mab(1, time.Now())); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := s.Lookup(macN(1), ""); !ok || err != nil {
		t.Fatalf("Lookup after the move: %v %v", ok, err)
	}
	if got := testutil.ToFloat64(s.metrics.faults.WithLabelValues(FaultRead)); got < 1 {
		t.Errorf("faults{read} = %v", got)
	}
}

// An unreadable outbox batch made PendingEvents fail at every upload:
// now it moves the file aside, and the salvage brings back every event of
// the other batches and all the held accounting.
func TestUnreadableOutboxRecovered(t *testing.T) {
	dir := t.TempDir()
	path := seedFile(t, dir, 10, 0, 5)
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for b := range 3 { // three batches of two events
		if err := s.AppendEvents([]Event{{ID: fmt.Sprintf("b%d-0", b), Type: "t"}, {ID: fmt.Sprintf("b%d-1", b), Type: "t"}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.db.Load().Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketBatchState).Put(acctKey(2), []byte{0xff}) // batch 2's state
	}); err != nil {
		t.Fatal(err)
	}
	faults := make(chan Fault, 1)
	s.opts.OnFault = func(f Fault) { faults <- f }
	if _, err := s.PendingEvents(0); !errors.Is(err, errCorrupt) {
		t.Fatalf("PendingEvents: %v, want errCorrupt", err)
	}
	<-faults
	s.bg.Wait()
	evs, err := s.PendingEvents(0)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, e := range evs {
		ids = append(ids, e.ID)
	}
	if got := strings.Join(ids, ","); got != "b0-0,b0-1,b2-0,b2-1" {
		t.Errorf("recovered events %s, want b0-0,b0-1,b2-0,b2-1", got)
	}
	if n := s.AccountingLen(); n != 5 {
		t.Errorf("recovered accounting %d, want 5", n)
	}
	if f := s.LastFault(); f == nil || f.Recovered.Events != 4 || f.Recovered.Accounting != 5 || f.Recovered.Unreadable != 1 {
		t.Errorf("LastFault %+v", f)
	}
	checkConsistent(t, s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestRecover(t *testing.T) {
	src := seedFile(t, t.TempDir(), 100, 30, 25)
	s := mustOpen(t, "", Options{})
	if err := s.AppendEvent(Event{ID: "ev-0003", Type: "t"}); err != nil { // already pending: stored once
		t.Fatal(err)
	}
	res, err := s.Recover(src)
	if err != nil {
		t.Fatal(err)
	}
	if res.Events != 29 || res.Accounting != 25 || res.Unreadable != 0 {
		t.Errorf("Recover: %+v; want 29 events, 25 accounting, 0 unreadable", res)
	}
	if s.OutboxLen() != 29 || s.Count() != 0 {
		t.Errorf("outbox %d entries %d; want 29 (ev-0003 once) and 0", s.OutboxLen(), s.Count())
	}
	recs, err := s.HeldAccounting(0)
	if err != nil || len(recs) != 25 {
		t.Fatalf("held %d, %v", len(recs), err)
	}
	for i, r := range recs {
		if string(r.Packet) != fmt.Sprintf("acct-%04d", i) || r.Client != "sw-1" || !r.Received.Equal(epoch.Add(time.Duration(i)*time.Second)) {
			t.Errorf("record %d: %+v", i, r)
		}
	}
	if _, err := s.Recover(src); !errors.Is(err, ErrAlreadyRecovered) {
		t.Errorf("second Recover: %v, want ErrAlreadyRecovered", err)
	}
	if _, err := s.Recover(s.Path()); err == nil {
		t.Error("Recover of the store's own file accepted")
	}
	checkConsistent(t, s)
}

// The state_dir turned unwritable: the damaged file cannot be replaced,
// and every operation says the cache is unavailable instead of crashing.
func TestResetUnavailable(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root ignores directory permissions")
	}
	dir := t.TempDir()
	path := seedFile(t, dir, 10, 1, 1)
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := os.Chmod(dir, 0o500); err != nil {
		t.Fatal(err)
	}
	defer os.Chmod(dir, 0o700)
	s.fault(FaultRead, errCorrupt)
	s.bg.Wait()
	if _, _, err := s.Lookup(macN(1), ""); !errors.Is(err, ErrUnavailable) {
		t.Errorf("Lookup: %v, want ErrUnavailable", err)
	}
	if err := s.Upsert(mab(1, time.Now())); !errors.Is(err, ErrUnavailable) {
		t.Errorf("Upsert: %v, want ErrUnavailable", err)
	}
	if st := s.Stats(); !st.Unavailable || st.LastFault == nil || st.LastFault.MovedTo != "" {
		t.Errorf("Stats %+v", st)
	}
}

func TestSweeperRecoversPanic(t *testing.T) {
	var boom bool
	c := newClock()
	s := mustOpen(t, "", Options{Now: func() time.Time {
		if boom {
			boom = false
			panic("boom")
		}
		return c.Now()
	}})
	boom = true
	s.sweepOnce()
	if got := testutil.ToFloat64(s.metrics.panics.WithLabelValues("sweeper")); got != 1 {
		t.Errorf("panics{sweeper} = %v, want 1", got)
	}
	if _, err := s.Sweep(0); err != nil {
		t.Fatal(err)
	}
}
