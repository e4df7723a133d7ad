package cache

import (
	"bufio"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

const fixtureN = 1_000_000

var (
	fixtureOnce sync.Once
	fixturePath string
	fixtureErr  error
)

// fixtureNow pins the clock of benchmark stores, so the cached fixture
// never expires whatever day the benchmark runs.
func fixtureNow() time.Time { return epoch }

// fixtureEntry is entry i of the 1M fixture: half MAB, half EAP-TLS with
// three attributes, like a campus where laptops use certificates and
// printers, phones and cameras use MAB.
func fixtureEntry(i int) Entry {
	if i%2 == 0 {
		return mab(i, epoch)
	}
	return tls(i, "user"+strconv.Itoa(i), epoch)
}

func fixtureKey(i int) (mac, identity string) {
	if i%2 == 0 {
		return macN(i), ""
	}
	return macN(i), "user" + strconv.Itoa(i)
}

// oneMillion returns the path of a 1M-entry store, built once and kept
// under os.TempDir across runs. Building it uses NoSync and 100k-entry
// transactions: it is a rebuildable fixture, not a cache.
func oneMillion(b *testing.B) string {
	b.Helper()
	fixtureOnce.Do(func() {
		fixturePath = filepath.Join(os.TempDir(), fmt.Sprintf("mxedge-cache-bench-%d-v%d.db", fixtureN, schemaVersion))
		if s, err := Open(fixturePath, Options{Now: fixtureNow}); err == nil {
			n := s.Count()
			_, ok, _ := s.Lookup(fixtureKey(fixtureN - 1))
			s.Close()
			if n == fixtureN && ok {
				return
			}
		}
		os.Remove(fixturePath)
		start := time.Now()
		s, err := Open(fixturePath, Options{Now: fixtureNow, MaxEntries: fixtureN, noSync: true})
		if err != nil {
			fixtureErr = err
			return
		}
		defer s.Close()
		// Pages in global key order make every transaction an append, so
		// each commit writes only its new pages at FillPercent 0.9.
		type keyed struct {
			key string
			i   int
		}
		order := make([]keyed, fixtureN)
		for i := range order {
			e := fixtureEntry(i)
			k, _ := e.normalize()
			order[i] = keyed{string(k), i}
		}
		slices.SortFunc(order, func(a, b keyed) int { return strings.Compare(a.key, b.key) })
		const page = 100_000
		ups := make([]Entry, page)
		for p := 0; p < fixtureN/page; p++ {
			for j := range ups {
				ups[j] = fixtureEntry(order[p*page+j].i)
			}
			if fixtureErr = s.ApplySync(SyncPage{Cursor: strconv.Itoa(p), Upserts: ups}); fixtureErr != nil {
				return
			}
		}
		fixtureErr = s.db.Load().Sync()
		b.Logf("built %d-entry fixture %s in %s (%d MB)", fixtureN, fixturePath, time.Since(start).Round(time.Millisecond), fileSize(fixturePath)>>20)
	})
	if fixtureErr != nil {
		b.Fatalf("fixture: %v", fixtureErr)
	}
	return fixturePath
}

// BenchmarkLookup1M times individual lookups of random clients in a 1M
// store and reports their p50 and p99.
func BenchmarkLookup1M(b *testing.B) {
	s, err := Open(oneMillion(b), Options{Now: fixtureNow})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	rng := rand.New(rand.NewPCG(1, 2))
	type key struct{ mac, id string }
	keys := make([]key, 1<<16)
	for i := range keys {
		keys[i].mac, keys[i].id = fixtureKey(rng.IntN(fixtureN))
	}
	// Warm the page cache the way a running daemon's would be.
	for i := range 200_000 {
		k := keys[i%len(keys)]
		if _, ok, err := s.Lookup(k.mac, k.id); !ok || err != nil {
			b.Fatalf("warm-up lookup %v: %v %v", k, ok, err)
		}
	}
	samples := make([]time.Duration, 0, 1<<21) // b.N is not known under b.Loop
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		k := keys[(i*7919)%len(keys)]
		t0 := time.Now()
		_, ok, err := s.Lookup(k.mac, k.id)
		d := time.Since(t0)
		if !ok || err != nil {
			b.Fatalf("lookup %v: %v %v", k, ok, err)
		}
		if len(samples) < cap(samples) {
			samples = append(samples, d)
		}
	}
	b.StopTimer()
	slices.Sort(samples)
	if n := len(samples); n > 0 {
		b.ReportMetric(float64(samples[n/2]), "p50-ns")
		b.ReportMetric(float64(samples[n*99/100]), "p99-ns")
	}
	reportRSS(b)
}

