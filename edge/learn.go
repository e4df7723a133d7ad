package edge

import (
	"context"
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"log/slog"
	"runtime/debug"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mxedge/mxedge/cache"
	"github.com/mxedge/mxedge/edge/config"
	"github.com/mxedge/mxedge/edge/nac"
	"github.com/mxedge/mxedge/proxy"
	"github.com/mxedge/mxedge/proxy/packet"
	"github.com/mxedge/mxedge/proxy/ratelog"
)

// Learning from the proxy path (cloud.learn_from_accepts): when the cloud
// accepts a MAB or EAP-TLS client through this edge, the client is cached
// at once, so a WAN cut minutes after its first login still finds it
// instead of waiting up to a sync interval for the cloud to list it.
//
// For EAP-TLS the edge only sees the outer User-Name: the certificate
// travels inside the TLS tunnel between the client and the cloud. The
// learned entry is keyed by that outer identity, while the local NAC looks
// entries up by the certificate's identity (CN, then SAN UPN, email, DNS).
// Learning an EAP-TLS client therefore helps only where the supplicant's
// outer identity equals that certificate identity, which is the usual
// setup (the CN or UPN as identity) but not a given; the cloud sync, which
// knows the certificate, covers the rest.

// learnQueue bounds what waits to be written; past it learned clients are
// dropped (and counted): the sync brings them anyway.
const learnQueue = 256

// eapTypeTLS is the EAP method type of EAP-TLS (RFC 5216).
const eapTypeTLS = 13

// Attribute types learn.go reads (RFC 2865 §5), by number.
const (
	attrFilterIDNum       = 11
	attrClassNum          = 25
	attrSessionTimeoutNum = 27
)

// eapCodeResponse is the EAP Response code (RFC 3748 §4).
const eapCodeResponse = 2

// maxTunnelTag is the largest tag of a tagged tunnel attribute (RFC 2868
// §3.1): a first octet above it is data, not a tag.
const maxTunnelTag = 0x1F

// learner writes learned entries from one goroutine, off the request path.
type learner struct {
	store   *cache.Store
	sites   map[string]bool // cloud.caching_site_ids; empty learns every site
	log     *slog.Logger
	now     func() time.Time
	q       chan cache.Entry
	done    chan struct{}
	mu      sync.RWMutex // closed and close(q) against offers
	closed  bool
	learned *prometheus.CounterVec
	dropped prometheus.Counter
	// warn limits "not cached" lines, one per batch while the cache
	// fails, to a few per interval with the count of the rest.
	warn   *ratelog.Limiter
	failed prometheus.Counter
	panics prometheus.Counter
	// hb reports the writer to the watchdog: idle on an empty queue, a
	// beat per batch taken, so a write stuck on the disk withholds the
	// ping.
	hb proxy.Heartbeat

	rmu    sync.Mutex
	recent map[string]recentLearn // learned lately, by cache key
}

// newLearner starts the writer; panics is its child of
// mxedge_panics_total; hb registers it with the watchdog (nil: none).
func newLearner(store *cache.Store, log *slog.Logger, reg prometheus.Registerer, panics prometheus.Counter, hb proxy.Heartbeats, now func() time.Time) *learner {
	l := &learner{
		store: store, log: log, now: now, panics: panics,
		hb:     hb.Register("cache learner"),
		warn:   ratelog.New(log, 10*time.Second, 5, now),
		q:      make(chan cache.Entry, learnQueue),
		done:   make(chan struct{}),
		recent: make(map[string]recentLearn),
		learned: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mxedge_cache_learned_total",
			Help: "Clients cached from cloud Access-Accepts on the proxy path, by auth type.",
		}, []string{"auth_type"}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mxedge_cache_learn_dropped_total",
			Help: "Learned clients not cached because the write queue was full.",
		}),
		failed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mxedge_cache_learn_errors_total",
			Help: "Learned clients the cache refused to store.",
		}),
	}
	for _, at := range []string{cache.AuthMAB, cache.AuthEAPTLS} {
		l.learned.WithLabelValues(at)
	}
	reg.MustRegister(l.learned, l.dropped, l.failed)
	go l.run()
	return l
}

// learnBatch bounds the entries written in one transaction.
const learnBatch = 256

// run writes what is offered until stop. A panic costs the batch being
// written (forgotten, so the next accept offers it again) and the loop
// goes on with the queue.
func (l *learner) run() {
	defer close(l.done)
	defer l.hb.Done()
	defer l.warn.Close()
	batch := make([]cache.Entry, 0, learnBatch)
	for l.recovered(&batch) {
	}
}

// recovered runs write and reports whether it panicked.
func (l *learner) recovered(batch *[]cache.Entry) (panicked bool) {
	defer func() {
		if r := recover(); r != nil {
			panicked = true
			l.forget(*batch)
			l.panics.Inc()
			l.log.Error("learner panicked; its batch is dropped and it restarts", "panic", fmt.Sprint(r),
				"entries", len(*batch), "stack", string(debug.Stack()))
		}
	}()
	l.write(batch)
	return false
}

