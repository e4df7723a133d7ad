package edge

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/mxedge/mxedge/cloudlink"
	"github.com/mxedge/mxedge/edge/config"
)

// documentedFamilies reads the metric names from the first column of
// docs/metrics.md's tables, expanding the "…_after_bytes" shorthand.
func documentedFamilies(t *testing.T) map[string]bool {
	t.Helper()
	b, err := os.ReadFile("../docs/metrics.md")
	if err != nil {
		t.Fatal(err)
	}
	fam := map[string]bool{}
	name := regexp.MustCompile("`(mxedge_[a-z_]+|…_[a-z_]+)`")
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(line, "| `") {
			// Prose (the Process section) names families too.
			for _, m := range regexp.MustCompile("`(mxedge_[a-z_]+)[{`]").FindAllStringSubmatch(line, -1) {
				fam[m[1]] = true
			}
			continue
		}
		first := strings.SplitN(line[1:], "|", 2)[0]
		base := ""
		for _, m := range name.FindAllStringSubmatch(first, -1) {
			n := m[1]
			if strings.HasPrefix(n, "…") {
				// "…_after_bytes" after mxedge_x_before_bytes: the prefix up to
				// the last part the first name shares.
				n = base + strings.TrimPrefix(n, "…_")
			} else {
				if i := strings.LastIndex(strings.TrimSuffix(n, "_bytes"), "_"); i > 0 {
					base = n[:i+1]
				}
			}
			fam[n] = true
		}
	}
	return fam
}

// lazyFamilies are documented families still created at their first
// event, with where; a family listed here that the edge exports from
// start fails the test, so the list only shrinks.
var lazyFamilies = map[string]string{}

// Every metric family docs/metrics.md documents is exported from start,
// with every feature that registers families on (registered cloud link,
// local NAC, RadSec listener, federation), and every family exported is
// documented: dashboards and alerts see zeros, not nothing, until the
// first event.
func TestEveryDocumentedFamilyFromStart(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dir := t.TempDir()
	ca, _ := writePair(t, dir, "org-ca", "Org CA")
	cert, key := writePair(t, dir, "eap", "eap.example")
	rsCert, rsKey := writePair(t, dir, "radsec", "localhost")
	yaml := testYAML(t, "auto") + fmt.Sprintf(`  org_ca: %s
  eap_cert: %s
  eap_key: %s
radsec:
  listen: ["127.0.0.1:0"]
  cert: %s
  key: %s
  client_ca: %s
federation:
  - name: eduroam
    exclude_realms: ["example.edu"]
    auth_servers:
      - address: 127.0.0.1:9
        secret: "a-long-enough-federation-secret"
`, ca, cert, key, rsCert, rsKey, ca)
	cfg, err := config.Parse("test.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	// Registered before start: the cloud link and its RadSec pool run.
	lab, srv := startLabAPI(t)
	lab.SetEndpoints(srv.URL, "127.0.0.1:9")
	if _, err := cloudlink.Register(ctx, srv.URL, lab.NewCode(), cfg.StateDir, cloudlink.RegisterOptions{CAFile: lab.CAFile()}); err != nil {
		t.Fatal(err)
	}
	a, err := Start(ctx, Options{Config: cfg, Version: "test", Stderr: &bytes.Buffer{}})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Shutdown(context.Background())
	mfs, err := a.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, mf := range mfs {
		got[mf.GetName()] = true
	}
	doc := documentedFamilies(t)
	for _, n := range slices.Sorted(maps.Keys(doc)) {
		why, cond := lazyFamilies[n]
		switch {
		case !got[n] && !cond:
			t.Errorf("%s is documented but not exported at start", n)
		case got[n] && cond:
			t.Errorf("%s is exported at start: drop it from lazyFamilies (%s)", n, why)
		}
	}
	for _, n := range slices.Sorted(maps.Keys(got)) {
		if strings.HasPrefix(n, "mxedge_") && !doc[n] {
			t.Errorf("%s is exported but not in docs/metrics.md", n)
		}
	}
}
