package radsec

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mxedge/mxedge/proxy"
	"github.com/mxedge/mxedge/proxy/packet"
)

// rawConn is a bare RadSec peer for poking at the server.
type rawConn struct {
	t  *testing.T
	tc *tls.Conn
	br *bufio.Reader
}

func dialRaw(t *testing.T, addr string, cfg *tls.Config) *rawConn {
	t.Helper()
	tc, err := tls.Dial("tcp", addr, cfg)
	if err != nil {
		t.Fatal(err)
	}
	tc.SetDeadline(time.Now().Add(10 * time.Second))
	t.Cleanup(func() { tc.Close() })
	return &rawConn{t: t, tc: tc, br: bufio.NewReader(tc)}
}

func (r *rawConn) write(b []byte) {
	r.t.Helper()
	if _, err := r.tc.Write(b); err != nil {
		r.t.Fatal(err)
	}
}

func (r *rawConn) read() (*packet.Packet, error) {
	b, err := ReadPacket(r.br, nil)
	if err != nil {
		return nil, err
	}
	return packet.Parse(b)
}

func TestServerStatusServer(t *testing.T) {
	srv := startServer(t, "", echo("A"), nil)
	rc := dialRaw(t, srv.addr, mustPKI(t).clientTLS())
	req := packet.NewStatusServer(nil, 0, secret)
	rc.write(req)
	p, err := rc.read()
	if err != nil {
		t.Fatal(err)
	}
	var auth [16]byte
	copy(auth[:], req[4:20])
	hasMA, err := packet.VerifyResponse(p, auth, secret)
	if err != nil || !hasMA || p.Code != packet.CodeAccessAccept || p.Attrs[0].Type != packet.AttrMessageAuthenticator {
		t.Fatalf("reply %v ma=%v err=%v attrs=%v", p.Code, hasMA, err, p.Attrs)
	}
}

func TestServerRequestContext(t *testing.T) {
	got := make(chan *proxy.Client, 1)
	h := proxy.HandlerFunc(func(_ context.Context, r *proxy.Request) ([]byte, proxy.Outcome) {
		got <- r.Client
		if !r.HasMessageAuthenticator || !r.Source.IsValid() || !r.Local.IsValid() {
			t.Errorf("request %+v", r)
		}
		return acceptWith(r.Packet, "A"), proxy.OutcomeAnswered
	})
	srv := startServer(t, "", h, nil)
	rc := dialRaw(t, srv.addr, mustPKI(t).clientTLS())
	rc.write(accessRequest(t, 5, "gina"))
	if _, err := rc.read(); err != nil {
		t.Fatal(err)
	}
	c := <-got
	if c.Name != "cloud-test" || string(c.Secret) != "radsec" || c.RequireMessageAuthenticator {
		t.Fatalf("client %+v", c)
	}
}

// TestServerClosesOnBadInput: malformed frames and requests that do not
// verify close the connection (bis §3.12).
func TestServerClosesOnBadInput(t *testing.T) {
	badMA := accessRequest(t, 1, "h")
	badMA[len(badMA)-1] ^= 1 // User-Name changed after signing
	acct := packet.Append(nil, packet.CodeAccountingRequest, 2, [16]byte{})
	acct, _ = packet.AppendAttr(acct, packet.AttrUserName, []byte("h"))
	_ = packet.Sign(acct, []byte("not-radsec"), nil)
	badAttr := accessRequest(t, 1, "h")
	badAttr[len(badAttr)-2] = 1 // User-Name length 1
	tests := []struct {
		name   string
		in     []byte
		reason string
	}{
		{"length out of range", []byte{1, 1, 0, 10, 0, 0, 0, 0}, "malformed"},
		{"attribute overrun", badAttr, "malformed"},
		{"bad Message-Authenticator", badMA, "bad_authenticator"},
		{"accounting with another secret", acct, "bad_authenticator"},
	}
	srv := startServer(t, "", echo("A"), nil)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := value(srv.m.drops.WithLabelValues(tt.reason))
			rc := dialRaw(t, srv.addr, mustPKI(t).clientTLS())
			rc.write(tt.in)
			if _, err := rc.read(); err == nil {
				t.Fatal("got a reply, want the connection closed")
			}
			if got := value(srv.m.drops.WithLabelValues(tt.reason)); got != before+1 {
				t.Fatalf("drops{%s} = %v, want %v", tt.reason, got, before+1)
			}
		})
	}
}

func TestServerDuplicate(t *testing.T) {
	var calls atomic.Int32
	release := make(chan struct{})
	h := proxy.HandlerFunc(func(_ context.Context, r *proxy.Request) ([]byte, proxy.Outcome) {
		calls.Add(1)
		<-release
		return acceptWith(r.Packet, "A"), proxy.OutcomeAnswered
	})
	srv := startServer(t, "", h, nil)
	rc := dialRaw(t, srv.addr, mustPKI(t).clientTLS())
	req := accessRequest(t, 9, "ivan")
	rc.write(req)
	rc.write(req)
	rc.write(packet.NewStatusServer(nil, 0, secret)) // processed after both
	if p, err := rc.read(); err != nil || p.ID != 0 {
		t.Fatalf("status reply: %v %v", p, err)
	}
	if got := value(srv.m.drops.WithLabelValues("duplicate")); got != 1 {
		t.Fatalf("duplicates = %v", got)
	}
	close(release)
	if p, err := rc.read(); err != nil || p.ID != 9 {
		t.Fatalf("reply: %v %v", p, err)
	}
	if calls.Load() != 1 {
		t.Fatalf("handler called %d times", calls.Load())
	}
}

