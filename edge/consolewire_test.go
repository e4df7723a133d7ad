package edge

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mxedge/mxedge/cache"
	"github.com/mxedge/mxedge/edge/console"
	"github.com/mxedge/mxedge/edge/nac"
	"github.com/mxedge/mxedge/proxy"
	"github.com/mxedge/mxedge/proxy/packet"
)

func TestConsoleDecisionHooks(t *testing.T) {
	var w consoleWire
	w.nacDecision(cache.Event{Type: nac.EventAllowed, MAC: "aabbccddeeff"}, nil) // no recorder yet: ignored
	rec := console.NewRecorder(10)
	w.rec.Store(rec)
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	w.nacDecision(cache.Event{Type: nac.EventCertValid, MAC: "aabbccddeeff", Time: at}, nil)
	w.nacDecision(cache.Event{Type: nac.EventAllowed, MAC: "aabbccddeeff", Identity: "aabbccddeeff", Time: at},
		[]cache.Field{{Key: "auth_type", Value: "mab"}, {Key: "nas", Value: "sw"}, {Key: "result", Value: "accept"},
			{Key: "source", Value: "cache"}, {Key: "vlan", Value: "41"}})
	w.nacDecision(cache.Event{Type: nac.EventDenied, MAC: "020000000003", Identity: "cn:x", Reason: "certificate_revoked", Time: at},
		[]cache.Field{{Key: "auth_type", Value: "eap-tls"}, {Key: "result", Value: "reject"}})

	learned := 0
	learn := w.chainLearn(func(*proxy.Request, []byte) { learned++ })
	mab := request(t, attr{t: packet.AttrUserName, v: "02-00-00-00-00-07"}, attr{t: packet.AttrCallingStationID, v: "02:00:00:00:00:07"})
	learn(mab, build(t, packet.CodeAccessAccept, attr{t: packet.AttrTunnelPrivateGroupID, v: "\x0012"}))
	eap := request(t, attr{t: packet.AttrUserName, v: "alice@example.org"}, attr{t: packet.AttrCallingStationID, v: "02-00-00-00-00-08"},
		attr{t: packet.AttrEAPMessage, v: "\x02\x01\x00\x06\x0d\x00"})
	learn(eap, build(t, packet.CodeAccessChallenge)) // not a decision
	learn(eap, build(t, packet.CodeAccessReject))
	if learned != 3 {
		t.Errorf("the learn hook ran %d times, want 3", learned)
	}

	got := rec.Recent(console.Filter{}, 10)
	want := []console.Decision{
		{Seq: 4, MAC: "02:00:00:00:00:08", Identity: "alice@example.org", Client: "sw", Method: "eap", Result: "reject", Source: "cloud"},
		{Seq: 3, MAC: "02:00:00:00:00:07", Client: "sw", Method: "mab", Result: "accept", VLAN: "12", Source: "cloud"},
		{Seq: 2, Time: at, MAC: "02:00:00:00:00:03", Identity: "cn:x", Method: "eap-tls", Result: "reject", Source: "none", Reason: "certificate_revoked"},
		{Seq: 1, Time: at, MAC: "aa:bb:cc:dd:ee:ff", Client: "sw", Method: "mab", Result: "accept", VLAN: "41", Source: "cache"},
	}
	if len(got) != len(want) {
		t.Fatalf("recorded %+v", got)
	}
	for i := range want {
		g := got[i]
		if g.Source == "cloud" {
			if g.Time.IsZero() {
				t.Errorf("cloud decision without a time")
			}
			g.Time = time.Time{}
		}
		if g != want[i] {
			t.Errorf("decision %d:\ngot  %+v\nwant %+v", i, g, want[i])
		}
	}
}

// The console on a loopback listener needs no token and shows the
// daemon's mode; off loopback every page wants the token from the file,
// and metrics.https serves it all over TLS.
func TestConsoleServed(t *testing.T) {
	cfg := testConfig(t)
	cfg.Survivability.Mode = "auto"
	cfg.Metrics.Listen = "127.0.0.1:0"
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a, err := Start(ctx, Options{Config: cfg, Version: "test", Stderr: &bytes.Buffer{}})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Shutdown(context.Background())
	base := "http://" + a.metrics.Addr().String()
	var now console.Now
	getJSON(t, http.DefaultClient, base+"/console/api/now", &now)
	if now.Mode == "" || now.Cache == nil {
		t.Errorf("now: %+v", now)
	}
	resp, err := http.Get(base + "/")
	if err != nil || resp.Request.URL.Path != "/console/" || resp.StatusCode != 200 {
		t.Fatalf("/ does not lead to the console: %v %v", err, resp)
	}
	resp.Body.Close()
	for _, p := range []string{"/metrics", "/healthz"} {
		if resp, err := http.Get(base + p); err != nil || resp.StatusCode != 200 {
			t.Errorf("%s: %v %v", p, err, resp)
		} else {
			resp.Body.Close()
		}
	}

	// Off loopback (the handler alone: tests bind loopback only).
	off := *a.cfg.Load()
	off.Metrics.Listen = "192.0.2.1:9812"
	off.Metrics.TokenFile = filepath.Join(t.TempDir(), "console.token")
	h, err := a.consoleHandler(&off, false)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := console.ReadToken(off.Metrics.TokenFile)
	if err != nil {
		t.Fatalf("token file not created: %v", err)
	}
	for _, p := range []string{"/console/", "/console/decisions", "/console/client?mac=02:00:00:00:00:01", "/console/devices",
		"/console/api/now", "/console/api/decisions", "/console/api/client?mac=02:00:00:00:00:01", "/console/api/devices"} {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest("GET", p, nil))
		if w.Code != http.StatusUnauthorized {
			t.Errorf("%s without the token: %d", p, w.Code)
		}
		w = httptest.NewRecorder()
		r := httptest.NewRequest("GET", p, nil)
		r.Header.Set("Authorization", "Bearer "+tok)
		h.ServeHTTP(w, r)
		if w.Code != http.StatusOK {
			t.Errorf("%s with the token: %d %s", p, w.Code, w.Body)
		}
	}

	// HTTPS with metrics.tls_cert/tls_key.
	dir := t.TempDir()
	cert, key := writePair(t, dir, "console", "mxedge.test")
	cfg2 := testConfig(t)
	cfg2.Metrics.Listen, cfg2.Metrics.HTTPS, cfg2.Metrics.TLSCert, cfg2.Metrics.TLSKey = "127.0.0.1:0", true, cert, key
	a2, err := Start(ctx, Options{Config: cfg2, Version: "test", Stderr: &bytes.Buffer{}})
	if err != nil {
		t.Fatal(err)
	}
	defer a2.Shutdown(context.Background())
	tc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	getJSON(t, tc, "https://"+a2.metrics.Addr().String()+"/console/api/now", &now)
	if resp, err := http.Get("http://" + a2.metrics.Addr().String() + "/console/"); err == nil && resp.StatusCode == 200 {
		t.Errorf("plain HTTP served with metrics.https")
	}
}

func getJSON(t *testing.T, c *http.Client, url string, v any) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		t.Fatalf("%s: %s", url, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatal(err)
	}
}
