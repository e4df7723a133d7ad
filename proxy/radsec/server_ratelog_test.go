package radsec

import (
	"crypto/tls"
	"errors"
	"log/slog"
	"strconv"
	"strings"
	"testing"

	"github.com/mxedge/mxedge/internal/syncbuf"
)

// A peer refused again and again (a certificate the CA signed but no
// client is configured for) logs logBurst lines, and the rest are
// counted and reported, not logged one per connection.
func TestServerRefusalsRateLimited(t *testing.T) {
	var logs syncbuf.Buffer
	const conns = 3 * logBurst
	srv := startServer(t, "", echo("A"), func(c *ServerConfig) {
		c.Logger = slog.New(slog.NewTextHandler(&logs, nil))
		c.Identify = func(tls.ConnectionState) (Peer, error) { return Peer{}, errors.New("not allowed") }
	})
	for i := range conns {
		rc := dialRaw(t, srv.addr, mustPKI(t).clientTLS())
		rc.write(accessRequest(t, uint8(i), "u"))
		if _, err := ReadPacket(rc.br, nil); err == nil {
			t.Fatal("refused peer got an answer")
		}
	}
	waitFor(t, "refusals counted", func() bool { return value(srv.m.drops.WithLabelValues(dropRefused)) == conns })
	if n := strings.Count(logs.String(), "radsec peer refused"); n != logBurst {
		t.Fatalf("%d refusal lines for %d refusals, want %d\n%s", n, conns, logBurst, logs.String())
	}
	srv.stop(t)
	want := "suppressed=" + strconv.Itoa(conns-logBurst)
	waitFor(t, "suppressed count reported", func() bool {
		return strings.Count(logs.String(), "radsec peer refused") == logBurst+1 && strings.Contains(logs.String(), want)
	})
}
