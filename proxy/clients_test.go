package proxy

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
)

func mustClients(t testing.TB, prefixes ...string) []*Client {
	t.Helper()
	var cs []*Client
	for _, p := range prefixes {
		cs = append(cs, &Client{Name: p, Prefix: netip.MustParsePrefix(p)})
	}
	return cs
}

func TestClientTableLookup(t *testing.T) {
	table, err := NewClientTable(mustClients(t,
		"10.0.0.0/8",
		"10.7.50.0/24",
		"10.7.50.9/32",
		"0.0.0.0/0",
		"2001:db8::/32",
		"2001:db8:1::/48",
		"2001:db8:1::5/128",
		"fe80::/10",
		"192.168.1.129/25", // masked to .128/25
	))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		addr string
		want string // client name, "" for none
	}{
		{"10.7.50.9", "10.7.50.9/32"},
		{"10.7.50.10", "10.7.50.0/24"},
		{"10.8.0.1", "10.0.0.0/8"},
		{"11.0.0.1", "0.0.0.0/0"},
		{"::ffff:10.7.50.9", "10.7.50.9/32"},
		{"::ffff:10.7.50.10", "10.7.50.0/24"},
		{"192.168.1.200", "192.168.1.129/25"},
		{"192.168.1.1", "0.0.0.0/0"},
		{"2001:db8:1::5", "2001:db8:1::5/128"},
		{"2001:db8:1::6", "2001:db8:1::/48"},
		{"2001:db8:2::1", "2001:db8::/32"},
		{"2001:db9::1", ""},
		{"fe80::1%eth0", "fe80::/10"},
		{"::1", ""},
	}
	for _, tt := range tests {
		t.Run(tt.addr, func(t *testing.T) {
			c := table.Lookup(netip.MustParseAddr(tt.addr))
			got := ""
			if c != nil {
				got = c.Name
			}
			if got != tt.want {
				t.Errorf("Lookup(%s) = %q, want %q", tt.addr, got, tt.want)
			}
		})
	}
	if table.Lookup(netip.Addr{}) != nil {
		t.Error("zero Addr matched a client")
	}
	if got := table.Len(); got != 9 {
		t.Errorf("Len = %d, want 9", got)
	}
}

func TestClientTableMappedPrefix(t *testing.T) {
	table, err := NewClientTable(mustClients(t, "::ffff:10.1.0.0/112"))
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range []string{"10.1.2.3", "::ffff:10.1.2.3"} {
		if c := table.Lookup(netip.MustParseAddr(a)); c == nil {
			t.Errorf("Lookup(%s) = nil, want the mapped /112 client", a)
		}
	}
}

func TestNewClientTableErrors(t *testing.T) {
	tests := []struct {
		name    string
		clients []*Client
		want    string
	}{
		{"duplicate", mustClients(t, "10.0.0.0/24", "10.0.0.0/24"), "both have prefix 10.0.0.0/24"},
		{"duplicate after masking", mustClients(t, "10.0.0.0/24", "10.0.0.7/24"), "both have prefix 10.0.0.0/24"},
		{"duplicate mapped", mustClients(t, "10.0.0.1/32", "::ffff:10.0.0.1/128"), "both have prefix 10.0.0.1/32"},
		{"invalid prefix", []*Client{{Name: "x"}}, `client "x": invalid prefix`},
		{"short mapped", mustClients(t, "::ffff:0.0.0.0/95"), "shorter than /96"},
		{"nil client", []*Client{nil}, "client 0 is nil"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewClientTable(tt.clients)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestNilClientTable(t *testing.T) {
	var table *ClientTable
	if table.Lookup(netip.MustParseAddr("127.0.0.1")) != nil || table.Len() != 0 || table.Clients() != nil {
		t.Error("nil table is not empty")
	}
}

func BenchmarkClientTableLookup(b *testing.B) {
	// A site-sized table: many /32 devices, some /24 blocks, a default.
	var prefixes []string
	for i := range 1000 {
		prefixes = append(prefixes, fmt.Sprintf("10.%d.%d.%d/32", i/65536, i/256%256, i%256))
	}
	for i := range 100 {
		prefixes = append(prefixes, fmt.Sprintf("172.16.%d.0/24", i))
	}
	prefixes = append(prefixes, "0.0.0.0/0", "2001:db8::/32")
	table, err := NewClientTable(mustClients(b, prefixes...))
	if err != nil {
		b.Fatal(err)
	}
	addrs := []netip.Addr{
		netip.MustParseAddr("10.0.3.7"),          // /32 hit
		netip.MustParseAddr("172.16.42.9"),       // /24 hit after a /32 miss
		netip.MustParseAddr("192.0.2.1"),         // default
		netip.MustParseAddr("::ffff:172.16.1.1"), // mapped
		netip.MustParseAddr("2001:db8::1"),
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if table.Lookup(addrs[i%len(addrs)]) == nil {
			b.Fatal("miss")
		}
	}
}
