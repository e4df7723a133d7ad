package edge

import (
	"context"
	"encoding/binary"
	"errors"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mxedge/mxedge/cache"
	"github.com/mxedge/mxedge/proxy"
	"github.com/mxedge/mxedge/proxy/packet"
	"github.com/mxedge/mxedge/proxy/ratelog"
)

// acctStore is the part of the cache that holds accounting for replay.
type acctStore interface {
	HoldAccounting(client string, received time.Time, pkt []byte) (uint64, error)
	HeldAccounting(max int) ([]cache.AcctRecord, error)
	ReleaseAccounting(seqs ...uint64) error
	AccountingLen() int
}

// acctHold answers Accounting-Requests that the cloud cannot take now and
// replays them once it can. An Accounting-Response is a promise that the
// record is safe, so it goes out only after the record is on disk (the
// store commits concurrent holds together); a record the store cannot take
// gets no answer, and the device keeps it and retries.
type acctHold struct {
	store acctStore
	log   *slog.Logger
	warn  *ratelog.Limiter
	now   func() time.Time
	wake  chan struct{}

	held     *prometheus.CounterVec
	replayed *prometheus.CounterVec
}

func newAcctHold(store acctStore, log *slog.Logger, reg prometheus.Registerer) *acctHold {
	h := &acctHold{
		store: store, log: log, now: time.Now, warn: ratelog.New(log, time.Minute, 1, nil),
		wake: make(chan struct{}, 1),
		held: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mxedge_accounting_hold_total",
			Help: "Accounting-Requests the edge kept for the cloud, by result: stored (then answered), full (store at survivability.accounting_store: not answered), error (not answered).",
		}, []string{"result"}),
		replayed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mxedge_accounting_replay_total",
			Help: "Held accounting records sent to the cloud, by result: ok (acknowledged, released), failed (retried later), discarded (unreadable).",
		}, []string{"result"}),
	}
	for _, r := range []string{"stored", "full", "error"} {
		h.held.WithLabelValues(r)
	}
	for _, r := range []string{"ok", "failed", "discarded"} {
		h.replayed.WithLabelValues(r)
	}
	reg.MustRegister(h.held, h.replayed)
	return h
}

// pending reports whether records wait for replay.
func (h *acctHold) pending() bool { return h.store.AccountingLen() > 0 }

// ServeRADIUS holds one Accounting-Request and answers it.
func (h *acctHold) ServeRADIUS(_ context.Context, req *proxy.Request) ([]byte, proxy.Outcome) {
	raw, err := proxy.Encode(make([]byte, 0, packet.MaxLen), req.Packet)
	if err == nil {
		received := req.Received
		if received.IsZero() {
			received = h.now()
		}
		_, err = h.store.HoldAccounting(req.Client.Name, received, raw)
	}
	if err != nil {
		result := "error"
		if errors.Is(err, cache.ErrAccountingFull) {
			result = "full"
		}
		h.held.WithLabelValues(result).Inc()
		h.warn.Log(slog.LevelWarn, result, "accounting not held, so not answered: the device will retry",
			"client", req.Client.Name, "err", err)
		return nil, proxy.OutcomeDropped
	}
	h.held.WithLabelValues("stored").Inc()
	h.kick()
	reply, err := proxy.Reply(req, packet.CodeAccountingResponse, nil)
	if err != nil {
		return nil, proxy.OutcomeDropped
	}
	return reply, proxy.OutcomeLocal
}

func (h *acctHold) kick() {
	select {
	case h.wake <- struct{}{}:
	default:
	}
}

// replayBatch is how many held records one replay round reads; replaySessions
// is how many sessions' records are in flight to the cloud at once;
// replayIdle is how often a replay looks for held records while nothing
// fails.
const (
	replayBatch    = 256
	replaySessions = 16
	replayIdle     = 5 * time.Second
)

// runReplay sends held records to the cloud whenever ready says the cloud
// takes traffic again: in order within each Acct-Session-Id (sessions in
// parallel), each with Acct-Delay-Time raised by the time it was held
// (RFC 2866 §5.2), and releases each once the cloud acknowledged it. A
// record the cloud does not acknowledge stays, and the round ends: the
// next starts again from the oldest record, so order holds. A crash
// between the cloud's answer and the release sends that record again.
func (h *acctHold) runReplay(ctx context.Context, ready func() bool, send func(context.Context, *proxy.Request) error) {
	timer := time.NewTimer(replayIdle)
	defer timer.Stop()
	fails := 0
	for {
		wait := replayIdle
		if fails > 0 {
			// A failing cloud is retried on a backoff, not per new record.
			wait = min(time.Duration(1<<min(fails, 5))*time.Second, time.Minute)
			wait = wait/2 + rand.N(wait/2)
		}
		timer.Reset(wait)
		if !h.sleep(ctx, timer, fails > 0) {
			return
		}
		if !ready() || !h.pending() {
			continue
		}
		if h.replayAll(ctx, send) {
			fails = 0
		} else {
			fails++
		}
	}
}

