package nac_test

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/mxedge/mxedge/cache"
	"github.com/mxedge/mxedge/edge/nac"
	"github.com/mxedge/mxedge/proxy"
	"github.com/mxedge/mxedge/proxy/packet"
)

// identityResponse is an EAP-Response/Identity, the first round of a
// conversation.
func identityResponse(id uint8, name string) []byte {
	b := []byte{2, id, 0, 0, 1}
	b = append(b, name...)
	b[3] = byte(len(b))
	return b
}

// TestEAPFloodFromOneClient: one RADIUS client opening conversations
// under thousands of new Calling-Station-Ids, more than the whole table
// holds, neither fills the table nor locks another client out: its own
// caps (per client, per NAS port) close its oldest half-open
// conversations first.
func TestEAPFloodFromOneClient(t *testing.T) {
	f := newFixture(t, cachedStore(), "generic")
	evil := &proxy.Client{Name: "evil", Prefix: netip.MustParsePrefix("127.0.0.2/32"), Secret: secret, Vendor: "generic"}
	refused := 0
	for i := range 5000 {
		raw := request(t, packet.CodeAccessRequest, uint8(i), identityResponse(1, fmt.Sprint("flood", i)),
			attr{packet.AttrCallingStationID, []byte(fmt.Sprintf("02-ee-00-00-%02x-%02x", i>>8&0xff, i&0xff))},
			attr{5, u32(uint32(i % 4))})
		p, err := packet.Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		if out, _ := f.a.ServeRADIUS(context.Background(), &proxy.Request{Packet: p, Client: evil, HasMessageAuthenticator: true}); out == nil {
			refused++
		}
	}
	r := f.runEAP(t, f.pki.alice, tls.VersionTLS13, aliceMAC, 0)
	if r.final.Code != packet.CodeAccessAccept {
		t.Fatalf("legitimate supplicant after the flood: %v", r.final.Code)
	}
	if refused != 0 {
		t.Fatalf("%d flood requests refused: the flooder's own half-open conversations should make room", refused)
	}
	if n := testutil.ToFloat64(f.a.Decisions(cache.AuthEAPTLS, "accept", "cache")); n != 1 {
		t.Fatalf("accepts %v, want 1", n)
	}
	// 4 NAS ports × 16: the rest were evicted, per port.
	// Every scope's series exists from start; only the port's moved.
	for _, scope := range []string{"global", "client", "device"} {
		if n := metricOf(t, f, scope); n != 0 {
			t.Fatalf("evicted by %s: %v, want 0 (only port)", scope, n)
		}
	}
	if n := metricOf(t, f, "port"); n != 5000-64 {
		t.Fatalf("evicted %v, want %d", n, 5000-64)
	}
}

func metricOf(t *testing.T, f *fixture, scope string) float64 {
	t.Helper()
	mfs, err := f.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "mxedge_nac_eap_evicted_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "scope" && l.GetValue() == scope {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

// lines counts log records by message.
type lines struct {
	mu sync.Mutex
	n  map[string]int
	// suppressed sums the "suppressed" counts reported.
	suppressed int64
}

func (l *lines) Enabled(context.Context, slog.Level) bool { return true }
func (l *lines) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.n[r.Message]++
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "suppressed" {
			l.suppressed += a.Value.Int64()
		}
		return true
	})
	return nil
}
func (l *lines) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *lines) WithGroup(string) slog.Handler      { return l }

// brokenStore fails every lookup.
type brokenStore struct{ *fakeStore }

func (brokenStore) Lookup(string, string) (cache.Entry, bool, error) {
	return cache.Entry{}, false, errors.New("disk on fire")
}

// TestPerRequestWarningsRateLimited: a thousand requests that each would
// log a warning or error log a handful, and the count of the rest.
func TestPerRequestWarningsRateLimited(t *testing.T) {
	h := &lines{n: map[string]int{}}
	f := newFixtureStore(t, brokenStore{newFakeStore()}, func(c *nac.Config) { c.Logger = slog.New(h) })
	const n = 1000
	for i := range n {
		mac := fmt.Sprintf("aabbcc00%02x%02x", i>>8, i&0xff)
		rp := f.serve(t, request(t, packet.CodeAccessRequest, uint8(i), nil,
			attr{packet.AttrUserName, []byte(mac)}, attr{packet.AttrUserPassword, []byte(mac)},
			attr{packet.AttrCallingStationID, []byte(mac)}))
		if rp == nil || rp.Code != packet.CodeAccessAccept {
			t.Fatalf("request %d: %v", i, rp)
		}
	}
	f.close(t) // reports what was suppressed
	h.mu.Lock()
	defer h.mu.Unlock()
	const msg = "cache lookup failed; treating the client as unknown"
	if got := h.n[msg]; got > 10 {
		t.Fatalf("%d %q lines for %d requests", got, msg, n)
	}
	if int(h.suppressed)+h.n[msg]-1 != n {
		t.Fatalf("%d lines and %d suppressed, want %d in all", h.n[msg], h.suppressed, n)
	}
}
