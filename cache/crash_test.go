package cache

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const (
	crashEnv      = "MXEDGE_CACHE_CRASH_HELPER" // path of the store the helper writes
	crashPageSize = 500
	crashMaxPages = 400 // bounds the helper if nobody kills it
)

func crashPage(p int) SyncPage {
	ups := make([]Entry, crashPageSize)
	for j := range ups {
		ups[j] = mab(p*crashPageSize+j, time.Time{})
	}
	return SyncPage{Cursor: fmt.Sprintf("page-%d", p), Upserts: ups}
}

// TestHelperProcess is the child of TestCrashMidSync: it resumes from the
// store's cursor and applies pages until killed, printing each commit.
func TestHelperProcess(t *testing.T) {
	path := os.Getenv(crashEnv)
	if path == "" {
		t.Skip("helper for TestCrashMidSync")
	}
	s, err := Open(path, Options{})
	if err != nil {
		fmt.Println("open:", err)
		os.Exit(2)
	}
	next := 0
	if c := s.Cursor(); c != "" {
		n, _ := strconv.Atoi(strings.TrimPrefix(c, "page-"))
		next = n + 1
	}
	for p := next; p < crashMaxPages; p++ {
		if err := s.ApplySync(crashPage(p)); err != nil {
			fmt.Println("apply:", err)
			os.Exit(2)
		}
		fmt.Printf("committed %d\n", p)
	}
	os.Exit(0)
}

// TestCrashMidSync kills a process applying sync pages with SIGKILL, three
// times in a row, and checks that each time the store opens at exactly a
// committed page boundary with the matching cursor.
func TestCrashMidSync(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns a child process")
	}
	path := filepath.Join(t.TempDir(), "crash.db")
	lastSeen := -1
	for round := range 3 {
		killAfter := lastSeen + 8
		s := runAndKill(t, round, "TestHelperProcess", crashEnv, path, func(line string) bool {
			var p int
			if _, err := fmt.Sscanf(line, "committed %d", &p); err != nil {
				t.Logf("child: %s", line)
				return false
			}
			lastSeen = p
			// The child is already building or committing the next page.
			return p >= killAfter
		})
		cur := s.Cursor()
		n, err := strconv.Atoi(strings.TrimPrefix(cur, "page-"))
		if err != nil {
			t.Fatalf("round %d: cursor %q", round, cur)
		}
		// The child may have committed a page or two after its last line
		// reached us, never fewer than it reported.
		if n < lastSeen {
			t.Fatalf("round %d: cursor %q behind the last reported commit %d", round, cur, lastSeen)
		}
		if got, want := s.Count(), (n+1)*crashPageSize; got != want {
			t.Fatalf("round %d: Count = %d, want %d for cursor %q", round, got, want, cur)
		}
		for _, i := range []int{0, n*crashPageSize + crashPageSize - 1} {
			if !present(t, s, i) {
				t.Errorf("round %d: entry %d of a committed page missing", round, i)
			}
		}
		if present(t, s, (n+1)*crashPageSize) {
			t.Errorf("round %d: entry of uncommitted page %d present", round, n+1)
		}
		listed := 0
		if err := s.List(func(Entry) bool { listed++; return true }); err != nil || listed != s.Count() {
			t.Errorf("round %d: List saw %d (err %v), Count %d", round, listed, err, s.Count())
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		t.Logf("round %d: killed after page %d reported, store at %s with %d entries", round, killAfter, cur, (n+1)*crashPageSize)
		lastSeen = n
	}
}

const (
	outboxCrashEnv   = "MXEDGE_CACHE_OUTBOX_CRASH_HELPER" // path of the store the helper writes
	outboxCrashBatch = 100
	outboxCrashMax   = 2000 // batches; bounds the helper if nobody kills it
)

func outboxCrashID(batch, j int) string { return fmt.Sprintf("%032x", batch*outboxCrashBatch+j) }

// TestOutboxHelperProcess is the child of TestCrashMidOutbox: after the
// newest batch already stored it appends batches of events, acknowledging
// the first half of each batch once the next is stored, until killed,
// printing each commit.
func TestOutboxHelperProcess(t *testing.T) {
	path := os.Getenv(outboxCrashEnv)
	if path == "" {
		t.Skip("helper for TestCrashMidOutbox")
	}
	s, err := Open(path, Options{})
	if err != nil {
		fmt.Println("open:", err)
		os.Exit(2)
	}
	next := 0
	if evs, _ := s.PendingEvents(0); len(evs) > 0 {
		n, _ := strconv.ParseInt(evs[len(evs)-1].ID, 16, 64)
		next = int(n)/outboxCrashBatch + 1
	}
	for b := next; b < next+outboxCrashMax; b++ {
		evs := make([]Event, outboxCrashBatch)
		for j := range evs {
			evs[j] = Event{ID: outboxCrashID(b, j), Type: "NAC Client Access Allowed", MAC: macN(j), Reason: strings.Repeat("r", 200)}
		}
		if err := s.AppendEvents(evs); err != nil {
			fmt.Println("append:", err)
			os.Exit(2)
		}
		fmt.Printf("committed %d\n", b)
		if b > 0 {
			var ack []string
			for j := range outboxCrashBatch / 2 {
				ack = append(ack, outboxCrashID(b-1, j))
			}
			if err := s.AckEvents(ack...); err != nil {
				fmt.Println("ack:", err)
				os.Exit(2)
			}
			fmt.Printf("acked %d\n", b-1)
		}
	}
	os.Exit(0)
}

