package dedup

import (
	"bytes"
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"
)

// clock is a settable time source.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Unix(1_800_000_000, 0)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

var (
	local = netip.MustParseAddrPort("127.0.0.1:1812")
	nas   = netip.MustParseAddrPort("10.0.0.1:40000")
)

func key(id uint8) Key { return Key{Local: local, Source: nas, ID: id} }

func auth(b byte) [16]byte { return [16]byte{b} }

// step is one call in a scenario: Begin (finish=false) or Finish.
type step struct {
	advance time.Duration
	key     Key
	auth    [16]byte
	finish  bool
	reply   string // Finish: the reply ("" = nil)

	wantState State  // Begin
	wantReply string // Begin, when Answered
	wantSend  bool   // Finish
}

func TestCache(t *testing.T) {
	otherPort := Key{Local: local, Source: netip.MustParseAddrPort("10.0.0.1:40001"), ID: 1}
	otherLocal := Key{Local: netip.MustParseAddrPort("127.0.0.1:1813"), Source: nas, ID: 1}
	tests := []struct {
		name  string
		steps []step
	}{
		{"new then retransmit in progress", []step{
			{key: key(1), auth: auth(1), wantState: Proceed},
			{key: key(1), auth: auth(1), wantState: InProgress},
			{key: key(1), auth: auth(1), wantState: InProgress},
		}},
		{"retransmit after answer gets the reply", []step{
			{key: key(1), auth: auth(1), wantState: Proceed},
			{key: key(1), auth: auth(1), finish: true, reply: "r1", wantSend: true},
			{key: key(1), auth: auth(1), wantState: Answered, wantReply: "r1"},
			{advance: 29 * time.Second, key: key(1), auth: auth(1), wantState: Answered, wantReply: "r1"},
		}},
		{"window counts from the answer", []step{
			{key: key(1), auth: auth(1), wantState: Proceed},
			{advance: 20 * time.Second, key: key(1), auth: auth(1), finish: true, reply: "r1", wantSend: true},
			{advance: 20 * time.Second, key: key(1), auth: auth(1), wantState: Answered, wantReply: "r1"},
			{advance: 10 * time.Second, key: key(1), auth: auth(1), wantState: Proceed},
		}},
		{"new authenticator abandons the old request", []step{
			{key: key(1), auth: auth(1), wantState: Proceed},
			{key: key(1), auth: auth(2), wantState: Proceed},
			{key: key(1), auth: auth(1), finish: true, reply: "old", wantSend: false},
			{key: key(1), auth: auth(2), wantState: InProgress},
			{key: key(1), auth: auth(2), finish: true, reply: "new", wantSend: true},
			{key: key(1), auth: auth(2), wantState: Answered, wantReply: "new"},
			{key: key(1), auth: auth(1), wantState: Proceed},
		}},
		{"new authenticator after answer", []step{
			{key: key(1), auth: auth(1), wantState: Proceed},
			{key: key(1), auth: auth(1), finish: true, reply: "r1", wantSend: true},
			{key: key(1), auth: auth(2), wantState: Proceed},
			{key: key(1), auth: auth(2), finish: true, reply: "r2", wantSend: true},
			{key: key(1), auth: auth(2), wantState: Answered, wantReply: "r2"},
		}},
		{"nil reply forgets the request", []step{
			{key: key(1), auth: auth(1), wantState: Proceed},
			{key: key(1), auth: auth(1), finish: true, wantSend: true},
			{key: key(1), auth: auth(1), wantState: Proceed},
		}},
		{"finish twice sends once", []step{
			{key: key(1), auth: auth(1), wantState: Proceed},
			{key: key(1), auth: auth(1), finish: true, reply: "r1", wantSend: true},
			{key: key(1), auth: auth(1), finish: true, reply: "r1", wantSend: false},
		}},
		{"expired in progress is answered, not cached", []step{
			{key: key(1), auth: auth(1), wantState: Proceed},
			{advance: 31 * time.Second, key: key(2), auth: auth(1), wantState: Proceed}, // sweeps key(1)
			{key: key(1), auth: auth(1), finish: true, reply: "late", wantSend: true},
			{key: key(1), auth: auth(1), wantState: Proceed},
		}},
		{"keys differ by id, port and local socket", []step{
			{key: key(1), auth: auth(1), wantState: Proceed},
			{key: key(2), auth: auth(1), wantState: Proceed},
			{key: otherPort, auth: auth(1), wantState: Proceed},
			{key: otherLocal, auth: auth(1), wantState: Proceed},
			{key: key(1), auth: auth(1), wantState: InProgress},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := newClock()
			c := New(Config{Now: clk.Now})
			for i, s := range tt.steps {
				clk.Advance(s.advance)
				if s.finish {
					var reply []byte
					if s.reply != "" {
						reply = []byte(s.reply)
					}
					if got := c.Finish(s.key, s.auth, reply); got != s.wantSend {
						t.Fatalf("step %d: Finish = %v, want %v", i, got, s.wantSend)
					}
					continue
				}
				st, reply := c.Begin(s.key, s.auth)
				if st != s.wantState || string(reply) != s.wantReply {
					t.Fatalf("step %d: Begin = %v %q, want %v %q", i, st, reply, s.wantState, s.wantReply)
				}
			}
		})
	}
}

