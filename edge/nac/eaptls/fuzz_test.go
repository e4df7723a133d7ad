package eaptls_test

import (
	"crypto/tls"
	"encoding/binary"
	"testing"
	"time"

	"github.com/mxedge/mxedge/edge/nac/eap"
	"github.com/mxedge/mxedge/edge/nac/eaptls"
)

// FuzzSession plays a real conversation for a few rounds, then injects
// arbitrary bytes as the next EAP-Response (optionally with the expected
// identifier and a consistent Length so they get past the codec) and
// checks the session neither panics nor hangs and its goroutine ends.
func FuzzSession(f *testing.F) {
	fx := newFixture(f, false, func(c *eaptls.Config) { c.MaxRounds = 40 })
	f.Add(uint8(0), uint8(3), []byte{2, 1, 0, 5, 1})
	f.Add(uint8(1), uint8(3), []byte{2, 0, 0, 0, 13, 0xC0, 0, 0, 0xff, 0xff})
	f.Add(uint8(1), uint8(3), []byte{2, 0, 0, 0, 3, 25, 21, 26})
	f.Add(uint8(2), uint8(3), []byte{2, 0, 0, 0, 13, 0x00, 21, 3, 3, 0, 2, 1, 0})
	f.Add(uint8(3), uint8(3), []byte{2, 0, 0, 0, 13, 0x40})
	f.Add(uint8(2), uint8(3), append([]byte{2, 0, 0, 0, 13, 0}, clientHelloNoEMS()...))
	f.Fuzz(func(t *testing.T, rounds, mode uint8, pkt []byte) {
		s := fx.srv.NewSession(300)
		p := fx.peer(fx.pki.client, tls.VersionTLS12+uint16(mode>>2&1), 300)
		defer p.Close()
		resp := p.IdentityResponse(1)
		var last eaptls.Reply
		for range rounds % 6 {
			last = s.Handle(resp)
			if last.Result != nil || last.Outcome == eaptls.Discard {
				break
			}
			next, err := p.Handle(last.EAP)
			if err != nil {
				break
			}
			resp = next
		}
		if mode&1 != 0 && len(pkt) > 1 && len(last.EAP) > 1 {
			pkt[1] = last.EAP[1]
		}
		if mode&2 != 0 && len(pkt) >= 4 && len(pkt) <= eap.MaxLen {
			pkt[0] = byte(eap.CodeResponse)
			binary.BigEndian.PutUint16(pkt[2:], uint16(len(pkt)))
		}
		done := make(chan struct{})
		go func() {
			defer close(done)
			s.Handle(pkt)
			s.Handle(pkt)
			s.Handle(resp)
			s.Close()
			<-eaptls.Done(s)
		}()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			t.Fatal("session hung")
		}
	})
}
