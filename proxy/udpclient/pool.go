package udpclient

import (
	"context"
	"errors"
	"hash/fnv"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mxedge/mxedge/proxy"
	"github.com/mxedge/mxedge/proxy/packet"
)

// ErrNoServer is returned when no server of the pool is up, or the
// server an EAP conversation is bound to is down: the caller answers at
// once rather than letting the device wait.
var ErrNoServer = errors.New("udpclient: no server up")

// downHold is how long a server stays down after three request timeouts
// in a row when Status-Server probes are off, in units of its timeout.
const downHold = 10

// Pool spreads requests over servers; see the package doc.
type Pool struct {
	cfg     Config
	servers []*Server
	rr      atomic.Uint32

	mu     sync.Mutex
	sticky map[string]stickyEntry // State → server

	stop context.CancelFunc
	wg   sync.WaitGroup
}

type stickyEntry struct {
	server int
	until  time.Time
}

// New builds a pool and starts its Status-Server probes; Close stops them.
func New(cfg Config) (*Pool, error) {
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	p := &Pool{cfg: cfg, sticky: map[string]stickyEntry{}}
	for _, sc := range cfg.Servers {
		s, err := newServer(sc, &p.cfg)
		if err != nil {
			p.closeServers()
			return nil, err
		}
		p.servers = append(p.servers, s)
	}
	ctx, stop := context.WithCancel(context.Background())
	p.stop = stop
	if cfg.StatusInterval > 0 {
		for _, s := range p.servers {
			p.wg.Add(1)
			go func() {
				defer p.wg.Done()
				// A panicking probe loop restarts, after an interval.
				for p.cfg.Metrics.recovered(p.cfg.Logger, "probe", func() { p.watch(ctx, s) }) {
					select {
					case <-ctx.Done():
						return
					case <-time.After(cfg.StatusInterval):
					}
				}
			}()
		}
	}
	return p, nil
}

// Name is the pool's label.
func (p *Pool) Name() string { return p.cfg.Name }

// Close stops the probes and closes every socket; requests in flight fail.
func (p *Pool) Close() {
	p.stop()
	p.wg.Wait()
	p.closeServers()
}

func (p *Pool) closeServers() {
	for _, s := range p.servers {
		s.close()
		p.cfg.Metrics.forget(p.cfg.Name, s.addr)
	}
}

// watch probes s every StatusInterval, and at once when a request to it
// timed out, so that a dead server is taken out after one failed probe
// rather than after a request timeout for every conversation.
func (p *Pool) watch(ctx context.Context, s *Server) {
	iv := p.cfg.StatusInterval
	t := time.NewTimer(iv / 4) // a first verdict soon after start
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-s.kick:
		}
		s.setUp(s.probe(ctx))
		if ctx.Err() != nil {
			return
		}
		// ±10% jitter keeps the probes of several edges apart.
		t.Reset(iv - iv/10 + rand.N(iv/5+1))
	}
}

// usable reports whether s takes new requests.
func (p *Pool) usable(s *Server) bool {
	if p.cfg.StatusInterval > 0 {
		return s.Up()
	}
	if until := s.downUntil.Load(); until != 0 && p.cfg.Now().UnixNano() < until {
		return false
	}
	return true
}

// timedOut notes a request timeout at s.
func (p *Pool) timedOut(s *Server) {
	if p.cfg.StatusInterval > 0 {
		select {
		case s.kick <- struct{}{}:
		default:
		}
		return
	}
	if s.timeouts.Add(1) >= 3 {
		s.timeouts.Store(0)
		s.downUntil.Store(p.cfg.Now().Add(downHold * p.cfg.Timeout).UnixNano())
		s.log.Warn("federation server down after three timeouts", "pool", p.cfg.Name)
	}
}

// Healthy reports whether any server is up.
func (p *Pool) Healthy() bool {
	for _, s := range p.servers {
		if p.usable(s) {
			return true
		}
	}
	return false
}

