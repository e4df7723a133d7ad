package edge

import (
	"encoding/binary"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/mxedge/mxedge/cache"
	"github.com/mxedge/mxedge/proxy"
	"github.com/mxedge/mxedge/proxy/packet"
)

type attr struct {
	t      uint8
	vendor uint32
	v      string
}

func build(t testing.TB, code packet.Code, attrs ...attr) []byte {
	t.Helper()
	b := packet.Append(nil, code, 7, [16]byte{1, 2, 3})
	var err error
	for _, a := range attrs {
		if a.vendor != 0 {
			b, err = packet.AppendVSA(b, a.vendor, a.t, []byte(a.v))
		} else {
			b, err = packet.AppendAttr(b, a.t, []byte(a.v))
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := packet.Sign(b, []byte("secret"), &[16]byte{1, 2, 3}); err != nil {
		t.Fatal(err)
	}
	return b
}

func request(t testing.TB, attrs ...attr) *proxy.Request {
	p, err := packet.Parse(build(t, packet.CodeAccessRequest, attrs...))
	if err != nil {
		t.Fatal(err)
	}
	return &proxy.Request{Packet: p, Client: &proxy.Client{Name: "sw", Site: "hq", Secret: []byte("secret")}}
}

func u32(n uint32) string { return string(binary.BigEndian.AppendUint32(nil, n)) }

func TestLearnedEntry(t *testing.T) {
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	mab := []attr{{t: packet.AttrUserName, v: "aabbccddeeff"}, {t: packet.AttrCallingStationID, v: "AA-BB-CC-DD-EE-FF"}}
	eapTLS := []attr{{t: packet.AttrUserName, v: "host/laptop-7.example.com"}, {t: packet.AttrCallingStationID, v: "02:00:00:00:00:07"},
		{t: packet.AttrEAPMessage, v: "\x02\x09\x00\x06\x0d\x00"}}
	accept := []attr{
		{t: packet.AttrMessageAuthenticator, v: strings.Repeat("\x00", 16)},
		{t: packet.AttrTunnelType, v: "\x00\x00\x00\x0d"},
		{t: packet.AttrTunnelMediumType, v: "\x00\x00\x00\x06"},
		{t: packet.AttrTunnelPrivateGroupID, v: "\x01" + "41"},
		{t: attrSessionTimeoutNum, v: u32(3600)},
		{t: attrFilterIDNum, v: "employees"},
		{t: attrClassNum, v: "session-42"},
		{t: packet.AttrState, v: "st"},
		{t: packet.AttrEAPMessage, v: "\x03\x09\x00\x04"},
		{t: 1, vendor: 9, v: "url-redirect-acl=none"},
		{t: packet.MSMPPERecvKey, vendor: packet.VendorMicrosoft, v: "secret-key"},
		{t: 28, v: u32(300)}, // Idle-Timeout
	}
	wantAZ := cache.Authorization{VLAN: "41", Role: "employees", SessionTimeout: time.Hour, Attributes: []cache.Attribute{
		{Name: "Vendor-9-Attr-1", Type: 26, VendorID: 9, VendorType: 1, Raw: []byte("url-redirect-acl=none")},
		{Name: "Attr-28", Type: 28, Raw: []byte(u32(300))},
	}}
	cases := []struct {
		name  string
		req   []attr
		code  packet.Code
		reply []attr
		want  *cache.Entry
	}{
		{"MAB accept", mab, packet.CodeAccessAccept, accept, &cache.Entry{MAC: "aabbccddeeff", AuthType: cache.AuthMAB,
			Identity: cache.Identity{UserName: "aabbccddeeff"}, Authorization: wantAZ, Site: "hq", LastAuthAt: now}},
		{"MAB call-check, no User-Name", []attr{{t: packet.AttrServiceType, v: u32(serviceTypeCallCheck)}, {t: packet.AttrCallingStationID, v: "aa:bb:cc:dd:ee:ff"}},
			packet.CodeAccessAccept, []attr{{t: packet.AttrTunnelPrivateGroupID, v: "guest-vlan"}},
			&cache.Entry{MAC: "aabbccddeeff", AuthType: cache.AuthMAB, Authorization: cache.Authorization{VLAN: "guest-vlan"}, Site: "hq", LastAuthAt: now}},
		{"EAP-TLS accept", eapTLS, packet.CodeAccessAccept, accept, &cache.Entry{MAC: "020000000007", AuthType: cache.AuthEAPTLS,
			Identity: cache.Identity{UserName: "host/laptop-7.example.com"}, Authorization: wantAZ, Site: "hq", LastAuthAt: now}},
		{"MAB reject", mab, packet.CodeAccessReject, nil, nil},
		{"EAP challenge", eapTLS, packet.CodeAccessChallenge, nil, nil},
		{"PEAP accept is not cached", []attr{{t: packet.AttrUserName, v: "alice"}, {t: packet.AttrCallingStationID, v: "02:00:00:00:00:07"},
			{t: packet.AttrEAPMessage, v: "\x02\x09\x00\x06\x19\x00"}}, packet.CodeAccessAccept, accept, nil},
		{"EAP without Calling-Station-Id", eapTLS[:1:1], packet.CodeAccessAccept, accept, nil},
		{"password user", []attr{{t: packet.AttrUserName, v: "bob"}, {t: packet.AttrCallingStationID, v: "aa:bb:cc:dd:ee:ff"}}, packet.CodeAccessAccept, accept, nil},
		{"CHAP with a MAC user is not MAB here", append(mab[:2:2], attr{t: packet.AttrCHAPPassword, v: "xxxxxxxxxxxxxxxxx"}), packet.CodeAccessAccept, accept, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, ok := learnedEntry(request(t, c.req...), build(t, c.code, c.reply...), now)
			if c.want == nil {
				if ok {
					t.Fatalf("learned %+v, want nothing", got)
				}
				return
			}
			if !ok {
				t.Fatal("nothing learned")
			}
			if !entriesEqual(got, *c.want) {
				t.Fatalf("learned\n %+v\nwant\n %+v", got, *c.want)
			}
		})
	}
}

func entriesEqual(a, b cache.Entry) bool {
	if a.MAC != b.MAC || a.AuthType != b.AuthType || a.Identity != b.Identity || a.Site != b.Site ||
		!a.LastAuthAt.Equal(b.LastAuthAt) || a.Authorization.VLAN != b.Authorization.VLAN ||
		a.Authorization.Role != b.Authorization.Role || a.Authorization.SessionTimeout != b.Authorization.SessionTimeout ||
		len(a.Authorization.Attributes) != len(b.Authorization.Attributes) {
		return false
	}
	for i, x := range a.Authorization.Attributes {
		y := b.Authorization.Attributes[i]
		if x.Name != y.Name || x.Type != y.Type || x.VendorID != y.VendorID || x.VendorType != y.VendorType ||
			x.Value != y.Value || string(x.Raw) != string(y.Raw) {
			return false
		}
	}
	return true
}

// The hook only queues; the learner writes, counts, and on stop drains.
func TestLearnFromAcceptStores(t *testing.T) {
	a := startAuto(t)
	if a.router.learn == nil {
		t.Fatal("learning not wired although learn_from_accepts is on and a cache is open")
	}
	req := request(t, attr{t: packet.AttrUserName, v: "aa:bb:cc:dd:ee:01"}, attr{t: packet.AttrCallingStationID, v: "aa-bb-cc-dd-ee-01"})
	a.router.learn(req, build(t, packet.CodeAccessAccept, attr{t: packet.AttrTunnelPrivateGroupID, v: "77"}))
	a.router.learn(req, build(t, packet.CodeAccessReject))
	// Only the sites of cloud.caching_site_ids are learned when it is set.
	a.side.learner.sites = map[string]bool{"branch": true}
	other := request(t, attr{t: packet.AttrUserName, v: "aabbccddee02"}, attr{t: packet.AttrCallingStationID, v: "aabbccddee02"})
	a.router.learn(other, build(t, packet.CodeAccessAccept))
	a.side.learner.stop() // drains the queue
	e, ok, err := a.local.store.Lookup("aabbccddee01", "")
	if err != nil || !ok || e.Authorization.VLAN != "77" || e.Site != "hq" {
		t.Fatalf("lookup after learning: %+v %v %v", e, ok, err)
	}
	if _, ok, _ := a.local.store.Lookup("aabbccddee02", ""); ok {
		t.Fatal("client of site hq learned although caching_site_ids is [branch]")
	}
	if n := testutil.ToFloat64(a.side.learner.learned.WithLabelValues(cache.AuthMAB)); n != 1 {
		t.Fatalf("mxedge_cache_learned_total{auth_type=mab} = %v, want 1", n)
	}
	// After stop, offers are ignored rather than panicking.
	a.router.learn(req, build(t, packet.CodeAccessAccept))
}

func TestLearnOffSkipsHook(t *testing.T) {
	cfg := testConfig(t)
	cfg.Cloud.LearnFromAccepts = false
	a := &App{log: slog.New(slog.DiscardHandler), reg: prometheus.NewRegistry()}
	if a.startLearning(cfg, &cache.Store{}) != nil {
		t.Fatal("hook set with learn_from_accepts off")
	}
	cfg.Cloud.LearnFromAccepts = true
	if a.startLearning(cfg, nil) != nil {
		t.Fatal("hook set without a cache")
	}
}

// A full queue drops (and counts) instead of blocking the request.
func testLearner(queue int, now func() time.Time) *learner {
	return &learner{q: make(chan cache.Entry, queue), now: now, recent: map[string]recentLearn{}, hb: proxy.Heartbeats(nil).Register(""),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{Name: "d"})}
}

