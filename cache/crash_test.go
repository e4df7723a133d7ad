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
		runAndKill(t, round, "TestHelperProcess", crashEnv, path, func(line string) bool {
			var p int
			if _, err := fmt.Sscanf(line, "committed %d", &p); err != nil {
				t.Logf("child: %s", line)
				return false
			}
			lastSeen = p
			// The child is already building or committing the next page.
			return p >= killAfter
		})

		s, err := Open(path, Options{})
		if err != nil {
			t.Fatalf("round %d: reopen after SIGKILL: %v", round, err)
		}
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
		checkConsistent(t, s)
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
		killAfter, sent := lastCommitted+8, false
		runAndKill(t, round, "TestOutboxHelperProcess", outboxCrashEnv, path, func(line string) bool {
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
			if b < killAfter || sent {
				return false
			}
			// The child is already acknowledging, or storing the next
			// batch: land somewhere in that.
			sent = true
			time.Sleep(rand.N(3 * time.Millisecond))
			return true
		})

		s, err := Open(path, Options{})
		if err != nil {
			t.Fatalf("round %d: reopen after SIGKILL: %v", round, err)
		}
		checkConsistent(t, s)
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
// hands each line it prints to line, and kills it with SIGKILL the first
// time line returns true. It fails the test unless the child died of it.
func runAndKill(t *testing.T, round int, helper, env, path string, line func(string) bool) {
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
}