// BenchmarkApplySync100k applies one 100k-entry page to a fresh store,
// as a delta and as a complete full resync (Full and Final).
func BenchmarkApplySync100k(b *testing.B) {
	const n = 100_000
	ups := make([]Entry, n)
	for i := range ups {
		ups[i] = fixtureEntry(i)
	}
	for _, full := range []bool{false, true} {
		name := map[bool]string{false: "delta", true: "full"}[full]
		b.Run(name, func(b *testing.B) {
			var total time.Duration
			for i := 0; b.Loop(); i++ {
				b.StopTimer()
				s, err := Open(filepath.Join(b.TempDir(), fmt.Sprintf("apply%d.db", i)), Options{Now: fixtureNow})
				if err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				t0 := time.Now()
				if err := s.ApplySync(SyncPage{Cursor: "c", Upserts: ups, Full: full, Final: full}); err != nil {
					b.Fatal(err)
				}
				total += time.Since(t0)
				b.StopTimer()
				if s.Count() != n {
					b.Fatalf("Count = %d", s.Count())
				}
				s.Close()
				b.StartTimer()
			}
			b.ReportMetric(float64(total.Milliseconds())/float64(b.N), "ms/100k")
			reportRSS(b)
		})
	}
}

// BenchmarkApplySync100kInto1M refreshes 100k random clients of a copy of
// the 1M store: the 30-minute delta of a large site, where updates land
// all over the B+tree instead of appending.
func BenchmarkApplySync100kInto1M(b *testing.B) {
	src := oneMillion(b)
	const n = 100_000
	rng := rand.New(rand.NewPCG(3, 4))
	ups := make([]Entry, n)
	for j, i := range rng.Perm(fixtureN)[:n] {
		ups[j] = fixtureEntry(i)
		ups[j].LastAuthAt = epoch.Add(time.Hour)
	}
	var total time.Duration
	for i := 0; b.Loop(); i++ {
		b.StopTimer()
		path := filepath.Join(b.TempDir(), fmt.Sprintf("into%d.db", i))
		if err := copyFile(path, src); err != nil {
			b.Fatal(err)
		}
		s, err := Open(path, Options{Now: fixtureNow})
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		t0 := time.Now()
		if err := s.ApplySync(SyncPage{Cursor: "c", Upserts: ups}); err != nil {
			b.Fatal(err)
		}
		total += time.Since(t0)
		b.StopTimer()
		if s.Count() != fixtureN {
			b.Fatalf("Count = %d", s.Count())
		}
		s.Close()
		os.Remove(path)
		b.StartTimer()
	}
	b.ReportMetric(float64(total.Milliseconds())/float64(b.N), "ms/100k")
	reportRSS(b)
}

func copyFile(dst, src string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// BenchmarkOpen1M measures opening (and closing) the 1M store: what a
// restart during a WAN outage costs before the first answer.
func BenchmarkOpen1M(b *testing.B) {
	path := oneMillion(b)
	var total time.Duration
	for b.Loop() {
		t0 := time.Now()
		s, err := Open(path, Options{Now: fixtureNow})
		if err != nil {
			b.Fatal(err)
		}
		total += time.Since(t0)
		if s.Count() != fixtureN {
			b.Fatalf("Count = %d", s.Count())
		}
		s.Close()
	}
	b.ReportMetric(float64(total.Microseconds())/1000/float64(b.N), "ms/open")
	b.ReportMetric(float64(fileSize(path)>>20), "file-MB")
	reportRSS(b)
}

// reportRSS reports the process's resident and peak resident set sizes;
// bbolt's mmap pages count towards both once touched.
func reportRSS(b *testing.B) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok || (name != "VmRSS" && name != "VmHWM") {
			continue
		}
		if kb, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(rest), " kB")); err == nil {
			b.ReportMetric(float64(kb)/1024, name+"-MB")
		}
	}
}

