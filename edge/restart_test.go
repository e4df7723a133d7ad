package edge

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/mxedge/mxedge/edge/config"
	"github.com/mxedge/mxedge/internal/syncbuf"
)

// TestReloadNamesRestartSettings: a reload that changes a setting read
// only at start is applied, but says so: in the log, in status and in
// mxedge_config_restart_pending; changing it back clears it.
func TestReloadNamesRestartSettings(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	base := testYAML(t, "cloud")
	path := filepath.Join(t.TempDir(), "config.yaml")
	write := func(s string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(base)
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	var logs syncbuf.Buffer
	a, err := Start(ctx, Options{ConfigPath: path, Config: cfg, Version: "test", Stderr: &logs})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Shutdown(context.Background())

	// log.level and radius.duplicate_window need a restart; the client's
	// secret does not.
	write(strings.Replace(strings.Replace(base, "a-long-enough-test-secret", "another-long-test-secret", 1),
		"radius:\n", "radius:\n  duplicate_window: 10s\n", 1) + "log:\n  level: debug\n")
	if err := a.Reload(); err != nil {
		t.Fatal(err)
	}
	want := []string{"log.level", "radius.duplicate_window"}
	if got := testutil.ToFloat64(a.reloadOK); got != 1 {
		t.Errorf("mxedge_config_last_reload_successful = %v, want 1 (applied)", got)
	}
	if got := testutil.ToFloat64(a.restart.gauge); got != 1 {
		t.Errorf("mxedge_config_restart_pending = %v, want 1", got)
	}
	for _, k := range want {
		if got := testutil.ToFloat64(a.restart.keys.WithLabelValues(k)); got != 1 {
			t.Errorf("mxedge_config_restart_pending_setting{key=%q} = %v, want 1", k, got)
		}
	}
	if got := a.statusReport(time.Now()).Config.RestartPending; !slices.Equal(got, want) {
		t.Errorf("status restart_pending = %q, want %q", got, want)
	}
	if !strings.Contains(logs.String(), "restart_pending=log.level,radius.duplicate_window") {
		t.Errorf("log does not name the settings:\n%s", logs.String())
	}
	if got := string(a.clients.Load().Lookup(netip.MustParseAddr("127.0.0.1")).Secret); got != "another-long-test-secret" {
		t.Errorf("live setting not applied: secret %q", got)
	}

	write(base)
	if err := a.Reload(); err != nil {
		t.Fatal(err)
	}
	if got := testutil.ToFloat64(a.restart.gauge); got != 0 || len(a.restartPending()) != 0 {
		t.Errorf("back to the started config: pending %v %q", got, a.restartPending())
	}
}

// TestRestartOnlyKeysAreKeys: every key restart.go names is a config key.
func TestRestartOnlyKeysAreKeys(t *testing.T) {
	keys := config.Keys()
	for _, k := range restartOnly {
		if !slices.Contains(keys, k.key) {
			t.Errorf("restartOnly names %q, which is not a config key", k.key)
		}
	}
}
