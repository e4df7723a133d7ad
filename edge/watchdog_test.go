package edge

import (
	"bytes"
	"context"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mxedge/mxedge/edge/config"
)

func TestSelfCheckRoute(t *testing.T) {
	for _, tc := range []struct{ listen, from, to string }{
		{"127.0.0.1:1812", "127.77.0.1", "127.0.0.1:1812"},
		{"0.0.0.0:1812", "127.77.0.1", "127.0.0.1:1812"},
		{"[::]:1812", "127.77.0.1", "127.0.0.1:1812"},
		{"192.0.2.7:1812", "127.77.0.1", "192.0.2.7:1812"},
		{"[::ffff:192.0.2.7]:1812", "127.77.0.1", "192.0.2.7:1812"},
		{"[::1]:1812", "::1", "[::1]:1812"},
		{"[fd00::2]:1812", "::1", "[fd00::2]:1812"},
	} {
		from, to := selfCheckRoute(netip.MustParseAddrPort(tc.listen))
		if from.String() != tc.from || to.String() != tc.to {
			t.Errorf("%s: from %s to %s, want from %s to %s", tc.listen, from, to, tc.from, tc.to)
		}
	}
}

// lanAddrs are this machine's non-loopback addresses, one per family.
func lanAddrs(t *testing.T) []string {
	as, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	seen := map[bool]bool{}
	for _, a := range as {
		p, err := netip.ParsePrefix(a.String())
		if err != nil || p.Addr().IsLoopback() || p.Addr().IsLinkLocalUnicast() || seen[p.Addr().Is4()] {
			continue
		}
		seen[p.Addr().Is4()] = true
		out = append(out, netip.AddrPortFrom(p.Addr(), 0).String())
	}
	return out
}

// TestSelfCheckEveryListener: the self-check reaches auth listeners on
// IPv4 and IPv6 loopback, on the wildcards, and on this machine's own
// non-loopback addresses (delivered over loopback), not only IPv4
// loopback ones; and it fails when one of them does not answer.
func TestSelfCheckEveryListener(t *testing.T) {
	listen := append([]string{"127.0.0.1:0", "[::1]:0", "0.0.0.0:0", "[::]:0"}, lanAddrs(t)...)
	y := strings.Replace(testYAML(t, "cloud"), `auth_listen: ["127.0.0.1:0"]`,
		`auth_listen: ["`+strings.Join(listen, `", "`)+`"]`, 1)
	cfg, err := config.Parse("test.yaml", []byte(y))
	if err != nil {
		t.Fatal(err)
	}
	a, err := Start(context.Background(), Options{Config: cfg, Version: "test", Stderr: &bytes.Buffer{}})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Shutdown(context.Background())
	if got := len(a.AuthAddrs()); got != len(listen) {
		t.Fatalf("%d auth listeners, want %d", got, len(listen))
	}
	if err := a.selfCheck(5 * time.Second); err != nil {
		t.Fatalf("self-check over %v: %v", listen, err)
	}

	// A socket nobody answers on fails the check.
	mute, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv6loopback})
	if err != nil {
		t.Fatal(err)
	}
	defer mute.Close()
	from, to := selfCheckRoute(mute.LocalAddr().(*net.UDPAddr).AddrPort())
	if err := statusRoundTrip(from, to, a.selfSecret, 100*time.Millisecond); err == nil {
		t.Fatalf("a mute listener at %s passed the self-check", to)
	}
}

// With the operator's client on ::1 the IPv6 listeners cannot be checked:
// they are skipped (and logged), not failed, or systemd would restart a
// daemon that serves fine.
func TestSelfCheckSkipsOperatorSource(t *testing.T) {
	y := strings.Replace(testYAML(t, "cloud"), `auth_listen: ["127.0.0.1:0"]`, `auth_listen: ["127.0.0.1:0", "[::1]:0"]`, 1)
	y = strings.Replace(y, "address: 127.0.0.1", "address: \"::1\"", 1)
	cfg, err := config.Parse("test.yaml", []byte(y))
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	a, err := Start(context.Background(), Options{Config: cfg, Version: "test", Stderr: &logs})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Shutdown(context.Background())
	for range 2 {
		if err := a.selfCheck(5 * time.Second); err != nil {
			t.Fatal(err)
		}
	}
	if n := strings.Count(logs.String(), "self-check cannot reach"); n != 1 {
		t.Fatalf("%d warnings, want 1:\n%s", n, logs.String())
	}
}

// TestWatchdogNeedsEveryLoop: under a systemd watchdog the UDP readers
// report to it, and a loop stuck busy past its deadline withholds the
// ping until it beats, goes idle or ends.
func TestWatchdogNeedsEveryLoop(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", filepath.Join(t.TempDir(), "none")) // pings go nowhere
	t.Setenv("WATCHDOG_USEC", "200000")
	t.Setenv("WATCHDOG_PID", strconv.Itoa(os.Getpid()))
	a, err := Start(context.Background(), Options{Config: testConfig(t), Version: "test", Stderr: &bytes.Buffer{}})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Shutdown(context.Background())
	for a.beats.Len() < 2 { // a reader at least on each of auth and acct, once they start
		time.Sleep(time.Millisecond)
	}
	if err := a.watchdogCheck(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	stuck := a.heartbeat("test stuck")
	stuck.Beat()
	for len(a.beats.Stalled()) == 0 { // its deadline is 100 ms of the real clock
		time.Sleep(10 * time.Millisecond)
	}
	if err := a.watchdogCheck(5 * time.Second); err == nil || !strings.Contains(err.Error(), "test stuck") {
		t.Fatalf("check with a stuck loop: %v", err)
	}
	stuck.Idle()
	if err := a.watchdogCheck(5 * time.Second); err != nil {
		t.Fatalf("check with the loop idle: %v", err)
	}
	stuck.Done()
}
