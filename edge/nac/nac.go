package nac

import (
	"context"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"time"

	"github.com/mxedge/mxedge/cache"
	"github.com/mxedge/mxedge/edge/nac/eaptls"
	"github.com/mxedge/mxedge/proxy"
	"github.com/mxedge/mxedge/proxy/packet"
	"github.com/mxedge/mxedge/proxy/ratelog"
)

// sweepInterval is how often idle EAP conversations are closed; overdue
// half-open ones go five times as often.
const sweepInterval = 5 * time.Second

// Per-request log lines (a drop, a store error) are limited to logBurst
// per kind in each logInterval; the rest are counted, and the count
// logged, so that a flood costs a few lines rather than megabytes.
const (
	logInterval = 10 * time.Second
	logBurst    = 5
)

// Authenticator answers Access-Requests (EAP-TLS, MAB) and
// Accounting-Requests locally. It implements proxy.Handler.
type Authenticator struct {
	cfg  Config
	log  *slog.Logger
	warn *ratelog.Limiter // per-request lines at Info and above
	m    *metrics
	now  func() time.Time
	eap  *eaptls.Server
	sess *eaptls.Table

	events chan queued
	batch  batchStore           // nil when the store writes one event at a time
	encs   []cache.EncodedEvent // the writer's, reused for each batch
	// kick ends the writer's linger early when the queue is half full.
	kick chan struct{}
	stop context.CancelFunc
	wg   sync.WaitGroup
	once sync.Once
}

var _ proxy.Handler = (*Authenticator)(nil)

// New returns a running Authenticator; Close stops its goroutines (the
// session sweeper and the event writer) and flushes queued events.
func New(cfg Config) (*Authenticator, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	a := &Authenticator{
		cfg: cfg, log: cfg.Logger, now: cfg.Now, eap: cfg.EAP,
		warn:   ratelog.New(cfg.Logger, logInterval, logBurst, cfg.Now),
		events: make(chan queued, cfg.EventQueue),
		kick:   make(chan struct{}, 1),
	}
	m, err := newMetrics(cfg.Registerer, func() int { return a.sess.Len() })
	if err != nil {
		return nil, err
	}
	a.m = m
	if a.sess = cfg.Sessions; a.sess == nil {
		a.sess = eaptls.NewTable(eaptls.TableConfig{Now: cfg.Now,
			OnEvict: func(scope string) { m.evicted.WithLabelValues(scope).Inc() }})
	}
	a.batch, _ = cfg.Store.(batchStore)
	ctx, stop := context.WithCancel(context.Background())
	a.stop = stop
	a.wg.Add(3)
	go func() {
		defer a.wg.Done()
		// A panic in a sweep restarts the sweeper after a backoff; the
		// table's lock is released by its deferred unlocks.
		for fails := 0; a.recovered("session_sweeper", func() { a.sess.Run(ctx, sweepInterval) }) && ctx.Err() == nil; fails++ {
			select {
			case <-ctx.Done():
			case <-time.After(min(time.Second<<min(fails, 6), time.Minute)):
			}
		}
	}()
	go func() { defer a.wg.Done(); a.writeEvents() }()
	go func() { defer a.wg.Done(); a.flushLogs(ctx) }()
	return a, nil
}

// flushLogs reports the counts of suppressed lines every logInterval, and
// all of them at the end.
func (a *Authenticator) flushLogs(ctx context.Context) {
	tk := time.NewTicker(logInterval)
	defer tk.Stop()
	for {
		select {
		case <-ctx.Done():
			a.warn.Close()
			return
		case <-tk.C:
			a.warn.Flush()
		}
	}
}

