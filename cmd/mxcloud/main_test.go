package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mxedge/mxedge/cache"
	"github.com/mxedge/mxedge/cloudlink"
	"github.com/mxedge/mxedge/cloudlink/labcloud"
	"github.com/mxedge/mxedge/proxy/packet"
	"github.com/mxedge/mxedge/proxy/radsec"
)

func TestParseMAB(t *testing.T) {
	tests := []struct {
		in      string
		want    map[string]string
		wantErr bool
	}{
		{"", map[string]string{}, false},
		{"aabbccddeeff=41", map[string]string{"aabbccddeeff": "41"}, false},
		{"AA:BB:CC:DD:EE:FF=41, 00-11-22-33-44-55=guest", map[string]string{"aabbccddeeff": "41", "001122334455": "guest"}, false},
		{"# allow-list\naabb.ccdd.eeff=7 # printer\n\n001122334455=8\n", map[string]string{"aabbccddeeff": "7", "001122334455": "8"}, false},
		{"aabbccddeeff", nil, true},
		{"aabbccddeeff=", nil, true},
		{"nothex=41", nil, true},
	}
	for _, tt := range tests {
		got, err := parseMAB(tt.in)
		if (err != nil) != tt.wantErr || (!tt.wantErr && !maps.Equal(got, tt.want)) {
			t.Errorf("parseMAB(%q) = %v, %v; want %v (error %v)", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

func FuzzParseMAB(f *testing.F) {
	for _, s := range []string{"aabbccddeeff=41", "a=b,c=d", "# x\n00:11:22:33:44:55=1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m, err := parseMAB(s)
		if err != nil {
			return
		}
		for mac, vlan := range m {
			if len(mac) != 12 || vlan == "" {
				t.Fatalf("parseMAB(%q) gave %q=%q", s, mac, vlan)
			}
		}
	})
}

func TestLoopbackOnly(t *testing.T) {
	for addr, ok := range map[string]bool{
		"127.0.0.1:0": true, "[::1]:2083": true, "localhost:1": true,
		"0.0.0.0:443": false, ":443": false, "192.0.2.1:1": false, "nope": false,
	} {
		if err := loopbackOnly(addr); (err == nil) != ok {
			t.Errorf("loopbackOnly(%q) = %v, want ok %v", addr, err, ok)
		}
	}
}

func TestUsageSaysLab(t *testing.T) {
	var out bytes.Buffer
	if code := run(context.Background(), []string{"--help"}, &out, io.Discard); code != 0 {
		t.Fatalf("exit %d", code)
	}
	if !strings.Contains(out.String(), "LAB cloud") {
		t.Error("help text does not say it is a lab tool")
	}
	if code := run(context.Background(), []string{"serve", "--api", "0.0.0.0:0"}, io.Discard, io.Discard); code != 1 {
		t.Errorf("non-loopback listen: exit %d, want 1", code)
	}
}

// startServe runs `mxcloud serve` in-process and returns the fields of
// its readiness line.
func startServe(t *testing.T, args ...string) map[string]string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan int)
	go func() { done <- run(ctx, append([]string{"serve"}, args...), pw, io.Discard); pw.Close() }()
	t.Cleanup(func() {
		cancel()
		if code := <-done; code != 0 {
			t.Errorf("serve exit %d", code)
		}
	})
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		t.Fatalf("no readiness line: %v", err)
	}
	go io.Copy(io.Discard, pr)
	if !strings.HasPrefix(line, "mxcloud ready ") {
		t.Fatalf("readiness line %q", line)
	}
	f := map[string]string{}
	for _, kv := range strings.Fields(line)[2:] {
		k, v, _ := strings.Cut(kv, "=")
		f[k] = v
	}
	return f
}

