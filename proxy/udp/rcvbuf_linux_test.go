//go:build linux

package udp

import (
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/mxedge/mxedge/proxy"
	"github.com/mxedge/mxedge/proxy/packet"
)

// TestReceiveBufferSized: Serve asks for Config.ReceiveBuffer and the
// gauge shows what the kernel granted: all of it with CAP_NET_ADMIN, else
// at least what net.core.rmem_max allows.
func TestReceiveBufferSized(t *testing.T) {
	const want = 2 << 20
	ts := startServer(t, Auth, "udp4", []*proxy.Client{loopbackClient("lo")}, nil,
		func(c *Config) { c.ReceiveBuffer = want })
	floor := want
	if b, err := os.ReadFile("/proc/sys/net/core/rmem_max"); err == nil {
		if m, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && m < floor {
			floor = m // without CAP_NET_ADMIN
		}
	}
	// Serve sizes the socket before it reads: one answered request
	// proves it has.
	n := newNAS(t, ts.addr)
	req := request(t, packet.CodeStatusServer, 1, secret, true)
	n.send(req)
	n.recv()
	if got := testutil.ToFloat64(ts.m.rcvbuf); got < float64(floor) {
		t.Fatalf("receive buffer %v, want at least %d", got, floor)
	}
}
