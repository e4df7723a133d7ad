package radsec

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/mxedge/mxedge/proxy"
	"github.com/mxedge/mxedge/proxy/packet"
)

// dialFrom opens a bare TCP connection from a chosen loopback address; it
// sends nothing, as a peer that never starts its handshake.
func dialFrom(t *testing.T, src, dst string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", dst)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// closedByServer reports whether the server closed c (read returns EOF or
// a reset before the deadline).
func closedByServer(c net.Conn) bool {
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err := c.Read(make([]byte, 1))
	var ne net.Error
	return err != nil && !(errors.As(err, &ne) && ne.Timeout())
}

func TestServerConnectionLimits(t *testing.T) {
	tests := []struct {
		name      string
		total     int
		perSource int
		// stalled connections from 127.0.0.2 first, then one from src.
		stalled int
		src     string
		reason  string // "" when the last connection must be served
	}{
		{"per source refuses the same address", 0, 3, 3, "127.0.0.2", dropMaxConnsSource},
		{"per source spares another address", 0, 3, 3, "127.0.0.1", ""},
		{"total refuses any address", 3, 0, 3, "127.0.0.1", dropMaxConns},
		{"under both limits", 5, 5, 3, "127.0.0.1", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := startServer(t, "", echo("A"), func(c *ServerConfig) {
				c.MaxConns, c.MaxConnsPerSource = tt.total, tt.perSource
				c.HandshakeTimeout = time.Minute // the stalled ones stay for the whole test
			})
			for range tt.stalled {
				dialFrom(t, "127.0.0.2", srv.addr)
			}
			waitFor(t, "stalled connections admitted", func() bool { return srv.Open() == tt.stalled })
			if tt.reason != "" {
				c := dialFrom(t, tt.src, srv.addr)
				if !closedByServer(c) {
					t.Fatal("connection over the limit left open")
				}
				if got := value(srv.m.drops.WithLabelValues(tt.reason)); got != 1 {
					t.Fatalf("drops %s = %v, want 1", tt.reason, got)
				}
				return
			}
			cfg := mustPKI(t).clientTLS()
			d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(tt.src)}}
			tc, err := tls.DialWithDialer(d, "tcp", srv.addr, cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer tc.Close()
			rc := &rawConn{t: t, tc: tc, br: bufio.NewReader(tc)}
			rc.write(accessRequest(t, 9, "ok"))
			if _, err := rc.read(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestServerHandshakeTimeoutReleases(t *testing.T) {
	srv := startServer(t, "", echo("A"), func(c *ServerConfig) {
		c.HandshakeTimeout = 50 * time.Millisecond
		c.MaxConnsPerSource = 2
	})
	for range 2 {
		c := dialFrom(t, "127.0.0.3", srv.addr)
		if !closedByServer(c) {
			t.Fatal("stalled handshake left open")
		}
	}
	waitFor(t, "slots released", func() bool { return srv.Open() == 0 })
	if got := value(srv.m.drops.WithLabelValues(dropHandshakeTimeout)); got != 2 {
		t.Fatalf("handshake timeouts %v, want 2", got)
	}
	if got := value(srv.m.conns); got != 0 {
		t.Fatalf("connections gauge %v", got)
	}
}

func TestServerIdentify(t *testing.T) {
	other := proxy.HandlerFunc(func(_ context.Context, r *proxy.Request) ([]byte, proxy.Outcome) {
		return acceptWith(r.Packet, "cloud"), proxy.OutcomeAnswered
	})
	seen := make(chan *proxy.Client, 1)
	dev := proxy.HandlerFunc(func(_ context.Context, r *proxy.Request) ([]byte, proxy.Outcome) {
		seen <- r.Client
		return acceptWith(r.Packet, "device"), proxy.OutcomeAnswered
	})
	tests := []struct {
		name  string
		peer  Peer
		err   error
		tag   string // "" when refused
		site  string
		label string
	}{
		{"device", Peer{Client: &proxy.Client{Name: "ap1", Site: "hq", Secret: Secret()}}, nil, "device", "hq", "device"},
		{"cloud handler", Peer{Client: &proxy.Client{Name: "cloud", Secret: Secret()}, Kind: "cloud", Handler: other}, nil, "cloud", "", "cloud"},
		{"refused", Peer{}, errors.New("not allowed"), "", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := startServer(t, "", dev, func(c *ServerConfig) {
				c.Identify = func(st tls.ConnectionState) (Peer, error) {
					if st.PeerCertificates[0].Subject.CommonName != "cloud-test" {
						t.Errorf("identify saw %q", st.PeerCertificates[0].Subject.CommonName)
					}
					return tt.peer, tt.err
				}
			})
			rc := dialRaw(t, srv.addr, mustPKI(t).clientTLS())
			rc.write(accessRequest(t, 3, "u"))
			b, err := ReadPacket(rc.br, nil)
			if tt.tag == "" {
				if err == nil {
					t.Fatal("refused peer got an answer")
				}
				waitFor(t, "refusal counted", func() bool { return value(srv.m.drops.WithLabelValues(dropRefused)) == 1 })
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tag, _ := replyTag(t, b); tag != tt.tag {
				t.Fatalf("answered by %q, want %q", tag, tt.tag)
			}
			if tt.tag == "device" {
				if c := <-seen; c.Name != "ap1" || c.Site != tt.site {
					t.Fatalf("client %+v", c)
				}
			}
			if got := value(srv.m.accepted.WithLabelValues(tt.label)); got != 1 {
				t.Fatalf("established{peer=%s} = %v", tt.label, got)
			}
		})
	}
}

// TestServerAbsurdLength: a frame whose Length is out of range closes the
// connection and nothing else.
func TestServerAbsurdLength(t *testing.T) {
	srv := startServer(t, "", echo("A"), nil)
	bad := dialRaw(t, srv.addr, mustPKI(t).clientTLS())
	bad.write([]byte{byte(packet.CodeAccessRequest), 1, 0xff, 0xff})
	if _, err := bad.read(); err == nil {
		t.Fatal("absurd length answered")
	}
	good := dialRaw(t, srv.addr, mustPKI(t).clientTLS())
	good.write(accessRequest(t, 2, "ok"))
	if _, err := good.read(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "bad peer gone", func() bool { return srv.Open() == 1 })
	if got := value(srv.m.drops.WithLabelValues(dropMalformed)); got != 1 {
		t.Fatalf("malformed %v", got)
	}
}
