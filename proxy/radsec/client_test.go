package radsec

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/mxedge/mxedge/proxy"
	"github.com/mxedge/mxedge/proxy/packet"
)

func TestExchange(t *testing.T) {
	srv := startServer(t, "", echo("A"), nil)
	c, _ := newClient(t, []string{srv.addr}, nil)
	req := accessRequest(t, 42, "alice")
	orig := append([]byte(nil), req...)
	reply, err := c.Exchange(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if tag, user := replyTag(t, reply); tag != "A" || user != "alice" {
		t.Fatalf("reply %q %q", tag, user)
	}
	if string(req) != string(orig) {
		t.Fatal("Exchange modified the caller's request")
	}
	if !c.Up(srv.addr) || !c.Healthy() {
		t.Fatal("server not up after an exchange")
	}
	if got := value(c.ups[0].m.ok); got != 1 {
		t.Fatalf("ok = %v", got)
	}
	if _, err := c.Exchange(context.Background(), req[:10]); !errors.Is(err, ErrRequest) {
		t.Fatalf("short request: %v", err)
	}
	rtt, err := c.Probe(context.Background(), srv.addr)
	if err != nil || rtt <= 0 {
		t.Fatalf("probe: %v %v", rtt, err)
	}
}

// TestManyInFlight holds 1000 requests at the server at once, which needs
// more than one connection's 255 identifiers.
func TestManyInFlight(t *testing.T) {
	const n = 1000
	var arrived atomic.Int32
	release := make(chan struct{})
	h := proxy.HandlerFunc(func(ctx context.Context, r *proxy.Request) ([]byte, proxy.Outcome) {
		if arrived.Add(1) == n {
			close(release)
		}
		select {
		case <-release:
		case <-ctx.Done():
			return nil, proxy.OutcomeDropped
		}
		return acceptWith(r.Packet, "A"), proxy.OutcomeAnswered
	})
	srv := startServer(t, "", h, nil)
	c, _ := newClient(t, []string{srv.addr}, func(cfg *Config) { cfg.Timeout = 20 * time.Second })
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			user := fmt.Sprint("u", i)
			reply, err := c.Exchange(context.Background(), accessRequest(t, 1, user))
			if err == nil {
				if _, u := replyTag(t, reply); u != user {
					err = fmt.Errorf("reply for %q got %q", user, u)
				}
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if got := value(c.ups[0].m.conns); got != 4 {
		t.Fatalf("connections = %v, want 4", got)
	}
	if got := value(c.ups[0].m.ok); got != n {
		t.Fatalf("ok = %v", got)
	}
}

// TestMoveOnClose drops the server side of the connections while
// requests are in flight; every request must still be answered.
func TestMoveOnClose(t *testing.T) {
	const n = 100
	var holding atomic.Bool
	holding.Store(true)
	var held atomic.Int32
	all := make(chan struct{})
	h := proxy.HandlerFunc(func(ctx context.Context, r *proxy.Request) ([]byte, proxy.Outcome) {
		if holding.Load() {
			if held.Add(1) == n {
				close(all)
			}
			<-ctx.Done() // the connection is lost: no reply (bis §3.11)
			return nil, proxy.OutcomeDropped
		}
		return acceptWith(r.Packet, "A"), proxy.OutcomeAnswered
	})
	srv := startServer(t, "", h, nil)
	c, _ := newClient(t, []string{srv.addr}, nil)
	var wg sync.WaitGroup
	var answered atomic.Int32
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			reply, err := c.Exchange(context.Background(), accessRequest(t, uint8(i), fmt.Sprint("u", i)))
			if err != nil {
				t.Error(err)
				return
			}
			if _, u := replyTag(t, reply); u != fmt.Sprint("u", i) {
				t.Errorf("wrong reply %q for u%d", u, i)
				return
			}
			answered.Add(1)
		}()
	}
	select {
	case <-all:
	case <-time.After(10 * time.Second):
		t.Fatal("requests did not arrive")
	}
	holding.Store(false)
	srv.closeConns()
	wg.Wait()
	if answered.Load() != n {
		t.Fatalf("answered %d of %d", answered.Load(), n)
	}
	if got := value(c.ups[0].m.moved); got != n {
		t.Fatalf("moved = %v, want %d", got, n)
	}
	if !c.Up(srv.addr) {
		t.Fatal("server marked down by a connection reset")
	}
}

