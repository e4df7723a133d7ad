package edge

import (
	"context"
	"log/slog"
	"net/netip"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/mxedge/mxedge/edge/config"
	"github.com/mxedge/mxedge/proxy"
	"github.com/mxedge/mxedge/proxy/packet"
)

// fakeCloud answers every request with accept (or, for accounting, an
// Accounting-Response) unless silent, in which case it never answers.
type fakeCloud struct {
	silent atomic.Bool
	seen   atomic.Int64
}

func (c *fakeCloud) Healthy() bool { return !c.silent.Load() }

func (c *fakeCloud) Exchange(ctx context.Context, req []byte) ([]byte, error) {
	c.seen.Add(1)
	if c.silent.Load() {
		<-ctx.Done()
		return nil, proxy.ErrTimeout
	}
	p, err := packet.Parse(req)
	if err != nil {
		return nil, err
	}
	code := packet.CodeAccessAccept
	if p.Code == packet.CodeAccountingRequest {
		code = packet.CodeAccountingResponse
	}
	b := packet.Append(nil, code, p.ID, [16]byte{})
	for _, a := range p.Attrs {
		if a.Type == packet.AttrProxyState {
			b, _ = packet.AppendAttr(b, a.Type, a.Value)
		}
	}
	auth := p.Authenticator
	if err := packet.Sign(b, radsecSecret, &auth); err != nil {
		return nil, err
	}
	return b, nil
}

// localMarker answers every request with Access-Reject, so a test can tell
// the local path's answers from the cloud's accepts.
type localMarker struct{ served atomic.Int64 }

func (l *localMarker) ServeRADIUS(_ context.Context, req *proxy.Request) ([]byte, proxy.Outcome) {
	l.served.Add(1)
	b, _ := proxy.Reply(req, packet.CodeAccessReject, nil)
	return b, proxy.OutcomeLocal
}

var testClient = &proxy.Client{Name: "sw", Prefix: netip.MustParsePrefix("127.0.0.1/32"), Secret: []byte("switch-secret")}

// newReq builds a signed Access-Request with attrs and parses it as the
// UDP server would.
func newReq(t *testing.T, code packet.Code, attrs ...packet.Attr) *proxy.Request {
	t.Helper()
	b := packet.Append(nil, code, 7, packet.RandomAuthenticator())
	if code == packet.CodeAccessRequest {
		b = packet.AppendMessageAuthenticator(b)
	}
	for _, a := range attrs {
		var err error
		if b, err = packet.AppendAttr(b, a.Type, a.Value); err != nil {
			t.Fatal(err)
		}
	}
	if err := packet.Sign(b, testClient.Secret, nil); err != nil {
		t.Fatal(err)
	}
	p, err := packet.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	return &proxy.Request{Packet: p, Client: testClient, Received: time.Now(), HasMessageAuthenticator: code == packet.CodeAccessRequest}
}

func mab() []packet.Attr {
	return []packet.Attr{{Type: packet.AttrUserName, Value: []byte("aabbccddeeff")},
		{Type: packet.AttrCallingStationID, Value: []byte("AA-BB-CC-DD-EE-FF")}}
}

func testRouter(t *testing.T, cloud *fakeCloud) (*Router, *localMarker) {
	t.Helper()
	reg := prometheus.NewRegistry()
	r := newRouter(slog.New(slog.DiscardHandler), reg, proxy.NewForwarder(radsecSecret, 3*time.Second))
	r.setCloud(cloud)
	l := &localMarker{}
	r.setLocal(l)
	r.health = newHealth(config.Health{ProbeInterval: 5 * time.Second, ProbeTimeout: 2 * time.Second, DownAfter: 3, UpAfter: 3},
		slog.New(slog.DiscardHandler), reg, func() (prober, []string) { return nil, nil }, nil)
	r.fallback.Store(int64(2 * time.Second))
	return r, l
}

func code(b []byte) packet.Code {
	if len(b) == 0 {
		return 0
	}
	return packet.Code(b[0])
}

// Until the first verdict after start, requests go to the cloud even if
// its pool has no connection yet.
func TestRouterStartsOnTheCloud(t *testing.T) {
	cloud := &fakeCloud{}
	r, l := testRouter(t, cloud)
	cloud.silent.Store(false)
	if p, why := r.decide(nil); p != PathCloud || why != "starting" {
		t.Fatalf("decide = %s %s, want cloud starting", p, why)
	}
	reply, _ := r.ServeRADIUS(t.Context(), newReq(t, packet.CodeAccessRequest, mab()...))
	if code(reply) != packet.CodeAccessAccept || l.served.Load() != 0 {
		t.Fatalf("reply %s, local served %d", code(reply), l.served.Load())
	}
	if r.health.Mode() != ModeCloud {
		t.Fatalf("a cloud answer in starting: mode %s, want cloud", r.health.Mode())
	}
	if got := testutil.ToFloat64(r.metrics.decisions.WithLabelValues("mab", "accept", "cloud")); got != 1 {
		t.Fatalf("cloud MAB accepts counted %v, want 1", got)
	}
}

