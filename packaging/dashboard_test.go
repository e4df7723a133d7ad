package packaging

import (
	"encoding/json"
	"os"
	"regexp"
	"strings"
	"testing"
)

// knownMetrics are the series mxedge exports (see the metrics.go files);
// a dashboard query naming anything else shows an empty panel.
var knownMetrics = map[string]bool{
	"mxedge_requests_total":                    true,
	"mxedge_upstream_rtt_seconds_bucket":       true,
	"mxedge_upstream_rtt_seconds_sum":          true,
	"mxedge_upstream_rtt_seconds_count":        true,
	"mxedge_upstream_up":                       true,
	"mxedge_drops_total":                       true,
	"mxedge_route_total":                       true,
	"mxedge_mode":                              true,
	"mxedge_cache_entries":                     true,
	"mxedge_cache_last_sync_timestamp_seconds": true,
	"mxedge_cache_outbox_events":               true,
}

type dashboard struct {
	Title      string  `json:"title"`
	UID        string  `json:"uid"`
	Panels     []panel `json:"panels"`
	Templating struct {
		List []struct {
			Name       string          `json:"name"`
			Definition string          `json:"definition"`
			Query      json.RawMessage `json:"query"`
		} `json:"list"`
	} `json:"templating"`
}

type panel struct {
	ID      int     `json:"id"`
	Title   string  `json:"title"`
	Type    string  `json:"type"`
	Panels  []panel `json:"panels"` // collapsed rows nest their panels
	Targets []struct {
		Expr  string `json:"expr"`
		RefID string `json:"refId"`
	} `json:"targets"`
}

var (
	// Parts of a PromQL expression that hold no metric names.
	promStrings  = regexp.MustCompile(`"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|` + "`[^`]*`")
	promMatchers = regexp.MustCompile(`\{[^}]*\}`)
	promRanges   = regexp.MustCompile(`\[[^\]]*\]`)
	promGrouping = regexp.MustCompile(`\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)`)
	promIdent    = regexp.MustCompile(`[a-zA-Z_:][a-zA-Z0-9_:]*`)
	promKeywords = map[string]bool{
		"and": true, "or": true, "unless": true, "bool": true, "offset": true,
		"by": true, "without": true, "on": true, "ignoring": true,
		"group_left": true, "group_right": true, "inf": true, "nan": true,
	}
)

// metricNames returns the metric names an expression selects: identifiers
// left after dropping strings, label matchers, ranges, grouping lists,
// keywords and function calls.
func metricNames(expr string) []string {
	s := promStrings.ReplaceAllString(expr, " ")
	s = promMatchers.ReplaceAllString(s, " ")
	s = promRanges.ReplaceAllString(s, " ")
	s = promGrouping.ReplaceAllString(s, " ")
	var names []string
	for _, loc := range promIdent.FindAllStringIndex(s, -1) {
		id := s[loc[0]:loc[1]]
		if loc[0] > 0 && (s[loc[0]-1] >= '0' && s[loc[0]-1] <= '9' || s[loc[0]-1] == '.') {
			continue // the exponent or suffix of a number, such as 1e3
		}
		if promKeywords[strings.ToLower(id)] {
			continue
		}
		if rest := strings.TrimLeft(s[loc[1]:], " \t\n"); strings.HasPrefix(rest, "(") {
			continue // a function
		}
		names = append(names, id)
	}
	return names
}

func TestMetricNames(t *testing.T) {
	tests := []struct {
		expr string
		want []string
	}{
		{`mxedge_cache_entries`, []string{"mxedge_cache_entries"}},
		{`sum by (path) (rate(mxedge_route_total{instance=~"$instance"}[$__rate_interval]))`, []string{"mxedge_route_total"}},
		{`histogram_quantile(0.95, sum by (le, upstream) (rate(mxedge_upstream_rtt_seconds_bucket[5m])))`, []string{"mxedge_upstream_rtt_seconds_bucket"}},
		{`time() - max(mxedge_cache_last_sync_timestamp_seconds)`, []string{"mxedge_cache_last_sync_timestamp_seconds"}},
		{`max by (mode) (mxedge_mode{mode="local"}) == 1 and on (instance) up`, []string{"mxedge_mode", "up"}},
		{`rate(node_cpu_seconds_total{mode="idle"}[1m]) * 1e3`, []string{"node_cpu_seconds_total"}},
		{`label_replace(mxedge_mode, "x", "$1", "mode", "(.*)")`, []string{"mxedge_mode"}},
	}
	for _, tt := range tests {
		got := metricNames(tt.expr)
		if strings.Join(got, ",") != strings.Join(tt.want, ",") {
			t.Errorf("metricNames(%q) = %q, want %q", tt.expr, got, tt.want)
		}
	}
}

func TestDashboard(t *testing.T) {
	b, err := os.ReadFile("grafana/mxedge-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	dec := json.NewDecoder(strings.NewReader(string(b)))
	if err := dec.Decode(&d); err != nil {
		t.Fatalf("dashboard JSON: %v", err)
	}
	if d.Title == "" || d.UID == "" {
		t.Errorf("dashboard needs a title and uid, got %q %q", d.Title, d.UID)
	}

	var all []panel
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			all = append(all, p)
			walk(p.Panels)
		}
	}
	walk(d.Panels)

	ids := make(map[int]string)
	used := make(map[string]bool)
	var exprs int
	for _, p := range all {
		if prev, ok := ids[p.ID]; ok {
			t.Errorf("panels %q and %q share id %d", prev, p.Title, p.ID)
		}
		ids[p.ID] = p.Title
		if p.Type != "row" && len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			exprs++
			names := metricNames(tg.Expr)
			if len(names) == 0 {
				t.Errorf("panel %q %s: no metric in %q", p.Title, tg.RefID, tg.Expr)
			}
			for _, n := range names {
				used[n] = true
				if !strings.HasPrefix(n, "mxedge_") || !knownMetrics[n] {
					t.Errorf("panel %q %s: %q is not an mxedge metric (expr %q)", p.Title, tg.RefID, n, tg.Expr)
				}
			}
			if !strings.Contains(tg.Expr, `instance=~"$instance"`) {
				t.Errorf("panel %q %s ignores the $instance selector: %q", p.Title, tg.RefID, tg.Expr)
			}
		}
	}
	for _, v := range d.Templating.List {
		for _, n := range metricNames(strings.TrimSuffix(strings.TrimPrefix(v.Definition, "label_values("), ")")) {
			if n != "instance" && !knownMetrics[n] {
				t.Errorf("variable %q queries %q, not an mxedge metric", v.Name, n)
			}
		}
	}
	// Every metric family the brief lists has a panel.
	for _, family := range []string{"mxedge_mode", "mxedge_route_total", "mxedge_requests_total",
		"mxedge_upstream_rtt_seconds_bucket", "mxedge_upstream_up", "mxedge_drops_total",
		"mxedge_cache_entries", "mxedge_cache_last_sync_timestamp_seconds", "mxedge_cache_outbox_events"} {
		if !used[family] {
			t.Errorf("no panel shows %s", family)
		}
	}
	t.Logf("%d panels, %d queries", len(all), exprs)
}