func TestCacheEvictsOldestFirst(t *testing.T) {
	clk := newClock()
	c := New(Config{Now: clk.Now, MaxEntries: 3})
	for id := range uint8(3) {
		c.Begin(key(id), auth(1))
		clk.Advance(time.Second)
	}
	// Touching key(0) by answering it makes key(1) the oldest.
	c.Finish(key(0), auth(1), []byte("r0"))
	c.Begin(key(3), auth(1))
	if s := c.Stats(); s.Entries != 3 || s.Evicted != 1 {
		t.Fatalf("Stats = %+v, want 3 entries, 1 evicted", s)
	}
	if st, _ := c.Begin(key(1), auth(1)); st != Proceed {
		t.Errorf("key 1 = %v, want evicted (Proceed)", st)
	}
	if st, r := c.Begin(key(0), auth(1)); st != Answered || string(r) != "r0" {
		t.Errorf("key 0 = %v %q, want answered r0", st, r)
	}
}

func TestCacheExpirySweepsInTimeOrder(t *testing.T) {
	clk := newClock()
	c := New(Config{Now: clk.Now, Window: 10 * time.Second})
	for id := range uint8(10) {
		c.Begin(key(id), auth(1))
		clk.Advance(time.Second)
	}
	// Now t=10s: entries 0..9 arrived at 0..9 s. At 15 s, 0..5 are gone.
	clk.Advance(5 * time.Second)
	c.Begin(key(200), auth(1))
	if s := c.Stats(); s.Entries != 5 || s.Expired != 6 {
		t.Fatalf("Stats = %+v, want 5 entries (6..9 and 200), 6 expired", s)
	}
	// Slots are reused rather than grown.
	for id := range uint8(6) {
		c.Begin(key(100+id), auth(1))
	}
	if n := len(c.slots); n != 11 {
		t.Errorf("slots = %d, want 11 (reused)", n)
	}
}

// TestCacheConcurrent checks, under -race, that of many goroutines sending
// the same request only one handles it and all later ones get its reply.
func TestCacheConcurrent(t *testing.T) {
	c := New(Config{MaxEntries: 1024})
	const workers, ids = 8, 64
	var mu sync.Mutex
	handled := make(map[uint8]int)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for round := range 50 {
				id := uint8((w*7 + round) % ids)
				k := key(id)
				a := auth(id)
				st, reply := c.Begin(k, a)
				switch st {
				case Proceed:
					mu.Lock()
					handled[id]++
					mu.Unlock()
					if !c.Finish(k, a, []byte{id}) {
						t.Errorf("id %d: Finish refused", id)
					}
				case Answered:
					if !bytes.Equal(reply, []byte{id}) {
						t.Errorf("id %d: reply %x", id, reply)
					}
				}
			}
		})
	}
	wg.Wait()
	for id, n := range handled {
		if n != 1 {
			t.Errorf("id %d handled %d times", id, n)
		}
	}
}

func BenchmarkBeginFinish(b *testing.B) {
	c := New(Config{})
	reply := []byte("reply")
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		k := Key{Local: local, Source: netip.AddrPortFrom(nas.Addr(), uint16(i>>8)), ID: uint8(i)}
		a := auth(byte(i >> 16))
		if st, _ := c.Begin(k, a); st == Proceed {
			c.Finish(k, a, reply)
		}
	}
}

func BenchmarkBeginAnswered(b *testing.B) {
	c := New(Config{})
	k := key(1)
	c.Begin(k, auth(1))
	c.Finish(k, auth(1), []byte("reply"))
	b.ReportAllocs()
	for b.Loop() {
		if st, _ := c.Begin(k, auth(1)); st != Answered {
			b.Fatal(st)
		}
	}
}

func BenchmarkBeginParallel(b *testing.B) {
	c := New(Config{})
	reply := []byte("reply")
	var seq sync.Mutex
	n := 0
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		seq.Lock()
		port := uint16(n)
		n++
		seq.Unlock()
		i := 0
		for pb.Next() {
			i++
			k := Key{Local: local, Source: netip.AddrPortFrom(nas.Addr(), port), ID: uint8(i)}
			a := auth(byte(i >> 8))
			if st, _ := c.Begin(k, a); st == Proceed {
				c.Finish(k, a, reply)
			}
		}
	})
}

