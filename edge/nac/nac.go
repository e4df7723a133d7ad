package nac

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/mxedge/mxedge/cache"
	"github.com/mxedge/mxedge/edge/nac/eaptls"
	"github.com/mxedge/mxedge/proxy"
	"github.com/mxedge/mxedge/proxy/packet"
)

// sweepInterval is how often idle EAP conversations are closed.
const sweepInterval = 5 * time.Second

// Authenticator answers Access-Requests (EAP-TLS, MAB) and
// Accounting-Requests locally. It implements proxy.Handler.
type Authenticator struct {
	cfg  Config
	log  *slog.Logger
	m    *metrics
	now  func() time.Time
	eap  *eaptls.Server
	sess *eaptls.Table

	events chan cache.Event
	stop   context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once
}

var _ proxy.Handler = (*Authenticator)(nil)

// New returns a running Authenticator; Close stops its goroutines (the
// session sweeper and the event writer) and flushes queued events.
func New(cfg Config) (*Authenticator, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	a := &Authenticator{
		cfg: cfg, log: cfg.Logger, now: cfg.Now, eap: cfg.EAP, sess: cfg.Sessions,
		events: make(chan cache.Event, cfg.EventQueue),
	}
	m, err := newMetrics(cfg.Registerer, a.sess.Len)
	if err != nil {
		return nil, err
	}
	a.m = m
	ctx, stop := context.WithCancel(context.Background())
	a.stop = stop
	a.wg.Add(2)
	go func() { defer a.wg.Done(); a.sess.Run(ctx, sweepInterval) }()
	go func() { defer a.wg.Done(); a.writeEvents() }()
	return a, nil
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
		b, err := a.reply(req, packet.CodeAccountingResponse, nil)
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
		a.log.Warn("local NAC dropped a request", "reason", reason, "err", err)
	}
	return nil, proxy.OutcomeDropped
}

// emit queues an event; when the queue is full the caller waits for room,
// so nothing is lost while the store is slow.
func (a *Authenticator) emit(ev cache.Event) {
	if ev.Time.IsZero() {
		ev.Time = a.now()
	}
	defer func() {
		// Close raced us: write it ourselves rather than lose it.
		if recover() != nil {
			a.append(ev)
		}
	}()
	a.events <- ev
}

// batchStore is what a store offers to write many events in one commit.
// One fsync per event caps a bbolt outbox near a thousand events a second,
// below the decision rate the edge must sustain; a store with
// AppendEvents gets the queue drained in batches.
type batchStore interface {
	AppendEvents([]cache.Event) error
}

// maxEventBatch bounds one batched commit.
const maxEventBatch = 256

// eventLinger is how long the writer waits for more events to share a
// commit. Close flushes what is queued; a kill -9 can lose at most the
// events of this window and the queue, never a committed one.
const eventLinger = 20 * time.Millisecond

func (a *Authenticator) writeEvents() {
	bs, batched := a.cfg.Store.(batchStore)
	batch := make([]cache.Event, 0, maxEventBatch)
	linger := time.NewTimer(time.Hour)
	linger.Stop()
	for ev := range a.events {
		if !batched {
			a.append(ev)
			continue
		}
		batch = append(batch[:0], ev)
		// Linger a moment for more: each commit costs page writes and an
		// fsync, so under load a few commits a second carry every event
		// instead of one commit per handful.
		linger.Reset(eventLinger)
	drain:
		for len(batch) < maxEventBatch {
			select {
			case ev, ok := <-a.events:
				if !ok {
					break drain
				}
				batch = append(batch, ev)
			case <-linger.C:
				break drain
			}
		}
		linger.Stop()
		if err := bs.AppendEvents(batch); err != nil {
			a.m.eventErrors.Add(float64(len(batch)))
			a.log.Error("NAC events not stored", "events", len(batch), "err", err)
		}
	}
}

func (a *Authenticator) append(ev cache.Event) {
	if err := a.cfg.Store.AppendEvent(ev); err != nil {
		a.m.eventErrors.Inc()
		a.log.Error("NAC event not stored", "type", ev.Type, "mac", ev.MAC, "err", err)
	}
}
