package archtest

import (
	"encoding/json"
	"errors"
	"io"
	"os/exec"
	"slices"
	"sort"
	"strings"
	"testing"
)

const module = "github.com/mxedge/mxedge"

// allowed is the import table of docs/architecture.md, for the module's own
// packages: a package under the key may depend (directly or not, production
// code only) on the packages under the listed prefixes. The longest key that
// is a prefix of a package decides; every package must fall under one.
var allowed = map[string][]string{
	// proxy knows nothing of caches or clouds.
	"proxy": {"proxy"},
	// cache knows nothing of RADIUS wire formats.
	"cache": {"cache"},
	// cloudlink speaks the cloud API and fills the cache.
	"cloudlink": {"cloudlink", "cache"},
	// The local authenticator: the cache and proxy's packet helpers and
	// shared types, never the appliance that wires it.
	"edge/nac": {"edge/nac", "cache", "proxy"},
	// edge is where they meet.
	"edge": {"edge", "proxy", "cache", "cloudlink"},
	// The lab cloud: cloudlink, proxy and edge/nac, never the appliance.
	"cmd/mxcloud":  {"cmd/mxcloud", "cmd/internal", "internal", "cloudlink", "cache", "proxy", "edge/nac"},
	"cmd/internal": {"cmd/internal", "internal", "cloudlink", "cache", "proxy", "edge/nac"},
	"cmd":          {""}, // the commands may import everything
	// Test helpers importable by every package's tests: nothing of ours.
	"internal": {"internal"},
	// Packaging's Go code is tests of the package files.
	"packaging": {},
}

// labOnly are packages for demos, tests and benchmarks: only cmd/ (and any
// test) may have them in its production dependencies.
var labOnly = []string{"cloudlink/labcloud", "edge/nac/eaptls/eaptlstest", "proxy/packet/packettest", "internal"}

// directOnly narrows what a command imports itself, which is what "cmd/ is
// thin" means here: the daemon's command parses flags and calls edge, it does
// no wire, cache or TLS work of its own; the lab cloud's command wires the
// lab packages.
var directOnly = map[string][]string{
	"cmd/mxedge": {"edge", "edge/config", "edge/console", "cache", "cloudlink"},
}

type pkg struct {
	ImportPath   string
	Name         string
	Doc          string
	Imports      []string
	Deps         []string
	TestImports  []string
	XTestImports []string
	GoFiles      []string
}

// list runs `go list` over the module: Deps is what `go list -deps` prints,
// every package that a package's production code reaches.
func list(t *testing.T) []pkg {
	t.Helper()
	// go test puts its own toolchain first on PATH.
	cmd := exec.Command("go", "list", "-e", "-json=ImportPath,Name,Doc,Imports,Deps,TestImports,XTestImports,GoFiles", module+"/...")
	cmd.Dir = "../.."
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("go list: %v\n%s", err, ee.Stderr)
		}
		t.Fatalf("go list: %v", err)
	}
	var pkgs []pkg
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for {
		var p pkg
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		p.ImportPath = rel(p.ImportPath)
		pkgs = append(pkgs, p)
	}
	if len(pkgs) < 10 {
		t.Fatalf("go list found %d packages; expected the whole module", len(pkgs))
	}
	return pkgs
}

// rel strips the module path: "proxy/udp", or "." for the root.
func rel(p string) string {
	if p == module {
		return "."
	}
	return strings.TrimPrefix(p, module+"/")
}

func ours(p string) bool { return p == module || strings.HasPrefix(p, module+"/") }

// under reports whether path is prefix or below it; "" is above everything.
func under(path, prefix string) bool {
	return prefix == "" || path == prefix || strings.HasPrefix(path, prefix+"/")
}

// ruleFor is the longest key of allowed that path falls under.
func ruleFor(path string) (string, bool) {
	best, found := "", false
	for k := range allowed {
		if under(path, k) && (!found || len(k) > len(best)) {
			best, found = k, true
		}
	}
	return best, found
}

