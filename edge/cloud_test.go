package edge

import (
	"context"
	"log/slog"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mxedge/mxedge/cache"
	"github.com/mxedge/mxedge/cloudlink"
	"github.com/mxedge/mxedge/cloudlink/labcloud"
	"github.com/mxedge/mxedge/edge/config"
)

func TestStartCloudLinkUnregistered(t *testing.T) {
	cfg := config.Default()
	cfg.StateDir = t.TempDir()
	stop, status, err := startCloudLink(context.Background(), cfg, nil, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	if st, ok := status().(map[string]any); !ok || st["registered"] != false {
		t.Errorf("status %#v", status())
	}
}

func TestStartCloudLinkSyncs(t *testing.T) {
	lab, srv := startLabAPI(t)
	lab.SetEndpoints(srv.URL, "127.0.0.1:2083")
	lab.Upsert(cloudlink.Entry{MAC: "aabbccddeeff", AuthType: "mab", SiteID: "site-lab",
		Authorization: cloudlink.Authorization{VLAN: "41"}, LastAuthAt: time.Now()})

	cfg := config.Default()
	cfg.StateDir = t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := cloudlink.Register(ctx, srv.URL, lab.NewCode(), cfg.StateDir, cloudlink.RegisterOptions{CAFile: lab.CAFile()}); err != nil {
		t.Fatal(err)
	}
	store, err := cache.Open(filepath.Join(cfg.StateDir, "cache.db"), cache.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	stop, status, err := startCloudLink(ctx, cfg, store, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	// The first sync runs in the background; wait for its entry without sleeping blind.
	for store.Count() == 0 && ctx.Err() == nil {
		select {
		case <-ctx.Done():
		case <-time.After(5 * time.Millisecond):
		}
	}
	stop()
	if st, ok := status().(cloudlink.Status); !ok || st.Entries != 1 || st.EdgeID == "" {
		t.Errorf("status %#v", status())
	}
}

func TestCloudRadSecFromRegistration(t *testing.T) {
	cfg := config.Default()
	cfg.StateDir = t.TempDir()
	if got := cloudRadSec(cfg); got.Cert != "" || len(got.Servers) != 0 {
		t.Errorf("unregistered: %+v", got)
	}
	lab, srv := startLabAPI(t)
	lab.SetEndpoints(srv.URL, "127.0.0.1:2083")
	reg, err := cloudlink.Register(context.Background(), srv.URL, lab.NewCode(), cfg.StateDir, cloudlink.RegisterOptions{CAFile: lab.CAFile()})
	if err != nil {
		t.Fatal(err)
	}
	got := cloudRadSec(cfg)
	if got.Cert != reg.CertFile || got.Key != reg.KeyFile || got.CA != reg.CAFile || len(got.Servers) != 1 {
		t.Errorf("registered: %+v", got)
	}
	cfg.Cloud.RadSec.Servers = []string{"radsec.example.net:2083"}
	if got := cloudRadSec(cfg); got.Servers[0] != "radsec.example.net:2083" {
		t.Errorf("file's servers overridden: %v", got.Servers)
	}
}

// startLabAPI serves a new lab cloud's edge API over TLS until the test
// ends (a test may close the server sooner to cut the WAN).
func startLabAPI(t *testing.T) (*labcloud.Cloud, *httptest.Server) {
	t.Helper()
	lab, err := labcloud.Open(labcloud.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	tc, err := lab.APITLS()
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(lab.Handler())
	srv.TLS = tc
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return lab, srv
}
