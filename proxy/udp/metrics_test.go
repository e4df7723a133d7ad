package udp

import (
	"context"
	"net/netip"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/mxedge/mxedge/proxy"
)

// Each configured client's common series exist at zero from New, so
// dashboards see zeros, not nothing, before its first request.
func TestSeriesFromStart(t *testing.T) {
	clients := []*proxy.Client{
		{Name: "sw1", Prefix: netip.MustParsePrefix("192.0.2.1/32"), Secret: []byte("a-long-enough-secret")},
		{Name: "sw2", Prefix: netip.MustParsePrefix("192.0.2.0/24"), Secret: []byte("a-long-enough-secret")},
	}
	table, err := proxy.NewClientTable(clients)
	if err != nil {
		t.Fatal(err)
	}
	h := proxy.HandlerFunc(func(context.Context, *proxy.Request) ([]byte, proxy.Outcome) { return nil, proxy.OutcomeDropped })
	for _, tc := range []struct {
		kind             Kind
		requests, maSeen int
	}{
		{Auth, 2, 4}, // Access-Request/answered; present true and false
		{Acct, 2, 0}, // Accounting-Request/answered
	} {
		reg := prometheus.NewRegistry()
		s, err := New(Config{Clients: func() *proxy.ClientTable { return table }, Handler: h, Kind: tc.kind, Registerer: reg})
		if err != nil {
			t.Fatal(err)
		}
		if n := testutil.CollectAndCount(s.m.requests); n != tc.requests {
			t.Errorf("%s: %d request series, want %d", tc.kind, n, tc.requests)
		}
		if n := testutil.CollectAndCount(s.m.maSeen); n != tc.maSeen {
			t.Errorf("%s: %d message-authenticator series, want %d", tc.kind, n, tc.maSeen)
		}
	}
}