// TestIdleCloseByUpstream has the server close idle connections, as
// FreeRADIUS does; exchanges around those closes must all succeed.
func TestIdleCloseByUpstream(t *testing.T) {
	srv := startServer(t, "", echo("A"), func(c *ServerConfig) { c.IdleTimeout = 20 * time.Millisecond })
	c, _ := newClient(t, []string{srv.addr}, func(cfg *Config) { cfg.StatusInterval = time.Hour })
	for i := range 10 {
		before := value(c.ups[0].m.reconnects)
		if _, err := c.Exchange(context.Background(), accessRequest(t, 7, "bob")); err != nil {
			t.Fatalf("exchange %d: %v", i, err)
		}
		waitFor(t, "a reconnect after the idle close", func() bool {
			return value(c.ups[0].m.reconnects) > before
		})
	}
	if !c.Up(srv.addr) {
		t.Fatal("idle close marked the server down")
	}
}

type stateEvent struct {
	server string
	up     bool
}

func TestFailover(t *testing.T) {
	a := startServer(t, "", echo("A"), nil)
	b := startServer(t, "", echo("B"), nil)
	events := make(chan stateEvent, 100)
	c, _ := newClient(t, []string{a.addr, b.addr}, func(cfg *Config) {
		cfg.OnStateChange = func(s string, up bool) { events <- stateEvent{s, up} }
	})
	ask := func(want string) {
		t.Helper()
		reply, err := c.Exchange(context.Background(), accessRequest(t, 9, "carol"))
		if err != nil {
			t.Fatal(err)
		}
		if tag, _ := replyTag(t, reply); tag != want {
			t.Fatalf("answered by %q, want %q", tag, want)
		}
	}
	ask("A")
	a.stop(t)
	// No waiting for the pool to notice: the request must go to B once
	// the redial of A is refused, well within its timeout.
	ask("B")
	if c.Up(a.addr) || !c.Up(b.addr) || !c.Healthy() {
		t.Fatalf("up: A=%v B=%v", c.Up(a.addr), c.Up(b.addr))
	}
	a2 := startServer(t, a.addr, echo("A2"), nil)
	waitFor(t, "A back up", func() bool { return c.Up(a2.addr) })
	ask("A2")
	// The hook runs after the state flips, so wait for it.
	var got []stateEvent
	for len(got) < 4 {
		select {
		case e := <-events:
			got = append(got, e)
		case <-time.After(10 * time.Second):
			t.Fatalf("state events %v", got)
		}
	}
	want := []stateEvent{{a.addr, true}, {b.addr, true}, {a.addr, false}, {a.addr, true}}
	if !containsInOrder(got, want[2:]) || len(got) != 4 {
		t.Fatalf("state events %v, want (in some order for the first two) %v", got, want)
	}
}

func containsInOrder(got, want []stateEvent) bool {
	i := 0
	for _, e := range got {
		if i < len(want) && e == want[i] {
			i++
		}
	}
	return i == len(want)
}

func TestAllDown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	// A request is held while every server is down, in case one comes
	// back, and fails with ErrNoUpstream only when its deadline passes.
	c, _ := newClient(t, []string{addr}, func(cfg *Config) { cfg.Timeout = 300 * time.Millisecond })
	_, err = c.Exchange(context.Background(), accessRequest(t, 1, "x"))
	if !errors.Is(err, ErrNoUpstream) {
		t.Fatalf("err = %v, want ErrNoUpstream", err)
	}
	if c.Healthy() {
		t.Fatal("healthy with no server")
	}
}

