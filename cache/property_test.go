package cache

import (
	"context"
	"math/rand/v2"
	"testing"
	"testing/synctest"
	"time"
)

// TestStoreMatchesModel drives the store with random operations and checks
// it against a map of key → expiry after each one.
func TestStoreMatchesModel(t *testing.T) {
	for seed := range uint64(8) {
		rng := rand.New(rand.NewPCG(seed, 42))
		clk := newClock()
		const maxEntries = 40
		s := mustOpen(t, "", Options{TTL: 24 * time.Hour, Now: clk.Now, MaxEntries: maxEntries, SweepBatch: 1 + rng.IntN(5), noSync: true})
		model := map[Key]time.Time{}
		keyOf := func(i int, id string) Key {
			mac, _ := NormalizeMAC(macN(i))
			return Key{MAC: mac, Identity: id}
		}
		ids := []string{"", "alice", "host/pc"}
		for step := range 400 {
			i, id := rng.IntN(30), ids[rng.IntN(len(ids))]
			switch op := rng.IntN(10); {
			case op < 5: // upsert, sometimes already expired
				last := clk.Now().Add(-time.Duration(rng.IntN(30)) * time.Hour)
				e := mab(i, last)
				if id != "" {
					e = tls(i, id, last)
				}
				if err := s.Upsert(e); err != nil {
					t.Fatal(err)
				}
				k, exp := keyOf(i, id), last.Add(24*time.Hour)
				delete(model, k)
				if exp.After(clk.Now()) {
					model[k] = exp
				}
				evictModel(model, maxEntries)
			case op < 6:
				k := keyOf(i, id)
				if err := s.Delete(k); err != nil {
					t.Fatal(err)
				}
				delete(model, k)
			case op < 7:
				clk.Advance(time.Duration(rng.IntN(6)) * time.Hour)
			case op < 8:
				if _, err := s.Sweep(0); err != nil {
					t.Fatal(err)
				}
				for k, exp := range model {
					if !exp.After(clk.Now()) {
						delete(model, k)
					}
				}
			case op < 9 && rng.IntN(10) == 0:
				n, err := s.Purge(macN(i))
				if err != nil {
					t.Fatal(err)
				}
				want := 0
				for k := range model {
					if k.MAC == keyOf(i, "").MAC {
						delete(model, k)
						want++
					}
				}
				if n != want {
					t.Fatalf("seed %d step %d: Purge = %d, want %d", seed, step, n, want)
				}
			default:
				k := keyOf(i, id)
				_, ok, err := s.Lookup(k.MAC, k.Identity)
				exp, in := model[k]
				if want := in && exp.After(clk.Now()); err != nil || ok != want {
					t.Fatalf("seed %d step %d: Lookup(%v) = %v, %v; want %v", seed, step, k, ok, err, want)
				}
			}
			if s.Count() != len(model) {
				t.Fatalf("seed %d step %d: Count = %d, model %d", seed, step, s.Count(), len(model))
			}
			checkConsistent(t, s)
		}
		listed := 0
		if err := s.List(func(Entry) bool { listed++; return true }); err != nil {
			t.Fatal(err)
		}
		live := 0
		for _, exp := range model {
			if exp.After(clk.Now()) {
				live++
			}
		}
		if listed != live {
			t.Fatalf("seed %d: List saw %d, model has %d live", seed, listed, live)
		}
	}
}

// evictModel drops the soonest-expiring keys past max. Ties don't occur in
// practice here because expiries differ by whole hours only between keys
// authenticated at different times; when they do, the key order decides,
// as in the TTL index.
func evictModel(m map[Key]time.Time, max int) {
	for len(m) > max {
		var victim Key
		var first time.Time
		for k, exp := range m {
			if first.IsZero() || exp.Before(first) || exp.Equal(first) && keyLess(k, victim) {
				victim, first = k, exp
			}
		}
		delete(m, victim)
	}
}

func keyLess(a, b Key) bool {
	ka, _ := encodeKey(a)
	kb, _ := encodeKey(b)
	return string(ka) < string(kb)
}

func TestRunSweeper(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		clk := newClock()
		s := mustOpen(t, "", Options{TTL: 24 * time.Hour, Now: clk.Now})
		for i := range 5 {
			if err := s.Upsert(mab(i, epoch.Add(-time.Duration(i)*time.Hour))); err != nil {
				t.Fatal(err)
			}
		}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() { s.RunSweeper(ctx, time.Minute); close(done) }()
		synctest.Wait() // first sweep ran: nothing expired
		if s.Count() != 5 {
			t.Fatalf("Count = %d after first sweep", s.Count())
		}
		clk.Advance(21*time.Hour + 30*time.Minute) // entries 3 and 4 expire
		time.Sleep(time.Minute)                    // fake time: one tick
		synctest.Wait()
		if s.Count() != 3 {
			t.Fatalf("Count = %d after a tick, want 3", s.Count())
		}
		cancel()
		<-done
	})
}
