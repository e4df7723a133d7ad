package edge

import (
	"context"
	"encoding/json"
	"net"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// TestAuthAddrsByBoundKind: the auth sockets are the ones bound as auth,
// whatever radius.auth_listen says after a reload (once the count of
// auth_listen entries in the reloaded config decided it, so an acct socket
// could be reported as auth and self-checked with Status-Server).
func TestAuthAddrsByBoundKind(t *testing.T) {
	var conns []boundConn
	for _, kind := range []string{"auth", "auth", "acct"} {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { pc.Close() })
		conns = append(conns, boundConn{kind, pc})
	}
	a := &App{conns: conns} // no config at all: AuthAddrs must not read it
	want := []net.Addr{conns[0].pc.LocalAddr(), conns[1].pc.LocalAddr()}
	if got := a.AuthAddrs(); !slices.Equal(got, want) {
		t.Fatalf("AuthAddrs = %v, want %v", got, want)
	}
}

// TestReadyLineReportsBoundAddrs: with port 0 configured, the ready line
// names the ports the kernel chose, so whoever started the daemon can
// reach it without picking ports by bind-then-release.
func TestReadyLineReportsBoundAddrs(t *testing.T) {
	cfg := testConfig(t)
	cfg.Metrics.Listen = "127.0.0.1:0"
	var logs lockedBuffer
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a, err := Start(ctx, Options{Config: cfg, Version: "test", Stderr: &logs})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Shutdown(context.Background())

	quoted := func(addrs ...string) string {
		b, err := json.Marshal(addrs)
		if err != nil {
			t.Fatal(err)
		}
		return strconv.Quote(string(b))
	}
	var ready string
	for l := range strings.Lines(logs.String()) {
		if strings.Contains(l, "mxedge ready") {
			ready = l
		}
	}
	for _, want := range []string{
		"auth=" + quoted(a.boundAddrs("auth")...),
		"acct=" + quoted(a.boundAddrs("acct")...),
		"metrics=" + a.metrics.Addr().String(),
	} {
		if strings.Contains(want, ":0\"") || strings.HasSuffix(want, ":0") {
			t.Fatalf("%s: port 0 was not replaced by the bound port", want)
		}
		if !strings.Contains(ready, want) {
			t.Errorf("ready line %q lacks %s", ready, want)
		}
	}
}
