package radsec

import (
	"context"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/mxedge/mxedge/proxy/packet"
)

// TestOnePacketPerTLSRecord drives the pool concurrently against a server
// that, like FreeRADIUS 3.x, reads one TLS record at a time and expects it
// to hold exactly one RADIUS packet. crypto/tls returns at most one
// record's plaintext per Read, so a Read that yields anything other than
// one whole packet means the client coalesced packets into a record.
func TestOnePacketPerTLSRecord(t *testing.T) {
	p := mustPKI(t)
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := tlsListener(raw, p)
	defer ln.Close()
	var bad atomic.Int32
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				buf := make([]byte, 64<<10)
				for {
					n, err := c.Read(buf)
					if err != nil {
						return
					}
					_, _, l, err := packet.Header(buf[:n])
					if err != nil || l != n {
						bad.Add(1)
						return
					}
					req, err := packet.Parse(buf[:n])
					if err != nil {
						bad.Add(1)
						return
					}
					if _, err := c.Write(acceptWith(req, "one-record")); err != nil {
						return
					}
				}
			}()
		}
	}()

	cl, _ := newClient(t, []string{raw.Addr().String()}, nil)
	var failed atomic.Int32
	var rw sync.WaitGroup
	for w := range 64 {
		rw.Add(1)
		go func() {
			defer rw.Done()
			for i := range 20 {
				if _, err := cl.Exchange(context.Background(), accessRequest(t, uint8(w+i), "u")); err != nil {
					if !errors.Is(err, ErrClosed) {
						failed.Add(1)
					}
				}
			}
		}()
	}
	rw.Wait()
	cl.Close()
	ln.Close()
	wg.Wait()
	if bad.Load() > 0 || failed.Load() > 0 {
		t.Fatalf("%d reads were not exactly one packet; %d exchanges failed", bad.Load(), failed.Load())
	}
}
