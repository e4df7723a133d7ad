package console

import (
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// The series the Devices page reads (proxy/udp and proxy/radsec export them).
const (
	metricRequests         = "mxedge_requests_total"                 // client, code, outcome (listener)
	metricDrops            = "mxedge_drops_total"                    // reason (listener)
	metricUpstreamConns    = "mxedge_upstream_connections"           // upstream
	metricUpstreamRequests = "mxedge_upstream_requests_total"        // upstream, result
	metricUpstreamDropped  = "mxedge_upstream_dropped_replies_total" // upstream, reason
	metricUpstreamUp       = "mxedge_upstream_up"                    // upstream
	metricInboundConns     = "mxedge_radsec_connections"
	metricInboundRequests  = "mxedge_radsec_requests_total" // outcome
	metricInboundDrops     = "mxedge_radsec_drops_total"    // reason
)

// rateWindow is the shortest span a rate is measured over: shorter, and
// two quick reloads of the page would show noise.
const rateWindow = 10 * time.Second

// rates turns counters into per-second rates between page loads. For each
// key it keeps two samples: the rate is measured from the older one, which
// moves forward once the newer one is rateWindow old.
type rates struct {
	mu      sync.Mutex
	samples map[string]*[2]sample
}

type sample struct {
	v float64
	t time.Time
}

// rate records v at now and returns the rate and the span it covers (0
// when there is nothing older to compare with).
func (r *rates) rate(key string, v float64, now time.Time) (float64, time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.samples == nil {
		r.samples = map[string]*[2]sample{}
	}
	s, ok := r.samples[key]
	if !ok {
		r.samples[key] = &[2]sample{{v, now}, {v, now}}
		return 0, 0
	}
	if now.Sub(s[1].t) >= rateWindow {
		s[0] = s[1]
		s[1] = sample{v, now}
	}
	span := now.Sub(s[0].t)
	if span <= 0 || v < s[0].v { // a reset counter (a replaced pool)
		s[0], s[1] = sample{v, now}, sample{v, now}
		return 0, 0
	}
	return (v - s[0].v) / span.Seconds(), span
}

// families indexes gathered metrics by name.
type families map[string]*dto.MetricFamily

func gather(g prometheus.Gatherer) families {
	fams := families{}
	if g == nil {
		return fams
	}
	mfs, _ := g.Gather() // a partial gather still shows what it has
	for _, mf := range mfs {
		fams[mf.GetName()] = mf
	}
	return fams
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

func value(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	}
	return 0
}

// sum adds the series of name whose label match equals want ("" for
// every series), grouped by the label by ("" for one total).
func (f families) sum(name, match, want, by string) (total float64, groups []Count) {
	mf := f[name]
	if mf == nil {
		return 0, nil
	}
	idx := map[string]int{}
	for _, m := range mf.GetMetric() {
		if match != "" && label(m, match) != want {
			continue
		}
		v := value(m)
		total += v
		if by == "" {
			continue
		}
		k := label(m, by)
		if i, ok := idx[k]; ok {
			groups[i].Value += v
		} else {
			idx[k] = len(groups)
			groups = append(groups, Count{Label: k, Value: v})
		}
	}
	sort.Slice(groups, func(i, j int) bool { return groups[i].Label < groups[j].Label })
	return total, groups
}

// nonZero drops zero counts: pre-created series that never moved.
func nonZero(cs []Count) []Count {
	out := cs[:0]
	for _, c := range cs {
		if c.Value != 0 {
			out = append(out, c)
		}
	}
	return out
}

// fillDevices adds counts and rates from the registry to what the source
// listed.
func (h *Handler) fillDevices(d *Devices, now time.Time) {
	f := gather(h.cfg.Gatherer)
	var window time.Duration
	track := func(key string, v float64) float64 {
		r, span := h.rates.rate(key, v, now)
		window = max(window, span)
		return r
	}
	for i := range d.Clients {
		c := &d.Clients[i]
		c.Requests, c.Outcomes = f.sum(metricRequests, "client", c.Name, "outcome")
		c.Outcomes = nonZero(c.Outcomes)
		c.Rate = track("client\x00"+c.Name, c.Requests)
	}
	_, d.Drops = f.sum(metricDrops, "", "", "reason")
	d.Drops = nonZero(d.Drops)
	for i := range d.Upstreams {
		u := &d.Upstreams[i]
		u.Connections, _ = f.sum(metricUpstreamConns, "upstream", u.Server, "")
		u.Requests, u.Results = f.sum(metricUpstreamRequests, "upstream", u.Server, "result")
		u.Results = nonZero(u.Results)
		_, u.Drops = f.sum(metricUpstreamDropped, "upstream", u.Server, "reason")
		u.Drops = nonZero(u.Drops)
		if up, _ := f.sum(metricUpstreamUp, "upstream", u.Server, ""); up > 0 {
			u.Up = true
		}
		u.Rate = track("upstream\x00"+u.Server, u.Requests)
	}
	if f[metricInboundConns] != nil || f[metricInboundRequests] != nil {
		in := &Inbound{}
		in.Connections, _ = f.sum(metricInboundConns, "", "", "")
		in.Requests, _ = f.sum(metricInboundRequests, "", "", "")
		_, in.Drops = f.sum(metricInboundDrops, "", "", "reason")
		in.Drops = nonZero(in.Drops)
		in.Rate = track("inbound", in.Requests)
		d.Inbound = in
	}
	d.WindowS = window.Seconds()
}