func TestLearnerDropsWhenFull(t *testing.T) {
	l := testLearner(2, time.Now)
	for i := range 5 {
		l.offer(cache.Entry{MAC: fmt.Sprintf("02000000000%d", i), AuthType: cache.AuthMAB})
	}
	if n := testutil.ToFloat64(l.dropped); n != 3 || len(l.q) != 2 {
		t.Fatalf("dropped %v, queued %d; want 3 and 2", n, len(l.q))
	}
	// A dropped client is not remembered: its next accept is queued.
	<-l.q
	l.offer(cache.Entry{MAC: "020000000004", AuthType: cache.AuthMAB})
	if len(l.q) != 2 {
		t.Fatalf("queued %d after a drop and a retry, want 2", len(l.q))
	}
}

// Repeated accepts of an unchanged client are written once per refresh
// window; a changed authorization is written at once.
func TestLearnerCoalescesRepeats(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	l := testLearner(16, func() time.Time { return now })
	e := cache.Entry{MAC: "020000000001", AuthType: cache.AuthMAB, Authorization: cache.Authorization{VLAN: "41"}}
	for range 5 {
		l.offer(e)
	}
	if len(l.q) != 1 {
		t.Fatalf("queued %d for 5 identical accepts, want 1", len(l.q))
	}
	e.Authorization.VLAN = "42"
	l.offer(e)
	if len(l.q) != 2 {
		t.Fatalf("a changed VLAN was not queued (%d)", len(l.q))
	}
	now = now.Add(learnRefresh)
	l.offer(e)
	if len(l.q) != 3 {
		t.Fatalf("not refreshed after %v (%d)", learnRefresh, len(l.q))
	}
}