// TestServeEndToEnd registers an edge, authenticates a MAB client over
// RadSec with the registration certificate, and syncs it into a cache.
func TestServeEndToEnd(t *testing.T) {
	dir := t.TempDir()
	f := startServe(t, "--dir", dir, "--mab", "aa:bb:cc:dd:ee:ff=41", "--code", "LAB-1", "--seed", "3")
	if f["code"] != "LAB-1" || f["api"] == "" || f["radsec"] == "" {
		t.Fatalf("readiness fields %v", f)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	state := t.TempDir()
	reg, err := cloudlink.Register(ctx, f["api"], "LAB-1", state, cloudlink.RegisterOptions{CAFile: f["ca"]})
	if err != nil {
		t.Fatal(err)
	}
	if len(reg.RadSecServers) != 1 || reg.RadSecServers[0] != f["radsec"] {
		t.Fatalf("radsec servers %v", reg.RadSecServers)
	}
	cert, roots, err := reg.TLS()
	if err != nil {
		t.Fatal(err)
	}
	tc := &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: roots, MinVersion: tls.VersionTLS12}
	rc, err := radsec.New(radsec.Config{Servers: reg.RadSecServers, TLS: tc, Timeout: 5 * time.Second,
		Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	for mac, want := range map[string]packet.Code{"AA-BB-CC-DD-EE-FF": packet.CodeAccessAccept, "00-11-22-33-44-55": packet.CodeAccessReject} {
		b := packet.Append(nil, packet.CodeAccessRequest, 1, packet.RandomAuthenticator())
		b = packet.AppendMessageAuthenticator(b)
		b, _ = packet.AppendAttr(b, packet.AttrUserName, []byte(strings.ReplaceAll(strings.ToLower(mac), "-", "")))
		b, _ = packet.AppendAttr(b, packet.AttrCallingStationID, []byte(mac))
		if err := packet.Sign(b, []byte("radsec"), nil); err != nil {
			t.Fatal(err)
		}
		reply, err := rc.Exchange(ctx, b)
		if err != nil {
			t.Fatal(err)
		}
		if code := packet.Code(reply[0]); code != want {
			t.Errorf("%s: %s, want %s", mac, code, want)
		}
	}

	store, err := cache.Open(filepath.Join(state, "cache.db"), cache.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	client, err := reg.Client(cloudlink.ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s, err := cloudlink.NewSyncer(cloudlink.SyncerConfig{Client: client, Store: store})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.SyncCache(ctx); err != nil {
		t.Fatal(err)
	}
	e, ok, _ := store.Lookup("aabbccddeeff", "")
	if !ok || e.Authorization.VLAN != "41" || store.Count() != 4 {
		t.Errorf("after sync: %+v %v, %d entries; want VLAN 41 and 4 entries", e, ok, store.Count())
	}

	var out bytes.Buffer
	if code := run(ctx, []string{"stats", "--dir", dir}, &out, io.Discard); code != 0 {
		t.Fatalf("stats exit %d", code)
	}
	for _, want := range []string{"edges=1", "accepts=1", "cache_entries=4"} {
		if !strings.Contains(out.String(), want+"\n") {
			t.Errorf("stats %q lacks %q", out.String(), want)
		}
	}
	out.Reset()
	if code := run(ctx, []string{"code", "--dir", dir}, &out, io.Discard); code != 0 || len(strings.TrimSpace(out.String())) != 13 {
		t.Errorf("code: exit %d output %q", code, out.String())
	}
	if code := run(ctx, []string{"lose-cursor", "--dir", dir}, io.Discard, io.Discard); code != 0 {
		t.Errorf("lose-cursor exit %d", code)
	}
	if _, err := client.CachePage(ctx, store.Cursor(), 10, nil); err == nil {
		t.Error("cursor still known after lose-cursor")
	}
}

func TestLoadOrgCA(t *testing.T) {
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca.pem")
	c, err := labcloudCA(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(ca, c, 0o644); err != nil {
		t.Fatal(err)
	}
	crl := filepath.Join(dir, "crl.pem")
	_ = os.WriteFile(crl, []byte("-----BEGIN X509 CRL-----\n-----END X509 CRL-----\n"), 0o644)
	for _, tt := range []struct {
		ca, crl string
		ok      bool
		crls    int
	}{
		{"", "", true, 0},
		{ca, "", true, 0},
		{ca, crl, true, 1},
		{"", crl, false, 0},
		{crl, "", false, 0},
		{filepath.Join(dir, "missing"), "", false, 0},
	} {
		o, err := loadOrgCA(tt.ca, tt.crl)
		if (err == nil) != tt.ok || (o != nil && len(o.CRLs) != tt.crls) {
			t.Errorf("loadOrgCA(%q, %q) = %+v, %v", tt.ca, tt.crl, o, err)
		}
	}
}

// labcloudCA returns a CA certificate PEM by opening a lab cloud in dir.
func labcloudCA(dir string) ([]byte, error) {
	c, err := labcloud.Open(labcloud.Options{Dir: filepath.Join(dir, "lab")})
	if err != nil {
		return nil, err
	}
	return os.ReadFile(c.CAFile())
}
