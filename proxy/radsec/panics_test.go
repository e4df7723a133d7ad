package radsec

import (
	"context"
	"crypto/tls"
	"net"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// panicConn panics once in Read or Write after it is armed, standing for
// a bug anywhere in a connection's loops.
type panicConn struct {
	net.Conn
	read, write *atomic.Bool
}

func (p panicConn) Read(b []byte) (int, error) {
	if p.read.CompareAndSwap(true, false) {
		panic("injected read panic")
	}
	return p.Conn.Read(b)
}

func (p panicConn) Write(b []byte) (int, error) {
	if p.write.CompareAndSwap(true, false) {
		panic("injected write panic")
	}
	return p.Conn.Write(b)
}

func panicsOf(t *testing.T, reg prometheus.Gatherer, component, goroutine string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "mxedge_panics_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			var c, g string
			for _, l := range m.GetLabel() {
				switch l.GetName() {
				case "component":
					c = l.GetValue()
				case "goroutine":
					g = l.GetValue()
				}
			}
			if c == component && g == goroutine {
				return m.GetCounter().GetValue()
			}
		}
	}
	t.Fatalf("no mxedge_panics_total{component=%q,goroutine=%q}", component, goroutine)
	return 0
}

// TestClientLoopsRecoverPanics: a panic in the dial loop, a connection's
// writer or its reader is counted, costs that connection only, and the
// pool redials and answers the next request.
func TestClientLoopsRecoverPanics(t *testing.T) {
	for _, tc := range []struct {
		goroutine string
		arm       func(read, write *atomic.Bool)
	}{
		{goDial, nil},
		{goWrite, func(_, w *atomic.Bool) { w.Store(true) }},
		{goRead, func(r, _ *atomic.Bool) { r.Store(true) }},
	} {
		t.Run(tc.goroutine, func(t *testing.T) {
			srv := startServer(t, "", echo("A"), nil)
			var dials atomic.Int32
			var read, write atomic.Bool
			c, reg := newClient(t, []string{srv.addr}, func(cfg *Config) {
				cfg.ReconnectMax = 200e6 // 200 ms
				cfg.Dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
					if dials.Add(1) == 1 && tc.goroutine == goDial {
						panic("injected dial panic")
					}
					nc, err := (&net.Dialer{}).DialContext(ctx, network, addr)
					return panicConn{nc, &read, &write}, err
				}
			})
			if tc.arm != nil {
				if _, err := c.Exchange(context.Background(), accessRequest(t, 1, "before")); err != nil {
					t.Fatal(err)
				}
				tc.arm(&read, &write)
			}
			// The armed panic fires on this request's write or on the
			// Status-Server reply read; either way the request is moved
			// to a fresh connection and answered.
			reply, err := c.Exchange(context.Background(), accessRequest(t, 2, "after"))
			if err != nil {
				t.Fatal(err)
			}
			if _, u := replyTag(t, reply); u != "after" {
				t.Fatalf("user %q", u)
			}
			waitFor(t, "the panic counted", func() bool {
				return panicsOf(t, reg, "radsec_client", tc.goroutine) == 1
			})
			// A reader already blocked in Read panics on its next one,
			// after this reply: the redial may come after it.
			waitFor(t, "the connection replaced", func() bool { return dials.Load() == 2 && c.Healthy() })
		})
	}
}

// panicListener hands out connections that panic when armed.
type panicListener struct {
	net.Listener
	read, write *atomic.Bool
}

func (l panicListener) Accept() (net.Conn, error) {
	nc, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return panicConn{nc, l.read, l.write}, nil
}

// TestServerLoopsRecoverPanics: a panic in Identify (the connection's
// set-up) or in a connection's reader or writer is counted and closes that
// connection only; the listener keeps serving and the pool redials.
func TestServerLoopsRecoverPanics(t *testing.T) {
	for _, goroutine := range []string{goConn, goRead, goWrite} {
		t.Run(goroutine, func(t *testing.T) {
			p := mustPKI(t)
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			var read, write, identify atomic.Bool
			reg := prometheus.NewRegistry()
			s, err := NewServer(ServerConfig{Handler: echo("A"), Registerer: reg,
				Identify: func(st tls.ConnectionState) (Peer, error) {
					if identify.CompareAndSwap(true, false) {
						panic("injected identify panic")
					}
					return identifyByCN(st)
				}})
			if err != nil {
				t.Fatal(err)
			}
			ts := &testServer{Server: s, addr: ln.Addr().String(), reg: reg, done: make(chan error, 1)}
			go func() {
				ts.done <- s.Serve(tls.NewListener(panicListener{ln, &read, &write}, ServerTLS([]tls.Certificate{p.server}, p.pool)))
			}()
			t.Cleanup(func() { ts.stop(t) })

			// Client and server share a registry in the daemon.
			c, _ := newClient(t, []string{ts.addr}, func(cfg *Config) {
				cfg.Registerer = reg
				cfg.ReconnectMax = 200e6
			})
			if goroutine == goConn {
				identify.Store(true)
			} else {
				if _, err := c.Exchange(context.Background(), accessRequest(t, 1, "before")); err != nil {
					t.Fatal(err)
				}
				if goroutine == goRead {
					read.Store(true)
				} else {
					write.Store(true)
				}
			}
			if _, err := c.Exchange(context.Background(), accessRequest(t, 2, "after")); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "the panic counted", func() bool {
				return panicsOf(t, reg, "radsec_server", goroutine) == 1
			})
			waitFor(t, "the connection released", func() bool { return s.Open() == 1 })
			if probs, err := testutil.GatherAndLint(reg, "mxedge_panics_total"); err != nil || len(probs) > 0 {
				t.Fatalf("lint: %v %v", probs, err)
			}
		})
	}
}
