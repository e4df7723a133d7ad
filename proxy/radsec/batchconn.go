package radsec

import (
	"net"
	"sync"
)

// batchConn sits under the TLS client: while a batch is open it collects
// the TLS records written through it and sends them in one write when the
// batch closes. Each RADIUS packet still gets a TLS record of its own —
// FreeRADIUS 3.x reads one RADIUS packet per record and strands the rest
// if several share one — but a burst of packets costs one syscall.
// Outside a batch (the handshake, alerts) writes pass straight through.
type batchConn struct {
	net.Conn
	mu       sync.Mutex
	batching bool
	buf      []byte
}

func (b *batchConn) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.batching {
		b.buf = append(b.buf, p...)
		return len(p), nil
	}
	return b.Conn.Write(p)
}

// begin opens a batch.
func (b *batchConn) begin() {
	b.mu.Lock()
	b.batching = true
	b.mu.Unlock()
}

// flush closes the batch and writes what it collected.
func (b *batchConn) flush() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.batching = false
	if len(b.buf) == 0 {
		return nil
	}
	_, err := b.Conn.Write(b.buf)
	if cap(b.buf) > 64<<10 {
		b.buf = nil // don't pin a burst's worth of memory for ever
	} else {
		b.buf = b.buf[:0]
	}
	return err
}
