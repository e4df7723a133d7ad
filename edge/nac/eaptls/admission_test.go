package eaptls_test

import (
	"crypto/tls"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/mxedge/mxedge/edge/nac/eaptls"
)

// halfOpen returns a session that answered the identity request: the
// first round, which a flood repeats under new identities.
func halfOpen(t *testing.T, f *fixture) *eaptls.Session {
	t.Helper()
	p := f.peer(f.pki.client, tls.VersionTLS13, 0)
	t.Cleanup(p.Close)
	s := f.srv.NewSession(0)
	if r := s.Handle(p.IdentityResponse(1)); r.Outcome != eaptls.Challenge {
		t.Fatalf("got %v", r.Outcome)
	}
	if s.Established() {
		t.Fatal("established after the identity")
	}
	return s
}

// establishedSession drives a handshake until the session is established
// (the peer answered our first flight), short of the outcome.
func establishedSession(t *testing.T, f *fixture, v uint16) *eaptls.Session {
	t.Helper()
	p := f.peer(f.pki.client, v, 0)
	t.Cleanup(p.Close)
	s := f.srv.NewSession(0)
	resp := p.IdentityResponse(1)
	for range 50 {
		r := s.Handle(resp)
		if r.Outcome != eaptls.Challenge {
			t.Fatalf("got %v", r.Outcome)
		}
		if s.Established() {
			return s
		}
		var err error
		if resp, err = p.Handle(r.EAP); err != nil {
			t.Fatal(err)
		}
	}
	t.Fatal("never established")
	return nil
}

func TestEstablishedAfterPeersSecondFlight(t *testing.T) {
	f := newFixture(t, false, nil)
	for _, v := range versions {
		t.Run(v.name, func(t *testing.T) {
			if s := midHandshake(t, f); s.Established() {
				t.Fatal("established after the ClientHello alone")
			}
			s := establishedSession(t, f, v.v)
			s.Close()
		})
	}
}

func TestTableHalfOpenExpiresQuickly(t *testing.T) {
	f := newFixture(t, false, nil)
	now := testNow
	tab := eaptls.NewTable(eaptls.TableConfig{Now: func() time.Time { return now }})
	defer tab.Close()
	o := eaptls.Owner{Client: "sw1", Device: "sw1|a"}
	h := halfOpen(t, f)
	e := establishedSession(t, f, tls.VersionTLS13)
	stH, err := tab.Admit(o, h)
	if err != nil {
		t.Fatal(err)
	}
	stE, err := tab.Admit(o, e)
	if err != nil {
		t.Fatal(err)
	}
	now = now.Add(eaptls.DefaultHalfOpenTimeout - time.Second)
	if _, ok := tab.Get(stH, o.Device); !ok {
		t.Fatal("half-open conversation gone before its time")
	}
	// Activity does not extend a half-open conversation's time.
	now = now.Add(2 * time.Second)
	if _, ok := tab.Get(stH, o.Device); ok {
		t.Fatal("half-open conversation kept past HalfOpenTimeout")
	}
	waitDone(t, h)
	if r := h.Result(); r == nil || r.Reason != eaptls.ReasonTimeout {
		t.Fatalf("result %+v", r)
	}
	if _, ok := tab.Get(stE, o.Device); !ok {
		t.Fatal("established conversation expired with the half-open ones")
	}
	// The sweeper finds overdue half-open ones without a Get.
	h2 := halfOpen(t, f)
	if _, err := tab.Admit(o, h2); err != nil {
		t.Fatal(err)
	}
	now = now.Add(eaptls.DefaultHalfOpenTimeout + time.Second)
	if n := tab.Sweep(); n != 1 || tab.Len() != 1 {
		t.Fatalf("swept %d, len %d; want 1 and the established one left", n, tab.Len())
	}
	now = now.Add(eaptls.DefaultIdleTimeout)
	if n := tab.Sweep(); n != 1 || tab.Len() != 0 {
		t.Fatalf("idle established: swept %d, len %d", n, tab.Len())
	}
}

