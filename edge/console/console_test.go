package console

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mxedge/mxedge/cache"
)

var t0 = time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)

// fakeSource is a daemon in survival with one cached client.
type fakeSource struct{ noCache bool }

func (fakeSource) Now() Now {
	return Now{
		Mode: "survival", ModeReason: "cloud_unreachable", Since: t0.Add(-5 * time.Minute),
		Last: &Transition{From: "cloud", To: "survival", Reason: "probes_failed", Detail: "radsec.example:2083: no answer within probe_timeout", At: t0.Add(-5 * time.Minute)},
		Servers: []Server{{Server: "radsec.example:2083", Probed: true, Error: "no answer within probe_timeout", Checked: t0.Add(-2 * time.Second)},
			{Server: "radsec2.example:2083", Probed: true, OK: true, RTTms: 12.5, Checked: t0.Add(-2 * time.Second)}},
		Registered: true, LastSync: t0.Add(-20 * time.Minute),
		Cache: &CacheNow{Entries: 42, Outbox: 3, OutboxOldest: t0.Add(-90 * time.Second), AccountingHeld: 7, AccountingOldest: t0.Add(-time.Hour)},
	}
}

func (s fakeSource) Entries(mac string) ([]Entry, error) {
	if s.noCache {
		return nil, ErrNoCache
	}
	if mac != "aabbccddeeff" {
		return nil, nil
	}
	return []Entry{{MAC: mac, AuthType: "mab", VLAN: "41", Role: "printers", ExpiresAt: t0.Add(7 * 24 * time.Hour),
		Attributes: []cache.Attribute{{Name: "Filter-Id", Type: 11, Value: "printers-acl"}}},
		{MAC: mac, AuthType: "eap-tls", Identity: "cn:laptop<script>", VLAN: "51", ExpiresAt: t0.Add(time.Hour),
			Cert: &cache.Identity{CN: "laptop<script>", Serial: "0a:1b", Issuer: "Org CA"}}}, nil
}

func (fakeSource) Devices() Devices {
	return Devices{Clients: []RADIUSClient{{Name: "core-switch", Address: "192.0.2.0/24", Vendor: "cisco", Site: "hq"}},
		Upstreams: []Upstream{{Server: "radsec.example:2083"}}}
}

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func newTestHandler(t testing.TB, src Source, auth Auth) (*Handler, *Recorder, *clock, *prometheus.Registry) {
	t.Helper()
	rec := NewRecorder(0)
	reg := prometheus.NewRegistry()
	clk := &clock{t0}
	h, err := New(Config{Source: src, Recorder: rec, Gatherer: reg, Auth: auth, Now: clk.now})
	if err != nil {
		t.Fatal(err)
	}
	return h, rec, clk, reg
}

