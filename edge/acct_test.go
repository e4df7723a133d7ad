package edge

import (
	"context"
	"encoding/binary"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/mxedge/mxedge/cache"
	"github.com/mxedge/mxedge/proxy"
	"github.com/mxedge/mxedge/proxy/packet"
)

func openTestCache(t *testing.T, maxAcct int) *cache.Store {
	t.Helper()
	s, err := cache.Open(filepath.Join(t.TempDir(), "cache.db"), cache.Options{MaxAccounting: maxAcct})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func acctReq(t *testing.T, session string, n int) *proxy.Request {
	t.Helper()
	seq := make([]byte, 4)
	binary.BigEndian.PutUint32(seq, uint32(n))
	return newReq(t, packet.CodeAccountingRequest,
		packet.Attr{Type: packet.AttrAcctStatusType, Value: []byte{0, 0, 0, 3}},
		packet.Attr{Type: packet.AttrAcctSessionID, Value: []byte(session)},
		packet.Attr{Type: 46, Value: seq}, // Acct-Session-Time: the record's place in its session
		packet.Attr{Type: packet.AttrAcctDelayTime, Value: []byte{0, 0, 0, 2}},
	)
}

func attrU32(p *packet.Packet, t uint8) uint32 {
	v, ok := p.Lookup(t)
	if !ok || len(v) != 4 {
		return 0
	}
	return binary.BigEndian.Uint32(v)
}

// Held accounting is answered only once stored, and replayed in order per
// session with Acct-Delay-Time raised by the time held; what the cloud does
// not acknowledge stays for the next round.
func TestAcctHoldAndReplay(t *testing.T) {
	store := openTestCache(t, 0)
	h := newAcctHold(store, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	now := time.Now()
	h.now = func() time.Time { return now }
	for i := range 30 {
		req := acctReq(t, []string{"s-a", "s-b", "s-c"}[i%3], i)
		req.Received = now.Add(-time.Minute)
		reply, out := h.ServeRADIUS(t.Context(), req)
		if out != proxy.OutcomeLocal || code(reply) != packet.CodeAccountingResponse {
			t.Fatalf("hold %d: %s %s", i, code(reply), out)
		}
		rp, err := packet.Parse(reply)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := packet.VerifyResponse(rp, req.Packet.Authenticator, testClient.Secret); err != nil {
			t.Fatalf("reply does not verify with the client's secret: %v", err)
		}
	}
	if !h.pending() || store.AccountingLen() != 30 {
		t.Fatalf("held %d", store.AccountingLen())
	}

	var mu sync.Mutex
	got := map[string][]uint32{}
	failSession := "s-b"
	send := func(_ context.Context, req *proxy.Request) error {
		sid, _ := req.Packet.Lookup(packet.AttrAcctSessionID)
		if string(sid) == failSession && attrU32(req.Packet, 46) >= 10 {
			return proxy.ErrTimeout
		}
		if d := attrU32(req.Packet, packet.AttrAcctDelayTime); d != 62 {
			t.Errorf("Acct-Delay-Time %d, want 2 + 60 held", d)
		}
		mu.Lock()
		got[string(sid)] = append(got[string(sid)], attrU32(req.Packet, 46))
		mu.Unlock()
		return nil
	}
	if h.replayAll(t.Context(), send) {
		t.Fatal("replay reported success with a session failing")
	}
	// s-b's records from 10 on stay, in order; everything else went once.
	if n := store.AccountingLen(); n != 7 {
		t.Fatalf("%d left after a partial replay, want 7", n)
	}
	failSession = ""
	if !h.replayAll(t.Context(), send) {
		t.Fatal("second replay failed")
	}
	for _, sid := range []string{"s-a", "s-b", "s-c"} {
		seq := got[sid]
		if len(seq) != 10 {
			t.Fatalf("%s: %d records replayed, want 10: %v", sid, len(seq), seq)
		}
		for i := 1; i < len(seq); i++ {
			if seq[i] <= seq[i-1] {
				t.Fatalf("%s out of order: %v", sid, seq)
			}
		}
	}
	if h.pending() {
		t.Fatal("records left after a full replay")
	}
	if got := testutil.ToFloat64(h.replayed.WithLabelValues("ok")); got != 30 {
		t.Fatalf("replayed ok = %v", got)
	}
}

// A full hold answers nothing: the device keeps the record and retries,
// and nothing held before is evicted.
func TestAcctHoldFull(t *testing.T) {
	store := openTestCache(t, 1000)
	h := newAcctHold(store, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	for i := range 1000 {
		if reply, _ := h.ServeRADIUS(t.Context(), acctReq(t, "s", i)); reply == nil {
			t.Fatalf("record %d refused", i)
		}
	}
	reply, out := h.ServeRADIUS(t.Context(), acctReq(t, "s", 1000))
	if reply != nil || out != proxy.OutcomeDropped {
		t.Fatalf("full hold answered: %s %s", code(reply), out)
	}
	if got := testutil.ToFloat64(h.held.WithLabelValues("full")); got != 1 {
		t.Fatalf("full = %v", got)
	}
	if !store.Stats().AccountingFull || store.AccountingLen() != 1000 {
		t.Fatalf("stats %+v", store.Stats())
	}
}

// Accounting does not overtake held accounting: while records wait for
// replay, new ones are held behind them even in cloud mode.
func TestRouterAccountingQueuesBehindHeld(t *testing.T) {
	cloud := &fakeCloud{}
	r, _ := testRouter(t, cloud)
	r.health.observe(true, true, "")
	store := openTestCache(t, 0)
	r.hold = newAcctHold(store, slog.New(slog.DiscardHandler), prometheus.NewRegistry())

	if reply, _ := r.ServeRADIUS(t.Context(), acctReq(t, "s", 1)); code(reply) != packet.CodeAccountingResponse || cloud.seen.Load() != 1 {
		t.Fatalf("nothing held: reply %s, cloud saw %d", code(reply), cloud.seen.Load())
	}
	if _, err := store.HoldAccounting("sw", time.Now(), []byte{4, 1, 0, 20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}); err != nil {
		t.Fatal(err)
	}
	if reply, _ := r.ServeRADIUS(t.Context(), acctReq(t, "s", 2)); code(reply) != packet.CodeAccountingResponse || cloud.seen.Load() != 1 {
		t.Fatalf("behind a held record: reply %s, cloud saw %d", code(reply), cloud.seen.Load())
	}
	if n := store.AccountingLen(); n != 2 {
		t.Fatalf("held %d, want 2", n)
	}
	if r.Inline(acctReq(t, "s", 3)) {
		t.Fatal("held accounting served inline: it waits for the disk")
	}
}
