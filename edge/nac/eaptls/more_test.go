package eaptls_test

import (
	"crypto/tls"
	"encoding/binary"
	"errors"
	"testing"
	"time"

	"github.com/mxedge/mxedge/edge/nac/eap"
	"github.com/mxedge/mxedge/edge/nac/eaptls"
	"github.com/mxedge/mxedge/edge/nac/eaptls/eaptlstest"
)

func TestCloseNotifyInsteadOfACK(t *testing.T) {
	for _, v := range versions {
		t.Run(v.name, func(t *testing.T) {
			f := newFixture(t, false, nil)
			p := eaptlstest.New(eaptlstest.Config{
				TLS: &tls.Config{
					RootCAs: f.pki.rootPool, ServerName: "eap.mxedge.test",
					Time:         func() time.Time { return testNow },
					Certificates: []tls.Certificate{*f.pki.client},
				},
				Version: v.v, CloseNotify: true,
			})
			defer p.Close()
			s := f.srv.NewSession(0)
			defer s.Close()
			res, err := eaptlstest.Authenticate(p, s, 20)
			if err != nil {
				t.Fatal(err)
			}
			if res.Outcome != eaptls.Accept {
				t.Fatalf("%v %s %v", res.Outcome, res.Reason, res.Err)
			}
		})
	}
}

// clientHelloNoEMS is a TLS 1.2 ClientHello without extended_master_secret,
// which Go's own client never sends.
func clientHelloNoEMS() []byte {
	var body []byte
	body = append(body, 3, 3)
	body = append(body, make([]byte, 32)...) // random
	body = append(body, 0)                   // session id
	body = append(body, 0, 4, 0xC0, 0x2B, 0xC0, 0x2F)
	body = append(body, 1, 0) // compression
	ext := []byte{
		0x00, 0x0a, 0, 6, 0, 4, 0, 0x1d, 0, 0x17, // supported_groups
		0x00, 0x0b, 0, 2, 1, 0, // ec_point_formats
		0x00, 0x0d, 0, 6, 0, 4, 4, 3, 8, 4, // signature_algorithms
	}
	body = binary.BigEndian.AppendUint16(body, uint16(len(ext)))
	body = append(body, ext...)
	hs := append([]byte{1, 0, byte(len(body) >> 8), byte(len(body))}, body...)
	rec := append([]byte{22, 3, 1}, byte(len(hs)>>8), byte(len(hs)))
	return append(rec, hs...)
}

func TestTLS12WithoutEMSRefused(t *testing.T) {
	f := newFixture(t, false, nil)
	s := f.srv.NewSession(0)
	defer s.Close()
	r := s.Handle(resp(1, eap.TypeIdentity))
	p, _ := eap.Parse(r.EAP)
	r = s.Handle(resp(p.Identifier, eap.TypeTLS, append([]byte{0}, clientHelloNoEMS()...)...))
	if r.Outcome != eaptls.Challenge {
		t.Fatalf("want the alert as a Challenge, got %v %+v", r.Outcome, r.Result)
	}
	p, _ = eap.Parse(r.EAP)
	if len(p.Data) < 2 || p.Data[1] != 21 { // alert record
		t.Fatalf("not an alert: %x", p.Data)
	}
	r = s.Handle(resp(p.Identifier, eap.TypeTLS, 0))
	if r.Outcome != eaptls.Reject || r.Result.Reason != eaptls.ReasonNoExtendedMasterSecret {
		t.Fatalf("got %v %+v", r.Outcome, r.Result)
	}
	<-eaptls.Done(s)
}