// TestTimeout runs in a synctest bubble: the 5 s timeout passes on the
// fake clock, in no real time.
func TestTimeout(t *testing.T) {
	inBubble(t, func(t *testing.T) {
		h := proxy.HandlerFunc(func(context.Context, *proxy.Request) ([]byte, proxy.Outcome) {
			return nil, proxy.OutcomeDropped
		})
		_, c, stop := bubblePair(t, h, nil, func(cfg *Config) { cfg.Timeout = 5 * time.Second })
		defer stop()
		start := time.Now()
		_, err := c.Exchange(context.Background(), accessRequest(t, 3, "erin"))
		if !errors.Is(err, ErrTimeout) {
			t.Fatalf("err = %v, want ErrTimeout", err)
		}
		if took := time.Since(start); took < 5*time.Second || took > 6*time.Second {
			t.Fatalf("timed out after %v, want 5 s (plus a sweep tick)", took)
		}
		if got := value(c.ups[0].m.timeout); got != 1 {
			t.Fatalf("timeout = %v", got)
		}
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if _, err := c.Exchange(ctx, accessRequest(t, 3, "erin")); !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled: %v", err)
		}
		// The timed-out identifier comes back after its quarantine, which
		// starts when the sweep finds the slot expired.
		time.Sleep(2 * quarantineFactor * 5 * time.Second)
		synctest.Wait()
		for _, cn := range *c.ups[0].conns.Load() {
			if n := cn.inflight.Load() + cn.held.Load(); n != 0 {
				t.Fatalf("%d identifiers still taken", n)
			}
		}
		if !c.Up(pipeAddr{}.String()) {
			t.Fatal("a timeout marked the server down")
		}
	})
}

// TestStatusServerKeepalive: an idle connection is probed every
// StatusInterval (10 s on the bubble's fake clock) and stays up.
func TestStatusServerKeepalive(t *testing.T) {
	inBubble(t, func(t *testing.T) {
		srv, c, stop := bubblePair(t, echo("A"), nil, func(cfg *Config) {
			cfg.StatusInterval = 10 * time.Second
			cfg.Timeout = 5 * time.Second
		})
		defer stop()
		time.Sleep(35 * time.Second) // one probe on connect, then at 10, 20 and 30 s
		synctest.Wait()
		if got := value(srv.m.status); got != 4 {
			t.Fatalf("%v Status-Server probes answered, want 4", got)
		}
		if got := value(c.ups[0].m.reconnects); got != 0 {
			t.Fatalf("reconnects = %v: a watchdog probe failed", got)
		}
		if !c.Up(pipeAddr{}.String()) {
			t.Fatal("not up")
		}
	})
}

// TestWatchdog uses an upstream that completes TLS but never answers: the
// Status-Server watchdog must declare the connection dead, Timeout (5 s on
// the bubble's fake clock) after the probe sent on connect.
func TestWatchdog(t *testing.T) {
	inBubble(t, func(t *testing.T) {
		ln := newPipeListener()
		stls, ctls := bubbleTLS(t, mustPKI(t))
		tln := tls.NewListener(ln, stls)
		var conns []net.Conn
		accepted := make(chan struct{})
		go func() {
			defer close(accepted)
			for {
				nc, err := tln.Accept()
				if err != nil {
					return
				}
				// Answer nothing; read and drop, as a kernel's buffer would
				// take what is written (a pipe has none).
				conns = append(conns, nc)
				go io.Copy(io.Discard, nc)
			}
		}()
		events := make(chan stateEvent, 100)
		c, err := New(Config{
			Servers: []string{pipeAddr{}.String()}, TLS: ctls, Dial: ln.dial,
			StatusInterval: 10 * time.Second, Timeout: 5 * time.Second,
			OnStateChange: func(s string, up bool) { events <- stateEvent{s, up} },
		})
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		// The TLS connection works but the Status-Server sent on connect
		// is never answered: the server must never be reported up.
		if e := <-events; e.up {
			t.Fatalf("event %+v, want down", e)
		}
		if took := time.Since(start); took < 5*time.Second || took > 6*time.Second {
			t.Fatalf("declared down after %v, want the 5 s timeout", took)
		}
		if c.Healthy() {
			t.Fatal("healthy without an answer")
		}
		c.Close()
		ln.Close()
		<-accepted
		for _, nc := range conns {
			nc.Close()
		}
	})
}

func TestBackoff(t *testing.T) {
	top := func(n int64) int64 { return n - 1 }
	bottom := func(int64) int64 { return 0 }
	ms := time.Millisecond
	tests := []struct {
		fails    int
		max      time.Duration
		min, top time.Duration
	}{
		{0, time.Second, 0, 100 * ms},
		{1, time.Second, 100 * ms, 200 * ms},
		{2, time.Second, 200 * ms, 400 * ms},
		{3, time.Second, 400 * ms, 800 * ms},
		{4, time.Second, 500 * ms, time.Second},
		{40, time.Second, 500 * ms, time.Second},
		{10, time.Minute, 30 * time.Second, time.Minute},
	}
	for _, tt := range tests {
		lo, hi := backoff(tt.fails, tt.max, bottom), backoff(tt.fails, tt.max, top)
		if lo != tt.min || hi > tt.top || hi < tt.top-ms {
			t.Errorf("backoff(%d, %v) in [%v, %v], want [%v, %v]", tt.fails, tt.max, lo, hi, tt.min, tt.top)
		}
		if d := backoff(tt.fails, tt.max, rand.Int64N); d < tt.min || d > tt.top {
			t.Errorf("backoff(%d) = %v out of range", tt.fails, d)
		}
	}
}