// sleep waits for timer, or for a newly held record unless the cloud is
// being retried on a backoff; false when ctx ended.
func (h *acctHold) sleep(ctx context.Context, timer *time.Timer, backingOff bool) bool {
	for {
		select {
		case <-ctx.Done():
			return false
		case <-timer.C:
			return true
		case <-h.wake:
			if !backingOff {
				timer.Stop() // no stale tick to drain since Go 1.23
				return true
			}
		}
	}
}

// replayAll replays until nothing is held; false when the cloud failed.
func (h *acctHold) replayAll(ctx context.Context, send func(context.Context, *proxy.Request) error) bool {
	for ctx.Err() == nil {
		recs, err := h.store.HeldAccounting(replayBatch)
		if err != nil {
			h.log.Error("held accounting unreadable", "err", err)
			return false
		}
		if len(recs) == 0 {
			return true
		}
		// Group by session, keeping arrival order in each.
		order := []string{}
		bySession := map[string][]cache.AcctRecord{}
		for _, rec := range recs {
			sid := sessionOf(rec.Packet)
			if _, ok := bySession[sid]; !ok {
				order = append(order, sid)
			}
			bySession[sid] = append(bySession[sid], rec)
		}
		var (
			mu      sync.Mutex
			done    []uint64
			failed  bool
			wg      sync.WaitGroup
			workers = make(chan struct{}, replaySessions)
		)
		for _, sid := range order {
			wg.Add(1)
			workers <- struct{}{}
			go func(recs []cache.AcctRecord) {
				defer wg.Done()
				defer func() { <-workers }()
				for _, rec := range recs {
					req, err := h.rebuild(rec)
					if err == nil {
						err = send(ctx, req)
						if err != nil {
							h.replayed.WithLabelValues("failed").Inc()
							mu.Lock()
							failed = true
							mu.Unlock()
							return // the rest of this session waits its turn
						}
						h.replayed.WithLabelValues("ok").Inc()
					} else {
						h.replayed.WithLabelValues("discarded").Inc()
						h.log.Error("held accounting record unreadable; discarded", "client", rec.Client, "err", err)
					}
					mu.Lock()
					done = append(done, rec.Seq)
					mu.Unlock()
				}
			}(bySession[sid])
		}
		wg.Wait()
		if len(done) > 0 {
			if err := h.store.ReleaseAccounting(done...); err != nil {
				h.log.Error("replayed accounting not released; it will be sent again", "err", err)
				return false
			}
		}
		if failed {
			return false
		}
		h.log.Info("held accounting replayed to the cloud", "records", len(done), "left", h.store.AccountingLen())
	}
	return false
}

// replaySecret signs nothing: a held request is re-signed for the cloud,
// and the answer meant for the device is discarded.
var replaySecret = []byte("replay")

// rebuild turns a held record back into a request with Acct-Delay-Time
// raised by the whole seconds it was held.
func (h *acctHold) rebuild(rec cache.AcctRecord) (*proxy.Request, error) {
	p, err := packet.Parse(rec.Packet)
	if err != nil {
		return nil, err
	}
	held := uint32(max(h.now().Sub(rec.Received), 0) / time.Second)
	found := false
	for i, a := range p.Attrs {
		if a.Type == packet.AttrAcctDelayTime && len(a.Value) == 4 && !found {
			v := make([]byte, 4)
			binary.BigEndian.PutUint32(v, binary.BigEndian.Uint32(a.Value)+held)
			p.Attrs[i].Value = v
			found = true
		}
	}
	if !found {
		v := make([]byte, 4)
		binary.BigEndian.PutUint32(v, held)
		p.Attrs = append(p.Attrs, packet.Attr{Type: packet.AttrAcctDelayTime, Value: v})
	}
	return &proxy.Request{Packet: p, Client: &proxy.Client{Name: rec.Client, Secret: replaySecret}, Received: rec.Received}, nil
}

// sessionOf returns a held request's Acct-Session-Id ("" when it has none
// or cannot be read: such records then go in one ordered group).
func sessionOf(raw []byte) string {
	p, err := packet.Parse(raw)
	if err != nil {
		return ""
	}
	v, _ := p.Lookup(packet.AttrAcctSessionID)
	return string(v)
}
