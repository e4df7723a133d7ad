package radsec

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/mxedge/mxedge/proxy"
	"github.com/mxedge/mxedge/proxy/packet"
)

// onlyConn returns the pool's single connection to its first server.
func onlyConn(t *testing.T, c *Client) *conn {
	t.Helper()
	conns := *c.ups[0].conns.Load()
	if len(conns) != 1 {
		t.Fatalf("%d connections, want 1", len(conns))
	}
	return conns[0]
}

// TestLateReplyQuarantine times a request out while the server still
// holds it, then lets its reply arrive late. The timeout is driven by
// calling the sweep with a clock set ahead, not by waiting for it.
func TestLateReplyQuarantine(t *testing.T) {
	var mu sync.Mutex
	seen := map[uint8]int{} // identifiers of the prompt requests
	arrived := make(chan uint8, 2)
	release := [2]chan struct{}{make(chan struct{}), make(chan struct{})}
	h := proxy.HandlerFunc(func(ctx context.Context, r *proxy.Request) ([]byte, proxy.Outcome) {
		user, _ := r.Packet.Lookup(packet.AttrUserName)
		for i, slow := range []string{"slow0", "slow1"} {
			if string(user) == slow {
				arrived <- r.Packet.ID
				select {
				case <-release[i]:
				case <-ctx.Done():
					return nil, proxy.OutcomeDropped
				}
				return acceptWith(r.Packet, "late"), proxy.OutcomeAnswered
			}
		}
		mu.Lock()
		seen[r.Packet.ID]++
		mu.Unlock()
		return acceptWith(r.Packet, "A"), proxy.OutcomeAnswered
	})
	srv := startServer(t, "", h, nil)
	defer close(release[1])
	c, _ := newClient(t, []string{srv.addr}, func(cfg *Config) {
		cfg.Timeout = time.Minute // only the sweep calls below time anything out
		cfg.StatusInterval = time.Hour
		cfg.MaxConnsPerServer = 1
	})
	waitFor(t, "server up", func() bool { return c.Up(srv.addr) })
	cn := onlyConn(t, c)
	m := c.ups[0].m
	clock := time.Now()

	// slowN goes out, is timed out by the sweep, and its identifier is
	// quarantined.
	slow := func(n int) uint8 {
		t.Helper()
		errc := make(chan error, 1)
		go func() {
			_, err := c.Exchange(context.Background(), accessRequest(t, 1, fmt.Sprint("slow", n)))
			errc <- err
		}()
		id := <-arrived
		clock = clock.Add(2 * time.Minute)
		if err := cn.sweep(clock); err != nil {
			t.Fatal(err)
		}
		if err := <-errc; !errors.Is(err, ErrTimeout) {
			t.Fatalf("slow%d: err = %v, want ErrTimeout", n, err)
		}
		cn.mu.Lock()
		held := cn.heldUntil[id]
		cn.mu.Unlock()
		if held == 0 || cn.held.Load() != 1 {
			t.Fatalf("identifier %d not quarantined (held %d)", id, cn.held.Load())
		}
		return id
	}
	// Enough prompt requests to cycle through every identifier.
	prompt := func(n int) {
		t.Helper()
		for i := range n {
			user := fmt.Sprint("u", i)
			reply, err := c.Exchange(context.Background(), accessRequest(t, 1, user))
			if err != nil {
				t.Fatalf("%s: %v", user, err)
			}
			if _, u := replyTag(t, reply); u != user {
				t.Fatalf("reply for %q got %q", user, u)
			}
		}
	}

	id := slow(0)
	prompt(300)
	mu.Lock()
	n := seen[id]
	mu.Unlock()
	if n != 0 {
		t.Fatalf("quarantined identifier %d reused %d times", id, n)
	}

	// The late reply frees the identifier early and costs nothing else.
	close(release[0])
	waitFor(t, "the late reply counted", func() bool { return value(m.late) == 1 })
	if cn.held.Load() != 0 {
		t.Fatalf("held = %d after the late reply", cn.held.Load())
	}
	prompt(10)
	if got := onlyConn(t, c); got != cn {
		t.Fatal("the connection was replaced")
	}
	if value(m.reconnects) != 0 || value(m.moved) != 0 || value(m.unverified) != 0 || value(m.unmatched) != 0 {
		t.Fatalf("reconnects=%v moved=%v unverified=%v unmatched=%v",
			value(m.reconnects), value(m.moved), value(m.unverified), value(m.unmatched))
	}

	// Without a reply the quarantine ends after quarantineFactor timeouts.
	id = slow(1)
	end := clock.Add(quarantineFactor * time.Minute)
	if err := cn.sweep(end.Add(-time.Nanosecond)); err != nil {
		t.Fatal(err)
	}
	if cn.held.Load() != 1 {
		t.Fatal("quarantine ended early")
	}
	if err := cn.sweep(end); err != nil {
		t.Fatal(err)
	}
	cn.mu.Lock()
	held := cn.heldUntil[id]
	cn.mu.Unlock()
	if held != 0 || cn.held.Load() != 0 {
		t.Fatalf("identifier %d still held after the quarantine", id)
	}
}

