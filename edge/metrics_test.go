package edge

import (
	"bytes"
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// Every metric the running edge registers passes the Prometheus lint, and
// every metric the shipped dashboard queries is one the edge exports.
func TestMetricsLintAndDashboard(t *testing.T) {
	cfg := testConfig(t)
	cfg.Survivability.Mode = "auto" // opens the cache, so its metrics register too
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a, err := Start(ctx, Options{Config: cfg, Version: "test", Stderr: &bytes.Buffer{}})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Shutdown(context.Background())

	problems, err := testutil.GatherAndLint(a.reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}

	// Names defined anywhere in the product's source: vectors only show
	// in a scrape once they have children, but a renamed metric must not
	// leave a dashboard panel empty.
	have := map[string]bool{}
	def := regexp.MustCompile(`Name: +"(mxedge_[a-z_]+)"`)
	err = filepath.WalkDir("..", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return err
		}
		b, err := os.ReadFile(path)
		for _, m := range def.FindAllSubmatch(b, -1) {
			have[string(m[1])] = true
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	conditional := map[string]bool{}
	dash, err := os.ReadFile("../packaging/grafana/mxedge-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range regexp.MustCompile(`mxedge_[a-z_]+`).FindAllString(string(dash), -1) {
		base := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(m, "_bucket"), "_sum"), "_count")
		if !have[base] && !conditional[base] {
			t.Errorf("dashboard queries %s, which the edge does not export", m)
		}
	}
}