func TestCloseFailsPending(t *testing.T) {
	arrived := make(chan struct{}, 1)
	release := make(chan struct{})
	h := proxy.HandlerFunc(func(ctx context.Context, _ *proxy.Request) ([]byte, proxy.Outcome) {
		select {
		case arrived <- struct{}{}:
		default:
			t.Error("request delivered twice")
		}
		// A graceful Shutdown waits for handlers without cancelling them.
		select {
		case <-ctx.Done():
		case <-release:
		}
		return nil, proxy.OutcomeDropped
	})
	srv := startServer(t, "", h, nil)
	t.Cleanup(func() { close(release) })
	c, _ := newClient(t, []string{srv.addr}, nil)
	errc := make(chan error, 1)
	go func() {
		_, err := c.Exchange(context.Background(), accessRequest(t, 1, "f"))
		errc <- err
	}()
	<-arrived
	c.Close()
	if err := <-errc; !errors.Is(err, ErrClosed) {
		t.Fatalf("err = %v, want ErrClosed", err)
	}
	if _, err := c.Exchange(context.Background(), accessRequest(t, 1, "f")); !errors.Is(err, ErrClosed) {
		t.Fatalf("after close: %v", err)
	}
}

var _ = packet.MaxLen

// TestClientIdleTimeout: our own idle close leaves the server up and the
// next request dials on demand.
func TestClientIdleTimeout(t *testing.T) {
	inBubble(t, func(t *testing.T) {
		_, c, stop := bubblePair(t, echo("A"), nil, func(cfg *Config) {
			cfg.IdleTimeout = 20 * time.Second
			cfg.StatusInterval = time.Hour
		})
		defer stop()
		if _, err := c.Exchange(context.Background(), accessRequest(t, 1, "l")); err != nil {
			t.Fatal(err)
		}
		time.Sleep(19 * time.Second)
		synctest.Wait()
		if got := value(c.ups[0].m.conns); got != 1 {
			t.Fatalf("closed before the idle timeout: %v connections", got)
		}
		time.Sleep(2 * time.Second)
		synctest.Wait()
		if got := value(c.ups[0].m.conns); got != 0 {
			t.Fatalf("%v connections after the idle timeout", got)
		}
		if !c.Up(pipeAddr{}.String()) {
			t.Fatal("idle close marked the server down")
		}
		if _, err := c.Exchange(context.Background(), accessRequest(t, 1, "l")); err != nil {
			t.Fatal(err)
		}
	})
}

// flakyConn fails writes on demand.
type flakyConn struct {
	net.Conn
	fail *atomic.Bool
}

func (f flakyConn) Write(b []byte) (int, error) {
	if f.fail.Load() {
		return 0, errors.New("injected write failure")
	}
	return f.Conn.Write(b)
}

// TestWriteFailureMoves: a request whose write fails is moved to a new
// connection instead of being lost.
func TestWriteFailureMoves(t *testing.T) {
	srv := startServer(t, "", echo("A"), nil)
	var first *atomic.Bool
	var dials atomic.Int32
	c, _ := newClient(t, []string{srv.addr}, func(cfg *Config) {
		cfg.Dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
			nc, err := (&net.Dialer{}).DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			f := new(atomic.Bool)
			if dials.Add(1) == 1 {
				first = f
			}
			return flakyConn{nc, f}, nil
		}
	})
	if _, err := c.Exchange(context.Background(), accessRequest(t, 1, "w")); err != nil {
		t.Fatal(err)
	}
	first.Store(true)
	reply, err := c.Exchange(context.Background(), accessRequest(t, 1, "w2"))
	if err != nil {
		t.Fatal(err)
	}
	if _, u := replyTag(t, reply); u != "w2" {
		t.Fatalf("user %q", u)
	}
	if value(c.ups[0].m.moved) != 1 || dials.Load() != 2 {
		t.Fatalf("moved=%v dials=%d", value(c.ups[0].m.moved), dials.Load())
	}
}