// rawPeer is an upstream that answers Status-Server and hands every other
// request to answer, which writes whatever it likes back.
func rawPeer(t *testing.T, answer func(w io.Writer, p *packet.Packet)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tln := tlsListener(ln, mustPKI(t))
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			nc, err := tln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, nc)
			mu.Unlock()
			wg.Go(func() {
				br := newReader(nc)
				for {
					b, err := ReadPacket(br, nil)
					if err != nil {
						return
					}
					p, err := packet.Parse(b)
					if err != nil {
						return
					}
					if p.Code == packet.CodeStatusServer {
						nc.Write(acceptWith(p, "status"))
						continue
					}
					answer(nc, p)
				}
			})
		}
	})
	return ln.Addr().String()
}

// TestDroppedReplies: a reply that fails verification and one on an
// identifier with no request are dropped and counted; the connection and
// the request waiting on it carry on, and the genuine reply is delivered.
func TestDroppedReplies(t *testing.T) {
	addr := rawPeer(t, func(w io.Writer, p *packet.Packet) {
		bad := acceptWith(p, "A")
		bad[5] ^= 0xff // breaks the Response Authenticator
		w.Write(bad)
		stray := acceptWith(p, "A")
		stray[1] = p.ID + 100 // no request on it
		w.Write(stray)
		w.Write(acceptWith(p, "A"))
	})
	c, _ := newClient(t, []string{addr}, func(cfg *Config) { cfg.MaxConnsPerServer = 1 })
	for i := range 3 {
		user := fmt.Sprint("d", i)
		reply, err := c.Exchange(context.Background(), accessRequest(t, 3, user))
		if err != nil {
			t.Fatal(err)
		}
		if _, u := replyTag(t, reply); u != user {
			t.Fatalf("user %q, want %q", u, user)
		}
	}
	m := c.ups[0].m
	waitFor(t, "the last stray reply counted", func() bool { return value(m.unmatched) == 3 })
	if value(m.unverified) != 3 || value(m.ok) != 3 || value(m.moved) != 0 || value(m.reconnects) != 0 {
		t.Fatalf("unverified=%v ok=%v moved=%v reconnects=%v",
			value(m.unverified), value(m.ok), value(m.moved), value(m.reconnects))
	}
}

// TestProbeKicksRedial: a server with no connection and a long backoff
// ahead is dialled as soon as a probe of it succeeds.
func TestProbeKicksRedial(t *testing.T) {
	srv := startServer(t, "", echo("A"), nil)
	var refuse atomic.Bool
	refuse.Store(true)
	c, _ := newClient(t, []string{srv.addr}, func(cfg *Config) {
		cfg.ReconnectMax = time.Hour
		cfg.Dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
			if refuse.Load() {
				return nil, errors.New("refused")
			}
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		}
	})
	u := c.ups[0]
	waitFor(t, "the server down", func() bool { return u.state.Load() == stateDown })
	u.mu.Lock()
	u.fails = 30
	u.nextDial = time.Now().Add(time.Hour)
	u.mu.Unlock()
	refuse.Store(false)
	if _, err := c.Probe(context.Background(), srv.addr); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a connection after the probe", func() bool { return c.Up(srv.addr) })
	if got := value(u.m.conns); got != 1 {
		t.Fatalf("connections = %v", got)
	}
}