func TestServerCertificateRotates(t *testing.T) {
	p := testPKI(t, false)
	cur := p.serverEC
	f := newFixture(t, false, func(c *eaptls.Config) {
		c.Certificate = func() (*tls.Certificate, error) { return cur, nil }
	})
	for _, cert := range []*tls.Certificate{p.serverEC, p.serverRSA} {
		cur = cert
		peer := f.peer(p.client, tls.VersionTLS13, 0)
		s := f.srv.NewSession(0)
		res, err := eaptlstest.Authenticate(peer, s, 20)
		peer.Close()
		s.Close()
		if err != nil || res.Outcome != eaptls.Accept {
			t.Fatalf("%v %+v", err, res)
		}
	}
}

func TestFragmentEdges(t *testing.T) {
	f := newFixture(t, false, nil)
	t.Run("L on an unfragmented message", func(t *testing.T) {
		s := f.srv.NewSession(0)
		defer s.Close()
		r := s.Handle(resp(1, eap.TypeIdentity))
		p, _ := eap.Parse(r.EAP)
		ch := clientHelloNoEMS()
		data := binary.BigEndian.AppendUint32([]byte{0x80}, uint32(len(ch)))
		r = s.Handle(resp(p.Identifier, eap.TypeTLS, append(data, ch...)...))
		if q, _ := eap.Parse(r.EAP); r.Outcome != eaptls.Challenge || len(q.Data) < 2 || q.Data[1] != 21 {
			t.Fatalf("ClientHello with L not processed: %v %x", r.Outcome, r.EAP)
		}
	})
	t.Run("L disagrees with the data", func(t *testing.T) {
		s := f.srv.NewSession(0)
		defer s.Close()
		r := s.Handle(resp(1, eap.TypeIdentity))
		p, _ := eap.Parse(r.EAP)
		r = s.Handle(resp(p.Identifier, eap.TypeTLS, 0x80, 0, 0, 0, 9, 22, 3, 1))
		if r.Outcome != eaptls.Reject || r.Result.Reason != eaptls.ReasonProtocolError {
			t.Fatalf("got %v %+v", r.Outcome, r.Result)
		}
	})
	t.Run("peer data while the server fragments", func(t *testing.T) {
		s := f.srv.NewSession(64)
		defer s.Close()
		peer := f.peer(f.pki.client, tls.VersionTLS13, 64)
		defer peer.Close()
		r := s.Handle(peer.IdentityResponse(1))
		next, _ := peer.Handle(r.EAP)
		for i := 0; ; i++ { // ClientHello, fragmented, ACKed by the server
			r = s.Handle(next)
			if q, _ := eap.Parse(r.EAP); len(q.Data) > 1 || i > 40 {
				break // the server's first fragment
			}
			next, _ = peer.Handle(r.EAP)
		}
		q, _ := eap.Parse(r.EAP)
		if q.Data[0]&0xC0 != 0xC0 {
			t.Fatalf("server flight not fragmented: flags %#x", q.Data[0])
		}
		r = s.Handle(resp(q.Identifier, eap.TypeTLS, 0, 22, 3, 3, 0, 0))
		if r.Outcome != eaptls.Reject || r.Result.Reason != eaptls.ReasonProtocolError {
			t.Fatalf("got %v %+v", r.Outcome, r.Result)
		}
		<-eaptls.Done(s)
	})
}

func TestSupplicantWantsCommitment(t *testing.T) {
	f := newFixture(t, false, nil)
	peer := f.peer(f.pki.client, tls.VersionTLS13, 0)
	defer peer.Close()
	s := f.srv.NewSession(0)
	defer s.Close()
	r := s.Handle(peer.IdentityResponse(1))
	next, _ := peer.Handle(r.EAP) // ClientHello
	r = s.Handle(next)            // server flight
	next, _ = peer.Handle(r.EAP)  // client Certificate..Finished
	q, _ := eap.Parse(next)
	success, _ := eap.Packet{Code: eap.CodeSuccess, Identifier: q.Identifier}.Encode()
	if _, err := peer.Handle(success); !errors.Is(err, eaptlstest.ErrNoCommitment) || peer.Succeeded() {
		t.Fatalf("premature Success accepted: %v", err)
	}
}
