package peers

import (
	"errors"
	"io"
	"net"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"
)

// ioWait bounds every wait for loopback I/O: far above what it takes,
// short enough that a hang fails fast.
const ioWait = 5 * time.Second

// echoServer echoes every connection and hands each one to the test, so
// it can push bytes from the target's side and see how the relay ended it.
type echoServer struct {
	ln    net.Listener
	conns chan *echoConn
	wg    sync.WaitGroup
}

type echoConn struct {
	net.Conn
	end chan error // how the connection's read side ended (nil: EOF)
}

func startEcho(t *testing.T) *echoServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &echoServer{ln: ln, conns: make(chan *echoConn, 16)}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			ec := &echoConn{Conn: c, end: make(chan error, 1)}
			s.conns <- ec
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				_, err := io.Copy(c, c)
				ec.end <- err
				c.Close()
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		for {
			select {
			case c := <-s.conns:
				c.Close()
				continue
			default:
			}
			break
		}
		s.wg.Wait()
	})
	return s
}

// next returns the next connection the echo server accepted.
func (s *echoServer) next(t *testing.T) *echoConn {
	t.Helper()
	select {
	case c := <-s.conns:
		return c
	case <-time.After(ioWait):
		t.Fatal("no connection reached the target")
		return nil
	}
}

// noLeak fails the test if goroutines started during it are still running
// once it is cleaned up (bounded wait: they exit asynchronously).
func noLeak(t *testing.T) {
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(ioWait)
		for runtime.NumGoroutine() > before {
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<16)
				t.Errorf("%d goroutines before, %d after:\n%s", before, runtime.NumGoroutine(), buf[:runtime.Stack(buf, true)])
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
}

func startRelay(t *testing.T, target string) *Relay {
	t.Helper()
	r, err := StartRelay("127.0.0.1:0", target)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, ioWait)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// roundTrip writes msg and reads the echo.
func roundTrip(t *testing.T, c net.Conn, msg string) {
	t.Helper()
	c.SetDeadline(time.Now().Add(ioWait))
	if _, err := c.Write([]byte(msg)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, len(msg))
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != msg {
		t.Fatalf("echo %q, %v; want %q", buf, err, msg)
	}
}

// readErr reads from c until an error (bounded) and returns it.
func readErr(t *testing.T, c net.Conn) error {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(ioWait))
	_, err := io.Copy(io.Discard, c)
	if err == nil {
		err = io.EOF
	}
	return err
}

// waitFor polls cond with a bounded wait, for effects of a Cut that
// happen in the relay's goroutines.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(ioWait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// relayed starts a relay to an echo server (checking for leaks) and a
// client connection through it that has carried msg there and back.
func relayed(t *testing.T, msg string) (*echoServer, *Relay, net.Conn) {
	t.Helper()
	noLeak(t)
	echo := startEcho(t)
	r := startRelay(t, echo.ln.Addr().String())
	c := dial(t, r.Addr())
	roundTrip(t, c, msg)
	return echo, r, c
}

// bothReset fails the test unless the client c and its target connection
// both ended in a reset.
func bothReset(t *testing.T, c net.Conn, target *echoConn) {
	t.Helper()
	if err := readErr(t, c); !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("client: %v, want a reset", err)
	}
	if err := <-target.end; !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("target: %v, want a reset", err)
	}
}

func TestRelayForwardsBothWaysAndHalfClose(t *testing.T) {
	echo, r, c := relayed(t, "hello")
	roundTrip(t, c, "again")
	// A half-close passes through: the echo server sees EOF and closes,
	// which the client sees as EOF too.
	c.(*net.TCPConn).CloseWrite()
	if err := readErr(t, c); !errors.Is(err, io.EOF) {
		t.Fatalf("client read ended with %v, want EOF", err)
	}
	if err := <-echo.next(t).end; err != nil {
		t.Fatalf("target read ended with %v, want EOF", err)
	}
	waitFor(t, "connection released", func() bool { return r.Stats().Open == 0 })
	if s := r.Stats(); s.Accepted != 1 || s.ToTarget != 10 || s.FromTarget != 10 || s.Discarded != 0 {
		t.Fatalf("stats %+v", s)
	}
}

