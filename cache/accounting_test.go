package cache

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	bolt "go.etcd.io/bbolt"
)

// acctPacket is a stand-in for an Accounting-Request: the store never
// looks inside.
func acctPacket(i int) []byte {
	return append([]byte{4, byte(i), 0, 20}, fmt.Sprintf("acct-%d-%s", i, bytes.Repeat([]byte{'x'}, i%7))...)
}

func TestAccountingHoldReleaseReopen(t *testing.T) {
	clk := newClock()
	reg := prometheus.NewRegistry()
	path := filepath.Join(t.TempDir(), "cache.db")
	s, err := Open(path, Options{Now: clk.Now, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.AccountingHeld != 0 || !st.AccountingOldest.IsZero() || st.AccountingFull {
		t.Fatalf("empty store stats %+v", st)
	}
	var want []AcctRecord
	for i := range 5 {
		recv := epoch.Add(time.Duration(i) * time.Second)
		if i == 2 {
			recv = time.Time{} // means now
		}
		seq, err := s.HoldAccounting(fmt.Sprintf("switch-%d", i%2), recv, acctPacket(i))
		if err != nil {
			t.Fatal(err)
		}
		if recv.IsZero() {
			recv = clk.Now()
		}
		want = append(want, AcctRecord{Seq: seq, Received: recv, Client: fmt.Sprintf("switch-%d", i%2), Packet: acctPacket(i)})
		clk.Advance(time.Second)
	}
	for i := 1; i < len(want); i++ {
		if want[i].Seq <= want[i-1].Seq {
			t.Fatalf("sequences not increasing: %d then %d", want[i-1].Seq, want[i].Seq)
		}
	}
	checkHeld(t, s, 0, want)
	checkHeld(t, s, 2, want[:2])
	if got, err := s.HeldAccountingAfter(want[1].Seq, 2); err != nil || !slices.EqualFunc(got, want[2:4], acctEqual) {
		t.Fatalf("HeldAccountingAfter(%d, 2) = %+v, %v", want[1].Seq, got, err)
	}
	if got, err := s.HeldAccountingAfter(^uint64(0), 0); err != nil || len(got) != 0 {
		t.Fatalf("HeldAccountingAfter(max) = %+v, %v", got, err)
	}
	if _, err := s.HoldAccounting("switch-0", epoch, nil); err == nil {
		t.Fatal("an empty packet was held")
	}

	// A record handed out is a copy: changing it changes nothing stored.
	got, _ := s.HeldAccounting(1)
	got[0].Packet[0] = 99
	checkHeld(t, s, 0, want)

	// Release the oldest, one in the middle, one twice and one unknown.
	if err := s.ReleaseAccounting(want[0].Seq, want[2].Seq, want[2].Seq, 12345); err != nil {
		t.Fatal(err)
	}
	want = slices.Delete(want, 2, 3)
	want = want[1:]
	checkHeld(t, s, 0, want)
	st := s.Stats()
	if st.AccountingHeld != 3 || !st.AccountingOldest.Equal(want[0].Received) || st.AccountingFull {
		t.Fatalf("stats %+v", st)
	}
	if got := gaugeValue(t, reg, "mxedge_cache_accounting_held"); got != 3 {
		t.Errorf("accounting_held = %v", got)
	}
	if got := gaugeValue(t, reg, "mxedge_cache_accounting_held_bytes"); got != float64(st.AccountingBytes) || got == 0 {
		t.Errorf("accounting_held_bytes = %v, Stats %d", got, st.AccountingBytes)
	}
	// The clock is at epoch+5s, the oldest record was received at epoch+1s.
	if got := gaugeValue(t, reg, "mxedge_cache_accounting_oldest_age_seconds"); got != 4 {
		t.Errorf("accounting_oldest_age_seconds = %v, want 4", got)
	}
	checkConsistent(t, s)

	// Reopen keeps the records, the counts and the sequence: a new record
	// sorts last, even after every held one is released.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = mustOpen(t, path, Options{Now: clk.Now})
	checkHeld(t, s, 0, want)
	checkConsistent(t, s)
	last := want[len(want)-1].Seq
	for _, r := range want {
		if err := s.ReleaseAccounting(r.Seq); err != nil {
			t.Fatal(err)
		}
	}
	seq, err := s.HoldAccounting("switch-9", epoch, acctPacket(9))
	if err != nil || seq <= last {
		t.Fatalf("hold after releasing all: seq %d (last was %d), %v", seq, last, err)
	}
	checkConsistent(t, s)
}

func TestAccountingBound(t *testing.T) {
	reg := prometheus.NewRegistry()
	s := mustOpen(t, "", Options{MaxAccounting: 3, Registerer: reg})
	var seqs []uint64
	for i := range 3 {
		seq, err := s.HoldAccounting("sw", epoch, acctPacket(i))
		if err != nil {
			t.Fatal(err)
		}
		seqs = append(seqs, seq)
	}
	c0 := s.commits.Load()
	if _, err := s.HoldAccounting("sw", epoch, acctPacket(3)); !errors.Is(err, ErrAccountingFull) {
		t.Fatalf("hold into a full store: %v", err)
	}
	if s.commits.Load() != c0 {
		t.Errorf("a refusal cost a commit")
	}
	if st := s.Stats(); st.AccountingHeld != 3 || !st.AccountingFull {
		t.Fatalf("stats %+v", st)
	}
	if got := counterValue(t, reg, "mxedge_cache_accounting_refused_total"); got != 1 {
		t.Errorf("accounting_refused_total = %v", got)
	}
	// Nothing was evicted: the three promised records are all there.
	held, _ := s.HeldAccounting(0)
	if len(held) != 3 || held[0].Seq != seqs[0] {
		t.Fatalf("held %+v", held)
	}
	if err := s.ReleaseAccounting(seqs[0]); err != nil {
		t.Fatal(err)
	}
	if _, err := s.HoldAccounting("sw", epoch, acctPacket(4)); err != nil {
		t.Fatalf("hold after a release: %v", err)
	}
	checkConsistent(t, s)
}

// TestAccountingGroupCommit holds the first commit back until more holders
// have queued, and checks that they then share one commit, in the order
// they queued, and that the bound is enforced inside a shared commit.
func TestAccountingGroupCommit(t *testing.T) {
	const n = 8
	for _, tc := range []struct {
		name    string
		max     int
		refused int
	}{
		{"below bound", 0, 0},
		{"bound reached in the batch", n - 1, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reg := prometheus.NewRegistry()
			s := mustOpen(t, "", Options{MaxAccounting: tc.max, Registerer: reg})
			c0 := s.commits.Load()
			type result struct {
				i   int
				seq uint64
				err error
			}
			results := make(chan result, n)
			hold := func(i int) {
				seq, err := s.HoldAccounting("sw", epoch, acctPacket(i))
				results <- result{i, seq, err}
			}
			// The first holder leads a commit, which waits on the writer
			// lock the test holds.
			s.wmu.Lock()
			go hold(0)
			waitAcct(t, s, func() bool { return s.acctLeading && len(s.acctQueue) == 0 })
			// The rest queue behind it one at a time, so that their order
			// is known.
			for i := 1; i < n; i++ {
				go hold(i)
				waitAcct(t, s, func() bool { return len(s.acctQueue) == i })
			}
			s.wmu.Unlock()
			got := make([]result, n)
			for range n {
				r := <-results
				got[r.i] = r
			}
			if c := s.commits.Load() - c0; c != 2 {
				t.Errorf("%d holders took %d commits, want 2 (the first, then the rest together)", n, c)
			}
			refused := 0
			for i, r := range got {
				switch {
				case errors.Is(r.err, ErrAccountingFull):
					refused++
					if i != n-1 {
						t.Errorf("holder %d refused, want only the last", i)
					}
				case r.err != nil:
					t.Fatalf("holder %d: %v", i, r.err)
				case i > 0 && r.seq <= got[i-1].seq:
					t.Errorf("holder %d got seq %d after %d: not in queue order", i, r.seq, got[i-1].seq)
				}
			}
			if refused != tc.refused {
				t.Errorf("%d refused, want %d", refused, tc.refused)
			}
			if got := counterValue(t, reg, "mxedge_cache_accounting_refused_total"); got != float64(tc.refused) {
				t.Errorf("accounting_refused_total = %v", got)
			}
			if s.AccountingLen() != n-tc.refused {
				t.Errorf("AccountingLen = %d", s.AccountingLen())
			}
			checkConsistent(t, s)
		})
	}
}

// waitAcct yields until cond, read under the group commit's lock, holds.
// It waits on goroutines reaching a point, not on time.
func waitAcct(t *testing.T, s *Store, cond func() bool) {
	t.Helper()
	for range 10_000_000 {
		s.acctMu.Lock()
		ok := cond()
		s.acctMu.Unlock()
		if ok {
			return
		}
		runtime.Gosched()
	}
	t.Fatal("holders never reached the expected state")
}

// Many holders at once: each gets a distinct sequence, every record is
// stored once, and the commits are fewer than the records.
func TestAccountingConcurrentHolders(t *testing.T) {
	s := mustOpen(t, "", Options{})
	const holders, each = 16, 25
	c0 := s.commits.Load()
	var wg sync.WaitGroup
	seqs := make([][]uint64, holders)
	for g := range holders {
		wg.Go(func() {
			for i := range each {
				seq, err := s.HoldAccounting(fmt.Sprint("sw-", g), epoch, acctPacket(g*each+i))
				if err != nil {
					t.Error(err)
					return
				}
				seqs[g] = append(seqs[g], seq)
			}
		})
	}
	wg.Wait()
	held, err := s.HeldAccounting(0)
	if err != nil || len(held) != holders*each {
		t.Fatalf("held %d, %v", len(held), err)
	}
	for g := range holders {
		if !slices.IsSorted(seqs[g]) {
			t.Errorf("holder %d's sequences out of order: %v", g, seqs[g])
		}
	}
	c := s.commits.Load() - c0
	t.Logf("%d records in %d commits", holders*each, c)
	if c >= holders*each {
		t.Errorf("%d records took %d commits: none shared", holders*each, c)
	}
	checkConsistent(t, s)
}

// TestAccountingMatchesModel drives the hold with random holds (some into
// a full store), releases (of held, released and unknown sequences) and
// reopens, and checks it against a list after each step.
func TestAccountingMatchesModel(t *testing.T) {
	for seed := range uint64(8) {
		rng := rand.New(rand.NewPCG(seed, 11))
		const maxHeld = 30
		path := filepath.Join(t.TempDir(), "cache.db")
		opts := Options{MaxAccounting: maxHeld, noSync: true}
		s, err := Open(path, opts)
		if err != nil {
			t.Fatal(err)
		}
		var model []AcctRecord // held, oldest first
		var gone []uint64      // released sequences
		next := 0
		for step := range 300 {
			switch op := rng.IntN(10); {
			case op < 5:
				rec := AcctRecord{Received: epoch.Add(time.Duration(next) * time.Millisecond), Client: fmt.Sprint("sw-", rng.IntN(3)), Packet: acctPacket(next)}
				next++
				seq, err := s.HoldAccounting(rec.Client, rec.Received, rec.Packet)
				if len(model) >= maxHeld {
					if !errors.Is(err, ErrAccountingFull) {
						t.Fatalf("seed %d step %d: hold into full store: %v", seed, step, err)
					}
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				if len(model) > 0 && seq <= model[len(model)-1].Seq || slices.Contains(gone, seq) {
					t.Fatalf("seed %d step %d: seq %d reused or out of order", seed, step, seq)
				}
				rec.Seq = seq
				model = append(model, rec)
			case op < 8:
				var rel []uint64
				for range rng.IntN(6) {
					switch {
					case len(model) > 0 && rng.IntN(3) > 0:
						// The replayer releases mostly from the front.
						rel = append(rel, model[rng.IntN(min(len(model), 1+rng.IntN(4)))].Seq)
					case len(gone) > 0 && rng.IntN(2) == 0:
						rel = append(rel, gone[rng.IntN(len(gone))])
					default:
						rel = append(rel, uint64(1000+rng.IntN(100)))
					}
				}
				if err := s.ReleaseAccounting(rel...); err != nil {
					t.Fatal(err)
				}
				model = slices.DeleteFunc(model, func(r AcctRecord) bool {
					if slices.Contains(rel, r.Seq) {
						gone = append(gone, r.Seq)
						return true
					}
					return false
				})
			case op < 9:
				if err := s.Close(); err != nil {
					t.Fatal(err)
				}
				if s, err = Open(path, opts); err != nil {
					t.Fatal(err)
				}
			default:
				n := 1 + rng.IntN(maxHeld)
				checkHeld(t, s, n, model[:min(n, len(model))])
			}
			checkHeld(t, s, 0, model)
			if st := s.Stats(); st.AccountingFull != (len(model) >= maxHeld) {
				t.Fatalf("seed %d step %d: Full %v with %d held", seed, step, st.AccountingFull, len(model))
			}
			checkConsistent(t, s)
		}
		s.Close()
	}
}

func FuzzDecodeAcct(f *testing.F) {
	f.Add(encodeAcct(epoch, "switch-1", acctPacket(1)))
	f.Add(encodeAcct(epoch, "", []byte{4}))
	f.Add([]byte{acctRecordV1, 0, 0, 0, 0, 0, 0, 0, 0, 200, 1})
	f.Fuzz(func(t *testing.T, v []byte) {
		rec, err := decodeAcct(acctKey(7), v)
		if err != nil {
			return
		}
		again, err := decodeAcct(acctKey(7), encodeAcct(rec.Received, rec.Client, rec.Packet))
		if err != nil || !acctEqual(rec, again) {
			t.Fatalf("round trip: %+v -> %+v, %v", rec, again, err)
		}
	})
}

func checkHeld(t *testing.T, s *Store, max int, want []AcctRecord) {
	t.Helper()
	got, err := s.HeldAccounting(max)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.EqualFunc(got, want, acctEqual) {
		t.Fatalf("HeldAccounting(%d) =\n%+v\nwant\n%+v", max, got, want)
	}
	if max <= 0 && s.AccountingLen() != len(want) {
		t.Fatalf("AccountingLen = %d, want %d", s.AccountingLen(), len(want))
	}
}

func acctEqual(a, b AcctRecord) bool {
	return a.Seq == b.Seq && a.Received.Equal(b.Received) && a.Client == b.Client && bytes.Equal(a.Packet, b.Packet)
}

// A v3 file from before the hold (no bucket, no meta keys) opens, gains
// the bucket without a schema bump, and holds.
func TestAccountingOnFileFromBefore(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cache.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Upsert(mab(1, time.Time{})); err != nil {
		t.Fatal(err)
	}
	if err := s.db.Load().Update(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		return errors.Join(tx.DeleteBucket(bucketAcct), meta.Delete(metaAcct), meta.Delete(metaAcctBytes))
	}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = mustOpen(t, path, Options{})
	if st := s.Stats(); st.SchemaVersion != 3 || st.AccountingHeld != 0 || st.Entries != 1 {
		t.Fatalf("stats %+v", st)
	}
	if _, err := s.HoldAccounting("sw", epoch, acctPacket(1)); err != nil {
		t.Fatal(err)
	}
	checkConsistent(t, s)
}
