package cloudlink_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/mxedge/mxedge/cache"
	"github.com/mxedge/mxedge/cloudlink"
)

func TestRegister(t *testing.T) {
	l := mustLab(t)
	dir := filepath.Join(t.TempDir(), "state")
	code := l.cloud.NewCode()
	reg, err := cloudlink.Register(ctxT(t), l.srv.URL, code, dir, cloudlink.RegisterOptions{CAFile: l.caFile()})
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(dir, cloudlink.RegFile); reg.Path != want {
		t.Errorf("registration at %q, want %q", reg.Path, want)
	}
	fi, err := os.Stat(filepath.Join(dir, cloudlink.KeyFile))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("key mode %v, want 0600", fi.Mode().Perm())
	}
	reg, err = cloudlink.LoadRegistration(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(reg.EdgeID, "edge-") || reg.OrgID != "org-lab" || reg.SiteID != "site-lab" ||
		reg.APIURL != l.srv.URL || len(reg.RadSecServers) != 1 {
		t.Errorf("registration %+v", reg)
	}
	if _, _, err := reg.TLS(); err != nil {
		t.Error(err)
	}

	// Same code, same state dir: same identity.
	again, err := cloudlink.Register(ctxT(t), l.srv.URL, code, dir, cloudlink.RegisterOptions{CAFile: l.caFile()})
	if err != nil {
		t.Fatalf("re-register: %v", err)
	}
	if again.EdgeID != reg.EdgeID {
		t.Errorf("re-register gave edge %s, want %s", again.EdgeID, reg.EdgeID)
	}
	if got := l.cloud.Stats().Edges; got != 1 {
		t.Errorf("cloud has %d edges, want 1", got)
	}
}

func TestRegisterRefused(t *testing.T) {
	l := mustLab(t)
	used := l.cloud.NewCode()
	if _, err := cloudlink.Register(ctxT(t), l.srv.URL, used, t.TempDir(), cloudlink.RegisterOptions{CAFile: l.caFile()}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, code string
		want       error
		msg        string
	}{
		{"wrong code", "NOPE-NOPE", cloudlink.ErrInvalidCode, "is not valid"},
		{"code used by another key", used, cloudlink.ErrCodeUsed, "already used"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			_, err := cloudlink.Register(ctxT(t), l.srv.URL, tt.code, dir, cloudlink.RegisterOptions{CAFile: l.caFile()})
			if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("err %v, want %v containing %q", err, tt.want, tt.msg)
			}
			if _, err := cloudlink.LoadRegistration(dir); !errors.Is(err, cloudlink.ErrNotRegistered) {
				t.Errorf("LoadRegistration after a refusal: %v", err)
			}
		})
	}
}

func TestUntrustedServer(t *testing.T) {
	l := mustLab(t)
	// No CAFile: the lab CA is not in the system roots.
	_, err := cloudlink.Register(ctxT(t), l.srv.URL, l.cloud.NewCode(), t.TempDir(), cloudlink.RegisterOptions{})
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("err %v, want a certificate error", err)
	}
}

func TestCallsNeedClientCertificate(t *testing.T) {
	l := mustLab(t)
	pool, err := cloudlink.LoadRegistration(t.TempDir())
	if pool != nil || !errors.Is(err, cloudlink.ErrNotRegistered) {
		t.Fatalf("empty dir: %v", err)
	}
	_, reg, _ := mustRegister(t, l)
	_, roots, err := reg.TLS()
	if err != nil {
		t.Fatal(err)
	}
	anon, err := cloudlink.NewClient(l.srv.URL, cloudlink.ClientOptions{RootCAs: roots})
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = anon.Config(ctxT(t), "")
	if !errors.Is(err, cloudlink.ErrUnauthorized) || !cloudlink.IsPermanent(err) {
		t.Fatalf("config without client cert: %v", err)
	}
}