// Close ends every conversation and writes the events still queued, or
// gives up when ctx ends.
func (a *Authenticator) Close(ctx context.Context) error {
	a.once.Do(func() {
		a.stop()
		close(a.events)
	})
	done := make(chan struct{})
	go func() { a.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Inline reports whether req is answered from memory on the caller's
// goroutine: everything but EAP, whose TLS engine runs on its own
// goroutine and may take a millisecond of CPU per step, and, with events
// committed before the answer, every Access-Request, whose answer waits
// for the disk.
func (a *Authenticator) Inline(req *proxy.Request) bool {
	if !a.cfg.BatchedEvents && req.Packet.Code == packet.CodeAccessRequest {
		return false
	}
	return req.Packet.Count(packet.AttrEAPMessage) == 0
}

// debug reports whether debug lines are logged. Building a line's
// arguments allocates even when the level is off, once per decision.
func (a *Authenticator) debug() bool {
	return a.log.Enabled(context.Background(), slog.LevelDebug)
}

// ServeRADIUS answers one request from a NAS.
func (a *Authenticator) ServeRADIUS(_ context.Context, req *proxy.Request) ([]byte, proxy.Outcome) {
	p := req.Packet
	switch p.Code {
	case packet.CodeAccessRequest:
		if p.Count(packet.AttrEAPMessage) > 0 {
			if !req.HasMessageAuthenticator {
				// RFC 3579 §3.2; the UDP server already drops these, but
				// this handler may sit behind other listeners.
				return a.drop("eap_without_message_authenticator", nil)
			}
			return a.serveEAP(req)
		}
		return a.servePAP(req)
	case packet.CodeAccountingRequest:
		// The accounting belongs to the cloud, which cannot take it now;
		// answering stops NASes from retrying forever.
		b, err := proxy.Reply(req, packet.CodeAccountingResponse, nil)
		if err != nil {
			return a.drop("encode", err)
		}
		return b, proxy.OutcomeLocal
	}
	return a.drop("unsupported_code", nil)
}

func (a *Authenticator) drop(reason string, err error) ([]byte, proxy.Outcome) {
	a.m.dropped.WithLabelValues(reason).Inc()
	if err != nil {
		a.warn.Log(slog.LevelWarn, "drop:"+reason, "local NAC dropped a request", "reason", reason, "err", err)
	}
	return nil, proxy.OutcomeDropped
}

// queued is an event waiting for the writer: encoded by the decision's
// goroutine for a batch store, as is for any other.
type queued struct {
	ev  cache.Event
	enc cache.EncodedEvent
	// done, when set, gets a value once the event's commit is over
	// (successful or not): the decision waiting on it may answer.
	done chan struct{}
}

// emit queues the last event of a decision and, unless BatchedEvents,
// waits for its commit: the writer commits in order, so the decision's
// earlier events are then on disk too.
func (a *Authenticator) emit(ev cache.Event, f fields) {
	if a.cfg.BatchedEvents {
		a.queue(ev, f, nil)
		return
	}
	// One small allocation per decision; next to the commit it waits for,
	// a pool would save nothing worth its sharing.
	done := make(chan struct{}, 1)
	a.queue(ev, f, done)
	<-done
}

// queue queues an event with fields (ev.Fields is not read); when the
// queue is full the caller waits for room, so nothing is lost while the
// store is slow. The caller may change f afterwards: a batch store's
// record is encoded here, and any other store gets a map of its own.
// done, if not nil, is signalled once the event's commit is over.
func (a *Authenticator) queue(ev cache.Event, f fields, done chan struct{}) {
	if ev.Time.IsZero() {
		ev.Time = a.now()
	}
	if a.cfg.OnDecision != nil {
		a.cfg.OnDecision(ev, f)
	}
	var q queued
	if a.batch != nil {
		enc, err := a.batch.EncodeEventFields(ev, f)
		if err != nil {
			a.m.eventErrors.Inc()
			a.warn.Log(slog.LevelError, "event_encode", "NAC event not stored", "type", ev.Type, "mac", ev.MAC, "err", err)
			if done != nil {
				done <- struct{}{}
			}
			return
		}
		q.enc = enc
	} else {
		ev.Fields = f.toMap()
		q.ev = ev
	}
	q.done = done
	defer func() {
		// Close raced us: write it ourselves rather than lose it.
		if recover() != nil {
			a.storeAlone(q)
		}
	}()
	a.events <- q
	if len(a.events) >= cap(a.events)/2 {
		select {
		case a.kick <- struct{}{}:
		default:
		}
	}
}

// batchStore is what a store offers to write many events in one commit.
// One fsync per event caps a bbolt outbox near a thousand events a second,
// below the decision rate the edge must sustain; a store with
// AppendEncoded gets the queue drained in batches.
type batchStore interface {
	EncodeEventFields(cache.Event, []cache.Field) (cache.EncodedEvent, error)
	AppendEncoded([]cache.EncodedEvent) error
}

// maxEventBatch bounds one batched commit (about 1 MB of events). At
// 256 a busy edge committed, and paid an fdatasync, 170 times a second.
const maxEventBatch = 4096

// EventLinger is how long the writer waits, with BatchedEvents, for more
// events to share a commit. Close flushes what is queued; a kill -9 can
// lose at most the events of this window, of the commit under way and of
// the queue, never a committed one. Without BatchedEvents the writer does
// not linger: the events that arrive during one commit make the next.
const EventLinger = 20 * time.Millisecond

func (a *Authenticator) writeEvents() {
	hb := a.cfg.Heartbeats.Register("nac event writer")
	defer hb.Done()
	batch := make([]queued, 0, maxEventBatch)
	linger := time.NewTimer(time.Hour)
	linger.Stop()
	for {
		hb.Idle()
		q, ok := <-a.events
		if !ok {
			return
		}
		hb.Beat()
		batch = append(batch[:0], q)
		if a.batch == nil {
			a.store(batch)
			continue
		}
		// Linger a moment for more: each commit costs page writes and an
		// fsync, so under load a few commits a second carry every event
		// instead of one commit per handful. The writer sleeps through
		// the linger rather than taking events as they come: waking it
		// for each one cost a goroutine switch per decision.
		if a.cfg.BatchedEvents && len(a.events) < cap(a.events)/2 {
			linger.Reset(EventLinger)
			select {
			case <-linger.C:
			case <-a.kick:
				linger.Stop()
			}
		}
	drain:
		for len(batch) < maxEventBatch {
			select {
			case q, ok := <-a.events:
				if !ok {
					break drain
				}
				batch = append(batch, q)
			default:
				break drain
			}
		}
		a.store(batch)
		clear(batch) // let the records go before the next linger
	}
}

// storeAlone writes q outside the writer (which may still be running
// and owns a.encs), for an event that raced Close.
func (a *Authenticator) storeAlone(q queued) {
	if a.batch == nil {
		a.store([]queued{q})
		return
	}
	if err := a.batch.AppendEncoded([]cache.EncodedEvent{q.enc}); err != nil {
		a.m.eventErrors.Inc()
		a.warn.Log(slog.LevelError, "event_store_batch", "NAC events not stored", "events", 1, "err", err)
	}
	if q.done != nil {
		q.done <- struct{}{}
	}
}

// recovered runs f and reports whether it panicked, counting and
// logging the panic.
func (a *Authenticator) recovered(goroutine string, f func()) (panicked bool) {
	defer func() {
		if r := recover(); r != nil {
			panicked = true
			a.m.panics.WithLabelValues(goroutine).Inc()
			a.warn.Log(slog.LevelError, "panic:"+goroutine, "local NAC background goroutine panicked; it goes on",
				"goroutine", goroutine, "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
		}
	}()
	f()
	return false
}

// store writes qs: in one commit to a batch store, else one by one; then
// it releases the decisions waiting on them. A store that panics (a
// damaged bbolt file can) loses this batch, counted as event errors, and
// not the writer: the events behind it are still written.
func (a *Authenticator) store(qs []queued) {
	defer func() {
		for _, q := range qs {
			if q.done != nil {
				q.done <- struct{}{}
			}
		}
	}()
	if a.recovered("event_writer", func() { a.storeBatch(qs) }) {
		a.m.eventErrors.Add(float64(len(qs)))
		a.encs = a.encs[:0]
	}
}

func (a *Authenticator) storeBatch(qs []queued) {
	if a.batch == nil {
		for _, q := range qs {
			if err := a.cfg.Store.AppendEvent(q.ev); err != nil {
				a.m.eventErrors.Inc()
				a.warn.Log(slog.LevelError, "event_store", "NAC event not stored", "type", q.ev.Type, "mac", q.ev.MAC, "err", err)
			}
		}
		return
	}
	encs := a.encs[:0]
	for i := range qs {
		encs = append(encs, qs[i].enc)
	}
	err := a.batch.AppendEncoded(encs)
	clear(encs)
	a.encs = encs[:0]
	if err != nil {
		a.m.eventErrors.Add(float64(len(qs)))
		a.warn.Log(slog.LevelError, "event_store_batch", "NAC events not stored", "events", len(qs), "err", err)
	}
}
