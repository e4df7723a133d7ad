package radsec

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mxedge/mxedge/proxy"
)

// pipeListener is an in-memory network for tests in a testing/synctest
// bubble: Dial hands the server one end of a net.Pipe, so every wait on
// it is one the bubble's fake clock can see through, and timeouts of
// seconds take no real time.
type pipeListener struct {
	conns chan net.Conn
	once  sync.Once
	done  chan struct{}
}

func newPipeListener() *pipeListener {
	return &pipeListener{conns: make(chan net.Conn), done: make(chan struct{})}
}

func (l *pipeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *pipeListener) Close() error   { l.once.Do(func() { close(l.done) }); return nil }
func (l *pipeListener) Addr() net.Addr { return pipeAddr{} }

func (l *pipeListener) dial(ctx context.Context, _, _ string) (net.Conn, error) {
	c, s := net.Pipe()
	select {
	case l.conns <- s:
		return c, nil
	case <-l.done:
		return nil, errors.New("connection refused")
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

type pipeAddr struct{}

func (pipeAddr) Network() string { return "pipe" }
func (pipeAddr) String() string  { return "127.0.0.1:2083" }

// bubblePair is a server on a pipeListener and a pool dialling it, both
// inside the caller's bubble; stop shuts both down before the bubble ends.
func bubblePair(t *testing.T, h proxy.Handler, srvMod func(*ServerConfig), mod func(*Config)) (*Server, *Client, func()) {
	t.Helper()
	p := mustPKI(t)
	ln := newPipeListener()
	stls, ctls := bubbleTLS(t, p)
	scfg := ServerConfig{Handler: h, Registerer: prometheus.NewRegistry()}
	if srvMod != nil {
		srvMod(&scfg)
	}
	s, err := NewServer(scfg)
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan struct{})
	go func() { s.Serve(tls.NewListener(ln, stls)); close(served) }()
	cfg := Config{
		Servers: []string{pipeAddr{}.String()}, TLS: ctls, Registerer: prometheus.NewRegistry(),
		Dial: ln.dial,
	}
	if mod != nil {
		mod(&cfg)
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s, c, func() {
		c.Close()
		ln.Close()
		s.Shutdown(context.Background())
		<-served
	}
}

// inBubble runs f in a synctest bubble. The test PKI is made first, on the
// real clock: made in a bubble, at the fake clock's year 2000, it would be
// expired for the tests that run on the real clock after.
func inBubble(t *testing.T, f func(*testing.T)) {
	mustPKI(t)
	synctest.Test(t, f)
}

// bubbleTLS are the server's and the client's TLS configs with a clock
// inside the PKI's validity: the bubble's fake clock starts in 2000.
func bubbleTLS(t *testing.T, p *pki) (server, client *tls.Config) {
	t.Helper()
	leaf, err := x509.ParseCertificate(p.server.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	now := func() time.Time { return leaf.NotBefore.Add(time.Minute + time.Since(start)) }
	server = ServerTLS([]tls.Certificate{p.server}, p.pool)
	server.Time = now
	client = p.clientTLS()
	client.Time = now
	return server, client
}