func ExampleCache() {
	c := New(Config{})
	k := Key{Local: local, Source: nas, ID: 7}
	st, _ := c.Begin(k, auth(1))
	fmt.Println(st)
	st, _ = c.Begin(k, auth(1))
	fmt.Println(st)
	c.Finish(k, auth(1), []byte("accept"))
	st, reply := c.Begin(k, auth(1))
	fmt.Println(st, string(reply))
	// Output:
	// new
	// in_progress
	// answered accept
}

// TestCacheByteBoundAndFairShare floods the cache from one source with
// large replies (a client echoing a big Proxy-State at full rate) while
// another source's answers sit in it: the charged bytes stay within
// MaxBytes, and the quiet source's answers are still there.
func TestCacheByteBoundAndFairShare(t *testing.T) {
	clk := newClock()
	const maxBytes = 256 << 10
	evictions := map[Cause]int{}
	c := New(Config{Now: clk.Now, MaxBytes: maxBytes, OnEvict: func(k Cause) { evictions[k]++ }})
	quiet := netip.MustParseAddrPort("10.0.0.2:1645")
	for id := range uint8(20) {
		k := Key{Local: local, Source: quiet, ID: id}
		c.Begin(k, auth(1))
		c.Finish(k, auth(1), []byte(fmt.Sprintf("quiet-%d", id)))
	}
	big := bytes.Repeat([]byte{0x21}, 4000)
	for i := range 10_000 {
		// Many source ports: one device, one share.
		k := Key{Local: local, Source: netip.AddrPortFrom(nas.Addr(), uint16(40000+i/256)), ID: uint8(i)}
		if st, _ := c.Begin(k, auth(1)); st != Proceed {
			t.Fatalf("flood request %d: %v", i, st)
		}
		c.Finish(k, auth(1), big[:len(big):len(big)])
		if s := c.Stats(); s.Bytes > maxBytes {
			t.Fatalf("after %d flood replies the cache holds %d bytes, over %d", i+1, s.Bytes, maxBytes)
		}
	}
	for id := range uint8(20) {
		st, r := c.Begin(Key{Local: local, Source: quiet, ID: id}, auth(1))
		if st != Answered || string(r) != fmt.Sprintf("quiet-%d", id) {
			t.Fatalf("quiet source's reply %d = %v %q, want it still cached", id, st, r)
		}
	}
	s := c.Stats()
	if s.Sources != 2 || s.Evicted == 0 || evictions[CauseBytes] != int(s.Evicted) {
		t.Fatalf("Stats = %+v, evictions %v: want 2 sources and every eviction counted as bytes", s, evictions)
	}
	// The charge is exact: emptying the cache returns it to zero.
	clk.Advance(time.Hour)
	c.Begin(key(0), auth(9))
	if s := c.Stats(); s.Bytes != EntryOverhead || s.Entries != 1 {
		t.Fatalf("after expiry Stats = %+v, want one entry charged %d", s, EntryOverhead)
	}
}

// TestCacheEntryBoundEvictsBiggestSpender: with the entry count full, a
// new request from the spender evicts its own oldest, not the others'.
func TestCacheEntryBoundEvictsBiggestSpender(t *testing.T) {
	clk := newClock()
	evictions := map[Cause]int{}
	c := New(Config{Now: clk.Now, MaxEntries: 10, OnEvict: func(k Cause) { evictions[k]++ }})
	other := Key{Local: local, Source: netip.MustParseAddrPort("10.0.0.9:1645"), ID: 1}
	c.Begin(other, auth(1)) // the oldest entry in the cache
	c.Finish(other, auth(1), []byte("keep"))
	for id := range uint8(50) {
		c.Begin(key(id), auth(1))
	}
	if st, r := c.Begin(other, auth(1)); st != Answered || string(r) != "keep" {
		t.Fatalf("other source = %v %q, want still answered", st, r)
	}
	if s := c.Stats(); s.Entries != 10 || s.Evicted != 41 || evictions[CauseEntries] != 41 {
		t.Fatalf("Stats = %+v, evictions %v: want 10 entries, 41 evicted for entries", s, evictions)
	}
}

func TestCacheOversizeReplyNotKept(t *testing.T) {
	c := New(Config{MaxBytes: 4 << 10})
	c.Begin(key(1), auth(1))
	if !c.Finish(key(1), auth(1), make([]byte, 4000)) {
		t.Fatal("reply not sent")
	}
	if s := c.Stats(); s.Entries != 0 || s.Bytes != 0 {
		t.Fatalf("Stats = %+v, want nothing kept", s)
	}
}
