package proxy

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"slices"
)

// ClientTable finds the configured client for a source address, longest
// prefix first. It is immutable once built, so a reload builds a new one and
// swaps it in atomically while servers keep reading the old one.
//
// A lookup probes one map per prefix length that occurs in the table,
// longest first: with the handful of lengths real configs use (/32, /24,
// a few others) that is a few hash probes, cheaper than a trie walk and
// without allocations.
type ClientTable struct {
	v4  []level4
	v6  []level6
	all []*Client
}

type level4 struct {
	bits int
	mask uint32
	m    map[uint32]*Client
}

type level6 struct {
	bits   int
	hi, lo uint64 // mask
	m      map[[2]uint64]*Client
}

// NewClientTable indexes clients by prefix. Two clients with the same
// prefix (after masking, and with IPv4-mapped IPv6 prefixes taken as IPv4)
// are an error, as is a client without a valid prefix.
func NewClientTable(clients []*Client) (*ClientTable, error) {
	t := &ClientTable{all: slices.Clone(clients)}
	seen := make(map[netip.Prefix]*Client, len(clients))
	for i, c := range clients {
		if c == nil {
			return nil, fmt.Errorf("proxy: client %d is nil", i)
		}
		p, err := canonicalPrefix(c.Prefix)
		if err != nil {
			return nil, fmt.Errorf("proxy: client %q: %w", c.Name, err)
		}
		if prev, ok := seen[p]; ok {
			return nil, fmt.Errorf("proxy: clients %q and %q both have prefix %s", prev.Name, c.Name, p)
		}
		seen[p] = c
		if p.Addr().Is4() {
			t.add4(p, c)
		} else {
			t.add6(p, c)
		}
	}
	// Longest first, so the first hit is the answer.
	slices.SortFunc(t.v4, func(a, b level4) int { return b.bits - a.bits })
	slices.SortFunc(t.v6, func(a, b level6) int { return b.bits - a.bits })
	return t, nil
}

// canonicalPrefix masks p, drops any zone and turns an IPv4-mapped IPv6
// prefix of at least /96 into its IPv4 form, matching what Lookup does to
// addresses.
func canonicalPrefix(p netip.Prefix) (netip.Prefix, error) {
	if !p.IsValid() {
		return netip.Prefix{}, fmt.Errorf("invalid prefix %q", p)
	}
	a, bits := p.Addr().WithZone(""), p.Bits()
	if a.Is4In6() {
		if bits < 96 {
			return netip.Prefix{}, fmt.Errorf("IPv4-mapped prefix %s shorter than /96", p)
		}
		a, bits = a.Unmap(), bits-96
	}
	return netip.PrefixFrom(a, bits).Masked(), nil
}

func mask4(bits int) uint32 {
	if bits == 0 {
		return 0
	}
	return ^uint32(0) << (32 - bits)
}

func mask6(bits int) (hi, lo uint64) {
	switch {
	case bits == 0:
		return 0, 0
	case bits <= 64:
		return ^uint64(0) << (64 - bits), 0
	case bits == 128:
		return ^uint64(0), ^uint64(0)
	default:
		return ^uint64(0), ^uint64(0) << (128 - bits)
	}
}

func (t *ClientTable) add4(p netip.Prefix, c *Client) {
	i := slices.IndexFunc(t.v4, func(l level4) bool { return l.bits == p.Bits() })
	if i < 0 {
		t.v4 = append(t.v4, level4{bits: p.Bits(), mask: mask4(p.Bits()), m: map[uint32]*Client{}})
		i = len(t.v4) - 1
	}
	a := p.Addr().As4()
	t.v4[i].m[binary.BigEndian.Uint32(a[:])] = c
}

func (t *ClientTable) add6(p netip.Prefix, c *Client) {
	i := slices.IndexFunc(t.v6, func(l level6) bool { return l.bits == p.Bits() })
	if i < 0 {
		hi, lo := mask6(p.Bits())
		t.v6 = append(t.v6, level6{bits: p.Bits(), hi: hi, lo: lo, m: map[[2]uint64]*Client{}})
		i = len(t.v6) - 1
	}
	t.v6[i].m[split6(p.Addr())] = c
}

func split6(a netip.Addr) [2]uint64 {
	b := a.As16()
	return [2]uint64{binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])}
}

// Lookup returns the client whose prefix is the longest one containing
// addr, or nil. IPv4-mapped IPv6 addresses (as a dual-stack socket reports
// IPv4 peers) are looked up as IPv4; zones are ignored. A nil table has no
// clients.
func (t *ClientTable) Lookup(addr netip.Addr) *Client {
	if t == nil {
		return nil
	}
	addr = addr.Unmap()
	if addr.Is4() {
		b := addr.As4()
		v := binary.BigEndian.Uint32(b[:])
		for i := range t.v4 {
			l := &t.v4[i]
			if c, ok := l.m[v&l.mask]; ok {
				return c
			}
		}
		return nil
	}
	if !addr.Is6() {
		return nil
	}
	v := split6(addr)
	for i := range t.v6 {
		l := &t.v6[i]
		if c, ok := l.m[[2]uint64{v[0] & l.hi, v[1] & l.lo}]; ok {
			return c
		}
	}
	return nil
}

// Clients returns the clients in the order they were given.
func (t *ClientTable) Clients() []*Client {
	if t == nil {
		return nil
	}
	return slices.Clone(t.all)
}

// Len returns the number of clients.
func (t *ClientTable) Len() int {
	if t == nil {
		return 0
	}
	return len(t.all)
}
