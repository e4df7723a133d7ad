package edge

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/mxedge/mxedge/edge/config"
	"github.com/mxedge/mxedge/internal/syncbuf"
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
// reach it without picking ports by bind-then-release; the RadSec
// listener is named too, as an empty list when it is off.
func TestReadyLineReportsBoundAddrs(t *testing.T) {
	tests := []struct {
		name   string
		radsec bool
	}{
		{name: "radsec listener off"},
		{name: "radsec listener on port 0", radsec: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig(t)
			if tt.radsec {
				dir := t.TempDir()
				ca, _ := writePair(t, dir, "ca", "RadSec CA")
				cert, key := writePair(t, dir, "radsec", "localhost")
				yaml := testYAML(t, "cloud") + fmt.Sprintf(`radsec:
  listen: ["127.0.0.1:0"]
  cert: %s
  key: %s
  client_ca: %s
`, cert, key, ca)
				var err error
				if cfg, err = config.Parse("test.yaml", []byte(yaml)); err != nil {
					t.Fatal(err)
				}
			}
			cfg.Metrics.Listen = "127.0.0.1:0"
			var logs syncbuf.Buffer
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			a, err := Start(ctx, Options{Config: cfg, Version: "test", Stderr: &logs})
			if err != nil {
				t.Fatal(err)
			}
			defer a.Shutdown(context.Background())

			quoted := func(addrs ...string) string {
				b, err := json.Marshal(append([]string{}, addrs...))
				if err != nil {
					t.Fatal(err)
				}
				if len(addrs) == 0 {
					return "[]" // nothing in it the text handler quotes
				}
				return strconv.Quote(string(b))
			}
			var ready string
			for l := range strings.Lines(logs.String()) {
				if strings.Contains(l, "mxedge ready") {
					ready = l
				}
			}
			var radsec []string
			for _, ad := range a.RadSecAddrs() {
				radsec = append(radsec, ad.String())
			}
			if got := len(radsec); got != map[bool]int{false: 0, true: 1}[tt.radsec] {
				t.Fatalf("%d RadSec listeners bound, radsec %v", got, tt.radsec)
			}
			for _, want := range []string{
				"auth=" + quoted(a.boundAddrs("auth")...),
				"acct=" + quoted(a.boundAddrs("acct")...),
				"radsec=" + quoted(radsec...),
				"metrics=" + a.metrics.Addr().String(),
			} {
				if strings.Contains(want, `:0\"`) || strings.HasSuffix(want, ":0") {
					t.Fatalf("%s: port 0 was not replaced by the bound port", want)
				}
				if !strings.Contains(ready, want) {
					t.Errorf("ready line %q lacks %s", ready, want)
				}
			}
		})
	}
}
