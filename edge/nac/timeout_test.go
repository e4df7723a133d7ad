package nac_test

import (
	"crypto/tls"
	"encoding/binary"
	"math"
	"strconv"
	"testing"
	"time"

	"github.com/mxedge/mxedge/cache"
	"github.com/mxedge/mxedge/edge/nac"
	"github.com/mxedge/mxedge/proxy/packet"
)

const (
	attrSessionTimeout    = 27
	attrTerminationAction = 29
)

// fixedRand is a random source that returns r.
func fixedRand(r float64) func() float64 { return func() float64 { return r } }

func withTimeout(d time.Duration, jitter float64, rand func() float64) func(*nac.Config) {
	return func(c *nac.Config) { c.SessionTimeout, c.SessionJitter, c.Rand = d, jitter, rand }
}

// timeouts returns the reply's Session-Timeout (0: none) and
// Termination-Action (-1: none), failing if either appears twice.
func timeouts(t *testing.T, p *packet.Packet) (uint32, int) {
	t.Helper()
	if n := p.Count(attrSessionTimeout); n > 1 {
		t.Fatalf("%d Session-Timeout attributes", n)
	}
	if n := p.Count(attrTerminationAction); n > 1 {
		t.Fatalf("%d Termination-Action attributes", n)
	}
	var st uint32
	ta := -1
	if v, ok := p.Lookup(attrSessionTimeout); ok {
		if len(v) != 4 {
			t.Fatalf("Session-Timeout %x", v)
		}
		st = binary.BigEndian.Uint32(v)
	}
	if v, ok := p.Lookup(attrTerminationAction); ok {
		if len(v) != 4 {
			t.Fatalf("Termination-Action %x", v)
		}
		ta = int(binary.BigEndian.Uint32(v))
	}
	return st, ta
}

func mabRequest(t *testing.T, mac string) []byte {
	return request(t, packet.CodeAccessRequest, 3, nil, attr{1, []byte(mac)}, attr{2, []byte(mac)}, attr{31, []byte(mac)})
}

// TestLocalSessionTimeoutJitter: the timeout is T×(1−jitter×r) for the
// source's r, in whole seconds, never below 1.
func TestLocalSessionTimeoutJitter(t *testing.T) {
	cases := []struct {
		name   string
		t      time.Duration
		jitter float64
		r      float64
		want   uint32
	}{
		{"no jitter", time.Hour, 0, 0.7, 3600},
		{"r=0 gives T", time.Hour, 0.25, 0, 3600},
		{"r=0.5", time.Hour, 0.25, 0.5, 3150},
		{"r just below 1 gives T×(1−jitter)", time.Hour, 0.25, math.Nextafter(1, 0), 2700},
		{"r out of range is clamped", time.Hour, 0.25, 7, 2700},
		{"full jitter keeps a second", time.Hour, 1, math.Nextafter(1, 0), 1},
		{"below a second rounds up to 1", 300 * time.Millisecond, 0, 0, 1},
		{"fractions round", 90500 * time.Millisecond, 0, 0, 91},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t, cachedStore(), "generic", withTimeout(c.t, c.jitter, fixedRand(c.r)))
			rp := f.serve(t, mabRequest(t, "aabbcc0000ff"))
			if rp.Code != packet.CodeAccessAccept {
				t.Fatalf("got %s", rp.Code)
			}
			st, ta := timeouts(t, rp)
			if st != c.want || ta != 1 {
				t.Fatalf("Session-Timeout %d Termination-Action %d, want %d and 1 (RADIUS-Request)", st, ta, c.want)
			}
			f.close(t)
			if got := f.store.events[0].Fields["session_timeout"]; got != strconv.Itoa(int(c.want)) {
				t.Fatalf("event session_timeout %q, want %d", got, c.want)
			}
		})
	}
}

// TestLocalSessionTimeoutSpread: over a sweep of the random source every
// value lies in [T×(1−jitter), T] and both ends are reached.
func TestLocalSessionTimeoutSpread(t *testing.T) {
	const n = 200
	i := 0
	rand := func() float64 { r := float64(i) / n; i++; return r } // 0, 0.005, …, 0.995
	f := newFixture(t, cachedStore(), "generic", withTimeout(time.Hour, 0.25, rand))
	lo, hi := uint32(math.MaxUint32), uint32(0)
	for range n {
		st, _ := timeouts(t, f.serve(t, mabRequest(t, "aabbcc0000ff")))
		if st < 2700 || st > 3600 {
			t.Fatalf("Session-Timeout %d outside [2700, 3600]", st)
		}
		lo, hi = min(lo, st), max(hi, st)
	}
	if lo > 2710 || hi != 3600 {
		t.Fatalf("values span [%d, %d], want about [2700, 3600]", lo, hi)
	}
}