// TestProbeSupersedesStuckDial: a dial stuck in a TLS handshake with a
// frozen peer is abandoned for a fresh one when a probe gets through,
// rather than left to its DialTimeout.
func TestProbeSupersedesStuckDial(t *testing.T) {
	srv := startServer(t, "", echo("A"), nil)
	frozen, err := net.Listen("tcp", "127.0.0.1:0") // accepts, never handshakes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { frozen.Close() })
	var freeze atomic.Bool
	freeze.Store(true)
	c, _ := newClient(t, []string{srv.addr}, func(cfg *Config) {
		cfg.DialTimeout = time.Hour
		cfg.Dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
			if freeze.Load() {
				addr = frozen.Addr().String()
			}
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		}
	})
	u := c.ups[0]
	waitFor(t, "a dial in flight", func() bool {
		u.mu.Lock()
		defer u.mu.Unlock()
		return u.dialCancel != nil
	})
	freeze.Store(false)
	if _, err := c.Probe(context.Background(), srv.addr); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a connection after the probe", func() bool { return c.Up(srv.addr) })
	if _, err := c.Exchange(context.Background(), accessRequest(t, 1, "p")); err != nil {
		t.Fatal(err)
	}
}

// TestFullOfQuarantineOpensConn: identifiers held in quarantine count as
// busy, so a connection full of them makes the pool open another.
func TestFullOfQuarantineOpensConn(t *testing.T) {
	srv := startServer(t, "", echo("A"), nil)
	c, _ := newClient(t, []string{srv.addr}, func(cfg *Config) { cfg.MaxConnsPerServer = 2 })
	waitFor(t, "server up", func() bool { return c.Up(srv.addr) })
	cn := onlyConn(t, c)
	cn.mu.Lock()
	for id := 1; id < 256; id++ {
		cn.heldUntil[id] = time.Now().Add(time.Hour).UnixNano()
	}
	cn.held.Store(255)
	cn.mu.Unlock()
	if _, err := c.Exchange(context.Background(), accessRequest(t, 1, "q")); err != nil {
		t.Fatal(err)
	}
	if got := value(c.ups[0].m.conns); got != 2 {
		t.Fatalf("connections = %v, want 2", got)
	}
}

// TestHungDialRetriesAtOnce: against a peer that never answers the TLS
// handshake each dial lasts DialTimeout, and the next one starts as it
// ends, since the backoff counts from the start of the attempt.
func TestHungDialRetriesAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const dialTimeout = 5 * time.Second
		var mu sync.Mutex
		var starts []time.Time
		var peers []net.Conn
		c, _ := newClient(t, []string{"127.0.0.1:2083"}, func(cfg *Config) {
			cfg.DialTimeout = dialTimeout
			cfg.Dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
				client, peer := net.Pipe() // the peer end is never read: frozen
				mu.Lock()
				starts = append(starts, time.Now())
				peers = append(peers, peer)
				mu.Unlock()
				return client, nil
			}
		})
		time.Sleep(3*dialTimeout + time.Millisecond)
		synctest.Wait()
		c.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, p := range peers {
			p.Close()
		}
		if len(starts) != 4 {
			t.Fatalf("%d dials in %v, want 4", len(starts), 3*dialTimeout)
		}
		for i := 1; i < len(starts); i++ {
			if gap := starts[i].Sub(starts[i-1]); gap != dialTimeout {
				t.Errorf("dial %d started %v after the one before, want %v", i, gap, dialTimeout)
			}
		}
	})
}