func get(t testing.TB, h http.Handler, target string, hdr ...string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest("GET", target, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return w
}

func TestPages(t *testing.T) {
	h, rec, _, _ := newTestHandler(t, fakeSource{}, Auth{})
	rec.Record(Decision{Time: t0.Add(-time.Minute), MAC: "aa:bb:cc:dd:ee:ff", Client: "core-switch", Method: "mab", Result: "accept", VLAN: "41", Source: "cache"})
	rec.Record(Decision{Time: t0.Add(-30 * time.Second), MAC: "00:11:22:33:44:55", Client: "core-switch", Method: "mab", Result: "accept", VLAN: "99", Source: "default"})
	rec.Record(Decision{Time: t0, MAC: "02:00:00:00:00:03", Identity: "cn:revoked", Method: "eap-tls", Result: "reject", Source: "none", Reason: "certificate_revoked"})
	tests := []struct {
		path   string
		status int
		want   []string
		not    []string
	}{
		{"/console/", 200, []string{`data-mode="survival"`, "<strong>survival</strong>", "cloud → survival", "probes_failed",
			"not answering", "12.5 ms", `id="cache-entries">42<`, "3, oldest from 1 min ago", "7, oldest from 1.0 h ago", "20 min ago", `aria-current="page">Now`}, nil},
		{"/console/decisions", 200, []string{`data-source="cache"`, `class="source source-default">default<`, `class="vlan">99<`,
			"certificate_revoked", `data-last="3"`, `<label for="f-mac">`}, nil},
		{"/console/decisions?mac=AA-BB-CC-DD-EE-FF", 200, []string{`data-source="cache"`, `value="aa:bb:cc:dd:ee:ff"`}, []string{`data-source="default"`}},
		{"/console/decisions?identity=REVOKED", 200, []string{"certificate_revoked"}, []string{`data-source="cache"`}},
		{"/console/decisions?mac=nope", 400, []string{"is not a MAC address"}, nil},
		{"/console/client?mac=aabb.ccdd.eeff", 200, []string{`id="vlan-mab">41<`, "printers-acl", "Filter-Id", "CN laptop&lt;script&gt;",
			`id="vlan-eap-tls">51<`, `data-source="cache"`}, []string{"<script>", `data-source="default"`}},
		{"/console/client?mac=02:00:00:00:00:09", 200, []string{"not in the client cache"}, nil},
		{"/console/client", 200, []string{`<label for="c-mac">`}, nil},
		{"/console/devices", 200, []string{"core-switch", "192.0.2.0/24", "radsec.example:2083", "not running"}, nil},
		{"/console/console.css", 200, []string{"--fg"}, nil},
		{"/console/live.js", 200, []string{"api/decisions"}, nil},
		{"/console/nope", 404, nil, nil},
	}
	for _, tt := range tests {
		w := get(t, h, tt.path)
		body := w.Body.String()
		if w.Code != tt.status {
			t.Errorf("%s: status %d, want %d\n%s", tt.path, w.Code, tt.status, body)
			continue
		}
		for _, s := range tt.want {
			if !strings.Contains(body, s) {
				t.Errorf("%s: no %q in\n%s", tt.path, s, body)
			}
		}
		for _, s := range tt.not {
			if strings.Contains(body, s) {
				t.Errorf("%s: %q should not be in\n%s", tt.path, s, body)
			}
		}
		if w.Header().Get("Content-Security-Policy") == "" {
			t.Errorf("%s: no CSP", tt.path)
		}
	}
}

func TestAPI(t *testing.T) {
	h, rec, clk, reg := newTestHandler(t, fakeSource{}, Auth{})
	for i := range 5 {
		rec.Record(Decision{Time: t0, MAC: fmt.Sprintf("aa:bb:cc:dd:ee:%02x", i), Method: "mab", Result: "accept", Source: "cache"})
	}
	var now Now
	decode(t, get(t, h, "/console/api/now"), &now)
	if now.Mode != "survival" || now.SinceAgeS != 300 || now.LastSyncAgeS != 1200 || now.Cache.OutboxOldestAge != 90 ||
		now.Cache.AccountingHeld != 7 || now.Decisions != 5 || len(now.Servers) != 2 || now.Servers[1].RTTms != 12.5 {
		t.Errorf("now: %+v", now)
	}
	var dp DecisionsPage
	decode(t, get(t, h, "/console/api/decisions?after=3&limit=10"), &dp)
	if dp.Last != 5 || len(dp.Decisions) != 2 || dp.Decisions[0].Seq != 5 || dp.Limit != 10 {
		t.Errorf("decisions after 3: %+v", dp)
	}
	decode(t, get(t, h, "/console/api/decisions?limit=100000"), &dp)
	if dp.Limit != MaxLimit {
		t.Errorf("limit not capped: %d", dp.Limit)
	}
	var cp ClientPage
	decode(t, get(t, h, "/console/api/client?mac=aa:bb:cc:dd:ee:ff"), &cp)
	if len(cp.Entries) != 2 || cp.Entries[0].VLAN != "41" || cp.Entries[1].Cert == nil {
		t.Errorf("client: %+v", cp)
	}
	h2, _, _, _ := newTestHandler(t, fakeSource{noCache: true}, Auth{})
	decode(t, get(t, h2, "/console/api/client?mac=aa:bb:cc:dd:ee:ff"), &cp)
	if cp.Error != ErrNoCache.Error() || cp.Entries == nil {
		t.Errorf("client without cache: %+v", cp)
	}

	// Devices: counts from the registry, rates between loads.
	req := prometheus.NewCounterVec(prometheus.CounterOpts{Name: metricRequests, Help: "h"}, []string{"client", "code", "outcome"})
	drops := prometheus.NewCounterVec(prometheus.CounterOpts{Name: metricDrops, Help: "h"}, []string{"reason"})
	upReq := prometheus.NewCounterVec(prometheus.CounterOpts{Name: metricUpstreamRequests, Help: "h"}, []string{"upstream", "result"})
	reg.MustRegister(req, drops, upReq)
	req.WithLabelValues("core-switch", "Access-Request", "answered").Add(10)
	req.WithLabelValues("core-switch", "Access-Request", "local").Add(5)
	req.WithLabelValues("other", "Access-Request", "local").Add(99)
	drops.WithLabelValues("unknown_client").Add(2)
	drops.WithLabelValues("bad_authenticator")
	upReq.WithLabelValues("radsec.example:2083", "ok").Add(10)
	var d Devices
	decode(t, get(t, h, "/console/api/devices"), &d)
	if c := d.Clients[0]; c.Requests != 15 || c.Rate != 0 || len(c.Outcomes) != 2 || d.WindowS != 0 {
		t.Errorf("first devices load: %+v", d)
	}
	if len(d.Drops) != 1 || d.Drops[0] != (Count{"unknown_client", 2}) {
		t.Errorf("drops: %+v", d.Drops)
	}
	req.WithLabelValues("core-switch", "Access-Request", "local").Add(20)
	clk.t = clk.t.Add(10 * time.Second)
	decode(t, get(t, h, "/console/api/devices"), &d)
	if c := d.Clients[0]; c.Requests != 35 || c.Rate != 2 || d.WindowS != 10 || d.Upstreams[0].Requests != 10 {
		t.Errorf("second devices load: %+v", d)
	}
}

func decode(t testing.TB, w *httptest.ResponseRecorder, v any) {
	t.Helper()
	if ct := w.Header().Get("Content-Type"); ct != "application/json" {
		t.Fatalf("content type %q: %s", ct, w.Body)
	}
	if err := json.Unmarshal(w.Body.Bytes(), v); err != nil {
		t.Fatalf("%v: %s", err, w.Body)
	}
}

// Every page and endpoint answers 401 without the token, and lets the
// token in as a header, a cookie, or ?token= (which sets the cookie).
func TestAuth(t *testing.T) {
	const tok = "0123456789abcdef0123456789abcdef"
	h, _, _, _ := newTestHandler(t, fakeSource{}, Auth{Token: func() (string, error) { return tok, nil }})
	paths := []string{"/console/", "/console/decisions", "/console/client?mac=aa:bb:cc:dd:ee:ff", "/console/devices",
		"/console/api/now", "/console/api/decisions", "/console/api/client?mac=aa:bb:cc:dd:ee:ff", "/console/api/devices",
		"/console/console.css", "/console/live.js", "/console/nope"}
	for _, p := range paths {
		for _, hdr := range [][]string{nil, {"Authorization", "Bearer wrong"}, {"Cookie", CookieName + "=wrong"}, {"Authorization", tok}} {
			w := get(t, h, p, hdr...)
			if w.Code != http.StatusUnauthorized || w.Header().Get("WWW-Authenticate") == "" || strings.Contains(w.Body.String(), "survival") {
				t.Errorf("%s %v: %d %s", p, hdr, w.Code, w.Body)
			}
		}
		if w := get(t, h, p+sep(p)+"token=wrong"); w.Code != http.StatusUnauthorized {
			t.Errorf("%s with a wrong ?token: %d", p, w.Code)
		}
		want := 200
		if strings.HasSuffix(p, "nope") {
			want = 404
		}
		if w := get(t, h, p, "Authorization", "Bearer "+tok); w.Code != want {
			t.Errorf("%s with the bearer token: %d", p, w.Code)
		}
		if w := get(t, h, p, "Cookie", CookieName+"="+tok); w.Code != want {
			t.Errorf("%s with the cookie: %d", p, w.Code)
		}
	}
	w := get(t, h, "/console/decisions?mac=aa:bb:cc:dd:ee:ff&token="+tok)
	c := w.Result().Cookies()
	if w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/console/decisions?mac=aa%3Abb%3Acc%3Add%3Aee%3Aff" ||
		len(c) != 1 || c[0].Value != tok || !c[0].HttpOnly || c[0].SameSite != http.SameSiteStrictMode {
		t.Errorf("?token on a page: %d %v %v", w.Code, w.Header(), c)
	}
	if w := get(t, h, "/console/api/now?token="+tok); w.Code != 200 {
		t.Errorf("?token on the API: %d", w.Code)
	}
	h2, _, _, _ := newTestHandler(t, fakeSource{}, Auth{Token: func() (string, error) { return "", errors.New("gone") }})
	if w := get(t, h2, "/console/", "Authorization", "Bearer "); w.Code != http.StatusUnauthorized {
		t.Errorf("unreadable token file: %d", w.Code)
	}
}

func sep(p string) string {
	if strings.Contains(p, "?") {
		return "&"
	}
	return "?"
}

func TestTokenFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "console.token")
	tok, created, err := EnsureToken(path)
	if err != nil || !created || len(tok) != 64 {
		t.Fatalf("EnsureToken: %q %v %v", tok, created, err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("token file mode: %v %v", fi.Mode(), err)
	}
	again, created, err := EnsureToken(path)
	if again != tok || created || err != nil {
		t.Fatalf("second EnsureToken: %q %v %v", again, created, err)
	}
	clk := &clock{t0}
	tf := &TokenFile{Path: path, Now: clk.now}
	if got, err := tf.Get(); got != tok || err != nil {
		t.Fatalf("Get: %q %v", got, err)
	}
	// Rotated: seen once the file's time changed and a second passed.
	const next = "fedcba9876543210fedcba9876543210"
	if err := os.WriteFile(path, []byte(next+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	os.Chtimes(path, t0.Add(time.Hour), t0.Add(time.Hour))
	if got, _ := tf.Get(); got != tok {
		t.Fatalf("re-read within a second: %q", got)
	}
	clk.t = clk.t.Add(2 * time.Second)
	if got, _ := tf.Get(); got != next {
		t.Fatalf("rotated token not read: %q", got)
	}
	if err := os.WriteFile(path, []byte("short"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := EnsureToken(path); err == nil {
		t.Fatal("a too short token was accepted")
	}
}

func TestFormatMAC(t *testing.T) {
	for in, want := range map[string]string{"AABB.CCDD.EEFF": "aa:bb:cc:dd:ee:ff", "aa-bb-cc-dd-ee-ff": "aa:bb:cc:dd:ee:ff",
		"aabbccddeeff": "aa:bb:cc:dd:ee:ff", "alice": "alice", "": ""} {
		if got := FormatMAC(in); got != want {
			t.Errorf("FormatMAC(%q) = %q, want %q", in, got, want)
		}
	}
}

// The rows written by hand escape like html/template would.
func TestDecisionRowsEscape(t *testing.T) {
	h, rec, _, _ := newTestHandler(t, fakeSource{}, Auth{})
	rec.Record(Decision{Time: t0, MAC: `x"><script>alert(1)</script>`, Identity: "<b>&amp;", Client: `"sw"`, Method: "mab",
		Result: `accept" onclick="x`, Source: "<i>", Reason: "'r'"})
	body := get(t, h, "/console/decisions").Body.String()
	for _, bad := range []string{"<script>alert", "<b>", `"sw"`, `accept" onclick`, "<i>", "'r'"} {
		if strings.Contains(body, bad) {
			t.Errorf("unescaped %q in\n%s", bad, body)
		}
	}
	for _, good := range []string{"&lt;b&gt;&amp;amp;", "&#34;sw&#34;", "mac=x%22%3E%3Cscript%3E", "&#39;r&#39;"} {
		if !strings.Contains(body, good) {
			t.Errorf("no %q in\n%s", good, body)
		}
	}
}
