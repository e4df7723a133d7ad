package notify

import (
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// mustNotifySocket listens on a unixgram socket in t.TempDir, points
// NOTIFY_SOCKET at it, and returns it so the test can read what was sent.
func mustNotifySocket(t *testing.T) *net.UnixConn {
	t.Helper()
	path := filepath.Join(t.TempDir(), "n.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	t.Setenv("NOTIFY_SOCKET", path)
	return conn
}

// sent returns every datagram sent so far, in order. It sends a sentinel
// status itself and reads up to it, so "nothing else was sent" is checked
// without waiting for a timeout. The deadline only bounds a broken test.
func sent(t *testing.T, conn *net.UnixConn) []string {
	t.Helper()
	const sentinel = "STATUS=--end of test--"
	if err := send(sentinel); err != nil {
		t.Fatal(err)
	}
	if err := conn.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	var got []string
	buf := make([]byte, 4096)
	for {
		n, err := conn.Read(buf)
		if err != nil {
			t.Fatalf("reading notify socket after %q: %v", got, err)
		}
		if s := string(buf[:n]); s != sentinel {
			got = append(got, s)
			continue
		}
		return got
	}
}

func TestStates(t *testing.T) {
	tests := []struct {
		name string
		call func() error
		want string
	}{
		{"ready", Ready, "READY=1"},
		{"stopping", Stopping, "STOPPING=1"},
		{"reloading", Reloading, "RELOADING=1\nMONOTONIC_USEC=123456789\n"},
	}
	orig := monotonicUsec
	monotonicUsec = func() string { return "MONOTONIC_USEC=123456789\n" }
	t.Cleanup(func() { monotonicUsec = orig })

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conn := mustNotifySocket(t)
			if err := tt.call(); err != nil {
				t.Fatal(err)
			}
			if got := sent(t, conn); !slices.Equal(got, []string{tt.want}) {
				t.Errorf("sent %q, want [%q]", got, tt.want)
			}
		})
	}
}

func TestReloadingRealClock(t *testing.T) {
	conn := mustNotifySocket(t)
	if err := Reloading(); err != nil {
		t.Fatal(err)
	}
	got := sent(t, conn)
	if len(got) != 1 {
		t.Fatalf("sent %q, want one datagram", got)
	}
	rest, ok := strings.CutPrefix(got[0], "RELOADING=1\nMONOTONIC_USEC=")
	num, ok2 := strings.CutSuffix(rest, "\n")
	usec, err := strconv.ParseInt(num, 10, 64)
	if !ok || !ok2 || err != nil || usec <= 0 {
		t.Errorf("sent %q, want RELOADING=1 and a positive MONOTONIC_USEC", got[0])
	}
}

func TestNoSocketIsNoop(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	for _, call := range []func() error{Ready, Reloading, Stopping} {
		if err := call(); err != nil {
			t.Errorf("without NOTIFY_SOCKET: %v", err)
		}
	}
	p := NewPinger(nil, "a")
	p.Progress("a")
	if ok, err := p.Ping(); err != nil || !ok {
		// Ping reports the round as done even though nobody listens: the
		// send is a no-op, not a failure.
		t.Errorf("Ping without NOTIFY_SOCKET = %v, %v; want true, nil", ok, err)
	}
}

func TestSocketGone(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", filepath.Join(t.TempDir(), "missing.sock"))
	if err := Ready(); err == nil {
		t.Error("Ready to a missing socket: want an error")
	}
	p := NewPinger(nil, "a")
	p.Progress("a")
	if ok, err := p.Ping(); ok || err == nil {
		t.Errorf("Ping to a missing socket = %v, %v; want false and an error", ok, err)
	}
}

func TestWatchdogInterval(t *testing.T) {
	self := strconv.Itoa(os.Getpid())
	tests := []struct {
		name       string
		usec, pid  string
		want       time.Duration
		wantEnable bool
	}{
		{"unset", "", "", 0, false},
		{"30s any pid", "30000000", "", 30 * time.Second, true},
		{"30s this pid", "30000000", self, 30 * time.Second, true},
		{"other pid", "30000000", strconv.Itoa(os.Getpid() + 1), 0, false},
		{"zero", "0", "", 0, false},
		{"negative", "-5", "", 0, false},
		{"garbage", "30s", "", 0, false},
		{"bad pid", "30000000", "me", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("WATCHDOG_USEC", tt.usec)
			t.Setenv("WATCHDOG_PID", tt.pid)
			got, ok := WatchdogInterval()
			if got != tt.want || ok != tt.wantEnable {
				t.Errorf("WatchdogInterval() = %v, %v; want %v, %v", got, ok, tt.want, tt.wantEnable)
			}
			// The environment stays, so a later call gives the same answer.
			if os.Getenv("WATCHDOG_USEC") != tt.usec {
				t.Error("WatchdogInterval changed WATCHDOG_USEC")
			}
		})
	}
}

// step is one action in a Pinger scenario: report progress, then
// optionally ping and check whether it was sent.
type step struct {
	progress []string
	ping     bool
	wantPing bool
}

func TestPingerPing(t *testing.T) {
	tests := []struct {
		name  string
		loops []string
		steps []step
	}{
		{"all progressed", []string{"udp", "radsec"}, []step{
			{progress: []string{"udp", "radsec"}, ping: true, wantPing: true},
		}},
		{"one stalled", []string{"udp", "radsec"}, []step{
			{progress: []string{"udp", "udp", "udp"}, ping: true, wantPing: false},
		}},
		{"progress is per round", []string{"udp", "radsec"}, []step{
			{progress: []string{"udp", "radsec"}, ping: true, wantPing: true},
			{progress: []string{"udp"}, ping: true, wantPing: false},
			{progress: []string{"radsec"}, ping: true, wantPing: true},
			{ping: true, wantPing: false},
		}},
		{"stalled round carries over", []string{"a", "b"}, []step{
			{progress: []string{"a"}, ping: true, wantPing: false},
			{progress: []string{"b"}, ping: true, wantPing: true},
		}},
		{"no loops never pings", nil, []step{
			{ping: true, wantPing: false},
			{progress: []string{"x"}, ping: true, wantPing: false},
		}},
		{"unknown name does not count", []string{"a"}, []step{
			{progress: []string{"b", "A", ""}, ping: true, wantPing: false},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conn := mustNotifySocket(t)
			p := NewPinger(nil, tt.loops...)
			var want []string
			for i, s := range tt.steps {
				for _, name := range s.progress {
					p.Progress(name)
				}
				if !s.ping {
					continue
				}
				got, err := p.Ping()
				if err != nil {
					t.Fatalf("step %d: %v", i, err)
				}
				if got != s.wantPing {
					t.Errorf("step %d: Ping() = %v, want %v", i, got, s.wantPing)
				}
				if s.wantPing {
					want = append(want, "WATCHDOG=1")
				}
			}
			if got := sent(t, conn); !slices.Equal(got, want) {
				t.Errorf("sent %q, want %q", got, want)
			}
		})
	}
}

// TestPingerConcurrentProgress is for -race: loops report while Ping runs.
func TestPingerConcurrentProgress(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	p := NewPinger(nil, "a", "b")
	var wg sync.WaitGroup
	for _, name := range []string{"a", "b"} {
		wg.Go(func() {
			for range 1000 {
				p.Progress(name)
			}
		})
	}
	for range 100 {
		_, _ = p.Ping()
	}
	wg.Wait()
}