func FuzzLearnedEntry(f *testing.F) {
	f.Add(build(f, packet.CodeAccessRequest, attr{t: packet.AttrUserName, v: "aabbccddeeff"}, attr{t: packet.AttrCallingStationID, v: "aabbccddeeff"}),
		build(f, packet.CodeAccessAccept, attr{t: packet.AttrTunnelPrivateGroupID, v: "\x0141"}, attr{t: 1, vendor: 9, v: "x=y"}))
	f.Add(build(f, packet.CodeAccessRequest, attr{t: packet.AttrEAPMessage, v: "\x02\x01\x00\x06\x0d\x00"}, attr{t: packet.AttrCallingStationID, v: "aabbccddeeff"}),
		[]byte{2, 0, 0, 20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, reqB, reply []byte) {
		p, err := packet.Parse(reqB)
		if err != nil {
			return
		}
		req := &proxy.Request{Packet: p, Client: &proxy.Client{Secret: []byte("s")}}
		e, ok := learnedEntry(req, reply, time.Unix(0, 0))
		if !ok {
			return
		}
		if _, valid := cache.NormalizeMAC(e.MAC); !valid || (e.AuthType != cache.AuthMAB && e.AuthType != cache.AuthEAPTLS) {
			t.Fatalf("learned an entry the cache would refuse: %+v", e)
		}
		if e.AuthType == cache.AuthEAPTLS && e.Identity.Key() == "" {
			t.Fatalf("EAP-TLS entry without identity: %+v", e)
		}
	})
}

// serviceTypeCallCheck is Service-Type Call-Check (RFC 2865 §5.6).
const serviceTypeCallCheck = 10

// TestLearnerSurvivesPanic: a panic while writing a batch (here a store
// that is not there) is counted, the batch forgotten so the next accept
// offers it again, and the learner goes on with the queue.
func TestLearnerSurvivesPanic(t *testing.T) {
	panics := prometheus.NewCounter(prometheus.CounterOpts{Name: "p", Help: "p"})
	l := newLearner(nil, slog.New(slog.DiscardHandler), prometheus.NewRegistry(), panics, nil, time.Now)
	e := cache.Entry{MAC: "020000000001", AuthType: cache.AuthMAB}
	for want := 1.0; want <= 2; want++ {
		l.offer(e) // offered again: the panicking batch was forgotten
		deadline := time.Now().Add(10 * time.Second)
		for testutil.ToFloat64(panics) < want {
			if time.Now().After(deadline) {
				t.Fatalf("panics = %v, want %v", testutil.ToFloat64(panics), want)
			}
			time.Sleep(time.Millisecond)
		}
	}
	l.stop() // the loop is still there to drain and return
}