// TestCrashMidOutbox kills a process appending and acknowledging events
// with SIGKILL, three times in a row, and checks that each time every
// reported append and ack is in the store and every other one is wholly
// there or wholly not.
func TestCrashMidOutbox(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns a child process")
	}
	path := filepath.Join(t.TempDir(), "crash.db")
	lastCommitted, acked := -1, map[int]bool{}
	for round := range 3 {
		killAfter := lastCommitted + 8
		s := runAndKill(t, round, "TestOutboxHelperProcess", outboxCrashEnv, path, func(line string) bool {
			var b int
			if _, err := fmt.Sscanf(line, "acked %d", &b); err == nil {
				acked[b] = true
				return false
			}
			if _, err := fmt.Sscanf(line, "committed %d", &b); err != nil {
				t.Logf("child: %s", line)
				return false
			}
			lastCommitted = b
			// The child is already acknowledging, or storing the next
			// batch.
			return b >= killAfter
		})
		evs, err := s.PendingEvents(0)
		if err != nil {
			t.Fatal(err)
		}
		have := map[int][]int{} // batch → events pending, in order
		order := -1
		for _, ev := range evs {
			n, err := strconv.ParseInt(ev.ID, 16, 64)
			if err != nil || int(n) <= order {
				t.Fatalf("round %d: event %q out of order or unknown", round, ev.ID)
			}
			order = int(n)
			have[int(n)/outboxCrashBatch] = append(have[int(n)/outboxCrashBatch], int(n)%outboxCrashBatch)
		}
		newest := -1
		for b, js := range have {
			newest = max(newest, b)
			switch {
			case len(js) == outboxCrashBatch:
				if acked[b] {
					t.Errorf("round %d: batch %d whole, but its ack was reported", round, b)
				}
			case len(js) == outboxCrashBatch/2 && js[0] == outboxCrashBatch/2:
			default:
				t.Errorf("round %d: batch %d holds %d events from %d: neither whole nor half acknowledged", round, b, len(js), js[0])
			}
		}
		for b := range lastCommitted + 1 {
			if have[b] == nil {
				t.Errorf("round %d: reported batch %d missing", round, b)
			}
		}
		if newest > lastCommitted+1 {
			t.Errorf("round %d: batch %d present, %d reported last", round, newest, lastCommitted)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		t.Logf("round %d: killed after batch %d reported, outbox at batch %d with %d events", round, killAfter, newest, len(evs))
		lastCommitted = newest
	}
}

// runAndKill starts the test helper named helper with env set to path,
// hands each line it prints to line, and kills it with SIGKILL up to 3ms
// after the first time line returns true, to land anywhere in the work the
// child is then doing. It fails the test unless the child died of it, then
// reopens the store at path, checks it is consistent and returns it.
func runAndKill(t *testing.T, round int, helper, env, path string, line func(string) bool) *Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^"+helper+"$", "-test.count=1")
	cmd.Env = append(os.Environ(), env+"="+path)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(out)
	killed := false
	for sc.Scan() {
		if line(sc.Text()) && !killed {
			time.Sleep(rand.N(3 * time.Millisecond))
			if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			killed = true
		}
	}
	err = cmd.Wait()
	var ee *exec.ExitError
	if !killed || !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("round %d: child not killed as planned: killed=%v err=%v", round, killed, err)
	}
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatalf("round %d: reopen after SIGKILL: %v", round, err)
	}
	checkConsistent(t, s)
	return s
}

const (
	acctCrashEnv     = "MXEDGE_CACHE_ACCT_CRASH_HELPER" // path of the store the helper writes
	acctCrashHolders = 8
	acctCrashMax     = 20_000 // holds per holder; bounds the helper if nobody kills it
)

