package edge

import (
	"net"
	"slices"
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
