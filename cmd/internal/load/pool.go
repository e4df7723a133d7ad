package load

import (
	"errors"
	"net"
	"sync"

	"github.com/mxedge/mxedge/proxy/packet"
)

// maxPoolSockets bounds a pool at 64×256 requests in flight, far beyond
// what a switch (or a test) keeps outstanding.
const maxPoolSockets = 64

var errPoolFull = errors.New("load: 16384 requests in flight, no identifier free")

// udpPool hands out (source port, identifier) pairs toward one server, as
// a switch's RADIUS client does: an identifier stays taken until its
// request is answered or has exhausted its retries, and another socket
// (source port) is opened when all 256 of a socket's are taken.
type udpPool struct {
	target string
	wg     sync.WaitGroup

	mu     sync.Mutex
	socks  []*poolSock
	closed bool
}

type poolSock struct {
	conn    *net.UDPConn
	pending [256]chan<- []byte
	inUse   int
	nextID  uint8
}

// slot is one taken identifier; replies carrying it arrive on the channel
// the caller gave to acquire.
type slot struct {
	sock *poolSock
	id   uint8
}

func newUDPPool(target string) *udpPool { return &udpPool{target: target} }

// acquire takes a free identifier, round-robin per socket so a late reply
// to a finished request rarely meets a new one with its identifier (and
// when it does, the authenticator check rejects it). Replies are sent,
// without blocking, to ch.
func (p *udpPool) acquire(ch chan<- []byte) (slot, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return slot{}, net.ErrClosed
	}
	for _, s := range p.socks {
		if s.inUse < len(s.pending) {
			return p.takeLocked(s, ch), nil
		}
	}
	if len(p.socks) == maxPoolSockets {
		return slot{}, errPoolFull
	}
	raddr, err := net.ResolveUDPAddr("udp", p.target)
	if err != nil {
		return slot{}, err
	}
	conn, err := net.DialUDP("udp", nil, raddr)
	if err != nil {
		return slot{}, err
	}
	s := &poolSock{conn: conn}
	p.socks = append(p.socks, s)
	p.wg.Add(1)
	go p.readLoop(s)
	return p.takeLocked(s, ch), nil
}

func (p *udpPool) takeLocked(s *poolSock, ch chan<- []byte) slot {
	for s.pending[s.nextID] != nil {
		s.nextID++
	}
	id := s.nextID
	s.nextID++
	s.pending[id] = ch
	s.inUse++
	return slot{sock: s, id: id}
}

func (p *udpPool) release(sl slot) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if sl.sock.pending[sl.id] != nil {
		sl.sock.pending[sl.id] = nil
		sl.sock.inUse--
	}
}

// send transmits b from the slot's socket. Errors are ignored: a
// connected UDP socket reports an earlier ICMP unreachable on the next
// write, and a switch keeps retransmitting through that as through loss.
func (sl slot) send(b []byte) { _, _ = sl.sock.conn.Write(b) }

// readLoop delivers each datagram to whoever holds its identifier; the
// holder checks the authenticator.
func (p *udpPool) readLoop(s *poolSock) {
	defer p.wg.Done()
	buf := make([]byte, packet.MaxLen)
	for {
		n, err := s.conn.Read(buf)
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil || n < packet.HeaderLen {
			continue // e.g. ECONNREFUSED from an ICMP unreachable
		}
		p.mu.Lock()
		ch := s.pending[buf[1]]
		p.mu.Unlock()
		if ch != nil {
			select {
			case ch <- append([]byte(nil), buf[:n]...):
			default: // the holder has enough to check already
			}
		}
	}
}

// Close closes the sockets and waits for their readers.
func (p *udpPool) Close() error {
	p.mu.Lock()
	p.closed = true
	for _, s := range p.socks {
		s.conn.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
	return nil
}