// TestAcctHelperProcess is the child of TestCrashMidAccounting: holders
// hold records concurrently and print each one that returned, while a
// replayer releases the oldest, announcing each release before and after.
// Each record's packet names the process, the holder and its count.
func TestAcctHelperProcess(t *testing.T) {
	path := os.Getenv(acctCrashEnv)
	if path == "" {
		t.Skip("helper for TestCrashMidAccounting")
	}
	s, err := Open(path, Options{})
	if err != nil {
		fmt.Println("open:", err)
		os.Exit(2)
	}
	var mu sync.Mutex
	say := func(format string, a ...any) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Printf(format+"\n", a...)
	}
	pid := os.Getpid()
	var wg sync.WaitGroup
	for g := range acctCrashHolders {
		wg.Go(func() {
			for i := range acctCrashMax {
				pkt := fmt.Appendf(nil, "%d %d %d %s", pid, g, i, strings.Repeat("a", 80))
				seq, err := s.HoldAccounting("sw", time.Time{}, pkt)
				if err != nil {
					say("hold: %v", err)
					os.Exit(2)
				}
				say("held %d %d %d %d", seq, pid, g, i)
			}
		})
	}
	go func() {
		for {
			// Lag behind, as a replayer waiting on the cloud does, so
			// that the kill finds records held as well as released.
			recs, err := s.HeldAccounting(250)
			if err != nil {
				say("held: %v", err)
				os.Exit(2)
			}
			if len(recs) < 250 {
				time.Sleep(time.Millisecond)
				continue
			}
			recs = recs[:50]
			seqs := make([]uint64, len(recs))
			for i, r := range recs {
				seqs[i] = r.Seq
			}
			last := seqs[len(seqs)-1]
			say("releasing %d", last)
			if err := s.ReleaseAccounting(seqs...); err != nil {
				say("release: %v", err)
				os.Exit(2)
			}
			say("released %d", last)
		}
	}()
	wg.Wait()
	os.Exit(0)
}

// TestCrashMidAccounting kills a process holding and releasing accounting
// records with SIGKILL, three times in a row, and checks that each time
// the file opens, every record reported held is there unless its release
// began, none is there twice, and they are in the order they were held.
func TestCrashMidAccounting(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns a child process")
	}
	path := filepath.Join(t.TempDir(), "crash.db")
	type id struct{ pid, g, i int }
	held := map[uint64]id{} // records known to be held: reported, or found at the last reopen
	for round := range 3 {
		var released, releasing uint64 // highest sequence a release finished or began
		reports, killAt := 0, 300+rand.N(300)
		s := runAndKill(t, round, "TestAcctHelperProcess", acctCrashEnv, path, func(line string) bool {
			var (
				seq uint64
				r   id
			)
			switch {
			case strings.HasPrefix(line, "held "):
				if _, err := fmt.Sscanf(line, "held %d %d %d %d", &seq, &r.pid, &r.g, &r.i); err != nil {
					t.Errorf("child: %s", line)
					return false
				}
				held[seq] = r
				reports++
			case strings.HasPrefix(line, "releasing "):
				fmt.Sscanf(line, "releasing %d", &releasing)
			case strings.HasPrefix(line, "released "):
				fmt.Sscanf(line, "released %d", &released)
			default:
				t.Logf("child: %s", line)
			}
			// The holders are mid-commit and the replayer mid-release.
			return reports >= killAt
		})
		recs, err := s.HeldAccounting(0)
		if err != nil {
			t.Fatal(err)
		}
		present := map[uint64]id{}
		seen := map[id]bool{}
		lastOf := map[[2]int]int{} // pid, holder → its newest record so far
		for j, rec := range recs {
			var r id
			if _, err := fmt.Sscanf(string(rec.Packet), "%d %d %d", &r.pid, &r.g, &r.i); err != nil {
				t.Fatalf("round %d: record %d packet %q", round, rec.Seq, rec.Packet)
			}
			if j > 0 && rec.Seq <= recs[j-1].Seq {
				t.Fatalf("round %d: records out of order: %d after %d", round, rec.Seq, recs[j-1].Seq)
			}
			if seen[r] {
				t.Errorf("round %d: record %+v held twice", round, r)
			}
			seen[r] = true
			if i, ok := lastOf[[2]int{r.pid, r.g}]; ok && r.i <= i {
				t.Errorf("round %d: holder %+v's record %d stored before its record %d", round, r, r.i, i)
			}
			lastOf[[2]int{r.pid, r.g}] = r.i
			present[rec.Seq] = r
		}
		lost := 0
		for seq, r := range held {
			got, ok := present[seq]
			switch {
			case ok && got != r:
				t.Errorf("round %d: record %d is %+v, reported %+v", round, seq, got, r)
			case ok && seq <= released:
				t.Errorf("round %d: record %d present after its release returned (released up to %d)", round, seq, released)
			case !ok && seq > releasing:
				lost++
				if lost <= 5 {
					t.Errorf("round %d: record %d %+v reported held, and no release of it began, but it is missing", round, seq, r)
				}
			}
		}
		if lost > 0 {
			t.Errorf("round %d: %d reported records lost", round, lost)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		t.Logf("round %d: killed after %d holds reported; %d records held (released up to %d, releasing up to %d)",
			round, reports, len(recs), released, releasing)
		held = present
	}
}