// BenchmarkAppendEvents is the local NAC's event writer: batches of 1000
// decisions, each encoded beforehand with the fields a MAB accept carries,
// as the NAC encodes them, into an outbox below its bound and into one at
// its bound, where each append evicts. The time includes the commit's
// fdatasync.
func BenchmarkAppendEvents(b *testing.B) {
	for _, full := range []bool{false, true} {
		name := "below_bound"
		if full {
			name = "at_bound"
		}
		b.Run(name, func(b *testing.B) {
			s, err := Open(filepath.Join(b.TempDir(), "c.db"), Options{MaxEvents: 20_000})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			batch := make([]EncodedEvent, 1000)
			fill := func() {
				for i := range batch {
					batch[i], err = s.EncodeEventFields(Event{Type: "NAC Client Access Allowed", MAC: macN(i), Identity: macN(i)},
						[]Field{{"auth_type", "mab"}, {"nas", "lab-switch"}, {"nas_vendor", "cisco"}, {"site", "lab"},
							{"calling_station", "AA-BB-CC-00-00-01"}, {"vlan", "30"}, {"source", "cache"}, {"result", "accept"}})
					if err != nil {
						b.Fatal(err)
					}
				}
			}
			if full {
				for s.OutboxLen() < 20_000 {
					fill()
					if err := s.AppendEncoded(batch); err != nil {
						b.Fatal(err)
					}
				}
			}
			b.ResetTimer()
			for b.Loop() {
				b.StopTimer()
				fill()
				b.StartTimer()
				if err := s.AppendEncoded(batch); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(batch)), "ns/event")
		})
	}
}

// BenchmarkHoldAccounting is the edge storing Accounting-Requests during
// an outage: parallel callers (goroutines = parallelism × GOMAXPROCS),
// each waiting for its record to be durable, fdatasync included, as the
// edge waits before answering. It reports µs per held record and how many
// records a commit carried.
//
// The bbolt_batch runs store the same records through bbolt's DB.Batch
// (default MaxBatchDelay 10ms, MaxBatchSize 1000) in place of the store's
// leader hand-off, for comparison; they keep no counts.
func BenchmarkHoldAccounting(b *testing.B) {
	pkt := make([]byte, 180) // an Interim-Update's worth of attributes
	for _, par := range []int{1, 8, 64} {
		for _, mode := range []string{"store", "bbolt_batch"} {
			b.Run(fmt.Sprintf("%s/parallel=%d", mode, par), func(b *testing.B) {
				s, err := Open(filepath.Join(b.TempDir(), "c.db"), Options{})
				if err != nil {
					b.Fatal(err)
				}
				defer s.Close()
				hold := func() error {
					_, err := s.HoldAccounting("lab-switch", epoch, pkt)
					return err
				}
				var batchTxs sync.Map // bbolt_batch: transaction IDs seen
				if mode == "bbolt_batch" {
					rec := encodeAcct(epoch, "lab-switch", pkt)
					hold = func() error {
						return s.db.Load().Batch(func(tx *bolt.Tx) error {
							batchTxs.Store(tx.ID(), true)
							bk := tx.Bucket(bucketAcct)
							seq, err := bk.NextSequence()
							if err != nil {
								return err
							}
							return bk.Put(acctKey(seq), rec)
						})
					}
				}
				c0 := s.commits.Load()
				b.SetParallelism(par)
				b.ResetTimer()
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						if err := hold(); err != nil {
							b.Error(err)
							return
						}
					}
				})
				b.StopTimer()
				commits := s.commits.Load() - c0
				if mode == "bbolt_batch" {
					commits = 0
					batchTxs.Range(func(any, any) bool { commits++; return true })
				}
				b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N), "µs/record")
				b.ReportMetric(float64(b.N)/float64(max(commits, 1)), "records/commit")
				b.ReportMetric(0, "ns/op")
			})
		}
	}
}
