// Command osvdb turns the OSV reports of a golang/vulndb checkout
// (data/osv/*.json) into the directory layout govulncheck reads with
// -db file:///DIR, for machines that cannot reach vuln.go.dev:
//
//	go run .ci/osvdb/main.go -osv ~/vulndb/data/osv -out /tmp/vulndb
//	GOVULNDB=file:///tmp/vulndb make lint
//
// The reports in a checkout carry no modification time (the public database
// sets it when it publishes), so every entry gets the time given by -as-of.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"
)

type osv struct {
	ID        string   `json:"id"`
	Modified  string   `json:"modified"`
	Published string   `json:"published"`
	Aliases   []string `json:"aliases"`
	Affected  []struct {
		Package struct {
			Name string `json:"name"`
		} `json:"package"`
	} `json:"affected"`
}

type entry struct {
	ID       string   `json:"id"`
	Modified string   `json:"modified"`
	Aliases  []string `json:"aliases,omitempty"`
}

type module struct {
	Path  string  `json:"path"`
	Vulns []entry `json:"vulns"`
}

func main() {
	src := flag.String("osv", "", "directory of OSV reports (vulndb's data/osv)")
	out := flag.String("out", "", "directory to write the database to")
	asOf := flag.String("as-of", "", "modification time of every entry (RFC 3339; default: now)")
	flag.Parse()
	if err := run(*src, *out, *asOf); err != nil {
		fmt.Fprintln(os.Stderr, "osvdb:", err)
		os.Exit(1)
	}
}

func run(src, out, asOf string) error {
	if src == "" || out == "" {
		return fmt.Errorf("-osv and -out are required")
	}
	if asOf == "" {
		asOf = nowRFC3339()
	}
	files, err := filepath.Glob(filepath.Join(src, "*.json"))
	if err != nil || len(files) == 0 {
		return fmt.Errorf("no OSV reports in %s", src)
	}
	for _, d := range []string{"ID", "index"} {
		if err := os.MkdirAll(filepath.Join(out, d), 0o755); err != nil {
			return err
		}
	}
	var vulns []entry
	mods := map[string][]entry{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		var raw map[string]any
		var r osv
		if err := json.Unmarshal(b, &raw); err != nil {
			return fmt.Errorf("%s: %w", f, err)
		}
		if err := json.Unmarshal(b, &r); err != nil || r.ID == "" {
			return fmt.Errorf("%s: not an OSV report", f)
		}
		raw["modified"] = asOf
		if p, _ := raw["published"].(string); p == "" || p[0] == '0' {
			raw["published"] = asOf
		}
		if err := writeJSON(filepath.Join(out, "ID", r.ID+".json"), raw); err != nil {
			return err
		}
		e := entry{ID: r.ID, Modified: asOf, Aliases: r.Aliases}
		vulns = append(vulns, e)
		seen := map[string]bool{}
		for _, a := range r.Affected {
			if p := a.Package.Name; p != "" && !seen[p] {
				seen[p] = true
				mods[p] = append(mods[p], entry{ID: r.ID, Modified: asOf})
			}
		}
	}
	index := make([]module, 0, len(mods))
	for p, v := range mods {
		index = append(index, module{Path: p, Vulns: v})
	}
	sort.Slice(index, func(i, j int) bool { return index[i].Path < index[j].Path })
	sort.Slice(vulns, func(i, j int) bool { return vulns[i].ID < vulns[j].ID })
	if err := writeJSON(filepath.Join(out, "index", "modules.json"), index); err != nil {
		return err
	}
	if err := writeJSON(filepath.Join(out, "index", "vulns.json"), vulns); err != nil {
		return err
	}
	if err := writeJSON(filepath.Join(out, "index", "db.json"), map[string]string{"modified": asOf}); err != nil {
		return err
	}
	fmt.Printf("%d reports, %d modules, as of %s, in %s\n", len(vulns), len(index), asOf, out)
	return nil
}

func writeJSON(path string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}

func nowRFC3339() string { return time.Now().UTC().Format(time.RFC3339) }
