package radsec

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/mxedge/mxedge/internal/labpki"
	"github.com/mxedge/mxedge/proxy"
	"github.com/mxedge/mxedge/proxy/packet"
)

// pki is an in-test CA with a server and a client certificate, written to
// and loaded back from PEM files like the daemon does.
type pki struct {
	pool   *x509.CertPool
	server tls.Certificate
	client tls.Certificate
}

var (
	pkiOnce sync.Once
	pkiVal  *pki
	pkiDir  string
)

func mustPKI(t testing.TB) *pki {
	t.Helper()
	pkiOnce.Do(func() {
		dir, err := os.MkdirTemp("", "radsec-pki")
		if err != nil {
			t.Fatal(err)
		}
		pkiDir = dir
		pkiVal = makePKI(t, dir)
	})
	if pkiVal == nil {
		t.Fatal("no PKI")
	}
	return pkiVal
}

func TestMain(m *testing.M) {
	code := m.Run()
	if pkiDir != "" {
		os.RemoveAll(pkiDir)
	}
	os.Exit(code)
}

func makePKI(t testing.TB, dir string) *pki {
	now := time.Now()
	ca, err := labpki.Issue(nil, labpki.ECKey(), &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "mxedge test CA"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		IsCA:         true,
		KeyUsage:     x509.KeyUsageCertSign,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := ca.WriteFiles(dir, "ca"); err != nil {
		t.Fatal(err)
	}
	leaf := func(name string, serial int64, eku x509.ExtKeyUsage) tls.Certificate {
		c, err := labpki.Issue(ca, labpki.ECKey(), &x509.Certificate{
			SerialNumber: big.NewInt(serial),
			Subject:      pkix.Name{CommonName: name},
			NotBefore:    now.Add(-time.Hour),
			NotAfter:     now.Add(24 * time.Hour),
			KeyUsage:     x509.KeyUsageDigitalSignature,
			ExtKeyUsage:  []x509.ExtKeyUsage{eku},
			IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
			DNSNames:     []string{"localhost"},
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := c.WriteFiles(dir, name); err != nil {
			t.Fatal(err)
		}
		pair, err := tls.LoadX509KeyPair(c.Cert, c.Key)
		if err != nil {
			t.Fatal(err)
		}
		return pair
	}
	p := &pki{pool: x509.NewCertPool()}
	pemCA, err := os.ReadFile(ca.Cert)
	if err != nil || !p.pool.AppendCertsFromPEM(pemCA) {
		t.Fatalf("CA %s: %v", ca.Cert, err)
	}
	p.server = leaf("server", 2, x509.ExtKeyUsageServerAuth)
	p.client = leaf("cloud-test", 3, x509.ExtKeyUsageClientAuth)
	return p
}

func (p *pki) clientTLS() *tls.Config {
	return &tls.Config{RootCAs: p.pool, Certificates: []tls.Certificate{p.client}}
}

// testServer is a Server on a loopback TLS listener.
type testServer struct {
	*Server
	addr string
	reg  *prometheus.Registry
	done chan error
	once sync.Once
}

func startServer(t testing.TB, addr string, h proxy.Handler, mod func(*ServerConfig)) *testServer {
	t.Helper()
	p := mustPKI(t)
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	cfg := ServerConfig{Handler: h, Registerer: reg}
	if mod != nil {
		mod(&cfg)
	}
	s, err := NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ts := &testServer{Server: s, addr: ln.Addr().String(), reg: reg, done: make(chan error, 1)}
	tln := tls.NewListener(ln, ServerTLS([]tls.Certificate{p.server}, p.pool))
	go func() { ts.done <- s.Serve(tln) }()
	t.Cleanup(func() { ts.stop(t) })
	return ts
}

// stop shuts the server down and closes its listener; safe to call twice.
func (ts *testServer) stop(t testing.TB) {
	ts.once.Do(func() { ts.shutdown(t) })
}

func (ts *testServer) shutdown(t testing.TB) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := ts.Shutdown(ctx); err != nil {
		t.Errorf("shutdown: %v", err)
	}
	select {
	case <-ts.done:
	case <-ctx.Done():
	}
}

func newClient(t testing.TB, servers []string, mod func(*Config)) (*Client, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	cfg := Config{
		Servers:    servers,
		TLS:        mustPKI(t).clientTLS(),
		Timeout:    5 * time.Second,
		Registerer: reg,
	}
	if mod != nil {
		mod(&cfg)
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, reg
}

// accessRequest is a signed Access-Request with the Message-Authenticator
// first, as the forwarder builds them.
func accessRequest(t testing.TB, id uint8, user string) []byte {
	b := packet.Append(nil, packet.CodeAccessRequest, id, packet.RandomAuthenticator())
	b = packet.AppendMessageAuthenticator(b)
	b, err := packet.AppendAttr(b, packet.AttrUserName, []byte(user))
	if err != nil {
		t.Fatal(err)
	}
	if err := packet.Sign(b, secret, nil); err != nil {
		t.Fatal(err)
	}
	return b
}

// acceptWith answers any request with an Access-Accept that carries tag in
// a Reply-Message and the request's User-Name.
func acceptWith(p *packet.Packet, tag string) []byte {
	b := packet.Append(nil, packet.CodeAccessAccept, p.ID, p.Authenticator)
	b = packet.AppendMessageAuthenticator(b)
	b, _ = packet.AppendAttr(b, packet.AttrReplyMessage, []byte(tag))
	if u, ok := p.Lookup(packet.AttrUserName); ok {
		b, _ = packet.AppendAttr(b, packet.AttrUserName, u)
	}
	if err := packet.Sign(b, secret, &p.Authenticator); err != nil {
		panic(err)
	}
	return b
}

func echo(tag string) proxy.Handler {
	return proxy.HandlerFunc(func(_ context.Context, r *proxy.Request) ([]byte, proxy.Outcome) {
		return acceptWith(r.Packet, tag), proxy.OutcomeAnswered
	})
}

// replyTag returns the Reply-Message and User-Name of a reply.
func replyTag(t testing.TB, b []byte) (string, string) {
	t.Helper()
	p, err := packet.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	if p.Code != packet.CodeAccessAccept {
		t.Fatalf("reply code %v", p.Code)
	}
	tag, _ := p.Lookup(packet.AttrReplyMessage)
	user, _ := p.Lookup(packet.AttrUserName)
	return string(tag), string(user)
}

// waitFor polls cond until it holds or the bound passes; it waits on a
// condition, it does not sleep for readiness.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		<-tick.C
	}
}

func value(c prometheus.Collector) float64 { return testutil.ToFloat64(c) }

func tlsListener(ln net.Listener, p *pki) net.Listener {
	return tls.NewListener(ln, ServerTLS([]tls.Certificate{p.server}, p.pool))
}
