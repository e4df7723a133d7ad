package radsec

import (
	"context"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

type gatherer = prometheus.Gatherer

func TestMetricNames(t *testing.T) {
	srv := startServer(t, "", echo("A"), nil)
	c, reg := newClient(t, []string{srv.addr}, nil)
	if _, err := c.Exchange(context.Background(), accessRequest(t, 1, "m")); err != nil {
		t.Fatal(err)
	}
	for name, r := range map[string]gatherer{"client": reg, "server": srv.reg} {
		problems, err := testutil.GatherAndLint(r)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range problems {
			t.Errorf("%s metric %s: %s", name, p.Metric, p.Text)
		}
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, mf := range mfs {
		got[mf.GetName()] = true
	}
	for _, want := range []string{
		"mxedge_upstream_up", "mxedge_upstream_rtt_seconds", "mxedge_upstream_requests_total",
		"mxedge_upstream_connections", "mxedge_upstream_reconnects_total", "mxedge_upstream_dropped_replies_total",
	} {
		if !got[want] {
			t.Errorf("metric %s missing", want)
		}
	}
}
