package edge

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/mxedge/mxedge/cloudlink"
	"github.com/mxedge/mxedge/internal/syncbuf"
)

// TestRegistrationPickedUp: a daemon started before registration waits,
// says so in status, and picks the registration up at once when asked on
// the control socket: the cloud RadSec pool and the cloud link, without
// a restart.
func TestRegistrationPickedUp(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cfg := testConfig(t)
	var logs syncbuf.Buffer
	a, err := Start(ctx, Options{Config: cfg, Version: "test", Stderr: &logs})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Shutdown(context.Background())

	ask := func(cmd string) *ControlResponse {
		t.Helper()
		resp, err := AskControl(ctx, ControlPath(cfg.StateDir), ControlRequest{Cmd: cmd})
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	st := ask(CmdStatus).Status
	if st.Registered || len(st.Waiting) != 2 || !strings.HasPrefix(st.Waiting[0], "registration: run mxedge register") {
		t.Fatalf("before registration: registered %v, waiting %q", st.Registered, st.Waiting)
	}
	if strings.Contains(logs.String(), "level=WARN") || strings.Contains(logs.String(), "level=ERROR") {
		t.Errorf("waiting for registration is not a warning or an error:\n%s", logs.String())
	}
	if resp := ask(CmdRegistered); !strings.Contains(resp.Error, "no registration") {
		t.Errorf("registered without a registration: %+v", resp)
	}

	lab, srv := startLabAPI(t)
	lab.SetEndpoints(srv.URL, "127.0.0.1:2083")
	if _, err := cloudlink.Register(ctx, srv.URL, lab.NewCode(), cfg.StateDir, cloudlink.RegisterOptions{CAFile: lab.CAFile()}); err != nil {
		t.Fatal(err)
	}
	resp := ask(CmdRegistered)
	if resp.Error != "" || resp.Status == nil {
		t.Fatalf("registered: %+v", resp)
	}
	st = resp.Status
	if !st.Registered || st.Cloud == nil || st.Cloud.EdgeID == "" || len(st.Upstreams) != 1 || len(st.Waiting) != 0 {
		t.Errorf("after registration: registered %v, cloud %+v, upstreams %v, waiting %q", st.Registered, st.Cloud, st.Upstreams, st.Waiting)
	}
	if a.router.cloud.Load() == nil {
		t.Error("no cloud pool in the router")
	}
	// Asking again changes nothing: one link.
	if resp := ask(CmdRegistered); resp.Error != "" {
		t.Errorf("second pick-up: %s", resp.Error)
	}
}