// TestServerNoHeadOfLineBlocking: a slow request does not hold up a fast
// one behind it, and a panicking handler does not take the connection down.
func TestServerNoHeadOfLineBlocking(t *testing.T) {
	release := make(chan struct{})
	h := proxy.HandlerFunc(func(_ context.Context, r *proxy.Request) ([]byte, proxy.Outcome) {
		u, _ := r.Packet.Lookup(packet.AttrUserName)
		switch string(u) {
		case "slow":
			<-release
		case "panic":
			panic("boom")
		}
		return acceptWith(r.Packet, "A"), proxy.OutcomeAnswered
	})
	srv := startServer(t, "", h, nil)
	rc := dialRaw(t, srv.addr, mustPKI(t).clientTLS())
	rc.write(accessRequest(t, 1, "slow"))
	rc.write(accessRequest(t, 2, "panic"))
	rc.write(accessRequest(t, 3, "fast"))
	if p, err := rc.read(); err != nil || p.ID != 3 {
		t.Fatalf("first reply: %v %v", p, err)
	}
	close(release)
	if p, err := rc.read(); err != nil || p.ID != 1 {
		t.Fatalf("second reply: %v %v", p, err)
	}
	// The panicking request runs concurrently with the others: its count
	// may land after both replies.
	waitFor(t, "one panic counted", func() bool { return value(srv.m.panics) == 1 })
}

func TestServerRequiresClientCert(t *testing.T) {
	srv := startServer(t, "", echo("A"), nil)
	p := mustPKI(t)
	noCert := &tls.Config{RootCAs: p.pool}
	for _, max := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		cfg := noCert.Clone()
		cfg.MaxVersion = max
		tc, err := tls.Dial("tcp", srv.addr, cfg)
		if err == nil {
			// TLS 1.3: the server's verdict arrives after the handshake.
			tc.SetDeadline(time.Now().Add(10 * time.Second))
			tc.Write(accessRequest(t, 1, "x"))
			_, err = ReadPacket(bufio.NewReader(tc), nil)
			tc.Close()
		}
		if err == nil {
			t.Fatalf("TLS %x: a client without certificate got an answer", max)
		}
	}
	waitFor(t, "handshake failures counted", func() bool {
		return value(srv.m.drops.WithLabelValues("handshake")) == 2
	})
	// The pool with no certificate never comes up either, not even
	// briefly after a TLS 1.3 handshake that looked complete.
	events := make(chan bool, 100)
	c, _ := newClient(t, []string{srv.addr}, func(cfg *Config) {
		cfg.TLS = noCert
		cfg.Timeout = 200 * time.Millisecond
		cfg.OnStateChange = func(_ string, up bool) { events <- up }
	})
	if _, err := c.Probe(context.Background(), srv.addr); err == nil {
		t.Fatal("probe without certificate succeeded")
	}
	if up := <-events; up {
		t.Fatal("reported up without a client certificate")
	}
	waitFor(t, "a redial", func() bool { return value(c.ups[0].m.reconnects) >= 2 })
	if len(events) != 0 || c.Healthy() {
		t.Fatal("state flapped")
	}
}

// TestServerShutdown: in-flight requests are answered, new ones are not
// read, and Serve returns ErrServerClosed.
func TestServerShutdown(t *testing.T) {
	arrived := make(chan struct{})
	release := make(chan struct{})
	h := proxy.HandlerFunc(func(_ context.Context, r *proxy.Request) ([]byte, proxy.Outcome) {
		close(arrived)
		<-release
		return acceptWith(r.Packet, "A"), proxy.OutcomeAnswered
	})
	srv := startServer(t, "", h, nil)
	rc := dialRaw(t, srv.addr, mustPKI(t).clientTLS())
	rc.write(accessRequest(t, 4, "judy"))
	<-arrived
	shut := make(chan error, 1)
	go func() { shut <- srv.Shutdown(context.Background()) }()
	waitFor(t, "listener closed", func() bool {
		select {
		case err := <-srv.done:
			if !errors.Is(err, ErrServerClosed) {
				t.Errorf("Serve: %v", err)
			}
			return true
		default:
			return false
		}
	})
	close(release)
	if p, err := rc.read(); err != nil || p.ID != 4 {
		t.Fatalf("in-flight reply: %v %v", p, err)
	}
	if err := <-shut; err != nil {
		t.Fatal(err)
	}
	if _, err := rc.read(); err == nil {
		t.Fatal("connection still open after Shutdown")
	}
	srv.done <- ErrServerClosed // for the cleanup's stop
}

func TestServerShutdownDeadline(t *testing.T) {
	h := proxy.HandlerFunc(func(ctx context.Context, _ *proxy.Request) ([]byte, proxy.Outcome) {
		<-ctx.Done()
		return nil, proxy.OutcomeDropped
	})
	srv := startServer(t, "", h, nil)
	c, _ := newClient(t, []string{srv.addr}, nil)
	go c.Exchange(context.Background(), accessRequest(t, 1, "k"))
	waitFor(t, "request in flight", func() bool {
		srv.mu.Lock()
		defer srv.mu.Unlock()
		return value(srv.m.conns) == 1 && len(srv.conns) == 1
	})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := srv.Shutdown(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Shutdown = %v", err)
	}
}