// A MAB request the cloud leaves unanswered is answered locally after
// fallback_after, well inside a switch's first try.
func TestRouterFallbackAnswersLocally(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cloud := &fakeCloud{}
		r, l := testRouter(t, cloud)
		cloud.silent.Store(true)
		start := time.Now()
		reply, out := r.ServeRADIUS(t.Context(), newReq(t, packet.CodeAccessRequest, mab()...))
		if code(reply) != packet.CodeAccessReject || out != proxy.OutcomeLocal || l.served.Load() != 1 {
			t.Fatalf("reply %s outcome %s, local served %d", code(reply), out, l.served.Load())
		}
		if d := time.Since(start); d != 2*time.Second {
			t.Fatalf("answered after %s, want fallback_after (2s)", d)
		}
		if got := testutil.ToFloat64(r.metrics.fallback.WithLabelValues("local")); got != 1 {
			t.Fatalf("fallback local = %v", got)
		}
	})
}

// A password method cannot be answered locally, so it is not moved off a
// silent cloud: it waits for the cloud's own timeout.
func TestRouterPasswordWaitsForTheCloud(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cloud := &fakeCloud{}
		r, l := testRouter(t, cloud)
		cloud.silent.Store(true)
		start := time.Now()
		reply, out := r.ServeRADIUS(t.Context(), newReq(t, packet.CodeAccessRequest,
			packet.Attr{Type: packet.AttrUserName, Value: []byte("alice")},
			packet.Attr{Type: packet.AttrCallingStationID, Value: []byte("AA-BB-CC-DD-EE-FF")}))
		if reply != nil || out != proxy.OutcomeUpstreamTimeout || l.served.Load() != 0 {
			t.Fatalf("reply %s outcome %s, local served %d", code(reply), out, l.served.Load())
		}
		if d := time.Since(start); d != 3*time.Second {
			t.Fatalf("gave up after %s, want the cloud timeout", d)
		}
	})
}

// An EAP conversation stays on the path it started on: a local State goes
// to the local NAC in cloud mode, a cloud State to the cloud; a cloud
// conversation cut mid-way is handed to the local NAC (which answers
// EAP-Failure) at once, not left to time out again.
func TestRouterEAPConversationStaysPut(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cloud := &fakeCloud{}
		r, l := testRouter(t, cloud)
		r.health.observe(true, true, "")
		eap := packet.Attr{Type: packet.AttrEAPMessage, Value: []byte{2, 1, 0, 6, 13, 0}}
		localState := packet.Attr{Type: packet.AttrState, Value: []byte("mxedge-local:0123456789abcdef")}
		cloudState := packet.Attr{Type: packet.AttrState, Value: []byte("0123456789abcdef")}

		if p, why := r.decide(newReq(t, packet.CodeAccessRequest, eap, localState)); p != PathLocal || why != "local_conversation" {
			t.Fatalf("local State in cloud mode: %s %s", p, why)
		}
		if p, _ := r.decide(newReq(t, packet.CodeAccessRequest, eap, cloudState)); p != PathCloud {
			t.Fatalf("cloud State in cloud mode: %s", p)
		}

		cloud.silent.Store(true)
		start := time.Now()
		reply, _ := r.ServeRADIUS(t.Context(), newReq(t, packet.CodeAccessRequest, eap, cloudState))
		if code(reply) != packet.CodeAccessReject || l.served.Load() != 1 {
			t.Fatalf("cut mid-conversation: reply %s, local served %d", code(reply), l.served.Load())
		}
		// A later round waits for the cloud's own timeout, not fallback_after.
		if d := time.Since(start); d != 3*time.Second {
			t.Fatalf("answered after %s", d)
		}
		if got := testutil.ToFloat64(r.metrics.fallback.WithLabelValues("eap_failure")); got != 1 {
			t.Fatalf("fallback eap_failure = %v", got)
		}
		for range 3 {
			r.health.observe(false, true, "x")
		}
		if p, why := r.decide(newReq(t, packet.CodeAccessRequest, eap, cloudState)); p != PathLocal || why != "cloud_unreachable" {
			t.Fatalf("cloud State in survival: %s %s", p, why)
		}
		if p, why := r.decide(nil); p != PathLocal || why != "cloud_unreachable" {
			t.Fatalf("new conversation in survival: %s %s", p, why)
		}
		r.health.observe(true, true, "")
		if p, why := r.decide(nil); p != PathLocal || why != "recovering" {
			t.Fatalf("recovering: %s %s", p, why)
		}
	})
}

// Forced modes win over the health checker.
func TestRouterForcedModes(t *testing.T) {
	r, _ := testRouter(t, &fakeCloud{})
	for _, tc := range []struct {
		forced, mode string
		path         Path
	}{
		{"local", "local", PathLocal},
		{"cloud", "cloud", PathCloud},
		{"", "starting", PathCloud},
	} {
		r.forced.Store(tc.forced)
		if p, _ := r.decide(nil); p != tc.path || r.Mode() != tc.mode {
			t.Fatalf("forced %q: path %s mode %s", tc.forced, p, r.Mode())
		}
	}
}
