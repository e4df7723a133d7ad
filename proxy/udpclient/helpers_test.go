package udpclient

import (
	"errors"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/mxedge/mxedge/proxy"
	"github.com/mxedge/mxedge/proxy/packet"
)

var nasSecret = []byte("nas-secret-0123456789")

// fakeServer is a RADIUS server on loopback whose answers a test scripts.
type fakeServer struct {
	t      *testing.T
	conn   net.PacketConn
	secret []byte
	// answer returns the reply code and attributes (after the MA, if
	// withMA); ok false stays silent.
	answer func(req *packet.Packet) (packet.Code, [][2][]byte, bool)
	noMA   atomic.Bool

	mu   sync.Mutex
	seen []*packet.Packet
	wg   sync.WaitGroup
}

func startFake(t *testing.T, secret string, answer func(*packet.Packet) (packet.Code, [][2][]byte, bool)) *fakeServer {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeServer{t: t, conn: c, secret: []byte(secret), answer: answer}
	f.wg.Add(1)
	go f.serve()
	t.Cleanup(f.stop)
	return f
}

func (f *fakeServer) addr() string { return f.conn.LocalAddr().String() }

func (f *fakeServer) stop() {
	f.conn.Close()
	f.wg.Wait()
}

func (f *fakeServer) requests() []*packet.Packet {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]*packet.Packet(nil), f.seen...)
}

func (f *fakeServer) serve() {
	defer f.wg.Done()
	buf := make([]byte, 4096)
	for {
		n, from, err := f.conn.ReadFrom(buf)
		if err != nil {
			return
		}
		p, err := packet.Parse(append([]byte(nil), buf[:n]...))
		if err != nil {
			f.t.Errorf("fake server: %v", err)
			continue
		}
		if _, err := packet.VerifyRequest(p, f.secret); err != nil {
			f.t.Errorf("fake server: request does not verify: %v", err)
			continue
		}
		f.mu.Lock()
		f.seen = append(f.seen, p)
		f.mu.Unlock()
		code, attrs, ok := f.answer(p)
		if !ok {
			continue
		}
		b := packet.Append(nil, code, p.ID, p.Authenticator)
		if !f.noMA.Load() {
			b = packet.AppendMessageAuthenticator(b)
		}
		for _, a := range attrs {
			b, _ = packet.AppendAttr(b, a[0][0], a[1])
		}
		for _, a := range p.Attrs {
			if a.Type == packet.AttrProxyState {
				b, _ = packet.AppendAttr(b, a.Type, a.Value)
			}
		}
		ra := p.Authenticator
		if err := packet.Sign(b, f.secret, &ra); err != nil {
			f.t.Error(err)
			continue
		}
		f.conn.WriteTo(b, from)
	}
}

func attr(t uint8, v string) [2][]byte { return [2][]byte{{t}, []byte(v)} }

// accept answers everything with Access-Accept (Accounting-Response for
// accounting) carrying Reply-Message = the server's name.
func accept(name string) func(*packet.Packet) (packet.Code, [][2][]byte, bool) {
	return func(p *packet.Packet) (packet.Code, [][2][]byte, bool) {
		switch p.Code {
		case packet.CodeAccountingRequest:
			return packet.CodeAccountingResponse, nil, true
		case packet.CodeStatusServer:
			return packet.CodeAccessAccept, nil, true
		}
		return packet.CodeAccessAccept, [][2][]byte{attr(packet.AttrReplyMessage, name)}, true
	}
}

// nasRequest builds a checked request as the UDP server hands it over.
func nasRequest(t testing.TB, code packet.Code, id uint8, attrs ...[2][]byte) *proxy.Request {
	t.Helper()
	var auth [16]byte
	if code == packet.CodeAccessRequest {
		auth = packet.RandomAuthenticator()
	}
	b := packet.Append(nil, code, id, auth)
	b = packet.AppendMessageAuthenticator(b)
	for _, a := range attrs {
		v := a[1]
		if a[0][0] == packet.AttrUserPassword {
			v, _ = packet.EncryptUserPassword(nil, v, nasSecret, auth)
		}
		var err error
		if b, err = packet.AppendAttr(b, a[0][0], v); err != nil {
			t.Fatal(err)
		}
	}
	if err := packet.Sign(b, nasSecret, nil); err != nil {
		t.Fatal(err)
	}
	p, err := packet.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	return &proxy.Request{
		Packet: p, HasMessageAuthenticator: true,
		Client: &proxy.Client{Name: "nas", Prefix: netip.MustParsePrefix("127.0.0.1/32"), Secret: nasSecret},
	}
}

// replyMessage returns the Reply-Message of a reply for the NAS, after
// checking it against req.
func replyMessage(t testing.TB, req *proxy.Request, reply []byte) string {
	t.Helper()
	p, err := packet.Parse(reply)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := packet.VerifyResponse(p, req.Packet.Authenticator, nasSecret); err != nil {
		t.Fatalf("reply for the NAS does not verify: %v", err)
	}
	v, _ := p.Lookup(packet.AttrReplyMessage)
	return string(v)
}

func isNoServer(err error) bool { return errors.Is(err, ErrNoServer) }