// write takes offers off the queue in batches until it is closed.
func (l *learner) write(bp *[]cache.Entry) {
	for {
		l.hb.Idle()
		e, ok := <-l.q
		if !ok {
			return
		}
		l.hb.Beat()
		l.warn.Flush() // counts of lines held back in an interval now over
		// Whatever queued up behind e goes in the same transaction.
		*bp = append((*bp)[:0], e)
		batch := *bp
	more:
		for len(batch) < learnBatch {
			select {
			case e, ok := <-l.q:
				if !ok {
					break more
				}
				batch = append(batch, e)
				*bp = batch
			default:
				break more
			}
		}
		if err := l.store.UpsertMany(batch); err != nil {
			l.failed.Add(float64(len(batch)))
			l.warn.Log(slog.LevelWarn, "not_cached", "learned clients not cached", "entries", len(batch), "err", err)
			l.forget(batch)
			continue
		}
		for _, e := range batch {
			l.learned.WithLabelValues(e.AuthType).Inc()
			if l.log.Enabled(context.Background(), slog.LevelDebug) {
				l.log.Debug("client learned from cloud accept", "key", e.Key().String(), "auth_type", e.AuthType, "vlan", e.Authorization.VLAN)
			}
		}
	}
}

// learnRefresh is how long a learned client with unchanged authorization
// is not written again. Entries live days, so refreshing their start
// every few minutes costs nothing in coverage, while writing on every
// accept would put an fsync behind each one.
const learnRefresh = 10 * time.Minute

// maxRecent bounds the memory of recently learned clients.
const maxRecent = 1 << 16

type recentLearn struct {
	at  time.Time
	sig uint64
}

// fresh reports whether e was learned with the same authorization within
// learnRefresh, and remembers it otherwise.
func (l *learner) fresh(e *cache.Entry, now time.Time) bool {
	k, sig := e.Key().String(), authSignature(&e.Authorization)
	l.rmu.Lock()
	defer l.rmu.Unlock()
	if r, ok := l.recent[k]; ok && r.sig == sig && now.Sub(r.at) < learnRefresh {
		return true
	}
	if len(l.recent) >= maxRecent {
		clear(l.recent) // at worst a burst of rewrites, never unbounded
	}
	l.recent[k] = recentLearn{at: now, sig: sig}
	return false
}

// forget drops entries that could not be written, so the next accept
// tries again.
func (l *learner) forget(batch []cache.Entry) {
	l.rmu.Lock()
	defer l.rmu.Unlock()
	for i := range batch {
		delete(l.recent, batch[i].Key().String())
	}
}

func authSignature(a *cache.Authorization) uint64 {
	h := fnv.New64a()
	fmt.Fprintf(h, "%s\x00%s\x00%d", a.VLAN, a.Role, a.SessionTimeout)
	for _, at := range a.Attributes {
		fmt.Fprintf(h, "\x00%s\x00%d\x00%d\x00%d\x00%s\x00%x", at.Name, at.Type, at.VendorID, at.VendorType, at.Value, at.Raw)
	}
	return h.Sum64()
}

// offer queues e without blocking, unless it was learned just now.
func (l *learner) offer(e cache.Entry) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.closed {
		return // shutting down: a request that outlived Shutdown's deadline
	}
	if l.fresh(&e, l.now()) {
		return
	}
	select {
	case l.q <- e:
	default:
		l.dropped.Inc()
		l.forget([]cache.Entry{e}) // not written: the next accept tries again
	}
}

// stop writes what is queued and returns; later offers are ignored.
func (l *learner) stop() {
	l.mu.Lock()
	if !l.closed {
		l.closed = true
		close(l.q)
	}
	l.mu.Unlock()
	<-l.done
}

// startLearning returns the router's learn hook, or nil when learning is
// off or there is no cache to learn into. With cloud.caching_site_ids set,
// only clients of those sites are learned, the site being the NAS's
// radius.clients[].site (the cloud's site id in a cloud-managed config).
func (a *App) startLearning(cfg *config.Config, store *cache.Store) func(*proxy.Request, []byte) {
	if !cfg.Cloud.LearnFromAccepts || store == nil {
		return nil
	}
	l := newLearner(store, a.log.With("component", "learn"), a.reg, a.panics.WithLabelValues("learner"), a.heartbeat, time.Now)
	if len(cfg.Cloud.CachingSiteIDs) > 0 {
		l.sites = map[string]bool{}
		for _, s := range cfg.Cloud.CachingSiteIDs {
			l.sites[s] = true
		}
	}
	a.side.learner = l
	return a.learnFromAccept
}

