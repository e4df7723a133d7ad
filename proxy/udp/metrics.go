package udp

import (
	"errors"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mxedge/mxedge/proxy"
	"github.com/mxedge/mxedge/proxy/internal/dedup"
	"github.com/mxedge/mxedge/proxy/packet"
)

// reason is why a datagram was dropped: the value of the reason label.
type reason uint8

const (
	reasonUnknownClient reason = iota
	reasonMalformed
	reasonUnexpectedCode
	reasonMissingMA
	reasonProxyStateWithoutMA
	reasonEAPWithoutMA
	reasonBadMA
	reasonBadAuthenticator
	reasonOverloaded
	reasonPanic
	reasonWriteError
	reasonDuplicateMA
	reasonAuthRateLimited
	numReasons
)

var reasonNames = [numReasons]string{
	reasonUnknownClient:       "unknown_client",
	reasonMalformed:           "malformed",
	reasonUnexpectedCode:      "unexpected_code",
	reasonMissingMA:           "missing_message_authenticator",
	reasonProxyStateWithoutMA: "proxy_state_without_message_authenticator",
	reasonEAPWithoutMA:        "eap_without_message_authenticator",
	reasonBadMA:               "bad_message_authenticator",
	reasonBadAuthenticator:    "bad_authenticator",
	reasonOverloaded:          "overloaded",
	reasonPanic:               "panic",
	reasonWriteError:          "write_error",
	reasonDuplicateMA:         "duplicate_message_authenticator",
	reasonAuthRateLimited:     "auth_failures_rate_limited",
}

func (r reason) String() string { return reasonNames[r] }

// Outcomes the server adds to the handler's.
const (
	outcomeDuplicateInProgress = "duplicate_in_progress"
	outcomeDuplicateAnswered   = "duplicate_answered"
	outcomeAbandoned           = "abandoned" // superseded by a new request with the same ID
)

type metrics struct {
	requests *prometheus.CounterVec // client, code, outcome
	maSeen   *prometheus.CounterVec // client, present
	// children caches the per-client counters: resolving them through the
	// vectors costs label validation, hashing and a lock on every packet.
	// It grows with the distinct client names, like the vectors do.
	children sync.Map // childKey → prometheus.Counter
	drops    [numReasons]prometheus.Counter
	// evictions from the duplicate cache, by cause.
	evictEntries, evictBytes prometheus.Counter
	rcvbuf                   prometheus.Gauge // last socket sized
	// duration by code, resolved up front for the three codes we accept.
	durAccess, durAcct, durStatus prometheus.Observer
}

// Several servers (auth and acct, each on several sockets) share one
// registry, so a collector someone registered already is reused.
func register[C prometheus.Collector](r prometheus.Registerer, c C) (C, error) {
	if err := r.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing, nil
			}
		}
		return c, err
	}
	return c, nil
}

// The daemon wraps r with the listener label (auth or acct), so these
// carry none of their own.
func newMetrics(r prometheus.Registerer) (*metrics, error) {
	requests, err := register(r, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "mxedge_requests_total",
		Help: "RADIUS requests received from clients, by client, code and outcome.",
	}, []string{"client", "code", "outcome"}))
	if err != nil {
		return nil, err
	}
	drops, err := register(r, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "mxedge_drops_total",
		Help: "Datagrams and requests dropped without an answer, by reason.",
	}, []string{"reason"}))
	if err != nil {
		return nil, err
	}
	dur, err := register(r, prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "mxedge_request_duration_seconds",
		Help:    "Time from receiving a request to sending its answer, by code.",
		Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
	}, []string{"code"}))
	if err != nil {
		return nil, err
	}
	maSeen, err := register(r, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "mxedge_client_message_authenticator_total",
		Help: "Access-Requests by client and whether they carried a Message-Authenticator; shows which devices are ready before it is required.",
	}, []string{"client", "present"}))
	if err != nil {
		return nil, err
	}
	evict, err := register(r, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "mxedge_duplicate_cache_evictions_total",
		Help: "Duplicate-cache entries evicted before their window passed, by cause (entries or bytes bound reached); a rise means retransmissions may be handled twice.",
	}, []string{"cause"}))
	if err != nil {
		return nil, err
	}
	rcvbuf, err := register(r, prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "mxedge_udp_receive_buffer_bytes",
		Help: "Socket receive buffer the kernel granted to the last socket sized (the size asked for when granted in full).",
	}))
	if err != nil {
		return nil, err
	}
	m := &metrics{requests: requests, maSeen: maSeen, rcvbuf: rcvbuf,
		evictEntries: evict.WithLabelValues(string(dedup.CauseEntries)),
		evictBytes:   evict.WithLabelValues(string(dedup.CauseBytes)),
	}
	for i := range m.drops {
		m.drops[i] = drops.WithLabelValues(reasonNames[i])
	}
	m.durAccess = dur.WithLabelValues(packet.CodeAccessRequest.String())
	m.durAcct = dur.WithLabelValues(packet.CodeAccountingRequest.String())
	m.durStatus = dur.WithLabelValues(packet.CodeStatusServer.String())
	return m, nil
}

func (m *metrics) evicted(c dedup.Cause) {
	if c == dedup.CauseBytes {
		m.evictBytes.Inc()
		return
	}
	m.evictEntries.Inc()
}

func (m *metrics) duration(c packet.Code) prometheus.Observer {
	switch c {
	case packet.CodeAccessRequest:
		return m.durAccess
	case packet.CodeAccountingRequest:
		return m.durAcct
	}
	return m.durStatus
}

type childKey struct {
	client  string
	code    packet.Code // 0 for maSeen
	outcome string      // or the present label
}

func (m *metrics) request(client string, code packet.Code, outcome string) prometheus.Counter {
	k := childKey{client, code, outcome}
	if c, ok := m.children.Load(k); ok {
		return c.(prometheus.Counter)
	}
	c, _ := m.children.LoadOrStore(k, m.requests.WithLabelValues(client, code.String(), outcome))
	return c.(prometheus.Counter)
}

func (m *metrics) messageAuthenticator(client string, present bool) prometheus.Counter {
	label := "false"
	if present {
		label = "true"
	}
	k := childKey{client: client, outcome: label}
	if c, ok := m.children.Load(k); ok {
		return c.(prometheus.Counter)
	}
	c, _ := m.children.LoadOrStore(k, m.maSeen.WithLabelValues(client, label))
	return c.(prometheus.Counter)
}

// seed creates, at zero, the series each configured client's requests
// will count in, so that dashboards see zeros from start rather than
// nothing until a device's first request. A client added by a reload is
// created at its first request, like any other label value.
func (m *metrics) seed(kind Kind, clients []*proxy.Client) {
	code := packet.CodeAccessRequest
	if kind == Acct {
		code = packet.CodeAccountingRequest
	}
	for _, c := range clients {
		m.request(c.Name, code, string(proxy.OutcomeAnswered))
		if kind == Auth {
			m.messageAuthenticator(c.Name, true)
			m.messageAuthenticator(c.Name, false)
		}
	}
}
