package edge

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/mxedge/mxedge/cache"
	"github.com/mxedge/mxedge/edge/config"
)

// startAuto starts an edge in survivability mode auto: the cache opens,
// the local NAC stays off for lack of certificates, which is enough here.
func startAuto(t *testing.T) *App {
	t.Helper()
	cfg := testConfig(t)
	cfg.Survivability.Mode = "auto"
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	a, err := Start(ctx, Options{Config: cfg, ConfigPath: "/test/config.yaml", Version: "test", Stderr: &bytes.Buffer{}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Shutdown(context.Background()) })
	return a
}

func ask(t *testing.T, a *App, req ControlRequest) *ControlResponse {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := AskControl(ctx, ControlPath(a.cfg.Load().StateDir), req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func TestControlCommands(t *testing.T) {
	a := startAuto(t)
	path := ControlPath(a.cfg.Load().StateDir)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o660 {
		t.Fatalf("control socket mode %v, want socket 0660", fi.Mode())
	}
	store := a.local.store
	for _, e := range []cache.Entry{
		{MAC: "02:00:00:00:00:01", AuthType: cache.AuthMAB, Authorization: cache.Authorization{VLAN: "10"}},
		{MAC: "02:00:00:00:00:02", AuthType: cache.AuthMAB, Authorization: cache.Authorization{VLAN: "20", Role: "guest"}},
		{MAC: "02:00:00:00:00:02", AuthType: cache.AuthEAPTLS, Identity: cache.Identity{CN: "laptop-7"}},
	} {
		if err := store.Upsert(e); err != nil {
			t.Fatal(err)
		}
	}

	st := ask(t, a, ControlRequest{Cmd: CmdStatus}).Status
	if st == nil || !st.Running || st.Mode != "none" || st.Cache == nil || st.Cache.Entries != 3 ||
		st.Config.File != "/test/config.yaml" || st.Registered || st.Since.IsZero() {
		t.Fatalf("status: %+v", st)
	}

	cases := []struct {
		name    string
		req     ControlRequest
		entries []string // MAC/auth type of each returned entry
		purged  int      // -1: no purge count
		err     string
	}{
		{"ls", ControlRequest{Cmd: CmdCacheList}, []string{"020000000001/mab", "020000000002/mab", "020000000002/eap-tls"}, -1, ""},
		{"show both entries of a MAC", ControlRequest{Cmd: CmdCacheShow, MAC: "02-00-00-00-00-02"}, []string{"020000000002/mab", "020000000002/eap-tls"}, -1, ""},
		{"show unknown", ControlRequest{Cmd: CmdCacheShow, MAC: "02:00:00:00:00:09"}, nil, -1, ""},
		{"show bad MAC", ControlRequest{Cmd: CmdCacheShow, MAC: "nope"}, nil, -1, "not a MAC"},
		{"purge one MAC", ControlRequest{Cmd: CmdCachePurge, MAC: "020000000002"}, nil, 2, ""},
		{"after purge", ControlRequest{Cmd: CmdCacheList}, []string{"020000000001/mab"}, -1, ""},
		{"purge all", ControlRequest{Cmd: CmdCachePurge}, nil, 1, ""},
		{"empty", ControlRequest{Cmd: CmdCacheList}, nil, -1, ""},
		{"unknown", ControlRequest{Cmd: "reboot"}, nil, -1, "unknown command"},
	}
	for _, c := range cases {
		resp := ask(t, a, c.req)
		if c.err != "" {
			if !strings.Contains(resp.Error, c.err) {
				t.Errorf("%s: error %q, want %q", c.name, resp.Error, c.err)
			}
			continue
		}
		if resp.Error != "" {
			t.Errorf("%s: %s", c.name, resp.Error)
			continue
		}
		var got []string
		for _, e := range resp.Entries {
			got = append(got, e.MAC+"/"+e.AuthType)
		}
		if strings.Join(got, " ") != strings.Join(c.entries, " ") {
			t.Errorf("%s: entries %v, want %v", c.name, got, c.entries)
		}
		if c.purged >= 0 && (resp.Purged == nil || *resp.Purged != c.purged) {
			t.Errorf("%s: purged %v, want %d", c.name, resp.Purged, c.purged)
		}
	}

	a.Shutdown(context.Background())
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("control socket left after shutdown: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := AskControl(ctx, path, ControlRequest{Cmd: CmdStatus}); !errors.Is(err, ErrNoDaemon) {
		t.Fatalf("after shutdown: %v, want ErrNoDaemon", err)
	}
}

func TestControlStaleSocketReplacedLiveRefused(t *testing.T) {
	cfg := testConfig(t)
	path := ControlPath(cfg.StateDir)
	// A crashed daemon leaves a socket file nobody listens on.
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close()
	if _, err := os.Stat(path); err != nil {
		t.Fatal("stale socket not left behind:", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a, err := Start(ctx, Options{Config: cfg, Stderr: &bytes.Buffer{}})
	if err != nil {
		t.Fatal("stale socket not replaced:", err)
	}
	defer a.Shutdown(context.Background())
	if resp := ask(t, a, ControlRequest{Cmd: CmdStatus}); resp.Status == nil {
		t.Fatalf("status: %+v", resp)
	}
	// A second daemon on the same state_dir finds the first one answering.
	if b, err := Start(ctx, Options{Config: testConfigIn(t, cfg.StateDir), Stderr: &bytes.Buffer{}}); err == nil {
		b.Shutdown(context.Background())
		t.Fatal("second daemon started on a live control socket")
	} else if !errors.Is(err, errControlInUse) {
		t.Fatalf("second daemon: %v", err)
	}
	if resp := ask(t, a, ControlRequest{Cmd: CmdStatus}); resp.Status == nil {
		t.Fatal("first daemon's socket lost")
	}
}

// testConfigIn is testConfig with a given state_dir.
func testConfigIn(t *testing.T, dir string) *config.Config {
	cfg := testConfig(t)
	cfg.StateDir = dir
	return cfg
}

func TestControlBounds(t *testing.T) {
	a := startAuto(t)
	path := ControlPath(a.cfg.Load().StateDir)
	roundTrip := func(c net.Conn, send string) ControlResponse {
		t.Helper()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		if send != "" {
			// The server may answer and close before reading it all (a
			// refusal, an oversized request): the answer is what counts.
			c.Write([]byte(send))
		}
		var resp ControlResponse
		if err := json.NewDecoder(c).Decode(&resp); err != nil {
			t.Fatal(err)
		}
		return resp
	}
	dial := func() net.Conn {
		t.Helper()
		c, err := net.Dial("unix", path)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	cases := []struct{ name, send, err string }{
		{"too long", `{"cmd":"` + strings.Repeat("x", controlMaxRequest) + "\"}\n", "too long"},
		{"not JSON", "status\n", "bad request"},
		{"no newline, closed write side", `{"cmd":"status"}`, ""},
	}
	for _, c := range cases {
		conn := dial()
		if c.err == "" {
			conn.Write([]byte(c.send))
			conn.(*net.UnixConn).CloseWrite()
			if resp := roundTrip(conn, ""); resp.Status == nil {
				t.Errorf("%s: %+v", c.name, resp)
			}
			continue
		}
		if resp := roundTrip(conn, c.send); !strings.Contains(resp.Error, c.err) {
			t.Errorf("%s: error %q, want %q", c.name, resp.Error, c.err)
		}
	}

	// Connections that send nothing hold their slot until the read
	// deadline; past controlMaxConns the next one is told so at once.
	// The cases above released their slots just after answering.
	for deadline := time.Now().Add(10 * time.Second); len(a.side.control.sem) > 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("control slots still held after their requests were answered")
		}
	}
	var idle []net.Conn
	for range controlMaxConns {
		idle = append(idle, dial())
	}
	// The accept loop takes connections in the order they were dialed,
	// so the ninth finds every slot taken.
	resp := roundTrip(dial(), `{"cmd":"status"}`+"\n")
	if !strings.Contains(resp.Error, "busy") {
		t.Fatalf("past %d connections: %+v", controlMaxConns, resp)
	}
	for _, c := range idle {
		c.Close()
	}
}

func FuzzReadRequest(f *testing.F) {
	for _, s := range []string{`{"cmd":"status"}` + "\n", `{"cmd":"cache_show","mac":"02:00:00:00:00:01"}`, "", "\n", "{"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		req, err := readRequest(bytes.NewReader(b))
		if err != nil {
			return
		}
		if _, err := json.Marshal(req); err != nil {
			t.Fatal(err)
		}
	})
}