// learnFromAccept is the router's learn hook: it runs on the request's
// goroutine after every answered cloud forward and only queues.
func (a *App) learnFromAccept(req *proxy.Request, reply []byte) {
	l := a.side.learner
	if l == nil {
		return
	}
	if e, ok := learnedEntry(req, reply, l.now()); ok && (l.sites == nil || l.sites[e.Site]) {
		l.offer(e)
	}
}

// learnedEntry builds the cache entry a cloud reply grants, if the reply
// is an Access-Accept for a MAB or EAP-TLS request.
func learnedEntry(req *proxy.Request, reply []byte, now time.Time) (cache.Entry, bool) {
	if req == nil || req.Packet == nil || req.Packet.Code != packet.CodeAccessRequest || len(reply) == 0 ||
		packet.Code(reply[0]) != packet.CodeAccessAccept {
		return cache.Entry{}, false
	}
	p, err := packet.Parse(reply)
	if err != nil {
		return cache.Entry{}, false
	}
	e := cache.Entry{LastAuthAt: now}
	if req.Client != nil {
		e.Site = req.Client.Site
	}
	user, _ := req.Packet.Lookup(packet.AttrUserName)
	csid, _ := req.Packet.Lookup(packet.AttrCallingStationID)
	switch {
	case req.Packet.Count(packet.AttrEAPMessage) > 0:
		mac, ok := cache.NormalizeMAC(string(csid))
		if !ok || len(user) == 0 || eapMethod(req.Packet) != eapTypeTLS {
			return cache.Entry{}, false
		}
		e.MAC, e.AuthType = mac, cache.AuthEAPTLS
		e.Identity.UserName = string(user)
	default:
		mac, ok := nac.MABAddress(req)
		if !ok {
			return cache.Entry{}, false
		}
		e.MAC, e.AuthType = mac, cache.AuthMAB
		e.Identity.UserName = string(user)
	}
	e.Authorization = authorizationOf(p)
	return e, true
}

// eapMethod returns the method type of the EAP-Response the request
// carries (0 if none): the request the cloud accepts answers the last
// challenge, so for EAP-TLS it is a TLS response.
func eapMethod(p *packet.Packet) uint8 {
	msg, _ := p.Lookup(packet.AttrEAPMessage) // the EAP header is in the first fragment
	if len(msg) < 5 || msg[0] != eapCodeResponse {
		return 0
	}
	return msg[4]
}

// authorizationOf turns an Access-Accept into what the cache replays:
// VLAN, Session-Timeout and Filter-Id (as role) into their fields, the
// rest raw. Attributes that are per-request, per-secret or encrypted with
// the NAS's secret and this request's authenticator are not kept.
func authorizationOf(p *packet.Packet) cache.Authorization {
	var az cache.Authorization
	for _, at := range p.Attrs {
		switch at.Type {
		case packet.AttrTunnelPrivateGroupID:
			v := at.Value
			if len(v) > 0 && v[0] <= maxTunnelTag {
				v = v[1:] // RFC 2868 tag octet
			}
			if az.VLAN == "" {
				az.VLAN = string(v)
			}
		case attrSessionTimeoutNum:
			if len(at.Value) == 4 {
				az.SessionTimeout = time.Duration(binary.BigEndian.Uint32(at.Value)) * time.Second
			}
		case attrFilterIDNum:
			if az.Role == "" {
				az.Role = string(at.Value)
				continue
			}
			az.Attributes = append(az.Attributes, rawAttr(at.Type, 0, 0, at.Value))
		case packet.AttrVendorSpecific:
			vsas, ok := packet.ParseVSA(at.Value, nil)
			if !ok {
				continue // not the common layout: nothing the cache can replay
			}
			for _, v := range vsas {
				if v.Vendor == packet.VendorMicrosoft && (v.Type == packet.MSMPPESendKey || v.Type == packet.MSMPPERecvKey) {
					continue
				}
				az.Attributes = append(az.Attributes, rawAttr(packet.AttrVendorSpecific, v.Vendor, v.Type, v.Value))
			}
		case packet.AttrMessageAuthenticator, packet.AttrEAPMessage, packet.AttrState, packet.AttrProxyState,
			packet.AttrTunnelPassword, packet.AttrUserPassword, packet.AttrCHAPPassword, attrClassNum,
			packet.AttrTunnelType, packet.AttrTunnelMediumType:
			// The VLAN trio is rebuilt from VLAN; Class belongs to one
			// session's accounting; the others are per request or secret.
		default:
			az.Attributes = append(az.Attributes, rawAttr(at.Type, 0, 0, at.Value))
		}
	}
	return az
}

func rawAttr(typ uint8, vendor uint32, vtype uint8, v []byte) cache.Attribute {
	a := cache.Attribute{Type: typ, VendorID: vendor, VendorType: vtype, Raw: append([]byte(nil), v...)}
	if vendor != 0 {
		a.Name = fmt.Sprintf("Vendor-%d-Attr-%d", vendor, vtype)
	} else {
		a.Name = fmt.Sprintf("Attr-%d", typ)
	}
	return a
}