func TestRelayCutRST(t *testing.T) {
	echo, r, c := relayed(t, "before")
	target := echo.next(t)

	if err := r.Cut(CutRST); err != nil {
		t.Fatal(err)
	}
	bothReset(t, c, target)
	if _, err := net.DialTimeout("tcp", r.Addr(), ioWait); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("connect while cut: %v, want refused", err)
	}

	if err := r.Restore(); err != nil {
		t.Fatal(err)
	}
	roundTrip(t, dial(t, r.Addr()), "after")
	if s := r.Stats(); s.Accepted != 2 || s.Open != 1 {
		t.Fatalf("stats %+v: want the two connections that got through", s)
	}
}

func TestRelayCutBlackhole(t *testing.T) {
	echo, r, c := relayed(t, "before")
	target := echo.next(t)

	if err := r.Cut(CutBlackhole); err != nil {
		t.Fatal(err)
	}
	// Both directions vanish, and nothing is closed.
	if _, err := c.Write([]byte("lost")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "client bytes discarded", func() bool { return r.Stats().Discarded == 4 })
	if _, err := target.Write([]byte("gone")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "target bytes discarded", func() bool { return r.Stats().Discarded == 8 })
	c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if n, err := c.Read(make([]byte, 8)); !isTimeout(err) {
		t.Fatalf("client read %d bytes, %v; want a timeout", n, err)
	}
	select {
	case err := <-target.end:
		t.Fatalf("target connection ended (%v) during a blackhole", err)
	default:
	}

	// A new connection is accepted but reaches nothing.
	nc := dial(t, r.Addr())
	if _, err := nc.Write([]byte("void")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "new connection's bytes discarded", func() bool { return r.Stats().Discarded == 12 })
	if s := r.Stats(); s.Accepted != 2 || s.ToTarget != 6 {
		t.Fatalf("stats %+v", s)
	}

	if err := r.Restore(); err != nil {
		t.Fatal(err)
	}
	roundTrip(t, dial(t, r.Addr()), "after")
	echo.next(t)
	// Connections blackholed before the restore stay dead.
	c.Write([]byte("dead"))
	nc.Write([]byte("dead"))
	waitFor(t, "old connections still discarding", func() bool { return r.Stats().Discarded == 20 })
	select {
	case ec := <-echo.conns:
		t.Fatalf("a blackholed connection reached the target after restore: %v", ec.RemoteAddr())
	default:
	}
	if s := r.Stats(); s.Open != 3 {
		t.Fatalf("stats %+v: want the two dead connections and the new one open", s)
	}
}

func TestRelayRSTAfterBlackholeResetsDeadConnections(t *testing.T) {
	echo, r, c := relayed(t, "x")
	if err := r.Cut(CutBlackhole); err != nil {
		t.Fatal(err)
	}
	if err := r.Cut(CutRST); err != nil {
		t.Fatal(err)
	}
	bothReset(t, c, echo.next(t))
}

func TestRelayTargetDownResets(t *testing.T) {
	noLeak(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	target := ln.Addr().String()
	ln.Close()
	r := startRelay(t, target)
	// The reset may come before the client's connect returned.
	c, err := net.DialTimeout("tcp", r.Addr(), ioWait)
	if err == nil {
		defer c.Close()
		err = readErr(t, c)
	}
	if !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("client: %v, want a reset when the target refuses", err)
	}
}

func TestRelayCloseEndsEverything(t *testing.T) {
	echo, r, live := relayed(t, "x")
	r.Cut(CutBlackhole)
	dead := dial(t, r.Addr())
	waitFor(t, "blackholed connection accepted", func() bool { return r.Stats().Accepted == 2 })
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	for _, c := range []net.Conn{live, dead} {
		if err := readErr(t, c); isTimeout(err) {
			t.Fatal("a client connection outlived Close")
		}
	}
	if err := <-echo.next(t).end; err != nil && isTimeout(err) {
		t.Fatal(err)
	}
	if _, err := net.DialTimeout("tcp", r.Addr(), ioWait); err == nil {
		t.Fatal("relay still accepts after Close")
	}
	if err := r.Cut(CutRST); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Cut after Close: %v", err)
	}
}

func TestStartRelayRefusesNonLoopback(t *testing.T) {
	if _, err := StartRelay("0.0.0.0:0", "127.0.0.1:1"); err == nil {
		t.Fatal("listening on all interfaces was allowed")
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
