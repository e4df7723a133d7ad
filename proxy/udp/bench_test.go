package udp

import (
	"context"
	"net"
	"net/netip"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mxedge/mxedge/proxy"
	"github.com/mxedge/mxedge/proxy/packet"
)

// fakeConn is a PacketConn that only counts writes: it lets benchmarks and
// the fuzz target drive the per-datagram path without the kernel.
type fakeConn struct {
	local  *net.UDPAddr
	writes atomic.Int64
}

func (c *fakeConn) ReadFrom([]byte) (int, net.Addr, error) { return 0, nil, net.ErrClosed }
func (c *fakeConn) WriteTo(b []byte, _ net.Addr) (int, error) {
	c.writes.Add(1)
	return len(b), nil
}
func (c *fakeConn) Close() error                     { return nil }
func (c *fakeConn) LocalAddr() net.Addr              { return c.local }
func (c *fakeConn) SetDeadline(time.Time) error      { return nil }
func (c *fakeConn) SetReadDeadline(time.Time) error  { return nil }
func (c *fakeConn) SetWriteDeadline(time.Time) error { return nil }

func newFakeConn() *fakeConn {
	return &fakeConn{local: &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1812}}
}

// mabRequest is a MAB Access-Request of the size switches send (~150 octets).
func mabRequest(t testing.TB, id uint8) []byte {
	mac := []byte("00-11-22-33-44-55")
	return request(t, packet.CodeAccessRequest, id, secret, true,
		attr{packet.AttrUserName, []byte("001122334455")},
		attr{packet.AttrUserPassword, make([]byte, 16)},
		attr{packet.AttrServiceType, []byte{0, 0, 0, 10}},
		attr{packet.AttrNASIPAddress, []byte{10, 7, 50, 2}},
		attr{5, []byte{0, 0, 0, 50}}, // NAS-Port
		attr{packet.AttrNASPortType, []byte{0, 0, 0, 15}},
		attr{packet.AttrCalledStationID, []byte("AA-BB-CC-DD-EE-FF")},
		attr{packet.AttrCallingStationID, mac},
		attr{packet.AttrNASIdentifier, []byte("sw-core-01")},
		attr{packet.AttrFramedMTU, []byte{0, 0, 5, 220}},
	)
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkDatagram drives the whole per-datagram path (lookup, parse,
// BlastRADIUS checks, Message-Authenticator verification, duplicate cache,
// handler goroutine, reply write and metrics) with a handler that returns
// a canned signed Accept, so only the server's own cost is measured. The
// kernel's read is replaced by a copy into the pooled buffer.
func BenchmarkDatagram(b *testing.B) {
	var reqs, replies [256][]byte
	table, _ := proxy.NewClientTable([]*proxy.Client{loopbackClient("sw")})
	for id := range reqs {
		reqs[id] = mabRequest(b, uint8(id))
		p, _ := packet.Parse(reqs[id])
		replies[id] = reply(&proxy.Request{Packet: p, Client: table.Lookup(netip.MustParseAddr("127.0.0.1"))}, "ok")
	}
	h := proxy.HandlerFunc(func(_ context.Context, req *proxy.Request) ([]byte, proxy.Outcome) {
		return replies[req.Packet.ID], proxy.OutcomeAnswered
	})
	s, err := New(Config{
		Clients: func() *proxy.ClientTable { return table }, Handler: h, Kind: Auth,
		Registerer: prometheus.NewRegistry(), Logger: testLogger(nil), MaxInFlight: 1 << 20,
	})
	if err != nil {
		b.Fatal(err)
	}
	fc := newFakeConn()
	sk := newSocket(fc, s.log)
	lo := netip.MustParseAddr("127.0.0.1")
	b.ReportAllocs()
	cpu0 := cpuTime()
	n := 0
	for i := 0; b.Loop(); i++ {
		w := workPool.Get().(*work)
		k := copy(w.buf[:], reqs[i&255])
		// A new source port every 256 requests keeps every request new.
		s.datagram(sk, w, k, netip.AddrPortFrom(lo, uint16(1024+(i>>8)%60000)), sk.local)
		n++
	}
	s.Shutdown(context.Background())
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(n), "cpu-ns/op")
	if got := fc.writes.Load(); got != int64(n) {
		b.Fatalf("%d replies for %d requests", got, n)
	}
}

// BenchmarkDatagramDuplicate is a retransmission of an answered request:
// lookup, parse, verify, cache hit, write.
func BenchmarkDatagramDuplicate(b *testing.B) {
	table, _ := proxy.NewClientTable([]*proxy.Client{loopbackClient("sw")})
	s, err := New(Config{
		Clients: func() *proxy.ClientTable { return table }, Handler: acceptAll(nil), Kind: Auth,
		Registerer: prometheus.NewRegistry(), Logger: testLogger(nil),
	})
	if err != nil {
		b.Fatal(err)
	}
	fc := newFakeConn()
	sk := newSocket(fc, s.log)
	req := mabRequest(b, 1)
	src := netip.MustParseAddrPort("127.0.0.1:5000")
	w := workPool.Get().(*work)
	s.datagram(sk, w, copy(w.buf[:], req), src, sk.local)
	s.handlers.Wait()
	b.ReportAllocs()
	for b.Loop() {
		w := workPool.Get().(*work)
		s.datagram(sk, w, copy(w.buf[:], req), src, sk.local)
	}
}

// BenchmarkStatusServer is a Status-Server answered locally.
func BenchmarkStatusServer(b *testing.B) {
	table, _ := proxy.NewClientTable([]*proxy.Client{loopbackClient("sw")})
	s, err := New(Config{
		Clients: func() *proxy.ClientTable { return table }, Handler: acceptAll(nil), Kind: Auth,
		Registerer: prometheus.NewRegistry(), Logger: testLogger(nil),
	})
	if err != nil {
		b.Fatal(err)
	}
	sk := newSocket(newFakeConn(), s.log)
	req := request(b, packet.CodeStatusServer, 1, secret, true)
	src := netip.MustParseAddrPort("127.0.0.1:5000")
	b.ReportAllocs()
	for b.Loop() {
		w := workPool.Get().(*work)
		s.datagram(sk, w, copy(w.buf[:], req), src, sk.local)
	}
}

// BenchmarkLoopbackRoundTrip sends requests over real loopback UDP one at
// a time and waits for each answer: latency, with the client's syscalls in
// cpu-ns/op as well as the server's.
func BenchmarkLoopbackRoundTrip(b *testing.B) {
	table, _ := proxy.NewClientTable([]*proxy.Client{loopbackClient("sw")})
	h := proxy.HandlerFunc(func(_ context.Context, req *proxy.Request) ([]byte, proxy.Outcome) {
		return reply(req, "ok"), proxy.OutcomeAnswered
	})
	s, err := New(Config{
		Clients: func() *proxy.ClientTable { return table }, Handler: h, Kind: Auth,
		Registerer: prometheus.NewRegistry(), Logger: testLogger(nil),
		// Every request in the cycle below comes back; forget them at once.
		DuplicateWindow: time.Nanosecond,
	})
	if err != nil {
		b.Fatal(err)
	}
	srv, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Close()
	go s.Serve(srv)
	defer s.Shutdown(context.Background())
	c, err := net.DialUDP("udp4", nil, srv.LocalAddr().(*net.UDPAddr))
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	var reqs [256][]byte
	for id := range reqs {
		reqs[id] = mabRequest(b, uint8(id))
	}
	buf := make([]byte, 4096)
	b.ReportAllocs()
	cpu0 := cpuTime()
	n := 0
	for i := 0; b.Loop(); i++ {
		if _, err := c.Write(reqs[i&255]); err != nil {
			b.Fatal(err)
		}
		c.SetReadDeadline(time.Now().Add(waitLimit))
		if _, err := c.Read(buf); err != nil {
			b.Fatal(err)
		}
		n++
	}
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(n), "cpu-ns/op")
}