// Forward sends req to a server of the pool and returns the reply for the
// client, re-signed with the client's secret (proxy.Forwarder does the
// re-signing and re-encryption with the chosen server's secret). A round
// carrying the State of an earlier Access-Challenge goes to the server
// that sent it, and nowhere else; a request starting a conversation that
// times out is tried once more on the next server that is up.
func (p *Pool) Forward(ctx context.Context, req *proxy.Request) ([]byte, proxy.Outcome, error) {
	order, bound := p.pick(req)
	if len(order) == 0 {
		return nil, proxy.OutcomeNoUpstream, ErrNoServer
	}
	var (
		reply   []byte
		outcome proxy.Outcome
		err     error
	)
	for i, s := range order {
		if i > 1 {
			break // one failover per request: the device's own timer is running
		}
		reply, outcome, err = s.fwd.Forward(ctx, s, req)
		if err == nil {
			p.remember(req, reply, s)
			return reply, outcome, nil
		}
		if outcome != proxy.OutcomeUpstreamTimeout && outcome != proxy.OutcomeUpstreamError {
			return reply, outcome, err
		}
		if outcome == proxy.OutcomeUpstreamTimeout {
			p.timedOut(s)
		}
		if bound || ctx.Err() != nil {
			break
		}
		p.cfg.Logger.Debug("federation server failed; trying the next", "pool", p.cfg.Name, "server", s.addr, "err", err)
	}
	return reply, outcome, err
}

// pick returns the servers to try for req, in order, and whether req is
// bound to the first (a later round of a conversation).
func (p *Pool) pick(req *proxy.Request) ([]*Server, bool) {
	pk := req.Packet
	if pk.Code == packet.CodeAccessRequest {
		if st, ok := pk.Lookup(packet.AttrState); ok {
			now := p.cfg.Now()
			p.mu.Lock()
			e, found := p.sticky[string(st)]
			p.mu.Unlock()
			if found && now.Before(e.until) {
				if s := p.servers[e.server]; p.usable(s) {
					return []*Server{s}, true
				}
				return nil, true // its server is gone: the conversation is lost
			}
			// An unknown State (a restart, or expired): the conversation
			// lives somewhere; try the same server for the same device
			// each time rather than a different one per round.
			up := p.upServers(0)
			if len(up) == 0 {
				return nil, true
			}
			h := fnv.New32a()
			cs, _ := pk.Lookup(packet.AttrCallingStationID)
			un, _ := pk.Lookup(packet.AttrUserName)
			h.Write(cs)
			h.Write([]byte{0})
			h.Write(un)
			return []*Server{up[h.Sum32()%uint32(len(up))]}, true
		}
	}
	start := 0
	if p.cfg.Mode == RoundRobin {
		start = int(p.rr.Add(1)-1) % len(p.servers)
	}
	return p.upServers(start), false
}

// upServers lists the usable servers starting at index start, wrapping.
func (p *Pool) upServers(start int) []*Server {
	out := make([]*Server, 0, len(p.servers))
	for i := range p.servers {
		s := p.servers[(start+i)%len(p.servers)]
		if p.usable(s) {
			out = append(out, s)
		}
	}
	return out
}

// remember binds the State of an Access-Challenge to the server that sent
// it, so that the next round goes there.
func (p *Pool) remember(req *proxy.Request, reply []byte, s *Server) {
	if len(reply) == 0 || packet.Code(reply[0]) != packet.CodeAccessChallenge {
		return
	}
	rp, err := packet.Parse(reply)
	if err != nil {
		return
	}
	st, ok := rp.Lookup(packet.AttrState)
	if !ok {
		return
	}
	idx := 0
	for i, x := range p.servers {
		if x == s {
			idx = i
		}
	}
	now := p.cfg.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.sticky) >= p.cfg.MaxSticky {
		for k, e := range p.sticky {
			if !now.Before(e.until) {
				delete(p.sticky, k)
			}
		}
		if len(p.sticky) >= p.cfg.MaxSticky {
			return // full of live conversations: this one falls back on the hash
		}
	}
	p.sticky[string(st)] = stickyEntry{server: idx, until: now.Add(p.cfg.StickyFor)}
}

// ServerStatus is one server's state for `mxedge status`.
type ServerStatus struct {
	Address string `json:"address"`
	Up      bool   `json:"up"`
}

// Status lists the servers in configured order with their state.
func (p *Pool) Status() []ServerStatus {
	out := make([]ServerStatus, len(p.servers))
	for i, s := range p.servers {
		out[i] = ServerStatus{Address: s.addr, Up: p.usable(s)}
	}
	return out
}
