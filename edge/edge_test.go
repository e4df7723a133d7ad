package edge

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mxedge/mxedge/edge/config"
	"github.com/mxedge/mxedge/proxy"
	"github.com/mxedge/mxedge/proxy/radsec"
)

func testConfig(t *testing.T) *config.Config {
	t.Helper()
	cfg, err := config.Parse("test.yaml", []byte(testYAML(t, "cloud")))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// testYAML is a minimal config on loopback :0 ports with one client and
// survivability in mode; callers may append survivability keys.
func testYAML(t *testing.T, mode string) string {
	return fmt.Sprintf(`state_dir: %s
metrics:
  listen: ""
radius:
  auth_listen: ["127.0.0.1:0"]
  acct_listen: ["127.0.0.1:0"]
  clients:
    - name: sw
      address: 127.0.0.1
      secret: "a-long-enough-test-secret"
survivability:
  mode: %s
`, t.TempDir(), mode)
}

// The watchdog is pinged only after the daemon answered its own
// Status-Server through the auth listener.
func TestWatchdogPingsAfterSelfCheck(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "notify")
	ln, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	t.Setenv("NOTIFY_SOCKET", sock)
	t.Setenv("WATCHDOG_USEC", "300000")
	t.Setenv("WATCHDOG_PID", fmt.Sprint(os.Getpid()))

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a, err := Start(ctx, Options{Config: testConfig(t), Version: "test", Stderr: &bytes.Buffer{}})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Shutdown(context.Background())

	got := map[string]bool{}
	buf := make([]byte, 512)
	deadline := time.Now().Add(10 * time.Second)
	for !got["WATCHDOG=1"] && time.Now().Before(deadline) {
		ln.SetReadDeadline(deadline)
		n, err := ln.Read(buf)
		if err != nil {
			t.Fatalf("notify socket: %v (got %v)", err, got)
		}
		for _, l := range strings.Split(string(buf[:n]), "\n") {
			got[l] = true
		}
	}
	if !got["READY=1"] || !got["WATCHDOG=1"] {
		t.Fatalf("notifications: %v", got)
	}
}

// A client configured on the self-check address takes precedence.
func TestSelfCheckClientYieldsToOperator(t *testing.T) {
	cfg := testConfig(t)
	cfg.RADIUS.Clients[0].Address = selfCheckClient(nil).Prefix
	table, err := buildClients(cfg, []byte("x"))
	if err != nil {
		t.Fatal(err)
	}
	if c := table.Lookup(selfCheckAddr); c == nil || c.Name != "sw" {
		t.Fatalf("lookup = %+v", c)
	}
}

// A reload that removes every cloud server leaves the router with no
// cloud, not a closed pool.
func TestRouterWithoutCloud(t *testing.T) {
	r := newRouter(slog.New(slog.DiscardHandler), prometheus.NewRegistry(), nil)
	var none *radsec.Client
	r.setCloud(none)
	if p, why := r.decide(nil); p != PathNone || why != "no_cloud_configured" {
		t.Fatalf("decide = %s %s", p, why)
	}
}

type inlineLocal struct {
	proxy.HandlerFunc
	inline bool
}

func (h inlineLocal) Inline(*proxy.Request) bool { return h.inline }

// Only what the local NAC answers from memory is served inline; the cloud
// path waits on a round trip and never is.
func TestRouterInline(t *testing.T) {
	req := &proxy.Request{}
	r := newRouter(slog.New(slog.DiscardHandler), prometheus.NewRegistry(), nil)
	if r.Inline(req) {
		t.Fatal("inline with no path at all")
	}
	r.setLocal(proxy.HandlerFunc(func(context.Context, *proxy.Request) ([]byte, proxy.Outcome) { return nil, "" }))
	if r.Inline(req) {
		t.Fatal("inline with a local handler that cannot say")
	}
	for _, in := range []bool{true, false} {
		r.setLocal(inlineLocal{inline: in})
		if got := r.Inline(req); got != in {
			t.Fatalf("local NAC says %v, router says %v", in, got)
		}
	}
	r.setCloud(&healthyUpstream{})
	r.forced.Store("cloud")
	if r.Inline(req) {
		t.Fatal("cloud path served inline")
	}
}

type healthyUpstream struct{ proxy.Exchanger }

func (*healthyUpstream) Healthy() bool { return true }