func TestConfigETag(t *testing.T) {
	l := mustLab(t)
	dir, _, c := mustRegister(t, l)
	cfg, etag, err := c.Config(ctxT(t), "")
	if err != nil {
		t.Fatal(err)
	}
	if cfg == nil || etag == "" || cfg.Survivability == nil || cfg.Survivability.DefaultMABVLAN != "41" || cfg.ServerCert == nil {
		t.Fatalf("config %+v etag %q", cfg, etag)
	}
	cfg2, etag2, err := c.Config(ctxT(t), etag)
	if err != nil || cfg2 != nil || etag2 != etag {
		t.Fatalf("If-None-Match: cfg %v etag %q err %v, want 304", cfg2, etag2, err)
	}

	var got atomic.Int32
	s := mustSyncer(t, cloudlink.SyncerConfig{Client: c, StateDir: dir, OnConfig: func(*cloudlink.EdgeConfig) { got.Add(1) }})
	for i, want := range []bool{true, false} {
		changed, err := s.PullConfig(ctxT(t))
		if err != nil || changed != want {
			t.Fatalf("pull %d: changed %v err %v, want %v", i, changed, err, want)
		}
	}
	if got.Load() != 1 {
		t.Errorf("OnConfig called %d times, want 1", got.Load())
	}
	fi, err := os.Stat(filepath.Join(dir, cloudlink.ConfigDir, "server.key"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("server.key: %v %v", fi, err)
	}
	// A restarted syncer starts from the persisted config and its ETag.
	s2 := mustSyncer(t, cloudlink.SyncerConfig{Client: c, StateDir: dir})
	if s2.Config() == nil {
		t.Fatal("persisted config not loaded")
	}
	if changed, err := s2.PullConfig(ctxT(t)); err != nil || changed {
		t.Errorf("pull after restart: changed %v err %v, want 304", changed, err)
	}
}

func TestSyncPaging(t *testing.T) {
	l := mustLab(t)
	_, _, c := mustRegister(t, l)
	l.cloud.UpsertMany(mabEntries(2500, "site-lab"))
	st := mustStore(t)
	reg := prometheus.NewRegistry()
	s := mustSyncer(t, cloudlink.SyncerConfig{Client: c, Store: st, PageSize: 1000, Registerer: reg})

	pages, err := s.SyncCache(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if pages != 3 || st.Count() != 2500 {
		t.Fatalf("full sync: %d pages, %d entries; want 3, 2500", pages, st.Count())
	}
	if e, ok, _ := st.Lookup("02:00:00:00:00:07", ""); !ok || e.Authorization.VLAN != "100" || e.Site != "site-lab" {
		t.Errorf("lookup after sync: %+v %v", e, ok)
	}

	// Increments: one new entry, one removed.
	l.cloud.Upsert(cloudlink.Entry{MAC: "aabbccddeeff", AuthType: "mab", SiteID: "site-lab",
		Authorization: cloudlink.Authorization{VLAN: "41"}, LastAuthAt: time.Now()})
	l.cloud.Forget("020000000007")
	pages, err = s.SyncCache(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if pages != 1 || st.Count() != 2500 {
		t.Fatalf("increment: %d pages, %d entries; want 1, 2500", pages, st.Count())
	}
	if _, ok, _ := st.Lookup("020000000007", ""); ok {
		t.Error("tombstoned entry still served")
	}
	if got := metricValue(t, reg, "mxedge_cache_last_sync_timestamp_seconds"); got == 0 {
		t.Error("last sync timestamp not set")
	}
	if st := s.Status(); st.LastSync.IsZero() || st.Entries != 2500 {
		t.Errorf("status %+v", st)
	}
}

func TestFullResyncOnLostCursor(t *testing.T) {
	l := mustLab(t)
	_, _, c := mustRegister(t, l)
	l.cloud.UpsertMany(mabEntries(30, "site-lab"))
	st := mustStore(t)
	s := mustSyncer(t, cloudlink.SyncerConfig{Client: c, Store: st, PageSize: 7})
	if _, err := s.SyncCache(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	// An entry the cloud never sent: a full resync must drop it.
	if err := st.Upsert(cache.Entry{MAC: "66:00:00:00:00:01", AuthType: cache.AuthMAB, LastAuthAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	l.cloud.LoseCursors()
	before := l.hitCount(cloudlink.PathCache)
	pages, err := s.SyncCache(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if pages != 5 || l.hitCount(cloudlink.PathCache)-before != 6 { // one 410, five full pages
		t.Errorf("resync: %d pages, %d requests", pages, l.hitCount(cloudlink.PathCache)-before)
	}
	if st.Count() != 30 {
		t.Errorf("entries after full resync %d, want 30", st.Count())
	}
	if _, ok, _ := st.Lookup("660000000001", ""); ok {
		t.Error("entry unknown to the cloud survived the full resync")
	}
}

func TestCachingSiteIDs(t *testing.T) {
	l := mustLab(t)
	_, _, c := mustRegister(t, l)
	l.cloud.UpsertMany(append(mabEntries(5, "site-lab"), mabEntries(4, "site-b")...))
	st := mustStore(t)
	s := mustSyncer(t, cloudlink.SyncerConfig{Client: c, Store: st, CachingSiteIDs: []string{"site-b"}})
	if _, err := s.SyncCache(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	n := 0
	_ = st.List(func(e cache.Entry) bool {
		if e.Site != "site-b" {
			t.Errorf("cached %s of site %q", e.MAC, e.Site)
		}
		n++
		return true
	})
	if n != 4 {
		t.Errorf("%d entries, want 4", n)
	}
}

func TestEventUploadRetry(t *testing.T) {
	l := mustLab(t)
	_, _, c := mustRegister(t, l)
	st := mustStore(t)
	for i := range 7 {
		if err := st.AppendEvent(cache.Event{Type: "NAC Client Access Allowed", MAC: "aabbccddeeff", Reason: string(rune('a' + i))}); err != nil {
			t.Fatal(err)
		}
	}
	reg := prometheus.NewRegistry()
	s := mustSyncer(t, cloudlink.SyncerConfig{Client: c, Store: st, EventBatch: 3, Registerer: reg})

	l.dropEvents.Store(1) // the first batch lands but its answer is lost
	n, err := s.UploadEvents(ctxT(t))
	if err == nil || n != 0 || st.OutboxLen() != 7 {
		t.Fatalf("lost answer: uploaded %d, err %v, outbox %d; want 0, error, 7", n, err, st.OutboxLen())
	}
	n, err = s.UploadEvents(ctxT(t))
	if err != nil || n != 7 || st.OutboxLen() != 0 {
		t.Fatalf("retry: uploaded %d, err %v, outbox %d; want 7, nil, 0", n, err, st.OutboxLen())
	}
	stats := l.cloud.Stats()
	if stats.EventsUnique != 7 || stats.EventsReceived != 10 || stats.EventsDuplicates != 3 {
		t.Errorf("cloud counted %+v; want 7 unique, 10 received, 3 duplicates", stats)
	}
	if got := metricValue(t, reg, "mxedge_cloud_events_uploaded_total"); got != 7 {
		t.Errorf("uploaded metric %v, want 7", got)
	}
}

func TestProxyURL(t *testing.T) {
	l := mustLab(t)
	p, tunnels := connectProxy(t, l.srv.Listener.Addr().String())
	_, err := cloudlink.Register(ctxT(t), l.srv.URL, l.cloud.NewCode(), t.TempDir(),
		cloudlink.RegisterOptions{CAFile: l.caFile(), ProxyURL: p.URL})
	if err != nil {
		t.Fatal(err)
	}
	if tunnels.Load() == 0 {
		t.Error("cloud.proxy_url was not used")
	}
}

func TestMetricNames(t *testing.T) {
	l := mustLab(t)
	_, _, c := mustRegister(t, l)
	reg := prometheus.NewRegistry()
	mustSyncer(t, cloudlink.SyncerConfig{Client: c, Registerer: reg})
	problems, err := testutil.GatherAndLint(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("metric %s: %s", p.Metric, p.Text)
	}
}

func TestNewClientRejects(t *testing.T) {
	for _, tt := range []struct{ api, proxy string }{
		{"http://cloud.example", ""},
		{"https://", ""},
		{"https://cloud.example", "::"},
	} {
		if _, err := cloudlink.NewClient(tt.api, cloudlink.ClientOptions{ProxyURL: tt.proxy}); err == nil {
			t.Errorf("NewClient(%q, proxy %q) accepted", tt.api, tt.proxy)
		}
	}
}