// TestLocalSessionTimeoutWithCache: one Session-Timeout, the smaller of
// the local and the cached one; Termination-Action is always ours.
func TestLocalSessionTimeoutWithCache(t *testing.T) {
	store := func() *fakeStore {
		s := cachedStore()
		for mac, az := range map[string]cache.Authorization{
			"aa:bb:cc:00:00:10": {VLAN: "11", SessionTimeout: 2 * time.Hour},
			"aa:bb:cc:00:00:11": {VLAN: "11", SessionTimeout: 10 * time.Minute},
			"aa:bb:cc:00:00:12": {VLAN: "11", SessionTimeout: 2 * time.Hour, Attributes: []cache.Attribute{
				{Name: "Session-Timeout", Value: "600"}, {Name: "Termination-Action", Value: "default"}}},
			"aa:bb:cc:00:00:13": {VLAN: "11", Attributes: []cache.Attribute{{Type: attrSessionTimeout, Raw: []byte{0, 0, 0x1c, 0x20}}}}, // 7200
			"aa:bb:cc:00:00:14": {VLAN: "11", Attributes: []cache.Attribute{{Name: "Session-Timeout", Value: "0"}}},
			"aa:bb:cc:00:00:15": {VLAN: "11", SessionTimeout: -time.Hour},
		} {
			m, _ := cache.NormalizeMAC(mac)
			e := cache.Entry{MAC: m, AuthType: cache.AuthMAB, Identity: cache.Identity{UserName: m}, Authorization: az}
			s.entries[[2]string{m, e.Key().Identity}] = e
		}
		return s
	}
	cases := []struct {
		name  string
		local time.Duration
		mac   string
		st    uint32
		ta    int
	}{
		{"cached field longer: local", time.Hour, "aabbcc000010", 3600, 1},
		{"cached field shorter: cached", time.Hour, "aabbcc000011", 600, 1},
		{"cached attribute shorter, cached Termination-Action replaced", time.Hour, "aabbcc000012", 600, 1},
		{"cached raw attribute longer: local", time.Hour, "aabbcc000013", 3600, 1},
		{"cached zero: local", time.Hour, "aabbcc000014", 3600, 1},
		{"cached negative: local", time.Hour, "aabbcc000015", 3600, 1},
		{"no local timeout, cached negative: nothing", 0, "aabbcc000015", 0, -1},
		{"cache hit without a cached timeout", time.Hour, "aabbcc000001", 3600, 1},
		{"default VLAN", time.Hour, "aabbcc0000ff", 3600, 1},
		{"no local timeout: cached field as before", 0, "aabbcc000011", 600, -1},
		{"no local timeout: cached attribute and its Termination-Action", 0, "aabbcc000012", 600, 0},
		{"no local timeout, nothing cached: nothing", 0, "aabbcc0000ff", 0, -1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t, store(), "generic", withTimeout(c.local, 0, nil))
			rp := f.serve(t, mabRequest(t, c.mac))
			if rp.Code != packet.CodeAccessAccept {
				t.Fatalf("got %s", rp.Code)
			}
			if st, ta := timeouts(t, rp); st != c.st || ta != c.ta {
				t.Fatalf("Session-Timeout %d Termination-Action %d, want %d %d", st, ta, c.st, c.ta)
			}
			f.close(t)
			want := ""
			if c.st > 0 {
				want = strconv.Itoa(int(c.st))
			}
			if got := f.store.events[0].Fields["session_timeout"]; got != want {
				t.Fatalf("event session_timeout %q, want %q", got, want)
			}
		})
	}
}

func TestEAPTLSLocalSessionTimeout(t *testing.T) {
	p := testPKI(t)
	cases := []struct {
		name string
		cert *tls.Certificate
		mac  string
		want uint32
	}{
		{"cache hit, cached 1h is longer", p.alice, aliceMAC, 1800},
		{"default VLAN", p.bob, otherMAC, 1800},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t, cachedStore(), "generic", withTimeout(40*time.Minute, 0.25, fixedRand(1)))
			r := f.runEAP(t, c.cert, tls.VersionTLS13, c.mac, 0)
			if r.final.Code != packet.CodeAccessAccept {
				t.Fatalf("got %s", r.final.Code)
			}
			if st, ta := timeouts(t, r.final); st != c.want || ta != 1 {
				t.Fatalf("Session-Timeout %d Termination-Action %d, want %d 1", st, ta, c.want)
			}
			f.close(t)
			if got := f.store.events[1].Fields["session_timeout"]; got != strconv.Itoa(int(c.want)) {
				t.Fatalf("event session_timeout %q", got)
			}
		})
	}
}

func TestSessionTimeoutConfig(t *testing.T) {
	for _, c := range []struct {
		name   string
		d      time.Duration
		jitter float64
	}{
		{"negative timeout", -time.Second, 0},
		{"jitter above 1", time.Hour, 1.5},
		{"negative jitter", time.Hour, -0.1},
		{"NaN jitter", time.Hour, math.NaN()},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := nac.Config{EAP: newEAPServer(t), Store: cachedStore(), SessionTimeout: c.d, SessionJitter: c.jitter}
			if a, err := nac.New(cfg); err == nil {
				a.Close(t.Context())
				t.Fatal("New accepted it")
			}
		})
	}
}
