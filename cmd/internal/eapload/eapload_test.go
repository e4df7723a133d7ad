package eapload_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mxedge/mxedge/cache"
	"github.com/mxedge/mxedge/cmd/internal/eapload"
	"github.com/mxedge/mxedge/cmd/internal/peers"
	"github.com/mxedge/mxedge/edge/nac"
	"github.com/mxedge/mxedge/edge/nac/eaptls"
	"github.com/mxedge/mxedge/internal/labpki"
	"github.com/mxedge/mxedge/proxy"
	"github.com/mxedge/mxedge/proxy/udp"
)

const secret = "eapload-secret"

// sharedPKI is one throwaway PKI for the whole test binary.
var sharedPKI labpki.Shared

func TestMain(m *testing.M) {
	code := m.Run()
	sharedPKI.Remove()
	os.Exit(code)
}

func labPKI(t testing.TB) *labpki.PKI {
	t.Helper()
	return sharedPKI.Get(t)
}

// memStore is an in-memory cache: every client is unknown.
type memStore struct{}

func (memStore) Lookup(string, string) (cache.Entry, bool, error) { return cache.Entry{}, false, nil }
func (memStore) AppendEvent(cache.Event) error                    { return nil }

// localNAC serves the local authenticator on a loopback UDP port.
func localNAC(t testing.TB, p *labpki.PKI, server *labpki.Cert) string {
	t.Helper()
	ca, err := os.ReadFile(p.OrgCAFile)
	if err != nil {
		t.Fatal(err)
	}
	crl, err := os.ReadFile(p.OrgCRL)
	if err != nil {
		t.Fatal(err)
	}
	trust, err := eaptls.ParseTrust(ca, crl)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.LoadX509KeyPair(server.Chain, server.Key)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := eaptls.New(eaptls.Config{Certificate: func() (*tls.Certificate, error) { return &cert, nil }, Trust: trust})
	if err != nil {
		t.Fatal(err)
	}
	a, err := nac.New(nac.Config{EAP: srv, Store: memStore{}, DefaultDot1XVLAN: "51", Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	table, err := proxy.NewClientTable([]*proxy.Client{{Name: "load", Prefix: netip.MustParsePrefix("127.0.0.1/32"),
		Secret: []byte(secret), RequireMessageAuthenticator: true}})
	if err != nil {
		t.Fatal(err)
	}
	us, err := udp.New(udp.Config{Kind: udp.Auth, Clients: func() *proxy.ClientTable { return table }, Handler: a})
	if err != nil {
		t.Fatal(err)
	}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go us.Serve(pc)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		us.Shutdown(ctx)
		pc.Close()
		a.Close(ctx)
	})
	return pc.LocalAddr().String()
}

func spec(t testing.TB, p *labpki.PKI, target, secret string, client *labpki.Cert, v uint16) eapload.Spec {
	cert, err := tls.LoadX509KeyPair(client.Chain, client.Key)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(p.Root.X509)
	return eapload.Spec{Target: target, Secret: []byte(secret), Concurrency: 4, Count: 40, Duration: 30 * time.Second,
		ClientCert: cert, RootCAs: roots, Version: v}
}

var versions = []struct {
	name string
	v    uint16
}{{"TLS1.2", tls.VersionTLS12}, {"TLS1.3", tls.VersionTLS13}}

func TestRunEAPTLSLocal(t *testing.T) {
	p := labPKI(t)
	for _, srv := range []struct {
		name string
		cert *labpki.Cert
	}{{"ECDSA", p.EAPServerECDSA}, {"RSA", p.EAPServerRSA}} {
		addr := localNAC(t, p, srv.cert)
		for _, v := range versions {
			t.Run(srv.name+"/"+v.name, func(t *testing.T) {
				res, err := eapload.RunEAPTLS(context.Background(), spec(t, p, addr, secret, p.User, v.v))
				if err != nil {
					t.Fatal(err)
				}
				if res.Auths != 40 || res.Failures != 0 {
					t.Fatalf("auths %d failures %d: %v", res.Auths, res.Failures, res.FirstError)
				}
			})
		}
	}
	t.Run("long chain, small MTU", func(t *testing.T) {
		addr := localNAC(t, p, p.EAPServerECDSA)
		s := spec(t, p, addr, secret, p.LongChain, 0)
		s.FramedMTU, s.Count = 400, 8
		res, err := eapload.RunEAPTLS(context.Background(), s)
		if err != nil || res.Auths != 8 {
			t.Fatalf("auths %d failures %d: %v %v", res.Auths, res.Failures, err, res.FirstError)
		}
	})
	t.Run("revoked is counted as rejects", func(t *testing.T) {
		addr := localNAC(t, p, p.EAPServerECDSA)
		s := spec(t, p, addr, secret, p.Revoked, 0)
		s.Count = 8
		res, err := eapload.RunEAPTLS(context.Background(), s)
		if err != nil || res.Auths != 0 || res.Rejects != 8 {
			t.Fatalf("auths %d rejects %d failures %d: %v %v", res.Auths, res.Rejects, res.Failures, err, res.FirstError)
		}
	})
}

func TestRunEAPTLSFreeRADIUS(t *testing.T) {
	p := labPKI(t)
	fr := peers.MustFreeRADIUS(t, peers.FreeRADIUSOptions{PKI: p, UDP: true, Secret: secret,
		EAPVLAN: map[string]string{"user@example.org": "51"}})
	for _, v := range versions {
		t.Run(v.name, func(t *testing.T) {
			res, err := eapload.RunEAPTLS(context.Background(), spec(t, p, fr.AuthAddr(), fr.Secret, p.User, v.v))
			if err != nil {
				t.Fatal(err)
			}
			if res.Auths != 40 || res.Failures != 0 {
				t.Fatalf("auths %d failures %d: %v", res.Auths, res.Failures, res.FirstError)
			}
		})
	}
}