// violations lists the imports of ours, among deps, that path's rule
// forbids, plus lab-only packages outside cmd/.
func violations(path string, deps []string, extra []string) []string {
	key, ok := ruleFor(path)
	if !ok {
		return []string{"(no rule in allowed for " + path + ")"}
	}
	may := append(slices.Clone(allowed[key]), extra...)
	var bad []string
	for _, d := range deps {
		if !ours(d) {
			continue
		}
		d = rel(d)
		if !slices.ContainsFunc(may, func(p string) bool { return under(d, p) }) {
			bad = append(bad, d)
			continue
		}
		if len(extra) == 0 && !under(path, "cmd") && !under(path, "internal") &&
			slices.ContainsFunc(labOnly, func(p string) bool { return under(d, p) && !under(path, p) }) {
			bad = append(bad, d+" (lab/test only)")
		}
	}
	sort.Strings(bad)
	return slices.Compact(bad)
}

func TestImportTable(t *testing.T) {
	for _, p := range list(t) {
		if bad := violations(p.ImportPath, p.Deps, nil); len(bad) > 0 {
			key, _ := ruleFor(p.ImportPath)
			t.Errorf("%s depends on %s; docs/architecture.md lets %q import only %q",
				p.ImportPath, strings.Join(bad, ", "), key, allowed[key])
		}
		if only, ok := directOnly[p.ImportPath]; ok {
			for _, imp := range p.Imports {
				if ours(imp) && !slices.Contains(only, rel(imp)) {
					t.Errorf("%s imports %s itself; a thin command imports only %q and leaves the work to them", p.ImportPath, rel(imp), only)
				}
			}
		}
	}
}

// TestTestImports holds tests to the same table, with the shared test
// helpers under internal/ and the lab packages allowed: a proxy test that
// needs edge to run is a proxy that needs edge.
func TestTestImports(t *testing.T) {
	for _, p := range list(t) {
		imps := append(slices.Clone(p.TestImports), p.XTestImports...)
		if bad := violations(p.ImportPath, imps, append([]string{"internal"}, labOnly...)); len(bad) > 0 {
			// A lab package's own rule still holds: labcloud is cloudlink.
			var real []string
			for _, b := range bad {
				if !slices.ContainsFunc(labOnly, func(l string) bool { return under(b, l) }) {
					real = append(real, b)
				}
			}
			if len(real) > 0 {
				t.Errorf("tests of %s import %s, outside its row of the table", p.ImportPath, strings.Join(real, ", "))
			}
		}
	}
}

// TestPackageComments requires every package to say what it is and why.
func TestPackageComments(t *testing.T) {
	for _, p := range list(t) {
		if len(p.GoFiles) == 0 {
			continue // test-only directories have no package to document
		}
		want := "Package " + p.Name + " "
		if p.Name == "main" {
			want = "Command "
		}
		if !strings.HasPrefix(p.Doc, want) {
			t.Errorf("%s: package comment %q should start %q", p.ImportPath, p.Doc, want)
		}
	}
}

// TestRules checks the checker on imports it must refuse.
func TestRules(t *testing.T) {
	for _, tc := range []struct {
		pkg, dep string
		bad      bool
	}{
		{"proxy/udp", "proxy/packet", false},
		{"proxy/udp", "cache", true},
		{"proxy", "edge", true},
		{"proxy/radsec", "cloudlink", true},
		{"cache", "proxy/packet", true},
		{"cloudlink", "cache", false},
		{"cloudlink", "proxy", true},
		{"cloudlink", "edge", true},
		{"edge/nac", "edge", true},
		{"edge/nac", "edge/config", true},
		{"edge/nac/eaptls", "proxy/packet", false},
		{"edge", "cmd/internal/load", true},
		{"edge", "internal/labpki", true},
		{"edge", "cloudlink/labcloud", true},
		{"proxy/coa", "proxy/packet/packettest", true},
		{"edge/console", "cache", false},
		{"cmd/mxcloud", "edge", true},
		{"cmd/mxcloud", "edge/nac/eaptls", false},
		{"cmd/mxedge", "edge", false},
		{"internal/labpki", "proxy/packet", true},
	} {
		got := len(violations(tc.pkg, []string{module + "/" + tc.dep}, nil)) > 0
		if got != tc.bad {
			t.Errorf("%s importing %s: forbidden=%v, want %v", tc.pkg, tc.dep, got, tc.bad)
		}
	}
}