// TestTableCaps: each scope's cap closes the scope's oldest half-open
// conversation for a new one, never an established one, and refuses when
// all it holds are established; other scopes are unaffected.
func TestTableCaps(t *testing.T) {
	f := newFixture(t, false, nil)
	big := 1000
	cases := []struct {
		scope string
		cfg   eaptls.TableConfig
		// in(i) is the i-th owner in the capped scope; out is in another.
		in, out func(i int) eaptls.Owner
		err     error
	}{
		{"global", eaptls.TableConfig{MaxSessions: 3, MaxPerClient: big, MaxPerPort: big, MaxPerDevice: big},
			func(i int) eaptls.Owner { return eaptls.Owner{Client: fmt.Sprint("sw", i), Device: fmt.Sprint("d", i)} },
			nil, eaptls.ErrTableFull},
		{"client", eaptls.TableConfig{MaxSessions: big, MaxPerClient: 3, MaxPerPort: big, MaxPerDevice: big},
			func(i int) eaptls.Owner {
				return eaptls.Owner{Client: "sw1", Port: fmt.Sprint(i), Device: fmt.Sprint("sw1|", i)}
			},
			func(i int) eaptls.Owner { return eaptls.Owner{Client: "sw2", Device: fmt.Sprint("sw2|", i)} },
			eaptls.ErrClientFull},
		{"port", eaptls.TableConfig{MaxSessions: big, MaxPerClient: big, MaxPerPort: 3, MaxPerDevice: big},
			func(i int) eaptls.Owner { return eaptls.Owner{Client: "sw1", Port: "7", Device: fmt.Sprint("sw1|", i)} },
			func(i int) eaptls.Owner {
				return eaptls.Owner{Client: "sw1", Port: "8", Device: fmt.Sprint("sw1|x", i)}
			},
			eaptls.ErrPortFull},
		{"device", eaptls.TableConfig{MaxSessions: big, MaxPerClient: big, MaxPerPort: big, MaxPerDevice: 3},
			func(int) eaptls.Owner { return eaptls.Owner{Client: "sw1", Device: "sw1|a"} },
			func(i int) eaptls.Owner { return eaptls.Owner{Client: "sw1", Device: fmt.Sprint("sw1|b", i)} },
			eaptls.ErrDeviceFull},
	}
	for _, c := range cases {
		t.Run(c.scope, func(t *testing.T) {
			now := testNow
			var evicted []string
			c.cfg.Now = func() time.Time { return now }
			c.cfg.OnEvict = func(s string) { evicted = append(evicted, s) }
			tab := eaptls.NewTable(c.cfg)
			defer tab.Close()
			admit := func(o eaptls.Owner, s *eaptls.Session) string {
				t.Helper()
				now = now.Add(time.Millisecond)
				st, err := tab.Admit(o, s)
				if err != nil {
					t.Fatalf("admit %+v: %v", o, err)
				}
				return st
			}
			live := func(o eaptls.Owner, st string) bool {
				_, ok := tab.Get(st, o.Device)
				return ok
			}
			est := establishedSession(t, f, tls.VersionTLS12)
			stE := admit(c.in(0), est)
			h1, h2 := halfOpen(t, f), halfOpen(t, f)
			st1, st2 := admit(c.in(1), h1), admit(c.in(2), h2)
			// Full: the oldest half-open one makes room, twice.
			st3 := admit(c.in(3), halfOpen(t, f))
			if live(c.in(1), st1) || !live(c.in(2), st2) || !live(c.in(3), st3) || !live(c.in(0), stE) {
				t.Fatal("first eviction: want the oldest half-open conversation gone, the rest live")
			}
			waitDone(t, h1)
			admit(c.in(4), halfOpen(t, f))
			if live(c.in(2), st2) || !live(c.in(3), st3) || !live(c.in(0), stE) {
				t.Fatal("second eviction: want the next oldest half-open one gone")
			}
			if len(evicted) != 2 || evicted[0] != c.scope || evicted[1] != c.scope {
				t.Fatalf("evictions %v, want two in %s", evicted, c.scope)
			}
			if c.out != nil {
				// Another client, port or device is not this scope's business.
				for i := range 3 {
					admit(c.out(i), halfOpen(t, f))
				}
				if !live(c.in(3), st3) {
					t.Fatal("another scope's admissions evicted from this one")
				}
			}
			// Established only: a new identity is refused, nothing evicted.
			tab2 := eaptls.NewTable(c.cfg)
			defer tab2.Close()
			var sts []string
			for i := range 3 {
				st, err := tab2.Admit(c.in(i), establishedSession(t, f, tls.VersionTLS13))
				if err != nil {
					t.Fatal(err)
				}
				sts = append(sts, st)
			}
			if _, err := tab2.Admit(c.in(3), halfOpen(t, f)); !errors.Is(err, c.err) {
				t.Fatalf("got %v, want %v", err, c.err)
			}
			for i, st := range sts {
				if _, ok := tab2.Get(st, c.in(i).Device); !ok {
					t.Fatal("established conversation evicted for a new identity")
				}
			}
		})
	}
}

// TestTableFloodLeavesRoom: a flood of new identities from one client,
// far past every cap, leaves a legitimate conversation from another
// client admitted and its established conversations alone.
func TestTableFloodLeavesRoom(t *testing.T) {
	f := newFixture(t, false, nil)
	now := testNow
	tab := eaptls.NewTable(eaptls.TableConfig{MaxSessions: 64, MaxPerClient: 16, Now: func() time.Time { return now }})
	defer tab.Close()
	good := eaptls.Owner{Client: "sw1", Port: "3", Device: "sw1|good"}
	stE, err := tab.Admit(eaptls.Owner{Client: "sw1", Device: "sw1|est"}, establishedSession(t, f, tls.VersionTLS13))
	if err != nil {
		t.Fatal(err)
	}
	for i := range 500 {
		now = now.Add(time.Millisecond)
		s := f.srv.NewSession(0)
		if _, err := tab.Admit(eaptls.Owner{Client: "evil", Port: fmt.Sprint(i % 4), Device: fmt.Sprint("evil|", i)}, s); err != nil {
			t.Fatalf("flood admission %d refused: %v (it should evict its own)", i, err)
		}
		if i == 250 {
			if _, err := tab.Admit(good, halfOpen(t, f)); err != nil {
				t.Fatalf("legitimate conversation refused during the flood: %v", err)
			}
		}
	}
	if tab.Len() != 16+2 {
		t.Fatalf("len %d, want the flooder's 16 and the other client's 2", tab.Len())
	}
	if _, ok := tab.Get(stE, "sw1|est"); !ok {
		t.Fatal("established conversation lost to the flood")
	}
}
